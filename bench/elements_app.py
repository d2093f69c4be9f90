"""A bare Streamlit page that draws ``?n=`` elements (``?kind=caption``: one caption each; ``?kind=container``: a
container holding one line of Markdown each) and prints how long its run took to stderr. bench_element_cost.py
serves it to measure what one element costs a page run on this machine. Not part of the app."""

import sys
import time

import streamlit as st

started = time.perf_counter()
n = int(st.query_params.get("n", "10"))
kind = st.query_params.get("kind", "caption")
for i in range(n):
    if kind == "caption":
        st.caption(f"line {i}: a short line of text")
    else:
        with st.container():
            st.markdown(f"line {i}: a short line of text")
print(f"elements run n={n} kind={kind} {(time.perf_counter() - started) * 1000:.2f} ms", file=sys.stderr, flush=True)
