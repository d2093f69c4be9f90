"""The charts' code (plotly.js's cartesian bundle, lib.ui.plotly_chart) is served at an address that changes with
its content, kept by browsers for a year."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any

from lib.server_routes import routes
from lib.ui import plotly_chart


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run the endpoint in a thread of its own: the browser tests of the same session leave an event loop
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
