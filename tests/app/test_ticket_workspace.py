"""AppTest of the ticket page as a workspace: drafts kept and restored, discarded, refused when too long; who
else is on the ticket; a stale save refused once, in desk time."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine
from streamlit.testing.v1 import AppTest

from lib import drafts, presence, tickets
from lib.config import get_settings
from lib.db import read_session, transaction
from lib.directory import RequesterInput
from lib.drafts import DraftField
from lib.tickets import TicketDraft
from lib.ui import ticket_view
from tests.app.conftest import page_test
from tests.conftest import Staff

pytestmark = pytest.mark.filterwarnings("ignore")


def _ticket(engine: Engine, staff: Staff) -> tuple[int, int]:
    with transaction(engine) as s:
        t = tickets.create_ticket(s, actor=staff.tech, draft=TicketDraft(
            summary="Outlook crashes", category="Software", priority="Medium", channel="phone",
            requester=RequesterInput(name="Bo", email="bo@example.com")))
        t = tickets.take(s, actor=staff.tech, ticket_id=t.id)
        t = tickets.acknowledge(s, actor=staff.tech, ticket_id=t.id, expected_version=t.version)
        return t.id, t.version


def _held(engine: Engine, user: int, tid: int) -> dict[str, str]:
    with read_session(engine) as s:
        return {f.value: d.text for f, d in drafts.for_ticket(s, user_id=user, ticket_id=tid).items()}


def _captions(at: AppTest) -> str:
    return "\n".join(str(c.value) for c in at.caption)


def _document(at: AppTest, tid: int, tab: str = ticket_view.REPLY) -> AppTest:
    """The ticket page with one of the composer's tabs open."""
    at.session_state[f"panel_{tid}"] = tab
    at.run()
    assert not at.exception, at.exception
    return at


def test_a_draft_is_kept_restored_in_a_new_session_and_cleared_when_sent(app_env, staff_app) -> None:
    tid, _ = _ticket(app_env, staff_app)
    at = _document(page_test("ticket.py", "tech", query={"id": str(tid)}), tid)
    assert "Kept as a draft while you type" in _captions(at)
    at.text_area(key="reply_text").input("Dear Bo, please restart Outlook").run()
    assert _held(app_env, staff_app.tech, tid) == {"reply": "Dear Bo, please restart Outlook"}
    assert "Draft saved 10:00" in _captions(at)  # the test clock: 10:00 UTC, which is 10:00 in London in December
    at.session_state[f"panel_{tid}"] = ticket_view.DETAILS
    at.run()
    assert "💾 Unsent draft in ✉️ Reply" in _captions(at)  # a draft left in another tab is named under the tabs
    at.session_state[f"panel_{tid}"] = ticket_view.REPLY
    at.run()
    assert at.text_area(key="reply_text").value == "Dear Bo, please restart Outlook"
    assert "Unsent draft" not in _captions(at)
    # Another browser (a new session, as after a crash or on another server) gets it back from the database.
    again = _document(page_test("ticket.py", "tech", query={"id": str(tid)}), tid)
    assert again.text_area(key="reply_text").value == "Dear Bo, please restart Outlook"
    # Another person sees nothing of it in their boxes.
    lena = _document(page_test("ticket.py", "lead", query={"id": str(tid)}), tid)
    assert lena.text_area(key="reply_text").value == ""
    next(b for b in again.button if b.label == "Send reply").click().run()
    assert not again.exception
    assert _held(app_env, staff_app.tech, tid) == {}
    assert again.text_area(key="reply_text").value == ""
    with read_session(app_env) as s:
        from lib.queries import timeline

        assert "Dear Bo, please restart Outlook" in [e.body for e in timeline(s, tid)]


def test_discard_and_a_refused_send_keep_or_drop_as_asked(app_env, staff_app) -> None:
    tid, _ = _ticket(app_env, staff_app)
    at = _document(page_test("ticket.py", "tech", query={"id": str(tid)}), tid, ticket_view.ACTION)
    at.text_area(key="act_text").input("Swapped the profile").run()
    at = _document(at, tid, ticket_view.NOTE)
    at.text_area(key="note_text").input("half a thought").run()
    assert set(_held(app_env, staff_app.tech, tid)) == {"action", "note"}
    assert "💾 Unsent draft in 📝 Action" in _captions(at)
    at.button(key="discard_note_text").click().run()
    assert at.text_area(key="note_text").value == ""
    assert set(_held(app_env, staff_app.tech, tid)) == {"action"}
    # A send the service refuses (an empty reply) changes no draft.
    at = _document(at, tid, ticket_view.REPLY)
    next(b for b in at.button if b.label == "Send reply").click().run()
    assert set(_held(app_env, staff_app.tech, tid)) == {"action"}
    at = _document(at, tid, ticket_view.ACTION)
    assert at.text_area(key="act_text").value == "Swapped the profile"


def test_a_draft_too_long_is_refused_with_a_message_and_the_text_stays(app_env, staff_app) -> None:
    tid, _ = _ticket(app_env, staff_app)
    at = _document(page_test("ticket.py", "tech", query={"id": str(tid)}), tid, ticket_view.NOTE)
    long_text = "x" * (drafts.MAX_CHARS + 1)
    at.text_area(key="note_text").input(long_text).run()
    assert not at.exception
    assert any("Not kept as a draft" in str(e.value) and "100,000" in str(e.value) for e in at.error)
    assert at.text_area(key="note_text").value == long_text
    assert _held(app_env, staff_app.tech, tid) == {}


def test_details_edits_are_drafts_and_follow_the_ticket_after_a_save(app_env, staff_app) -> None:
    tid, _ = _ticket(app_env, staff_app)
    at = page_test("ticket.py", "tech", query={"id": str(tid)})
    at.session_state[f"panel_{tid}"] = ticket_view.DETAILS
    at.run()
    at.text_area(key=f"ed_desc_{tid}").input("Crashes when opening the calendar").run()
    assert _held(app_env, staff_app.tech, tid) == {"description": "Crashes when opening the calendar"}
    at.text_input(key=f"ed_summary_{tid}").input("Outlook crashes on calendar").run()
    next(b for b in at.button if b.label == "Save changes").click().run()
    assert not at.exception
    assert _held(app_env, staff_app.tech, tid) == {}
    assert at.text_input(key=f"ed_summary_{tid}").value == "Outlook crashes on calendar"
    # Back to the ticket's own value: no draft is kept.
    at.text_area(key=f"ed_desc_{tid}").input("Crashes when opening the calendar").run()
    assert _held(app_env, staff_app.tech, tid) == {}


def test_others_on_the_ticket_are_shown_and_a_stale_save_is_refused_once_in_desk_time(
        app_env, staff_app, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HELPDESK_TIMEZONE", "America/New_York")
    get_settings.cache_clear()
    tid, version = _ticket(app_env, staff_app)
    with transaction(app_env) as s:
        presence.heartbeat(s, user_id=staff_app.lead, ticket_id=tid, writing=[DraftField.NOTE])
    at = page_test("ticket.py", "tech", query={"id": str(tid)})
    at.session_state[f"panel_{tid}"] = ticket_view.DETAILS
    at.run()
    shown = "\n".join(str(m.value) for m in at.markdown)
    assert "Lena Lead is writing an internal note" in shown
    with transaction(app_env) as s:  # 10:00 UTC by the test clock: 05:00 at the desk
        tickets.update_fields(s, actor=staff_app.lead, ticket_id=tid, expected_version=version,
                              changes={"priority": "High"})
    at.run()  # the live part shows the change before any save
    warned = [str(w.value).replace("\\", "") for w in at.warning]  # markdown escapes, as rendered
    assert any("Lena Lead changed the priority from Medium to High at 05:0" in w for w in warned), warned
    at.text_input(key=f"ed_summary_{tid}").input("Outlook crashes on start").run()
    next(b for b in at.button if b.label == "Save changes").click().run()
    messages = [str(m.value).replace("\\", "") for m in (*at.error, *at.warning)]
    about = [m for m in messages if "changed after you loaded it" in m]
    assert len(about) == 1, messages  # one message, not two saying the same
    assert "Not saved" in about[0] and "at 05:0" in about[0] and "UTC" not in about[0]
    assert at.text_input(key=f"ed_summary_{tid}").value == "Outlook crashes on start"
    assert _held(app_env, staff_app.tech, tid) == {"summary": "Outlook crashes on start"}
    get_settings.cache_clear()


def test_the_queue_marks_tickets_others_have_open(app_env, staff_app, clock) -> None:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    tid, _ = _ticket(app_env, staff_app)
    with transaction(app_env) as s:
        quiet = tickets.create_ticket(s, actor=staff_app.tech, draft=TicketDraft(
            summary="Mouse squeaks", category="Hardware", priority="Low", channel="phone",
            requester=RequesterInput(name="Cy", email="cy@example.com")))
        quiet_id = tickets.take(s, actor=staff_app.tech, ticket_id=quiet.id).id
        presence.heartbeat(s, user_id=staff_app.tech2, ticket_id=tid)
        presence.heartbeat(s, user_id=staff_app.lead, ticket_id=tid, writing=[DraftField.REPLY])
        presence.heartbeat(s, user_id=staff_app.tech, ticket_id=quiet_id)  # yourself: not shown
    at = page_test("queue.py", "tech")
    at.session_state["queue_view"] = "All open"
    at.run()
    assert not at.exception
    frame = at.dataframe[0].value
    here = dict(zip(frame["Ticket"].str.extract(r"#HD-0*(\d+)$")[0].astype(int), frame["Open by"], strict=True))
    assert here == {tid: "✍️ Lena Lead, 👀 Tara Tech", quiet_id: ""}
    clock.advance(timedelta(seconds=get_settings().presence_stale_seconds + 1))  # their tabs went quiet
    at.run()
    assert set(at.dataframe[0].value["Open by"]) == {""}
