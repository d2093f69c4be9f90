"""Chart pages' documents ask for Streamlit's Plotly chart code early; nothing else is touched."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any

from lib.server_routes import CHART_PAGES, ChartCodeEarly, _chart_chunk

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

    run(ChartCodeEarly(app, chunk="PlotlyChart.abc.js")(
        {"type": "http", "method": method, "path": path}, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return dict(sent[0]["headers"]), body


def test_a_chart_page_asks_for_the_chart_code_with_a_right_length() -> None:
    assert {"metrics", "report"} <= CHART_PAGES
    for path in ("/metrics", "/report", "/desk/metrics/"):
        headers, body = _serve(path)
        assert b'import("./static/js/PlotlyChart.abc.js")' in body and body.endswith(b"</body></html>")
        assert int(headers[b"content-length"]) == len(body)


def test_other_pages_files_and_encoded_bodies_pass_untouched() -> None:
    for kwargs in ({"path": "/queue"}, {"path": "/ticket"}, {"path": "/metrics", "method": "POST"},
                   {"path": "/metrics", "content_type": b"application/json"},
                   {"path": "/metrics", "encoded": True}):
        headers, body = _serve(**kwargs)  # type: ignore[arg-type]
        assert body == PAGE, kwargs
        assert int(headers[b"content-length"]) == len(PAGE)


def test_this_streamlit_build_has_one_chart_chunk() -> None:
    assert (_chart_chunk() or "").startswith("PlotlyChart.")


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
        run(ChartCodeEarly(app, chunk="PlotlyChart.abc.js")(
            {"type": "http", "method": "GET", "path": path, "headers": headers}, receive, send))
    assert (b"accept-encoding", b"gzip, deflate") not in seen["/metrics"] and (b"accept", b"text/html") in seen["/metrics"]
    assert seen["/queue"] == headers
