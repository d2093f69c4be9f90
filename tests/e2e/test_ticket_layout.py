"""The ticket page's layout in a real browser at a desktop (1440×900) and a phone (390×844) size: the problem is
above the fold, the primary next step and every other allowed action are reachable inside the viewport's width,
and nothing scrolls sideways."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import AppServer, login, seed_accounts, shot, wait_idle

DESCRIPTION = ("Since this morning the label printer in the warehouse prints every label twice and the second "
               "copy is shifted by half a label. Restarting it did not help.")


@pytest.fixture(scope="module")
def busy_ticket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AppServer, int]]:
    """A ticket with a dozen events, escalated to a vendor and back in progress, as the lead sees it."""
    from tests.e2e.conftest import _require_browser

    _require_browser()
    server = AppServer(tmp_path_factory.mktemp("layout"))
    engine = seed_accounts(server.db)
    from lib import tickets
    from lib.db import transaction
    from lib.directory import RequesterInput
    from lib.models import Ticket
    from lib.tickets import TicketDraft
    from lib.users import get_by_username
    from lib.workflow import ActionKind

    with transaction(engine) as s:
        tom = get_by_username(s, "tom")
        assert tom is not None
        t = tickets.create_ticket(s, actor=tom.id, draft=TicketDraft(
            summary="Warehouse label printer prints every label twice", category="Printing", priority="High",
            channel="phone", description=DESCRIPTION, device_details="Zebra ZT410, asset WH-PRN-07",
            requester=RequesterInput(name="Ann Smith", email="ann@example.com", phone="+44 20 7946 0011")))
        tid = t.id
        t = tickets.take(s, actor=tom.id, ticket_id=tid)
        t = tickets.acknowledge(s, actor=tom.id, ticket_id=tid, expected_version=t.version)
        for i in range(4):
            tickets.internal_note(s, actor=tom.id, ticket_id=tid, text=f"Checked the driver settings, round {i}")
            tickets.public_reply(s, actor=tom.id, ticket_id=tid, text=f"Update {i}: still looking into it")
        tickets.log_action(s, actor=tom.id, ticket_id=tid, kind=ActionKind.TROUBLESHOOTING, text="Swapped the cable")
        t = s.get(Ticket, tid)
        assert t is not None
        tickets.escalate_to_vendor(s, actor=tom.id, ticket_id=tid, expected_version=t.version,
                                   vendor_name="Zebra support", case_ref="Z-4411", promised_at=None)
        tickets.resume(s, actor=tom.id, ticket_id=tid, expected_version=t.version)
        tickets.create_ticket(s, actor=tom.id, draft=TicketDraft(  # unassigned: the suggestions are open
            summary="Badge reader at the side door beeps red", category="Hardware", priority="Medium",
            channel="walk_in", requester=RequesterInput(name="Raj Patel", phone="+44 20 7946 0012")))
    engine.dispose()
    yield server, tid
    server.stop()


NO_SIDEWAYS = "document.documentElement.scrollWidth <= window.innerWidth"


def _inside_width(page, locator) -> None:  # type: ignore[no-untyped-def]
    box = locator.bounding_box()
    assert box is not None
    width = page.evaluate("window.innerWidth")
    assert box["x"] >= 0 and box["x"] + box["width"] <= width + 0.5, (box, width)


@pytest.mark.parametrize(("width", "height"), [(1440, 900), (390, 844)])
def test_every_action_is_reachable_and_the_problem_is_above_the_fold(browser, busy_ticket, width: int,
                                                                     height: int) -> None:  # type: ignore[no-untyped-def]
    server, tid = busy_ticket
    ctx = browser.new_context(viewport={"width": width, "height": height})
    page = ctx.new_page()
    login(page, server.url, "lena", path=f"/ticket?id={tid}")
    page.get_by_role("heading", name=f"HD-{tid:06d}").wait_for()
    wait_idle(page)
    assert page.evaluate(NO_SIDEWAYS), page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")

    # The requester's words are in the first screen, without scrolling.
    description = page.locator(".st-key-problem_description")
    expect(description).to_contain_text("prints every label twice")
    box = description.bounding_box()
    assert box is not None and box["y"] + min(box["height"], 40) <= height, box
    expect(page.locator(".st-key-problem")).to_contain_text("ann@example.com")
    # The header says what is true now: back in progress, no longer waiting on the vendor.
    badges = page.locator(".st-key-state_badges")
    expect(badges).to_contain_text("In progress")
    expect(badges).to_contain_text("Escalated: Vendor")  # still escalated: the vendor's case is open

    # The primary next step: Resolve, whole and inside the width.
    primary = page.get_by_role("button", name="✅ Resolve")
    expect(primary).to_be_visible()
    primary.scroll_into_view_if_needed()
    _inside_width(page, primary)
    shot(page, f"40_ticket_layout_{width}")

    # Every other allowed action is in the menu; each option is whole and inside the width.
    menu = page.get_by_test_id("stSelectbox").filter(has_text="More actions").first
    menu.scroll_into_view_if_needed()
    _inside_width(page, menu)
    menu.click()
    expected = ["👤 Assign", "❓ Request information", "⬆️ Escalate to a senior", "🏭 Escalate to a vendor",
                "🔒 Close", "🔗 Link to a major incident"]
    for name in expected:
        option = page.get_by_role("option", name=name)
        expect(option).to_be_visible()
        _inside_width(page, option)
    assert page.get_by_role("option").count() == len(expected)
    assert page.evaluate(NO_SIDEWAYS)
    shot(page, f"41_ticket_layout_menu_{width}")

    # Choosing one opens its form under the bar; the primary stays where it was.
    page.get_by_role("option", name="🔗 Link to a major incident").click()
    wait_idle(page)
    expect(page.get_by_role("textbox", name="Parent ticket", exact=False)).to_be_visible()
    _inside_width(page, primary)
    assert page.evaluate(NO_SIDEWAYS)

    # Internal and public entries say so in words (and in colour).
    internal = page.locator('[class*="st-key-tl_int_"]').filter(has_text="Checked the driver settings, round 3")
    public = page.locator('[class*="st-key-tl_pub_"]').filter(has_text="Update 3: still looking into it")
    expect(internal).to_contain_text("Internal note — not sent to the requester")
    expect(public).to_contain_text("Public — sent to Ann Smith")
    public.scroll_into_view_if_needed()
    shot(page, f"42_ticket_layout_timeline_{width}")
    ctx.close()


def test_suggested_assignees_are_named_with_their_reason_and_the_lead_is_not_first(browser, busy_ticket) -> None:  # type: ignore[no-untyped-def]
    server, tid = busy_ticket
    ctx = browser.new_context(viewport={"width": 390, "height": 844})
    page = ctx.new_page()
    login(page, server.url, "lena", path=f"/ticket?id={tid + 1}")
    page.get_by_role("heading", name=f"HD-{tid + 1:06d}").wait_for()
    wait_idle(page)
    tom = page.get_by_role("button", name="Assign to Tom Tech")
    lena = page.get_by_role("button", name="Assign to Lena Lead")
    tom.scroll_into_view_if_needed()
    expect(tom).to_be_visible()
    _inside_width(page, tom)
    tom_box, lena_box = tom.bounding_box(), lena.bounding_box()
    assert tom_box is not None and lena_box is not None and tom_box["y"] < lena_box["y"]  # the team first
    panel = page.get_by_test_id("stExpander").filter(has_text="Suggested assignees")
    expect(panel).to_contain_text("a lead: after the team members with room")
    expect(panel).to_contain_text("no Hardware skill recorded; load")
    # no requester address: the page says nothing will be mailed
    expect(page.get_by_text("No mail: the requester has no e-mail address").first).to_be_attached()
    assert page.evaluate(NO_SIDEWAYS)
    shot(page, "43_ticket_suggestions_390")
    ctx.close()
