"""The ticket page as a shared workspace, in a real browser: drafts that survive panel switches and reloads,
who else is on the ticket, and others' changes arriving without a reload while text is being typed."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import AppServer, choose, login, pick, seed_accounts, shot, wait_idle

STALE_SECONDS = 8  # presence threshold for this server: a closed tab must vanish well within 30 s


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AppServer, int]]:
    from tests.e2e.conftest import _require_browser

    _require_browser()
    server = AppServer(tmp_path_factory.mktemp("workspace"),
                       extra_env={"HELPDESK_PRESENCE_STALE_SECONDS": str(STALE_SECONDS)})  # live: the default
    engine = seed_accounts(server.db)
    from lib import tickets
    from lib.db import transaction
    from lib.directory import RequesterInput
    from lib.tickets import TicketDraft
    from lib.users import get_by_username

    with transaction(engine) as s:
        tom = get_by_username(s, "tom")
        assert tom is not None
        t = tickets.create_ticket(s, actor=tom.id, draft=TicketDraft(
            summary="Scanner on floor 3 sends blank pages", category="Printing", priority="Medium", channel="phone",
            requester=RequesterInput(name="Ann Smith", email="ann@example.com")))
        t = tickets.take(s, actor=tom.id, ticket_id=t.id)
        t = tickets.acknowledge(s, actor=tom.id, ticket_id=t.id, expected_version=t.version)
        tid = t.id
    engine.dispose()
    yield server, tid
    server.stop()


def _drafts_in_db(server: AppServer, username: str, tid: int) -> dict:
    from lib import drafts
    from lib.db import make_engine, read_session
    from lib.users import get_by_username

    engine = make_engine(f"sqlite:///{server.db}")
    try:
        with read_session(engine) as s:
            user = get_by_username(s, username)
            assert user is not None
            return {f.value: d.text for f, d in drafts.for_ticket(s, user_id=user.id, ticket_id=tid).items()}
    finally:
        engine.dispose()


def _reply_box(page):  # type: ignore[no-untyped-def]
    return page.get_by_role("textbox", name="Message", exact=True)


def test_a_reply_survives_panel_switches_and_reloads_and_goes_when_sent(browser, desk) -> None:  # type: ignore[no-untyped-def]
    server, tid = desk
    ctx = browser.new_context(viewport={"width": 1440, "height": 900})
    page = ctx.new_page()
    login(page, server.url, "tom", path=f"/ticket?id={tid}")
    page.get_by_role("heading", name=f"HD-{tid:06d}").wait_for()
    pick(page, "Reply")
    text = "Hello Ann,\nthe scanner's glass was dirty; please try again."
    _reply_box(page).fill(text)
    pick(page, "Details")  # the click moves focus out of the box: it commits, and the draft is kept
    expect(page.get_by_text("💾 Unsent draft in ✉️ Reply")).to_be_visible()  # named while its tab is closed
    pick(page, "Reply")
    expect(_reply_box(page)).to_have_value(text)
    reply = page.get_by_test_id("stVerticalBlock").filter(has=_reply_box(page)).last
    expect(reply.get_by_text(re.compile(r"Draft saved \d\d:\d\d"))).to_be_visible()
    assert _drafts_in_db(server, "tom", tid) == {"reply": text}
    page.reload()
    wait_idle(page)
    pick(page, "Reply")
    expect(_reply_box(page)).to_have_value(text)
    expect(page.get_by_text(re.compile(r"Draft saved \d\d:\d\d")).first).to_be_visible()
    _reply_box(page).scroll_into_view_if_needed()
    shot(page, "30_workspace_draft_restored")
    # A draft in another tab of the same person: also there (it lives in the database, not in the tab).
    other = ctx.new_page()
    other.goto(f"{server.url}/ticket?id={tid}")
    wait_idle(other)
    pick(other, "Reply")
    expect(_reply_box(other)).to_have_value(text)
    other.close()
    page.get_by_role("button", name="Send reply").click()
    wait_idle(page)
    page.get_by_text("the scanner's glass was dirty").first.wait_for()  # in the timeline
    expect(_reply_box(page)).to_have_value("")
    expect(page.get_by_text(re.compile(r"Draft saved"))).to_have_count(0)
    assert _drafts_in_db(server, "tom", tid) == {}
    # Discard: the box empties and the draft is gone.
    pick(page, "Internal note")
    page.get_by_role("textbox", name="Note", exact=True).fill("half a thought")
    page.get_by_role("textbox", name="Note", exact=True).press("Control+Enter")
    wait_idle(page)
    expect(page.get_by_text(re.compile(r"Draft saved")).first).to_be_visible()
    assert _drafts_in_db(server, "tom", tid) == {"note": "half a thought"}
    note_box = page.get_by_test_id("stVerticalBlock").filter(has=page.get_by_role("textbox", name="Note", exact=True))
    note_box.last.get_by_role("button", name="Discard draft").click()
    wait_idle(page)
    expect(page.get_by_role("textbox", name="Note", exact=True)).to_have_value("")
    assert _drafts_in_db(server, "tom", tid) == {}
    ctx.close()


def _presence(page):  # type: ignore[no-untyped-def]
    return page.locator(".st-key-presence")


def test_two_people_see_each_other_and_each_others_changes_live(browser, desk) -> None:  # type: ignore[no-untyped-def]
    server, tid = desk
    a_ctx = browser.new_context(viewport={"width": 1440, "height": 900})
    b_ctx = browser.new_context(viewport={"width": 1440, "height": 900})
    a, b = a_ctx.new_page(), b_ctx.new_page()
    login(a, server.url, "tom", path=f"/ticket?id={tid}")
    login(b, server.url, "lena", path=f"/ticket?id={tid}")
    expect(_presence(a)).to_contain_text("Lena Lead is viewing", timeout=5_000)
    expect(_presence(b)).to_contain_text("Tom Tech is viewing", timeout=5_000)

    # Lena starts a reply: Tom sees what she is writing.
    pick(b, "Reply")
    _reply_box(b).fill("We are on it")
    _reply_box(b).press("Control+Enter")
    wait_idle(b)
    expect(_presence(a)).to_contain_text("Lena Lead is writing a reply", timeout=5_000)

    # Tom types a note and has not left the box; Lena changes the priority and adds a note meanwhile.
    pick(a, "Internal note")
    typing = a.get_by_role("textbox", name="Note", exact=True)
    typing.fill("Tom's unsent thought")
    pick(b, "Details")
    b.get_by_test_id("stSelectbox").filter(has_text="Priority").first.click()
    b.get_by_role("option", name=re.compile("^High")).first.click()
    wait_idle(b)
    b.get_by_role("button", name="Save changes").click()
    wait_idle(b)
    pick(b, "Internal note")
    b.get_by_role("textbox", name="Note", exact=True).fill("Vendor called back")
    b.get_by_role("button", name="Add note").click()
    wait_idle(b)
    # Within 10 s, without a reload: the change is named (desk time), the timeline has the note ...
    notice = a.get_by_text(re.compile(r"Lena Lead changed the priority from Medium to High at \d\d:\d\d"))
    expect(notice.first).to_be_visible(timeout=10_000)
    expect(a.get_by_text("Vendor called back").first).to_be_visible(timeout=10_000)
    # ... and what Tom was typing is untouched, still in the box with the focus.
    expect(typing).to_have_value("Tom's unsent thought")
    heading = a.get_by_role("heading", name=f"HD-{tid:06d}")
    heading.scroll_into_view_if_needed()  # scrolling leaves the focus (and the typing) where it is
    shot(a, "31_workspace_live_change_1440")
    a.set_viewport_size({"width": 390, "height": 844})
    wait_idle(a)
    heading.scroll_into_view_if_needed()
    shot(a, "32_workspace_live_change_390")
    expect(typing).to_have_value("Tom's unsent thought")
    a.set_viewport_size({"width": 1440, "height": 900})

    # A status save from Tom's tab is refused with who, what and when in desk time: one message, no UTC.
    choose(a, "More actions", "🏭 Escalate to a vendor")
    a.get_by_role("textbox", name="Vendor", exact=True).fill("Acme Scanners")
    a.get_by_role("button", name="Escalate to vendor").click()
    wait_idle(a)
    refusal = a.get_by_test_id("stAlert").filter(has_text="Not saved")
    expect(refusal).to_have_count(1)
    expect(refusal).to_contain_text(re.compile(r"Lena Lead changed the priority from Medium to High at \d\d:\d\d"))
    assert "UTC" not in refusal.inner_text()
    assert a.get_by_text("was changed after you loaded it").count() == 1
    expect(a.get_by_role("textbox", name="Vendor", exact=True)).to_have_value("Acme Scanners")
    # One click reloads; the next click saves.
    a.get_by_role("button", name="Reload to the newest state").click()
    wait_idle(a)
    expect(a.get_by_text("Not saved")).to_have_count(0)
    a.get_by_role("button", name="Escalate to vendor").click()
    wait_idle(a)
    expect(a.get_by_text("Waiting on vendor").first).to_be_visible()

    # In Lena's tab the status change shows by itself, and her first click on an action counts.
    expect(b.get_by_text(re.compile(r"Tom Tech .*changed the status to Waiting on vendor at \d\d:\d\d")).first
           ).to_be_visible(timeout=10_000)
    b.get_by_role("button", name="Reload to the newest state").click()
    wait_idle(b)
    b.get_by_role("button", name="▶️ Resume work").click()  # the primary next step while waiting
    wait_idle(b)
    expect(b.get_by_text("In progress").first).to_be_visible()

    # Lena closes her tab: she is gone from Tom's within 30 s (threshold 8 s here).
    b_ctx.close()
    expect(_presence(a)).not_to_contain_text("Lena Lead", timeout=30_000)
    a_ctx.close()


def test_the_first_click_after_someone_elses_status_change_is_answered(browser, desk) -> None:  # type: ignore[no-untyped-def]
    """The tab keeps showing the state it loaded until its person reloads: a click on a control of that state
    (here the vendor escalation someone else just did) is answered, never swallowed by a page that re-laid
    itself out for the new status under the pointer."""
    server, _ = desk
    from lib import tickets
    from lib.db import make_engine, transaction
    from lib.directory import RequesterInput
    from lib.tickets import TicketDraft
    from lib.users import get_by_username

    engine = make_engine(f"sqlite:///{server.db}")
    with transaction(engine) as s:
        tom, lena = get_by_username(s, "tom"), get_by_username(s, "lena")
        assert tom is not None and lena is not None
        t = tickets.create_ticket(s, actor=tom.id, draft=TicketDraft(
            summary="Docking station drops the second screen", category="Hardware", priority="High",
            channel="phone", requester=RequesterInput(name="Bo", email="bo@example.com")))
        t = tickets.take(s, actor=tom.id, ticket_id=t.id)
        t = tickets.acknowledge(s, actor=tom.id, ticket_id=t.id, expected_version=t.version)
        tid, version, lena_id = t.id, t.version, lena.id
    ctx = browser.new_context(viewport={"width": 1440, "height": 900})
    page = ctx.new_page()
    login(page, server.url, "tom", path=f"/ticket?id={tid}")
    choose(page, "More actions", "🏭 Escalate to a vendor")
    page.get_by_role("textbox", name="Vendor", exact=True).fill("Dockmakers Ltd")
    page.get_by_role("textbox", name="Vendor note", exact=True).fill("Firmware 2.1 suspected")
    page.get_by_role("textbox", name="Vendor note", exact=True).press("Control+Enter")
    wait_idle(page)
    with transaction(engine) as s:  # Lena escalates it first, from her desk
        tickets.escalate_to_vendor(s, actor=lena_id, ticket_id=tid, expected_version=version,
                                   vendor_name="Dockmakers", case_ref="D-77", promised_at=None, note="Called them")
    engine.dispose()
    page.get_by_role("button", name="Escalate to vendor").click()  # the first click
    wait_idle(page)
    refusal = page.get_by_test_id("stAlert").filter(has_text="Not saved")
    expect(refusal).to_have_count(1)
    expect(refusal).to_contain_text(re.compile(r"Lena Lead .*changed the status to Waiting on vendor at \d\d:\d\d"))
    expect(page.get_by_role("textbox", name="Vendor", exact=True)).to_have_value("Dockmakers Ltd")
    expect(page.get_by_role("textbox", name="Vendor note", exact=True)).to_have_value("Firmware 2.1 suspected")
    page.get_by_role("heading", name=f"HD-{tid:06d}").scroll_into_view_if_needed()
    shot(page, "33_workspace_refused_with_who_what_when")
    ctx.close()
