"""What server.py mounts beside the Streamlit app: HTTP routes and the in-process worker."""

from __future__ import annotations

import logging
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from lib.config import get_settings

log = logging.getLogger("helpdesk.server")


async def health(_request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def routes() -> list[Route]:
    from lib.api import routes as api_routes

    found: list[Route] = list(api_routes)
    if not any(getattr(r, "path", None) == "/api/health" for r in found):
        found.append(Route("/api/health", health, methods=["GET"]))
    return found


def start_worker() -> Callable[[], None]:
    """Run the background worker inside the app server unless HELPDESK_WORKER=off (then run it separately)."""
    if not get_settings().worker:
        log.info("in-process worker disabled (HELPDESK_WORKER=off)")
        return lambda: None
    from lib.db import get_engine
    from lib.worker import start_background

    return start_background(get_engine())
