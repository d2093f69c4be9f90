"""Browser: the unread count in the sidebar, the 🔔 Notifications page, and opening a ticket from it."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import login, seed_accounts, shot, wait_idle


@pytest.fixture(scope="module")
def assigned(app_server):  # type: ignore[no-untyped-def]
    engine = seed_accounts(app_server.db)
    from lib import tickets
    from lib.db import transaction
    from lib.directory import RequesterInput
    from lib.tickets import TicketDraft
    from lib.users import get_by_username

    ids = []
    with transaction(engine) as s:
        lena, tom = get_by_username(s, "lena"), get_by_username(s, "tom")
        for summary in ("Badge reader dead at door 3", "Monitor flickers"):
            t = tickets.create_ticket(s, actor=lena.id, draft=TicketDraft(
                summary=summary, category="Hardware", priority="Low", channel="phone",
                requester=RequesterInput(name="Ann Smith", email="ann@example.com")))
            tickets.assign(s, actor=lena.id, ticket_id=t.id, assignee_id=tom.id, expected_version=t.version)
            ids.append(t.id)
    engine.dispose()
    return app_server, ids


def test_the_sidebar_counts_unread_and_opening_one_marks_it_read(browser, assigned) -> None:  # type: ignore[no-untyped-def]
    server, ids = assigned
    ctx = browser.new_context(viewport={"width": 1300, "height": 900})
    page = ctx.new_page()
    login(page, server.url, "tom")
    nav = page.get_by_test_id("stSidebarNav")
    nav.get_by_text("Notifications (2)").wait_for()
    nav.get_by_text("Notifications (2)").click()
    wait_idle(page)
    page.get_by_text("Lena Lead assigned").first.wait_for()
    assert page.get_by_test_id("stMain").get_by_text("2 unread").count() == 1  # the page (the sidebar says it too)
    shot(page, "60_staff_inbox")
    page.get_by_role("button", name="Open").first.click()  # the newest first: the second ticket
    page.wait_for_url(f"**/ticket?id={ids[1]}")
    wait_idle(page)
    nav.get_by_text("Notifications (1)").wait_for()
    ctx.close()


def test_the_count_rises_without_a_reload_when_someone_assigns_you_a_ticket(browser, assigned) -> None:  # type: ignore[no-untyped-def]
    server, _ = assigned
    ctx = browser.new_context(viewport={"width": 1300, "height": 900})
    page = ctx.new_page()
    login(page, server.url, "tom")
    sidebar = page.get_by_test_id("stSidebar")
    before = int(sidebar.get_by_text(" unread notification").inner_text().split()[1])
    # Lena assigns Tom another ticket (from her own session: here, through the services)
    engine = seed_accounts(server.db)
    from lib import tickets
    from lib.db import transaction
    from lib.directory import RequesterInput
    from lib.tickets import TicketDraft
    from lib.users import get_by_username

    with transaction(engine) as s:
        lena, tom = get_by_username(s, "lena"), get_by_username(s, "tom")
        t = tickets.create_ticket(s, actor=lena.id, draft=TicketDraft(
            summary="Projector in room 2 shows no signal", category="Hardware", priority="Medium", channel="phone",
            requester=RequesterInput(name="Ann Smith", email="ann@example.com")))
        tickets.assign(s, actor=lena.id, ticket_id=t.id, assignee_id=tom.id, expected_version=t.version)
    engine.dispose()
    url = page.url
    # no reload: the sidebar line's fragment picks it up within its refresh (10 s by default)
    sidebar.get_by_text(f"{before + 1} unread notification").wait_for(timeout=30_000)
    assert page.url == url
    shot(page, "61_staff_count_rises")
    ctx.close()
