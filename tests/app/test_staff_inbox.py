"""AppTest: the 🔔 Notifications page (the unread count in the sidebar, mark one or all read, open one), the mail
choice on My account, the lead's 💬 Canned replies tab on Admin and the picker that inserts a reply."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.engine import Engine
from streamlit.testing.v1 import AppTest

from lib import canned, drafts, staff_notify, tickets
from lib.db import transaction
from lib.directory import RequesterInput
from lib.models import Notification, Ticket
from lib.staff_notify import EmailMode
from lib.tickets import TicketDraft
from lib.ui import ticket_view
from tests.app.conftest import APP, page_test, signed_in
from tests.conftest import Staff


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [t.value for t in at.title] + [e.value for e in at.error]
    parts += [i.value for i in at.info] + [c.value for c in at.caption] + [t.value for t in at.text]
    parts += [t.value for t in at.toast]
    return "\n".join(str(p) for p in parts).replace("\\", "")


def assigned_to_tom(engine: Engine, staff: Staff, summary: str) -> int:
    with transaction(engine) as s:
        t = tickets.create_ticket(s, actor=staff.lead, draft=TicketDraft(
            summary=summary, category="Printing", priority="Low", channel="phone",
            requester=RequesterInput(name="Ann Smith", email="ann@example.com")))
        tickets.assign(s, actor=staff.lead, ticket_id=t.id, assignee_id=staff.tech, expected_version=t.version)
        return t.id


def unread(engine: Engine, user_id: int) -> int:
    with transaction(engine) as s:
        return staff_notify.unread_count(s, user_id)


def nav_titles(at: AppTest) -> list[str]:
    return [str(info.get("page_name")) for info in at._registered_pages.values()]


def test_inbox_lists_newest_first_and_marks_read(app_env, staff_app) -> None:
    first = assigned_to_tom(app_env, staff_app, "Printer jams on tray 2")
    second = assigned_to_tom(app_env, staff_app, "Toner <b>low</b> *now*")
    at = page_test("inbox.py", "tech")
    at.run()
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["🔔 Notifications"]
    shown = [t.value for t in at.text]
    assert shown == [f"Lena Lead assigned HD-{second:06d} to you: Toner <b>low</b> *now*",  # as typed, not markup
                     f"Lena Lead assigned HD-{first:06d} to you: Printer jams on tray 2"]
    assert "2 unread" in texts(at)
    with transaction(app_env) as s:
        newest = s.scalars(select(Notification).order_by(Notification.id.desc())).first()
        assert newest is not None
        newest_id = newest.id
    at.button(key=f"inbox_read_{newest_id}").click().run()
    assert not at.exception
    assert "1 unread" in texts(at) and unread(app_env, staff_app.tech) == 1
    at.toggle(key="inbox_unread_only").set_value(True).run()
    assert [t.value for t in at.text] == [f"Lena Lead assigned HD-{first:06d} to you: Printer jams on tray 2"]
    at.button(key="inbox_all_read").click().run()
    assert not at.exception
    assert unread(app_env, staff_app.tech) == 0 and "0 unread" in texts(at)
    assert "1 notification(s) marked read" in texts(at)


def test_the_sidebar_counts_unread_on_every_page_and_opening_one_marks_it_read(app_env, staff_app) -> None:
    tid = assigned_to_tom(app_env, staff_app, "Printer jams on tray 2")
    assigned_to_tom(app_env, staff_app, "Scanner offline")
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.session_state["_session_token"] = signed_in("tom")
    at.run()
    assert not at.exception, at.exception
    assert "Notifications (2)" in nav_titles(at)  # on the queue, the default page
    at.switch_page("pages/inbox.py").run()
    assert not at.exception
    with transaction(app_env) as s:
        note_id = s.scalar(select(Notification.id).where(Notification.ticket_id == tid))
    at.button(key=f"inbox_open_{note_id}").click().run()
    assert not at.exception, at.exception
    assert at.query_params.get("id") in (str(tid), [str(tid)])  # now on the ticket page
    assert unread(app_env, staff_app.tech) == 1
    assert "Notifications (1)" in nav_titles(at)
    lena = AppTest.from_file(str(APP), default_timeout=30)
    lena.session_state["_session_token"] = signed_in("lena")
    lena.run()
    assert "Notifications" in nav_titles(lena)  # nothing unread: no count


def test_my_account_keeps_the_mail_choice(app_env, staff_app) -> None:
    at = page_test("account.py", "tech")
    at.run()
    assert not at.exception, at.exception
    radio = at.radio(key="notify_mail_mode")
    assert radio.value is EmailMode.DIGEST or radio.value == EmailMode.DIGEST  # the default (staff_mail_default)
    assert "from 08:00" in texts(at)
    radio.set_value(EmailMode.EACH)
    at.button[[b.label for b in at.button].index("Save mail choice")].click().run()
    assert not at.exception
    with transaction(app_env) as s:
        assert staff_notify.email_mode(s, staff_app.tech) is EmailMode.EACH
        assert staff_notify.email_mode(s, staff_app.tech2) is EmailMode.DIGEST
    at.run()
    assert at.radio(key="notify_mail_mode").value == EmailMode.EACH


def test_the_lead_keeps_canned_replies_on_admin(app_env, staff_app) -> None:
    at = page_test("admin.py", "lead")
    at.run()
    assert not at.exception, at.exception
    assert "💬 Canned replies" in [t.label for t in at.tabs]
    at.text_input(key="cr_new_title").input("Password reset")
    at.text_area(key="cr_new_body").input("Hello {name}, done with {ticket}.")
    at.button[[b.label for b in at.button].index("Add canned reply")].click().run()
    assert not at.exception
    assert "unknown placeholder {name}" in texts(at)
    assert at.text_area(key="cr_new_body").value == "Hello {name}, done with {ticket}."  # kept to correct
    at.text_area(key="cr_new_body").input("Hello {requester_name}, done with {ticket}.")
    at.button[[b.label for b in at.button].index("Add canned reply")].click().run()
    assert not at.exception
    with transaction(app_env) as s:
        assert [(r.title, r.body) for r in canned.list_responses(s)] == [
            ("Password reset", "Hello {requester_name}, done with {ticket}.")]
    [table] = [d.value for d in at.dataframe if "Title" in d.value.columns]
    assert list(table["Title"]) == ["Password reset"]


def _picker_app() -> None:
    import streamlit as st

    from lib.ui import canned_view

    ticket_id = int(st.query_params["id"])
    st.text_area("Reply", key="reply_text")
    canned_view.picker(ticket_id, "reply_text", technician_id=int(st.query_params["tech"]))


def test_the_picker_appends_the_filled_in_reply_to_the_text_area(app_env, staff_app) -> None:
    tid = assigned_to_tom(app_env, staff_app, "Printer jams on tray 2")
    with transaction(app_env) as s:
        canned.create(s, actor=staff_app.lead, title="Looking", body="Hello {requester_name}, {technician} on {ticket}.")
    at = AppTest.from_function(_picker_app, default_timeout=30)
    at.query_params["id"] = str(tid)
    at.query_params["tech"] = str(staff_app.tech)
    at.run()
    assert not at.exception, at.exception
    at.text_area(key="reply_text").input("Thanks for waiting.")
    at.button(key="reply_text__canned_insert").click().run()
    assert not at.exception, at.exception
    assert at.text_area(key="reply_text").value == (
        f"Thanks for waiting.\n\nHello Ann Smith, Tom Tech on HD-{tid:06d}.")


def test_the_ticket_page_offers_canned_replies_beside_the_reply_and_the_note(app_env, staff_app) -> None:
    tid = assigned_to_tom(app_env, staff_app, "Printer jams on tray 2")
    with transaction(app_env) as s:
        ticket = s.get(Ticket, tid)
        assert ticket is not None
        tickets.acknowledge(s, actor=staff_app.tech, ticket_id=tid, expected_version=ticket.version)
        canned.create(s, actor=staff_app.lead, title="Looking", body="Hello {requester_name}, {technician} here.")
    at = page_test("ticket.py", "tech", query={"id": str(tid)})
    at.session_state[f"panel_{tid}"] = ticket_view.REPLY
    at.run()
    assert not at.exception, at.exception
    at.button(key="reply_text__canned_insert").click().run()
    assert not at.exception, at.exception
    assert at.text_area(key="reply_text").value == "Hello Ann Smith, Tom Tech here."
    with transaction(app_env) as s:  # kept as a draft like anything typed there, until sent
        held = drafts.for_ticket(s, user_id=staff_app.tech, ticket_id=tid)
        assert {f.value: d.text for f, d in held.items()} == {"reply": "Hello Ann Smith, Tom Tech here."}
    at.session_state[f"panel_{tid}"] = ticket_view.NOTE
    at.run()
    at.text_area(key="note_text").input("Checked the tray.").run()
    at.button(key="note_text__canned_insert").click().run()
    assert at.text_area(key="note_text").value == "Checked the tray.\n\nHello Ann Smith, Tom Tech here."
