"""What server.py mounts beside the Streamlit app: HTTP routes and the in-process worker."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from lib.config import get_settings

log = logging.getLogger("helpdesk.server")


async def health(_request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


#: Sent with every HTTP response of the app server: no other site may frame a page (clickjacking of the
#: confirmation page or the login form), no content-type guessing, no full URLs leaked to other sites.
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
)


class SecurityHeaders:
    """ASGI middleware adding :data:`SECURITY_HEADERS` to every HTTP response (pages, static files, routes)."""

    def __init__(self, app: Callable) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict) -> None:
            if message.get("type") == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def chart_bundle(_request: Request) -> Response:
    """plotly.js's cartesian bundle (lib.ui.plotly_chart). Its address carries a hash of its content, so a browser
    may keep it for a year without asking again."""
    from lib.ui.plotly_chart import BUNDLE

    return FileResponse(BUNDLE, media_type="text/javascript",
                        headers={"cache-control": "public, max-age=31536000, immutable"})


def routes() -> list[Route]:
    from lib.api import routes as api_routes
    from lib.auth_routes import routes as auth_routes
    from lib.ui.plotly_chart import asset_path

    found: list[Route] = [*api_routes, *auth_routes, Route(asset_path(), chart_bundle, methods=["GET"])]
    if not any(getattr(r, "path", None) == "/api/health" for r in found):
        found.append(Route("/api/health", health, methods=["GET"]))
    return found


def warm_board() -> threading.Thread:
    """Build the workload board's snapshot of open tickets (lib.board_snapshot) in a thread once the server has
    started, so the first lead to open the board after a restart does not wait for it (about 1 s at a million
    tickets). A failure only means the first board read builds it."""

    def run() -> None:
        from lib import board_snapshot
        from lib.db import get_engine, read_session

        try:
            with read_session(get_engine()) as s:
                board_snapshot.current(s)
        except Exception:  # noqa: BLE001 - e.g. the database not there yet: the board builds it when opened
            log.warning("the workload board's snapshot was not built at start", exc_info=True)

    thread = threading.Thread(target=run, name="warm-board", daemon=True)
    thread.start()
    return thread


def start_worker() -> Callable[[], None]:
    """Run the background worker inside the app server unless HELPDESK_WORKER=off (then run it separately)."""
    if not get_settings().worker:
        log.info("in-process worker disabled (HELPDESK_WORKER=off)")
        return lambda: None
    from lib.db import get_engine
    from lib.worker import start_background

    return start_background(get_engine())
