"""The ticket page as a workspace across two servers: a draft typed on A is there on B, and who is on a ticket
through A shows on B (drafts and presence are rows in the shared database, lib/drafts.py and lib/presence.py)."""

from __future__ import annotations

from playwright.sync_api import Page

from lib import drafts, tickets
from lib.db import read_session, transaction
from lib.directory import RequesterInput
from lib.drafts import DraftField
from lib.tickets import TicketDraft
from lib.users import get_by_username
from tests.e2e.conftest import wait_idle
from tests.multi.conftest import Pair, signed_in, wait_until

NOTE = "Toner replaced; streaks remain on the left edge. Next: drum unit."


def open_panel(page: Page, name: str) -> None:
    """Choose a panel of the ticket page (its label carries an icon before the name)."""
    wait_idle(page)
    page.get_by_test_id("stButtonGroup").locator("button").filter(has_text=name).first.click()
    wait_idle(page)


def test_a_draft_typed_on_a_is_restored_on_b_and_presence_on_a_shows_on_b(browser, pair: Pair, staff_cookies) -> None:
    with transaction(pair.engine) as s:
        tom = get_by_username(s, "tom")
        assert tom is not None
        t = tickets.create_ticket(s, actor=tom.id, draft=TicketDraft(
            summary="Printer prints streaks", category="Hardware", priority="Medium", channel="phone",
            requester=RequesterInput(name="Dan Dale", email="dan@example.com")))
        tickets.take(s, actor=tom.id, ticket_id=t.id)
        tid, tom_id = t.id, tom.id

    on_a = signed_in(browser, staff_cookies, "tom", pair.a, f"/ticket?id={tid}")
    open_panel(on_a, "Internal note")
    box = on_a.get_by_role("textbox", name="Note", exact=True)
    box.fill(NOTE)
    box.press("Tab")  # the box commits on blur; the text is kept as a draft in the database
    wait_idle(on_a)

    def held() -> str | None:
        with read_session(pair.engine) as s:
            found = drafts.for_ticket(s, user_id=tom_id, ticket_id=tid).get(DraftField.NOTE)
        return found.text if found else None

    assert wait_until(held, what="the draft in the database") == NOTE

    # Lena on B sees Tom (on A) writing on the ticket.
    lena_on_b = signed_in(browser, staff_cookies, "lena", pair.b, f"/ticket?id={tid}")
    lena_on_b.get_by_text("Tom Tech is writing an internal note").first.wait_for(timeout=30_000)

    # Tom in another browser, on B: the same ticket shows his draft in the box.
    tom_on_b = signed_in(browser, staff_cookies, "tom", pair.b, f"/ticket?id={tid}")
    open_panel(tom_on_b, "Internal note")
    assert tom_on_b.get_by_role("textbox", name="Note", exact=True).input_value() == NOTE
    for page in (on_a, lena_on_b, tom_on_b):
        page.context.close()
