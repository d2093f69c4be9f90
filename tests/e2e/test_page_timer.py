"""The app server logs its page runs with `HELPDESK_SLOW_PAGE_MS=0`: the page and the server's own time."""

from __future__ import annotations

import time

from lib import page_timer
from tests.e2e.conftest import AppServer, _require_browser, login, seed_accounts, wait_idle


def _runs(server: AppServer) -> list[tuple[str, float]]:
    text = (server.db.parent / "server.log").read_text(errors="replace")
    return [r for r in map(page_timer.parse, text.splitlines()) if r is not None]


def test_every_page_run_is_logged_with_its_page_and_time(browser, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _require_browser()
    server = AppServer(tmp_path, extra_env={"HELPDESK_SLOW_PAGE_MS": "0"})
    try:
        engine = seed_accounts(server.db)
        from lib import tickets
        from lib.db import transaction
        from lib.directory import RequesterInput
        from lib.tickets import TicketDraft

        with transaction(engine) as s:
            tid = tickets.create_ticket(s, actor=1, draft=TicketDraft(
                summary="Printer jams on tray 2", category="Hardware", priority="Medium", channel="phone",
                requester=RequesterInput(name="Ann Smith", email="ann@example.com"))).id
        engine.dispose()
        ctx = browser.new_context(viewport={"width": 1300, "height": 900})
        page = ctx.new_page()
        login(page, server.url, "lena", path=f"/ticket?id={tid}")
        page.get_by_text("Printer jams on tray 2").first.wait_for()
        wait_idle(page)
        ctx.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(p == "ticket" for p, _ in _runs(server)):
            time.sleep(0.2)
        runs = _runs(server)
        pages = {p for p, _ in runs}
        assert "log-in:ticket" in pages, runs  # the login form on the ticket's address
        assert "ticket" in pages, runs  # then the page itself, signed in
        assert all(0 < ms < 120_000 for _, ms in runs)
    finally:
        server.stop()
