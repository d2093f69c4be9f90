"""The lead's mail screens' rules (lib.mail.admin) on SQLite and PostgreSQL: templates checked, saved, reset and
previewed; outbox mails sent again and cancelled; quarantined mail released into intake (once) and deleted."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from lib import notify
from lib.db import read_session, transaction
from lib.directory import RequesterInput
from lib.errors import NotFound, PermissionDenied, ValidationError
from lib.mail import admin
from lib.mail.inbound import ingest_message
from lib.mail.settings import InboundDefaults
from lib.models import ActionToken, AuditLog, OutboxMail, ProcessedMail, QuarantinedMail, Ticket, ticket_ref
from lib.ticket_core import now_utc
from lib.workflow import EventKind
from tests.conftest import awaiting_confirmation
from tests.data.test_mail_in import count, events, make_mail
from tests.data.test_services import create as create_ticket


def create(engine, actor, *, requester_email: str | None = None, requester_name: str = "Ann Smith") -> int:
    """A ticket for a requester with that address (None: an alert's ticket, with no requester)."""
    if requester_email is None:
        return create_ticket(engine, actor, requester=None, channel="alert")
    return create_ticket(engine, actor, requester=RequesterInput(name=requester_name, email=requester_email))

DEFAULTS = InboundDefaults(own_addresses=("helpdesk@desk.example",))
SPAM = {"X-Spam-Flag": "YES"}


def audits(engine, action: str) -> list[AuditLog]:
    with read_session(engine) as s:
        rows = list(s.scalars(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)))
        s.expunge_all()
        return rows


def ingest(engine, raw: bytes):
    with transaction(engine) as s:
        return ingest_message(s, raw, defaults=DEFAULTS)


# --- templates -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("subject", "body", "field", "says"), [
    ("[{ref}] Hello {nmae}", "Hi", "subject", "unknown placeholder {nmae} (did you mean {name}?)"),
    ("[{ref}]", "Hello {name,\n\n{desk}", "body", "without its partner"),
    ("[{ref}]", "Hello name}", "body", "without its partner"),
    ("", "Hello", "subject", "is empty"),
    ("   ", "Hello", "subject", "is empty"),
    ("x" * 301, "Hello", "subject", "is 301 characters long; at most 300"),
    ("[{ref}]", "", "body", "is empty"),
    ("[{ref}]", "Hi {}", "body", "empty placeholder {}"),
    ("[{ref}]", "Hi {0}", "body", "{0} is not a plain placeholder"),
    ("[{ref.real}]", "Hi", "subject", "{ref.real} is not a plain placeholder"),
    ("[{ref!r}]", "Hi", "subject", "{ref!r} is not a plain placeholder"),
    ("[{ref:>20}]", "Hi", "subject", "{ref:>20} is not a plain placeholder"),
    ("[{ref}]", "Hi {desk[0]}", "body", "{desk[0]} is not a plain placeholder"),
    ("[{ref}]", "Hi {colour}", "body", "unknown placeholder {colour}; the placeholders are {ref}, {summary}"),
])
def test_a_template_that_would_not_format_is_refused_with_what_is_wrong(subject, body, field, says):
    errors = admin.check_template("public_reply", subject, body)
    assert list(errors) == [field] and says in errors[field], errors


def test_every_default_template_and_literal_braces_pass_the_check():
    for name, tpl in notify.DEFAULT_TEMPLATES.items():
        assert admin.check_template(name, tpl["subject"], tpl["body"]) == {}, name
    assert admin.check_template("created", "x" * 300, "Use {{braces}} as text, {ref}.") == {}
    assert set(admin.PURPOSES) == set(admin.SAMPLE_MESSAGES) == set(admin.TICKET_TEMPLATES)
    assert set(admin.TICKET_TEMPLATES) <= set(notify.DEFAULT_TEMPLATES)


def test_each_template_allows_exactly_the_placeholders_its_mail_fills_in():
    for name in admin.TICKET_TEMPLATES:
        assert admin.placeholders(name) == ("ref", "summary", "name", "message", "status", "desk")
    # a template outside the ticket mails: the placeholders its default uses, no more
    tpl = notify.DEFAULT_TEMPLATES.get("staff_digest")
    if tpl is not None:
        assert "status" not in admin.placeholders("staff_digest")
        assert "unknown placeholder {status}" in admin.check_template("staff_digest", "{status}", "x")["subject"]


def test_saving_checks_merges_per_template_and_is_audited_and_reset_goes_back(engine, staff):
    with transaction(engine) as s:
        with pytest.raises(ValidationError) as refused:
            admin.save_template(s, "created", subject="[{ref}] Hi {nmae}", body="Hello", actor=staff.lead)
    assert "did you mean {name}" in refused.value.fields["subject"]
    with read_session(engine) as s:
        assert notify.templates(s) == notify.DEFAULT_TEMPLATES and admin.edited(s) == set()
    with transaction(engine) as s, pytest.raises(PermissionDenied):
        admin.save_template(s, "created", subject="[{ref}] Hi", body="Hello", actor=staff.tech)
    with transaction(engine) as s, pytest.raises(NotFound):
        admin.save_template(s, "nonsense", subject="[{ref}] Hi", body="Hello", actor=staff.lead)

    with transaction(engine) as s:
        admin.save_template(s, "created", subject="[{ref}] Got it: {summary}", body="Hi {name}, {ref} is logged.",
                            actor=staff.lead)
    with transaction(engine) as s:
        admin.save_template(s, "closed", subject="[{ref}] Done", body="Closed. {{no placeholder}}",
                            actor=staff.lead)
    with read_session(engine) as s:
        current = notify.templates(s)
        assert current["created"] == {"subject": "[{ref}] Got it: {summary}", "body": "Hi {name}, {ref} is logged."}
        assert current["closed"]["body"] == "Closed. {{no placeholder}}"
        assert current["resolved"] == notify.DEFAULT_TEMPLATES["resolved"]
        assert admin.edited(s) == {"created", "closed"} and admin.stored_problems(s) == {}
    saved = audits(engine, admin.ACTION_SAVED)
    assert [(a.actor, a.target) for a in saved] == [("lead", "created"), ("lead", "closed")]
    assert saved[0].detail.startswith("changed: subject, body")

    # the mail a new ticket gets uses the edit
    tid = create(engine, staff.tech, requester_email="ann@example.com", requester_name="Ann")
    with read_session(engine) as s:
        mail = s.scalars(select(OutboxMail).where(OutboxMail.ticket_id == tid)).one()
        assert mail.subject.startswith(f"[{ticket_ref(tid)}] Got it: ") and mail.body == f"Hi Ann, {ticket_ref(tid)} is logged."

    with transaction(engine) as s:
        assert admin.reset_template(s, "created", actor=staff.lead) == notify.DEFAULT_TEMPLATES["created"]
    with read_session(engine) as s:
        assert notify.templates(s)["created"] == notify.DEFAULT_TEMPLATES["created"]
        assert admin.edited(s) == {"closed"}
    with transaction(engine) as s, pytest.raises(ValidationError, match="already is the default"):
        admin.reset_template(s, "created", actor=staff.lead)
    assert [(a.actor, a.target) for a in audits(engine, admin.ACTION_RESET)] == [("lead", "created")]


def test_a_stored_template_that_does_not_format_is_reported_and_render_still_falls_back(engine, staff):
    with transaction(engine) as s:  # written before the checks existed, or by hand
        s.add(notify.Setting(key=notify.TEMPLATES_KEY, value={"created": {"subject": "[{ref}] {nmae}"}}))
    with read_session(engine) as s:
        assert "unknown placeholder {nmae}" in admin.stored_problems(s)["created"]
        values = {k: k.upper() for k in admin.PLACEHOLDERS}
        assert notify.render(s, "created", values)[0] == "[REF] We received your request: SUMMARY"


def test_the_preview_is_the_mail_the_ticket_would_get_with_sample_links_and_no_token(engine, staff):
    first = create(engine, staff.tech, requester_email="ann@example.com", requester_name="Ann Smith")
    tid = awaiting_confirmation(engine, staff, requester=("Dee Jones", "dee@example.com"))
    create(engine, staff.tech)  # newest, but no requester e-mail: not the default
    with read_session(engine) as s:
        assert admin.default_preview_ticket(s) == tid
        tokens = s.scalar(select(func.count()).select_from(ActionToken))
        # the receipt: exactly what the outbox holds for the first ticket
        real = s.scalars(select(OutboxMail).where(OutboxMail.ticket_id == first).order_by(OutboxMail.id)).first()
        tpl = notify.templates(s)["created"]
        shown = admin.preview(s, "created", ticket_id=first, subject=tpl["subject"], body=tpl["body"])
        assert (shown.to, shown.subject, shown.body) == (real.to_address, real.subject, real.body)

        # the confirmation request: sample links on the public address, none issued
        tpl = notify.templates(s)["confirmation_requested"]
        shown = admin.preview(s, "confirmation_requested", ticket_id=tid, subject=tpl["subject"],
                              body="Dear {name}, is {ref} ({summary}) fixed? Status: {status}.\n{message}")
        assert shown.to == "dee@example.com"
        assert shown.subject == f"[{ticket_ref(tid)}] Please confirm the fix: Wi-Fi drops in room 4"
        assert shown.body.startswith(f"Dear Dee Jones, is {ticket_ref(tid)} (Wi-Fi drops in room 4) fixed? "
                                     "Status: Awaiting user confirmation.")
        assert f"https://desk.example.test/confirm?t={admin.SAMPLE_TOKEN}" in shown.body
        assert s.scalar(select(func.count()).select_from(ActionToken)) == tokens
        # the sample block is the real one with its token replaced
        real = s.scalars(select(OutboxMail).where(OutboxMail.ticket_id == tid)
                         .order_by(OutboxMail.id.desc())).first()
        block = real.body[real.body.index("Confirm or tell us"):]
        assert re.sub(r"\?t=\S+", f"?t={admin.SAMPLE_TOKEN}", block) == admin.sample_links_text()

        with pytest.raises(ValidationError):
            admin.preview(s, "created", ticket_id=tid, subject="{ref", body="x")
        with pytest.raises(NotFound):
            admin.preview(s, "created", ticket_id=tid + 100, subject="{ref}", body="x")


# --- outbox ----------------------------------------------------------------------------------------


def test_retry_and_cancel_change_only_the_right_states_and_are_audited(clock, engine, staff):
    a = create(engine, staff.tech, requester_email="ann@example.com")
    b = create(engine, staff.tech, requester_email="bob@example.com", requester_name="Bob")
    with read_session(engine) as s:
        mail_a, mail_b = (s.scalars(select(OutboxMail.id).where(OutboxMail.ticket_id == t)).one() for t in (a, b))
        assert admin.outbox_counts(s) == {"pending": 2, "sent": 0, "failed": 0, "cancelled": 0}
    with transaction(engine) as s:
        admin.cancel_mail(s, mail_a, actor=staff.lead)
    note = events(engine, a, EventKind.INTERNAL_NOTE)[-1]
    assert note.body.startswith("Mail to ann@example.com cancelled by Lena Lead before it was sent")
    with transaction(engine) as s:
        with pytest.raises(ValidationError, match="only a waiting mail can be cancelled"):
            admin.cancel_mail(s, mail_a, actor=staff.lead)
        with pytest.raises(ValidationError, match="only a failed or cancelled mail"):
            admin.retry_mail(s, mail_b, actor=staff.lead)
        with pytest.raises(PermissionDenied):
            admin.cancel_mail(s, mail_b, actor=staff.tech)
        with pytest.raises(NotFound):
            admin.retry_mail(s, mail_b + 100, actor=staff.lead)
        row = s.get(OutboxMail, mail_b)  # a worker holds it: it may be on the wire
        row.claimed_until = clock.now() + timedelta(minutes=5)
    with transaction(engine) as s, pytest.raises(ValidationError, match="being sent right now"):
        admin.cancel_mail(s, mail_b, actor=staff.lead)
    with transaction(engine) as s:
        row = s.get(OutboxMail, mail_b)
        row.state, row.attempts, row.last_error, row.claimed_until = "failed", 5, "550 5.1.1 no such user", None
    with read_session(engine) as s:
        listed = admin.list_outbox(s, state="failed")
        assert [(r.id, r.state, r.attempts, r.last_error) for r in listed] == [
            (mail_b, "failed", 5, "550 5.1.1 no such user")]
        assert [r.state for r in admin.list_outbox(s)] == ["failed", "cancelled"]
    with transaction(engine) as s:
        admin.retry_mail(s, mail_b, actor=staff.lead)
    with read_session(engine) as s:
        row = s.get(OutboxMail, mail_b)
        assert (row.state, row.attempts) == ("pending", 0)
        assert abs((now_utc(row.next_attempt_at) - clock.now()).total_seconds()) < 60
    assert [(a.target, a.detail.split(";")[0]) for a in audits(engine, admin.ACTION_RETRIED)] == [
        (f"outbox {mail_b}", "was failed")]
    assert [a.target for a in audits(engine, admin.ACTION_CANCELLED)] == [f"outbox {mail_a}"]


# --- quarantine ------------------------------------------------------------------------------------


def test_releasing_quarantined_spam_makes_one_ticket_with_its_receipt_and_twice_is_refused(engine, staff):
    raw = make_mail(sender="Carl Client <carl@example.com>", subject="VPN refuses my password", headers=SPAM,
                    message_id="<vpn-1@example.com>")
    held = ingest(engine, raw)
    assert held.kind == "ignored_auto" and held.reason.startswith("spam: X-Spam-Flag: YES")
    with read_session(engine) as s:
        [row] = admin.list_quarantine(s)
        assert (row.resolved, row.ticket_id, row.from_address) == (False, None, "carl@example.com")
        assert admin.quarantine_count(s) == 1 and admin.unreadable(bytes(admin.get_quarantined(s, row.id).raw)) is None
    with transaction(engine) as s:
        result = admin.release(s, row.id, actor=staff.lead, defaults=DEFAULTS)
    assert result.kind == "ticket" and result.ticket_id is not None
    with read_session(engine) as s:
        t = s.get(Ticket, result.ticket_id)
        assert (t.summary, t.channel, t.requester.email) == ("VPN refuses my password", "email", "carl@example.com")
        # genuine after all: the requester gets the receipt, threaded under their message
        [ack] = s.scalars(select(OutboxMail).where(OutboxMail.ticket_id == t.id)).all()
        assert ack.to_address == "carl@example.com" and ack.in_reply_to == "<vpn-1@example.com>"
        assert s.get(ProcessedMail, "<vpn-1@example.com>").outcome == "ticket"
        [row] = admin.list_quarantine(s)
        assert (row.resolved, row.ticket_id, row.outcome) == (True, t.id, "ticket")
        assert admin.quarantine_count(s) == 0
    note = events(engine, result.ticket_id, EventKind.INTERNAL_NOTE)[-1]
    assert note.body.startswith("Taken in from the mail quarantine as a new ticket by Lena Lead")
    assert "spam: X-Spam-Flag: YES" in note.body
    [entry] = audits(engine, admin.ACTION_RELEASED)
    assert entry.actor == "lead" and entry.detail.startswith(f"ticket {ticket_ref(result.ticket_id)}")

    with transaction(engine) as s, pytest.raises(ValidationError, match="already resolved"):
        admin.release(s, row.id, actor=staff.lead, defaults=DEFAULTS)
    assert ingest(engine, raw).kind == "duplicate"  # the same message again: a duplicate of the ticket
    assert count(engine, Ticket) == 1


def test_a_released_reply_becomes_a_comment_on_the_ticket_it_answers(engine, staff):
    reply = make_mail(sender="ann@example.com", subject="Re: printer", body="It jams again.", headers={
        "Precedence": "bulk"}, in_reply_to="<first@example.com>", message_id="<reply@example.com>")
    assert ingest(engine, reply).kind == "ignored_auto"  # answers no ticket yet: held
    first = ingest(engine, make_mail(sender="ann@example.com", message_id="<first@example.com>"))
    with read_session(engine) as s:
        qid = s.scalars(select(QuarantinedMail.id)).one()
    with transaction(engine) as s:
        result = admin.release(s, qid, actor=staff.lead, defaults=DEFAULTS)
    assert (result.kind, result.ticket_id) == ("comment", first.ticket_id)
    [comment] = events(engine, first.ticket_id, EventKind.INBOUND_EMAIL)
    assert comment.body == "It jams again."


def test_what_would_be_held_again_or_cannot_be_read_is_not_released_and_nothing_changes(engine, staff):
    loop = ingest(engine, make_mail(sender="helpdesk@desk.example", subject="[HD-000999] Resolved"))
    junk = ingest(engine, b"\x00\x01\x02 not a mail at all")
    assert loop.kind == junk.kind == "quarantined"
    with read_session(engine) as s:
        rows = {r.reason.split(" ")[0]: r.id for r in admin.list_quarantine(s)}
        assert "cannot be read as an e-mail" in admin.unreadable(bytes(admin.get_quarantined(s, rows["cannot"]).raw))
    with transaction(engine) as s, pytest.raises(ValidationError, match="would be held again .*own address"):
        admin.release(s, rows["sent"], actor=staff.lead, defaults=DEFAULTS)
    with transaction(engine) as s, pytest.raises(ValidationError, match="cannot be read as an e-mail"):
        admin.release(s, rows["cannot"], actor=staff.lead, defaults=DEFAULTS)
    with transaction(engine) as s, pytest.raises(PermissionDenied):
        admin.release(s, rows["sent"], actor=staff.tech, defaults=DEFAULTS)
    assert count(engine, Ticket) == 0 and count(engine, QuarantinedMail) == 2
    assert count(engine, QuarantinedMail, QuarantinedMail.resolved.is_(True)) == 0
    assert audits(engine, admin.ACTION_RELEASED) == []


def test_deleting_a_quarantined_message_is_audited_and_a_later_copy_stays_a_duplicate(engine, staff):
    raw = make_mail(sender="news@list.example", headers={"List-Id": "<news.list.example>"},
                    message_id="<news-1@list.example>")
    ingest(engine, raw)
    with read_session(engine) as s:
        qid = s.scalars(select(QuarantinedMail.id)).one()
    with transaction(engine) as s, pytest.raises(PermissionDenied):
        admin.delete_quarantined(s, qid, actor=staff.tech)
    with transaction(engine) as s:
        assert admin.delete_quarantined(s, qid, actor=staff.lead) == qid
    assert count(engine, QuarantinedMail) == 0
    [entry] = audits(engine, admin.ACTION_DELETED)
    assert entry.target == f"quarantine {qid}" and entry.detail.startswith("from news@list.example")
    with transaction(engine) as s, pytest.raises(NotFound):
        admin.delete_quarantined(s, qid, actor=staff.lead)
    assert ingest(engine, raw).kind == "duplicate"
