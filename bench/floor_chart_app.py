"""The floor for "new tab → first chart": a bare Streamlit page with one small chart drawn by Streamlit's own
Plotly chart and nothing else (no sign-in, no database). bench_server_pages.py serves it beside the app and
measures it in the same run, so the Metrics page's figure reads against what any Streamlit page with Streamlit's
Plotly chart costs this machine's browser (the app's chart pages draw with plotly.js's cartesian bundle instead,
lib/ui/plotly_chart.py). Not part of the app."""

import plotly.graph_objects as go
import streamlit as st

st.title("One chart")
st.plotly_chart(go.Figure(go.Bar(x=["a", "b", "c"], y=[1, 3, 2])))
