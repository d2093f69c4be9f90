"""Chart pages' documents ask for the charts' code (plotly.js's cartesian bundle) early; nothing else is touched.
The bundle is served at an address that changes with its content, kept by browsers for a year."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any

from lib.server_routes import CHART_PAGES, ChartCodeEarly, routes
from lib.ui import plotly_chart

PAGE = b"<html><head><title>x</title></head><body></body></html>"


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run the middleware in a thread of its own: the browser tests of the same session leave an event loop
    running in this one."""
    failed: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(coroutine)
        except BaseException as exc:  # noqa: BLE001 - re-raised below, in the test's thread
            failed.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if failed:
        raise failed[0]


def _serve(path: str, *, method: str = "GET", content_type: bytes = b"text/html", encoded: bool = False,
           chunks: tuple[bytes, ...] = (PAGE[:20], PAGE[20:])) -> tuple[dict, bytes]:
    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        headers = [(b"content-type", content_type), (b"content-length", str(len(PAGE)).encode())]
        if encoded:
            headers.append((b"content-encoding", b"gzip"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for i, c in enumerate(chunks):
            await send({"type": "http.response.body", "body": c, "more_body": i < len(chunks) - 1})

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    async def receive() -> dict:
        return {"type": "http.request"}

    run(ChartCodeEarly(app, src="/charts/plotly-cartesian.abc.min.js")(
        {"type": "http", "method": method, "path": path}, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return dict(sent[0]["headers"]), body


def test_a_chart_page_asks_for_the_chart_code_with_a_right_length() -> None:
    assert {"metrics", "report"} <= CHART_PAGES
    for path in ("/metrics", "/report", "/desk/metrics/"):
        headers, body = _serve(path)
        assert b'<script src="/charts/plotly-cartesian.abc.min.js" async data-hd-plotly="1"></script>' in body
        assert body.endswith(b"</body></html>")
        assert int(headers[b"content-length"]) == len(body)


def test_other_pages_files_and_encoded_bodies_pass_untouched() -> None:
    for kwargs in ({"path": "/queue"}, {"path": "/ticket"}, {"path": "/metrics", "method": "POST"},
                   {"path": "/metrics", "content_type": b"application/json"},
                   {"path": "/metrics", "encoded": True}):
        headers, body = _serve(**kwargs)  # type: ignore[arg-type]
        assert body == PAGE, kwargs
        assert int(headers[b"content-length"]) == len(PAGE)


def test_the_bundle_is_served_at_its_hashed_address_and_kept() -> None:
    from starlette.responses import FileResponse

    path = plotly_chart.asset_path()
    assert path == f"/charts/plotly-cartesian.{plotly_chart.bundle_hash()}.min.js"
    assert len(plotly_chart.bundle_hash()) == 12
    found = [r for r in routes() if getattr(r, "path", None) == path]
    assert len(found) == 1 and found[0].methods is not None and "GET" in found[0].methods
    answers: list = []

    async def ask() -> None:
        answers.append(await found[0].endpoint(None))

    run(ask())
    r = answers[0]
    assert isinstance(r, FileResponse) and r.path == plotly_chart.BUNDLE and r.media_type == "text/javascript"
    assert "immutable" in r.headers["cache-control"] and "max-age=31536000" in r.headers["cache-control"]
    # The file is plotly.js's cartesian bundle, with its licence beside it.
    head = plotly_chart.BUNDLE.read_bytes()[:200].decode()
    assert "plotly.js (cartesian - minified)" in head
    assert "MIT" in plotly_chart.BUNDLE.with_name("plotly-cartesian.LICENSE").read_text()


def test_a_chart_page_is_asked_for_uncompressed_and_others_keep_their_encoding() -> None:
    seen: dict[str, list] = {}

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        seen[scope["path"]] = scope["headers"]
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]})
        await send({"type": "http.response.body", "body": PAGE})

    async def send(message: dict) -> None:
        pass

    async def receive() -> dict:
        return {"type": "http.request"}

    headers = [(b"accept-encoding", b"gzip, deflate"), (b"accept", b"text/html")]
    for path in ("/metrics", "/queue"):
        run(ChartCodeEarly(app, src="/charts/plotly-cartesian.abc.min.js")(
            {"type": "http", "method": "GET", "path": path, "headers": headers}, receive, send))
    assert (b"accept-encoding", b"gzip, deflate") not in seen["/metrics"] and (b"accept", b"text/html") in seen["/metrics"]
    assert seen["/queue"] == headers
