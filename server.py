"""The app server: `streamlit run server.py` serves the Streamlit app, the HTTP routes
(sign-in cookie, monitoring alert webhook, health) and the background worker in one process.

`app.py` is the script it runs; served alone (`streamlit run app.py`) it has no `/auth` routes to set the
session cookie, so nobody can sign in.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import streamlit as st
from starlette.middleware import Middleware
from streamlit.runtime.pages_manager import PagesManager

from lib.server_routes import SecurityHeaders, routes, start_worker, warm_board

# app.py routes with st.navigation. Without this, Streamlit's legacy handling of a pages/ folder would
# serve a deep link of the very first session after start (e.g. /ticket?id=5) by running that page file
# directly, past app.py's login gate (the page's own role check would then refuse it).
PagesManager.uses_pages_directory = False


@asynccontextmanager
async def lifespan(_app: object) -> AsyncIterator[None]:
    stop = start_worker()
    warm_board()
    try:
        yield
    finally:
        stop()


app = st.App(str(Path(__file__).with_name("app.py")), routes=routes(), lifespan=lifespan,
             middleware=[Middleware(SecurityHeaders)])
