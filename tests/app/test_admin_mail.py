"""Admin → Mail: the lead edits a template (a typo is refused at the field and what was typed stays; the fix is
saved and audited), previews it on a real ticket, resets it; sends a failed mail again; releases a quarantined
message into intake."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from lib import notify
from lib.db import read_session, transaction
from lib.mail import admin
from lib.mail.inbound import ingest_message
from lib.mail.settings import InboundDefaults
from lib.models import AuditLog, OutboxMail, QuarantinedMail, Ticket, ticket_ref
from tests.app.conftest import page_test
from tests.conftest import Staff
from tests.data.test_mail_in import make_mail
from tests.data.test_services import create


def test_templates_outbox_and_quarantine_from_the_admin_page(app_env: Engine, staff_app: Staff):
    tid = create(app_env, staff_app.tech, summary="Scanner on floor 2 is offline")
    at = page_test("admin.py", "lead")
    at.run()
    assert not at.exception, at.exception
    at.selectbox(key="mt_pick").set_value("public_reply").run()
    subject_key = "mt_subject_public_reply"
    assert at.text_input(key=subject_key).value == notify.DEFAULT_TEMPLATES["public_reply"]["subject"]
    # the preview is on the newest ticket with a requester e-mail, with its values
    assert at.text_input(key="mt_ticket").value == ticket_ref(tid)
    assert any(f"Subject: [{ticket_ref(tid)}] Update on your request: Scanner on floor 2 is offline" in t.value
               and "To: ann@example.com" in t.value for t in at.text)
    assert any(c.value.startswith("Hello Ann Smith,") for c in at.code)

    # a typo in a placeholder: refused at the field, nothing saved, what was typed kept
    at.text_input(key=subject_key).set_value("[{ref}] News for {nmae}: {summary}").run()
    assert any("unknown placeholder {nmae} (did you mean {name}?)" in e.value for e in at.error)
    at.button(key="mt_save").click().run()
    assert not at.exception, at.exception
    assert any(e.value.startswith("Please correct: subject uses an unknown placeholder {nmae}") for e in at.error)
    assert at.text_input(key=subject_key).value == "[{ref}] News for {nmae}: {summary}"
    with read_session(app_env) as s:
        assert notify.templates(s)["public_reply"] == notify.DEFAULT_TEMPLATES["public_reply"]

    # fixed: the preview follows, and it is saved and audited
    at.text_input(key=subject_key).set_value("[{ref}] News for {name}: {summary}").run()
    assert not at.error
    assert any(f"Subject: [{ticket_ref(tid)}] News for Ann Smith: Scanner on floor 2 is offline" in t.value
               for t in at.text)
    at.button(key="mt_save").click().run()
    assert not at.exception, at.exception
    with read_session(app_env) as s:
        assert notify.templates(s)["public_reply"]["subject"] == "[{ref}] News for {name}: {summary}"
        assert s.scalar(select(AuditLog.actor).where(AuditLog.action == admin.ACTION_SAVED)) == "lena"

    # reset to the default: stored text and the field both go back
    at.button(key="mt_reset").click().run()
    assert not at.exception, at.exception
    with read_session(app_env) as s:
        assert notify.templates(s)["public_reply"] == notify.DEFAULT_TEMPLATES["public_reply"]
        assert s.scalar(select(AuditLog.target).where(AuditLog.action == admin.ACTION_RESET)) == "public_reply"
    assert at.text_input(key=subject_key).value == notify.DEFAULT_TEMPLATES["public_reply"]["subject"]

    # outbox: the failed receipt is listed with the server's answer and sent again
    with transaction(app_env) as s:
        row = s.scalars(select(OutboxMail)).one()
        row.state, row.attempts, row.last_error = "failed", 1, "550 5.1.1 No such user"
    at.radio(key="mail_section").set_value("outbox").run()
    assert not at.exception, at.exception
    table = next(d.value for d in at.dataframe if "last error" in d.value.columns)
    assert table.iloc[0][["state", "to", "last error"]].tolist() == ["failed", "ann@example.com",
                                                                    "550 5.1.1 No such user"]
    assert any("We received your request" in c.value for c in at.code)  # the mail's body, as text
    at.button(key="ob_retry").click().run()
    assert not at.exception, at.exception
    with read_session(app_env) as s:
        row = s.scalars(select(OutboxMail)).one()
        assert (row.state, row.attempts) == ("pending", 0)

    # quarantine: spam that is genuine after all is shown inert and released into intake
    with transaction(app_env) as s:
        ingest_message(s, make_mail(sender="carl@example.com", subject="VPN \u202eevil", message_id="<v@example.com>",
                                    headers={"X-Spam-Flag": "YES"}), defaults=InboundDefaults())
    at.radio(key="mail_section").set_value("quarantine").run()
    assert not at.exception, at.exception
    assert any(c.value.startswith("From: carl@example.com") and "X-Spam-Flag: YES" in c.value for c in at.code)
    assert any("Subject: VPN ⟦U+202E⟧evil" in t.value and "Reason: spam: X-Spam-Flag: YES" in t.value
               for t in at.text)  # the bidirectional control made visible
    at.button(key="q_release").click().run()
    assert not at.exception, at.exception
    with read_session(app_env) as s:
        assert s.scalars(select(QuarantinedMail.resolved)).one() is True
        made = s.scalars(select(Ticket).where(Ticket.external_ref == "<v@example.com>")).one()
        assert made.requester.email == "carl@example.com"
        assert s.scalar(select(func.count()).select_from(Ticket)) == 2
        made_id = made.id
    assert any(f"Became [{ticket_ref(made_id)}]" in m.value for m in at.markdown)
    assert "q_release" not in [b.key for b in at.button]  # resolved: nothing more to release
