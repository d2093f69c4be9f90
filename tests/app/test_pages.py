"""AppTest for every page and role: access rules, login, lockout, validation that keeps input."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from lib import tickets
from lib.config import get_settings
from lib.db import transaction
from lib.directory import RequesterInput
from lib.tickets import TicketDraft
from lib.ui import ticket_view
from lib.ui.core import SESSION_TOKEN
from tests.app.conftest import APP, page_test

pytestmark = pytest.mark.filterwarnings("ignore")


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [t.value for t in at.title] + [e.value for e in at.error]
    parts += [w.value for w in at.warning] + [i.value for i in at.info] + [s.value for s in at.success]
    return "\n".join(str(p) for p in parts)


def test_empty_database_shows_only_setup(app_env) -> None:
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.run()
    assert not at.exception
    assert "There are no accounts yet" in texts(at)
    at.text_input(key="setup_username").input("lena")
    at.text_input(key="setup_name").input("Lena Lead")
    at.text_input(key="setup_pw").input("short")
    at.text_input(key="setup_pw2").input("short")
    at.button[0].click().run()
    # The form keeps what was typed and says what is wrong.
    assert at.text_input(key="setup_username").value == "lena"
    assert "at least 10 characters" in texts(at)
    at.text_input(key="setup_pw").input("correct horse battery")
    at.text_input(key="setup_pw2").input("correct horse battery")
    at.button[0].click().run()
    assert "Log in" in " ".join(b.label for b in at.button)


def test_logged_out_user_sees_only_login(app_env, staff_app) -> None:
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.run()
    assert not at.exception
    labels = [t.label for t in at.text_input]
    assert labels == ["Username", "Password"]
    assert "Queue" not in texts(at)


def _handover(at: AppTest) -> str | None:
    """The /auth/session address the page sends the browser to after a correct password."""
    for el in at.get("html"):
        body = el.proto.body
        if "/auth/session?" in body:
            return body.split('"')[1]
    return None


def test_real_login_widget_lockout_and_unlock(app_env, staff_app) -> None:
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.run()
    for _ in range(5):
        at.text_input(key="login_username").input("tom")
        at.text_input(key="login_password").input("wrong password!")
        at.button[0].click().run()
        assert not at.exception
    assert "locked" in texts(at).lower()
    at.text_input(key="login_username").input("tom")
    at.text_input(key="login_password").input(staff_app.password)
    at.button[0].click().run()
    assert _handover(at) is None  # the right password is refused while locked
    assert "locked" in texts(at).lower()
    from lib.users import reset_password

    with transaction(app_env) as s:
        reset_password(s, actor=staff_app.lead, user_id=staff_app.tech, new=staff_app.password)
    at.text_input(key="login_username").input("tom")
    at.text_input(key="login_password").input(staff_app.password)
    at.button[0].click().run()
    url = _handover(at)
    assert url is not None and url.startswith("/auth/session?code=")
    # The browser exchanges the one-time code once for the session token (the route sets it as the cookie).
    from urllib.parse import parse_qs, urlsplit

    from lib import sessions

    code = parse_qs(urlsplit(url).query)["code"][0]
    with transaction(app_env) as s:
        token = sessions.claim(s, code=code)
        assert sessions.claim(s, code=code) is None  # a second exchange is refused
    assert token is not None
    who = sessions.check(app_env, token=token)
    assert who is not None and who.username == "tom"


def test_lockout_counted_in_database(app_env, staff_app) -> None:
    """The login bookkeeping: 5 failures lock for 15 minutes; a lead's reset unlocks.
    (The form itself is driven in the real browser: tests/e2e/test_sessions.py.)"""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import select

    from lib import login, users
    from lib.models import AuditLog

    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    for _ in range(5):
        assert login.sign_in(app_env, username="tom", password="wrong", now=now).error
    refused = login.sign_in(app_env, username="tom", password=staff_app.password, now=now)
    assert refused.code is None and refused.locked and "locked for 15 more minute" in (refused.error or "")
    with transaction(app_env) as s:
        tom = users.get_by_username(s, "tom")
        assert tom.failed_logins == 5
        assert users.lock_message(tom, now=now + timedelta(minutes=16)) is None
        assert "lockout" in [a.action for a in s.scalars(select(AuditLog))]
        users.reset_password(s, actor=staff_app.lead, user_id=tom.id, new="another good password")
        assert users.lock_message(tom, now=now) is None
    assert login.sign_in(app_env, username="tom", password="another good password", now=now).code


@pytest.mark.parametrize("page_file", ["queue.py", "ticket.py", "intake.py", "account.py"])
@pytest.mark.parametrize("who", ["tech", "senior", "lead"])
def test_work_pages_open_for_every_role(app_env, staff_app, page_file: str, who: str) -> None:
    at = page_test(page_file, who)
    at.run()
    assert not at.exception, at.exception
    assert not at.error or page_file == "ticket.py"


@pytest.mark.parametrize("who", ["tech", "senior"])
def test_admin_page_refuses_non_leads(app_env, staff_app, who: str) -> None:
    at = page_test("admin.py", who)
    at.run()
    assert not at.exception
    assert any("team lead" in e.value for e in at.error)
    assert not at.tabs  # nothing of the admin page rendered


def test_admin_page_for_lead(app_env, staff_app) -> None:
    at = page_test("admin.py", "lead")
    at.run()
    assert not at.exception
    assert [t.label for t in at.tabs] == ["👥 People", "🗂️ Categories", "⏱️ SLA", "🔔 Notifications", "✉️ Mail",
                                         "💬 Canned replies", "📥 Import", "📜 Audit log"]


def test_navigation_by_role(app_env, staff_app) -> None:
    from lib.ui.pages import PAGES
    from lib.workflow import Role

    lead_only = {p.url_path for p in PAGES if p.min_role >= Role.LEAD}
    assert "admin" in lead_only


def test_intake_validation_keeps_input(app_env, staff_app) -> None:
    at = page_test("intake.py", "tech")
    at.run()
    at.radio(key="in_req_mode").set_value("New contact").run()
    at.text_input(key="in_req_name").input("Ann Smith")
    at.text_area(key="in_description").input("Long text the user typed")
    at.button(key="in_submit").click().run()
    assert not at.exception
    shown = texts(at)
    assert "Summary: is required" in shown
    assert "Category" in shown
    assert at.text_input(key="in_req_name").value == "Ann Smith"
    assert at.text_area(key="in_description").value == "Long text the user typed"


def test_intake_creates_ticket_and_shows_number(app_env, staff_app) -> None:
    at = page_test("intake.py", "tech")
    at.run()
    at.radio(key="in_req_mode").set_value("New contact").run()
    at.text_input(key="in_req_name").input("Ann Smith")
    at.text_input(key="in_req_email").input("ann@example.com")
    at.text_input(key="in_summary").input("VPN drops every hour")
    at.selectbox(key="in_category").select_index(0).run()
    at.button(key="in_submit").click().run()
    assert not at.exception
    assert "created" in texts(at)


def test_ticket_page_stale_field_save_is_refused_and_draft_kept(app_env, staff_app) -> None:
    with transaction(app_env) as s:
        t = tickets.create_ticket(s, actor=staff_app.tech, draft=TicketDraft(
            summary="Outlook crashes", category="Software", priority="Medium", channel="phone",
            requester=RequesterInput(name="Bo", email="bo@example.com")))
        t = tickets.take(s, actor=staff_app.tech, ticket_id=t.id)
        tid, version = t.id, t.version
    at = page_test("ticket.py", "tech", query={"id": str(tid)})
    at.session_state[f"panel_{tid}"] = ticket_view.DETAILS
    at.run()
    assert not at.exception
    # Someone else changes the priority after this tab loaded.
    with transaction(app_env) as s:
        tickets.update_fields(s, actor=staff_app.lead, ticket_id=tid, expected_version=version,
                              changes={"priority": "High"})
        tickets.internal_note(s, actor=staff_app.lead, ticket_id=tid, text="Looking at the logs")
    at.text_input(key=f"ed_summary_{tid}").input("Outlook crashes on start")
    submit = next(b for b in at.button if b.label == "Save changes")
    submit.click().run()
    shown = texts(at)
    assert "changed after you loaded it" in shown
    assert "Lena Lead" in shown
    assert at.text_input(key=f"ed_summary_{tid}").value == "Outlook crashes on start"
    # A note still goes through.
    at.session_state[f"panel_{tid}"] = ticket_view.NOTE
    at.run()
    at.text_area(key="note_text").input("Called the user")
    next(b for b in at.button if b.label == "Add note").click().run()
    with transaction(app_env) as s:
        from lib.queries import timeline

        bodies = [e.body for e in timeline(s, tid)]
        assert "Called the user" in bodies
        assert tickets.get_ticket(s, tid).summary == "Outlook crashes"


def test_queue_lists_and_takes(app_env, staff_app) -> None:
    with transaction(app_env) as s:
        for i in range(3):
            tickets.create_ticket(s, actor=staff_app.tech2, draft=TicketDraft(
                summary=f"Printer {i}", category="Printing", priority="Low", channel="walk_in",
                requester=RequesterInput(name="Cy", email="cy@example.com")))
    at = page_test("queue.py", "tech")
    at.session_state["queue_view"] = "Unassigned"
    at.run()
    assert not at.exception
    frames = at.dataframe
    assert frames and len(frames[0].value) == 3


def test_a_database_outage_shows_a_calm_page_that_recovers(app_env, staff_app, monkeypatch) -> None:
    """No raw exception page when the database does not answer; once it answers again, the app carries on."""
    from tests.app.conftest import signed_in

    token = signed_in("tom")
    good = str(app_env.url)
    monkeypatch.setenv("HELPDESK_DATABASE_URL", "postgresql+psycopg://helpdesk@127.0.0.1:9/nowhere?connect_timeout=2")
    get_settings.cache_clear()
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.session_state[SESSION_TOKEN] = token
    at.run()
    assert not at.exception
    assert "database is not answering" in texts(at)
    assert "Nothing saved before is lost" in texts(at)
    monkeypatch.setenv("HELPDESK_DATABASE_URL", good)
    get_settings.cache_clear()
    at.run()
    assert not at.exception
    assert "not answering" not in texts(at)
    assert "Queue" in texts(at)
