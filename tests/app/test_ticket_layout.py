"""AppTest of the ticket page's layout: the problem first, one primary next step per status with the rest in the
"More actions" menu, a header that says what is true now, internal vs public at a glance, suggested assignees by
name with their reason, what the requester was sent and what the next action will send."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from streamlit.testing.v1 import AppTest

from lib import tickets
from lib.db import read_session, transaction
from lib.directory import RequesterInput
from lib.models import OutboxMail, Ticket
from lib.tickets import TicketDraft
from lib.ui import ticket_view
from lib.workflow import ActionKind
from tests.app.conftest import page_test
from tests.conftest import Staff

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    """Each test has its own database whose first ticket has the same id and change marker as another test's: the
    page's snapshot cache (keyed on that marker) must not hand one test the other's ticket, before or after."""
    import streamlit as st

    st.cache_data.clear()
    yield
    st.cache_data.clear()

DESCRIPTION = "Outlook closes by itself when I open the shared calendar.\nIt started after Monday's update."


def _new(engine: Engine, staff: Staff, *, email: str | None = "bo@example.com", take: bool = True,
         ack: bool = True) -> int:
    with transaction(engine) as s:
        t = tickets.create_ticket(s, actor=staff.tech, draft=TicketDraft(
            summary="Outlook crashes", category="Software", priority="Medium", channel="phone",
            description=DESCRIPTION, device_details="Laptop LT-0420, Windows 11",
            requester=RequesterInput(name="Bo Berg", email=email, phone="+44 20 7946 0001")))
        if take:
            t = tickets.take(s, actor=staff.tech, ticket_id=t.id)
        if take and ack:
            t = tickets.acknowledge(s, actor=staff.tech, ticket_id=t.id, expected_version=t.version)
        return t.id


def _do(engine: Engine, tid: int, fn: Any, **kw: Any) -> None:
    with transaction(engine) as s:
        t = s.get(Ticket, tid)
        assert t is not None
        fn(s, ticket_id=tid, expected_version=t.version, **kw)


def _leaves(node: Any, out: list) -> list:
    kids = getattr(node, "children", None)
    if kids:
        for k in sorted(kids):
            _leaves(kids[k], out)
    else:
        out.append(node)
    return out


def _text(node: Any) -> str:
    return str(getattr(node, "value", "") or getattr(node, "label", "") or "").replace("\\", "")


def _page(who: str, tid: int) -> AppTest:
    at = page_test("ticket.py", who, query={"id": str(tid)})
    at.run()
    assert not at.exception, at.exception
    return at


def _shown(at: AppTest) -> str:
    return "\n".join(_text(n) for n in _leaves(at.main, []))


def _header(at: AppTest) -> str:
    """What is drawn above the next step: the problem and the live header."""
    out = []
    for n in _leaves(at.main, []):
        if (getattr(n, "key", "") or "").startswith("primary_") or "has this ticket open" in _text(n):
            break
        out.append(_text(n))
    return "\n".join(out)


def _primary(at: AppTest) -> str:
    keys = [b.key for b in at.button if (b.key or "").startswith("primary_")]
    assert len(keys) == 1, keys
    return keys[0].removeprefix("primary_")


def _menu(at: AppTest, tid: int) -> list[str]:
    found = [s for s in at.selectbox if s.key == f"more_{tid}"]
    return list(found[0].options) if found else []


def test_the_problem_comes_first_then_the_state_then_the_next_step(app_env, staff_app) -> None:
    tid = _new(app_env, staff_app)
    at = _page("tech", tid)
    leaves = _leaves(at.main, [])
    texts = [_text(n) for n in leaves]
    first = texts[0]
    assert first.startswith(f"🎫 HD-{tid:06d}") and "Outlook crashes" in first
    desc = next(i for i, x in enumerate(texts) if "Outlook closes by itself" in x)
    who = next(i for i, x in enumerate(texts) if "Bo Berg" in x)
    status = next(i for i, x in enumerate(texts) if "In progress" in x)
    button = next(i for i, n in enumerate(leaves) if (getattr(n, "key", "") or "").startswith("primary_"))
    assert desc < who < status < button, texts[:12]
    assert "Monday's update" in texts[desc]  # the requester's words, escaped, line breaks kept
    assert "bo@example.com" in texts[who] and "+44 20 7946 0001" in texts[who] and "LT-0420" in texts[who]
    assert "logged by phone on " in texts[who]  # how it came in, in words


@pytest.mark.parametrize(("channel", "words"), [("email", "logged from an e-mail on "),
                                                ("walk_in", "logged at a walk-in on "),
                                                ("on_behalf", "logged on the requester's behalf on "),
                                                ("import", "imported on ")])
def test_the_requester_line_says_how_the_ticket_came_in(app_env, staff_app, channel: str, words: str) -> None:
    tid = _new(app_env, staff_app)
    with transaction(app_env) as s:
        s.get(Ticket, tid).channel = channel
    who = next(x for x in _shown(_page("tech", tid)).splitlines() if "Bo Berg" in x)
    assert words in who and " via " not in who


def test_a_long_description_is_cut_with_the_whole_text_one_click_away(app_env, staff_app) -> None:
    tid = _new(app_env, staff_app)
    long_text = "\n".join(f"Step {i}: clicked *here* and [there](http://x)" for i in range(30))
    with transaction(app_env) as s:
        t = s.get(Ticket, tid)
        tickets.update_fields(s, actor=staff_app.tech, ticket_id=tid, expected_version=t.version,
                              changes={"description": long_text})
    at = _page("tech", tid)
    assert any(e.label == "Full description" for e in at.expander)
    shown = _shown(at)
    assert "Step 7:" in shown and "clicked *here* and [there](http://x)" in shown  # literal, never markup


@pytest.mark.parametrize(("state", "primary", "in_menu"), [
    ("new", "take", []),
    ("assigned", "acknowledge", ["✅ Resolve", "❓ Request information", "🔒 Close"]),
    ("in_progress", "resolve", ["❓ Request information", "⬆️ Escalate to a senior", "🏭 Escalate to a vendor",
                                "🔒 Close", "🔗 Link to a major incident"]),
    ("waiting_user", "resume", ["✅ Resolve", "🏭 Escalate to a vendor", "🔒 Close"]),
    ("resolved", "request_confirmation", ["🙆 Record confirmation", "🔒 Close", "↩️ Reopen"]),
    ("awaiting_confirmation", "record_confirmation", ["📨 Remind the user to confirm", "🔒 Close", "↩️ Reopen"]),
    ("confirmed", "close", ["📨 Remind the user to confirm", "↩️ Reopen"]),
    ("closed", "reopen", []),
])
def test_one_primary_next_step_per_status_and_the_rest_in_the_menu(app_env, staff_app, state: str, primary: str,
                                                                    in_menu: list[str]) -> None:
    tid = _new(app_env, staff_app, take=state != "new", ack=state != "assigned")
    steps = ["waiting_user", "resolved", "awaiting_confirmation", "confirmed", "closed"]
    reached = steps[: steps.index(state) + 1] if state in steps else []
    if reached:
        with transaction(app_env) as s:
            tickets.log_action(s, actor=staff_app.tech, ticket_id=tid, kind=ActionKind.DIAGNOSIS, text="Reproduced")
    if "waiting_user" in reached:
        _do(app_env, tid, tickets.request_info, actor=staff_app.tech, text="Which version?")
    if "resolved" in reached:
        _do(app_env, tid, tickets.resolve, actor=staff_app.tech, resolution_notes="Repaired the profile",
            root_cause="Corrupt profile")
    if "awaiting_confirmation" in reached:
        _do(app_env, tid, tickets.request_confirmation, actor=staff_app.tech)
    if "confirmed" in reached:
        _do(app_env, tid, tickets.record_confirmation, actor=staff_app.tech, via="phone", confirmed_by="Bo Berg")
    if "closed" in reached:
        _do(app_env, tid, tickets.close, actor=staff_app.tech, reason="confirmed")
    at = _page("tech", tid)
    assert _primary(at) == primary
    menu = _menu(at, tid)
    assert set(in_menu) <= set(menu), menu
    assert not any(primary.replace("_", " ") in m.lower() for m in menu)  # the primary is not repeated
    if state == "closed":  # a closed ticket: only Reopen, nothing else to choose
        assert menu == []


def test_the_lead_sees_every_allowed_action_once(app_env, staff_app) -> None:
    tid = _new(app_env, staff_app, take=False)
    at = _page("lead", tid)
    assert _primary(at) == "take"
    assert _menu(at, tid) == ["👤 Assign", "❓ Request information", "⬆️ Escalate to a senior", "🔒 Close",
                              "🔗 Link to a major incident"]


def test_the_primary_button_and_the_menu_open_their_forms(app_env, staff_app) -> None:
    tid = _new(app_env, staff_app)
    at = _page("tech", tid)
    assert not [t for t in at.text_area if t.key == "res_notes"]
    at.button(key="primary_resolve").click().run()
    assert [t for t in at.text_area if t.key == "res_notes"]
    at.selectbox(key=f"more_{tid}").set_value(next(o for o in at.selectbox(key=f"more_{tid}").options
                                                   if "vendor" in o)).run()
    assert not at.exception
    assert [t for t in at.text_input if t.key == "vendor_name"] and not [t for t in at.text_area if t.key == "res_notes"]
    # a one-click action taken from the menu shows its button, with what it does and what it mails
    tid2 = _new(app_env, staff_app)
    _do(app_env, tid2, tickets.resolve, actor=staff_app.tech, resolution_notes="Fixed")
    at = _page("tech", tid2)
    at.button(key="primary_request_confirmation")  # the primary
    assert any("The requester will get" in e.label and "Please confirm the fix" in e.label for e in at.expander)


def test_the_header_says_what_is_true_now_after_resolve_close_and_reopen(app_env, staff_app) -> None:
    tid = _new(app_env, staff_app)
    _do(app_env, tid, tickets.escalate_to_vendor, actor=staff_app.tech, vendor_name="Contoso", case_ref="C-1",
        promised_at=None)
    at = _page("tech", tid)  # this tab loaded the escalated ticket, and stays open
    assert "Escalated: Vendor" in _header(at) and "Vendor: Contoso" in _header(at)
    _do(app_env, tid, tickets.resolve, actor=staff_app.tech, resolution_notes="Contoso sent a patch",
        root_cause="Bug in the add-in")
    at.run()  # the live header redraws from the newest state
    shown = _header(at)
    assert "Resolved" in shown and "Escalated" not in shown and "Vendor: Contoso" not in shown
    _do(app_env, tid, tickets.close, actor=staff_app.tech, reason="cancelled", note="User left the company")
    at.run()
    shown = _header(at)
    assert "Closed" in shown and "Escalated" not in shown
    _do(app_env, tid, tickets.reopen, actor=staff_app.lead, reason="A colleague took over the laptop")
    at.run()
    shown = _header(at)
    assert "In progress" in shown and "Escalated" not in shown
    # escalated again after the reopen: the badge is back, for the new escalation
    _do(app_env, tid, tickets.escalate_to_senior, actor=staff_app.tech, senior_id=staff_app.senior,
        reason="Needs admin rights")
    at.run()
    assert "Escalated: Senior technician" in _header(at)


def test_public_and_internal_entries_say_so_in_words(app_env, staff_app) -> None:
    tid = _new(app_env, staff_app)
    with transaction(app_env) as s:
        tickets.internal_note(s, actor=staff_app.tech, ticket_id=tid, text="Profile looks corrupt")
        tickets.public_reply(s, actor=staff_app.tech, ticket_id=tid, text="We are looking at it")
    at = _page("tech", tid)
    lines = [_text(m) for m in at.markdown]
    note = next(x for x in lines if x.startswith("**🗒️ Internal note"))
    reply = next(x for x in lines if x.startswith("**💬 Public reply"))
    assert "🔒 **Internal note** — not sent to the requester" in note
    assert "📣 **Public** — sent to Bo Berg" in reply
    taken = next(x for x in lines if x.startswith("**👤 Changed assignee"))  # internal, but it sent an update
    assert "🔒 **Internal** — Bo Berg got a status update only" in taken
    ack = next(x for x in lines if x.startswith("**👍 Acknowledged"))  # not among the updates requesters get
    assert "🔒 **Internal** — not sent to the requester" in ack
    assert [c for c in at.get("html") if "st-key-tl_int_" in c.proto.body]  # the tint, besides the words


def test_suggested_assignees_by_name_with_their_reason_and_the_lead_last(app_env, staff_app) -> None:
    tid = _new(app_env, staff_app, take=False)
    at = _page("lead", tid)
    buttons = [b.label for b in at.button if (b.key or "").startswith(f"sugg_{tid}_")]
    assert buttons and all(b.startswith("Assign to ") for b in buttons)
    assert buttons[-1] == "Assign to Lena Lead" and buttons[0] != "Assign to Lena Lead"
    lines = [_text(m) for m in at.markdown]
    lena = next(x for x in lines if "**Lena Lead** (team lead)" in x)
    assert lena.endswith("no Software skill recorded; load 0 of 10 = no open tickets; nobody with the skill has "
                         "room; a lead: after the team members with room")
    tara = next(x for x in lines if "**Tara Tech**" in x)
    assert "load 0 of 10" in tara
    # one click assigns the person named on the button
    next(b for b in at.button if b.label == "Assign to Tara Tech").click().run()
    assert not at.exception
    with read_session(app_env) as s:
        assert s.get(Ticket, tid).assignee_id == staff_app.tech2


def test_suggested_loads_follow_an_assignment_elsewhere_and_stay_after_a_note(app_env, staff_app) -> None:
    """The ranking is kept across writes that move nobody's load, and read again after one that does."""
    tid = _new(app_env, staff_app, take=False)
    other = _new(app_env, staff_app, take=False)
    at = _page("lead", tid)

    def tara() -> str:
        return next(x for x in (_text(m) for m in at.markdown) if "**Tara Tech**" in x)

    assert "load 0 of 10" in tara()
    with transaction(app_env) as s:
        tickets.internal_note(s, actor=staff_app.lead, ticket_id=other, text="looked at it")
    at.run()
    assert "load 0 of 10" in tara()
    with transaction(app_env) as s:
        tickets.assign(s, actor=staff_app.lead, ticket_id=other, assignee_id=staff_app.tech2,
                       expected_version=s.get(Ticket, other).version)
    at.run()
    assert not at.exception
    assert "load 0 of 10" not in tara() and "1 medium" in tara()


def test_what_the_requester_was_sent_and_what_the_next_action_sends(app_env, staff_app) -> None:
    tid = _new(app_env, staff_app)
    with transaction(app_env) as s:
        tickets.public_reply(s, actor=staff_app.tech, ticket_id=tid, text="Please restart Outlook")
        tickets.public_reply(s, actor=staff_app.tech, ticket_id=tid, text="Any news?")
        mails = s.query(OutboxMail).filter(OutboxMail.ticket_id == tid).order_by(OutboxMail.id).all()
        # the receipt, "a technician has taken it on", and the two replies
        assert [m.subject.split("]")[1].split(":")[0].strip() for m in mails] == [
            "We received your request", "Update", "Update on your request", "Update on your request"]
        mails[0].state, mails[0].sent_at = "sent", mails[0].created_at
        mails[1].state, mails[1].sent_at = "cancelled", None
        mails[2].state, mails[2].last_error, mails[2].attempts = "failed", "550 mailbox unavailable", 5
    at = _page("tech", tid)
    shown = _shown(at)
    assert "📨 Sent to the requester (4)" in shown and "🚫 cancelled" in shown
    assert "We received your request: Outlook crashes" in shown and "✅ sent" in shown
    assert "❌ failed: 550 mailbox unavailable" in shown and "⏳ pending" in shown
    # the reply box says what the requester will get, rendered with the desk's template, as typed
    at.session_state[f"panel_{tid}"] = ticket_view.REPLY
    at.run()
    at.text_area(key="reply_text").input("Your profile is repaired.").run()
    label = next(e for e in at.expander if "The requester will get" in e.label)
    assert label.label.replace("\\", "") == f"✉️ The requester will get: [HD-{tid:06d}] Update on your request: " \
                                            "Outlook crashes"
    # The mail itself is drawn once its expander is opened (a closed one costs the page run one element).
    assert not any("Your profile is repaired." in str(t.value) for t in at.text)
    at.session_state[f"mail_preview_{tid}_public_reply"] = True
    at.run()
    assert any("Your profile is repaired." in str(t.value) for t in at.text)
    assert "To bo@example.com" in [str(c.value).replace("\\", "") for c in at.caption]
    at.session_state[f"panel_{tid}"] = ticket_view.NOTE
    at.run()
    assert "✉️ No mail: internal note" in [str(c.value) for c in at.caption]


def test_no_mail_on_a_ticket_opened_by_mail_that_is_never_answered(app_env, staff_app) -> None:
    from lib import notify

    with transaction(app_env) as s:  # as lib.mail.inbound opens one from an auto-reply
        t = tickets.create_ticket(s, actor=staff_app.tech, draft=TicketDraft(
            summary="Out of office", category="Software", priority="Low", channel="email",
            requester=RequesterInput(name="Bo Berg", email="bo@example.com"),
            event_meta={notify.QUIET: "an auto-reply"}))
        tid = tickets.take(s, actor=staff_app.tech, ticket_id=t.id).id
    at = _page("tech", tid)
    assert "✉️ No mail: this ticket came from mail that is never answered" in [str(c.value) for c in at.caption]
    assert not any("The requester will get" in e.label for e in at.expander)


def test_no_mail_when_the_requester_has_no_address(app_env, staff_app) -> None:
    tid = _new(app_env, staff_app, email=None)
    at = page_test("ticket.py", "tech", query={"id": str(tid)})
    at.session_state[f"panel_{tid}"] = ticket_view.REPLY  # the reply box says why nothing will be mailed
    at.run()
    assert not at.exception, at.exception
    captions = [str(c.value) for c in at.caption]
    assert "✉️ No mail: the requester has no e-mail address" in captions
    assert any("Nothing has been mailed to the requester about this ticket." in str(m.value) for m in at.markdown)
    assert not any("The requester will get" in e.label for e in at.expander)


def test_the_next_step_stays_put_after_someone_elses_change_and_a_stale_save_is_refused(app_env, staff_app) -> None:
    tid = _new(app_env, staff_app)
    at = _page("tech", tid)
    _do(app_env, tid, tickets.request_info, actor=staff_app.lead, text="Which calendar?")  # from another desk
    at.run()
    assert "Waiting on user" in _header(at)  # the live header has the news ...
    assert _primary(at) == "resolve"  # ... while the bar under the pointer is the one this tab loaded
    at.button(key="primary_resolve").click().run()
    at.text_area(key="res_notes").input("Rebuilt the profile").run()
    at.button(key="resolve_go").click().run()
    refused = [str(e.value) for e in at.error if "Not saved" in str(e.value)]
    assert len(refused) == 1 and "changed after you loaded it" in refused[0].replace("\\", "")
    assert at.text_area(key="res_notes").value == "Rebuilt the profile"
    with read_session(app_env) as s:
        assert s.get(Ticket, tid).status == "waiting_user"
