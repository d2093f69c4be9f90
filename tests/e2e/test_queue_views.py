"""The queue in a real browser at 1440×900 and 390×844: filters in the URL survive a reload, the wide table
fits without scrolling sideways, and a phone gets cards and one line of counters."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlparse

import pytest

from tests.e2e.conftest import AppServer, login, seed_accounts, shot, wait_idle


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    from tests.e2e.conftest import _require_browser

    _require_browser()
    server = AppServer(tmp_path_factory.mktemp("queue"))
    engine = seed_accounts(server.db)
    from lib import tickets
    from lib.db import transaction
    from lib.directory import RequesterInput
    from lib.tickets import TicketDraft
    from lib.users import get_by_username

    with transaction(engine) as s:
        tom = get_by_username(s, "tom")
        assert tom is not None
        for i in range(24):
            t = tickets.create_ticket(s, actor=tom.id, draft=TicketDraft(
                summary=(f"Ticket {i:02d} paging fails after the overnight update on the third floor"
                         if i % 3 == 0 else f"Printer {i:02d} jams on tray 2"),
                category="Printing", priority=("High", "Low", "Medium", "Critical")[i % 4], channel="phone",
                requester=RequesterInput(name=f"Annabel Longname-Smythe {i}", email=f"user{i}@example.com")))
            if i % 2:
                tickets.take(s, actor=tom.id, ticket_id=t.id)
    engine.dispose()
    yield server
    server.stop()


def _rows(page) -> list[str]:  # type: ignore[no-untyped-def]
    cells = page.get_by_test_id("stDataFrame").first.locator('td[role="gridcell"]', has_text="HD-")
    return sorted(t.rsplit("#", 1)[-1] for t in cells.all_text_contents())


def test_queue_filters_survive_a_reload_and_fit_both_widths(desk: AppServer, page) -> None:  # type: ignore[no-untyped-def]
    page.set_viewport_size({"width": 1440, "height": 900})
    login(page, desk.url, "lena")
    page.goto(desk.url + "/?view=all&priority=High&q=paging%2012")  # words in another order
    wait_idle(page)
    page.get_by_test_id("stDataFrame").first.locator('td[role="gridcell"]', has_text="HD-").first.wait_for(state="attached")
    first = _rows(page)
    assert first == ["HD-000013"]  # the only High ticket with "Ticket 12 paging …"
    page.reload()
    wait_idle(page)
    page.get_by_test_id("stDataFrame").first.locator('td[role="gridcell"]', has_text="HD-").first.wait_for(state="attached")
    assert _rows(page) == first
    query = parse_qs(urlparse(page.url).query)
    assert query == {"view": ["all"], "priority": ["High"], "q": ["paging 12"]}
    assert page.get_by_role("textbox", name="Search").input_value() == "paging 12"

    # a filter typed in the page goes into the URL, and a reload keeps it
    page.goto(desk.url + "/?view=all")
    wait_idle(page)
    box = page.get_by_role("textbox", name="Search")
    box.fill("paging")
    box.press("Enter")
    page.wait_for_function("() => new URLSearchParams(location.search).get('q') === 'paging'")
    wait_idle(page)
    page.reload()
    wait_idle(page)
    assert page.get_by_role("textbox", name="Search").input_value() == "paging"
    page.get_by_text("8 ticket(s)").first.wait_for()

    # 1440 px: every column shows without scrolling sideways, in the grid or the page
    page.goto(desk.url + "/?view=all")
    wait_idle(page)
    grid = page.get_by_test_id("stDataFrame").first
    grid.locator('td[role="gridcell"]', has_text="HD-").first.wait_for(state="attached")
    headers = grid.locator('th[role="columnheader"]').all_inner_texts()
    for name in ("Ticket", "Summary", "Status", "Priority", "Requester", "Assignee", "Age", "Due / SLA", "Open by"):
        assert any(name in h for h in headers), (name, headers)
    overflow = page.evaluate("""() => {
        const s = document.querySelector('[data-testid="stDataFrame"] .dvn-scroller');
        return {grid: s ? s.scrollWidth - s.clientWidth : -1,
                page: document.documentElement.scrollWidth - document.documentElement.clientWidth};
    }""")
    assert overflow["grid"] == 0 and overflow["page"] <= 0, overflow
    assert page.locator(".st-key-queue_narrow").is_hidden()
    assert page.locator(".st-key-queue_wide_counts").is_visible()
    shot(page, "queue_1440")

    # 390 px: cards instead of the table, counters on one line above the first ticket
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(desk.url + "/?view=all&sort=oldest")
    wait_idle(page)
    cards = page.locator(".st-key-queue_narrow")
    cards.wait_for(state="visible")
    assert page.locator(".st-key-queue_wide").is_hidden()
    assert page.locator(".st-key-queue_wide_counts").is_hidden()
    assert page.locator(".st-key-queue_narrow_counts").is_visible()
    first_card = cards.locator('[class*="st-key-queue_card_"]').first
    assert "HD-000001" in first_card.inner_text() and "High" in first_card.inner_text()
    counts_box = page.locator(".st-key-queue_narrow_counts").bounding_box()
    card_box = first_card.bounding_box()
    assert counts_box is not None and card_box is not None
    assert counts_box["height"] < 120 and card_box["y"] < 844  # the first ticket shows without scrolling
    assert page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth") <= 0
    shot(page, "queue_390")
