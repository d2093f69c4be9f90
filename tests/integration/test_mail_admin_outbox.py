"""A lead's outbox actions (lib.mail.admin) against a real SMTP server (aiosmtpd on 127.0.0.1), on SQLite and
PostgreSQL: a cancelled mail is never sent; a failed one sent again goes out."""

from __future__ import annotations

from sqlalchemy import select

from lib.db import read_session, transaction
from lib.mail import admin, outbound
from lib.models import OutboxMail
from tests.conftest import make_staff
from tests.integration.conftest import SmtpServer
from tests.integration.test_smtp import new_tickets


def test_a_cancelled_mail_is_never_sent_and_a_failed_one_sent_again_goes_out(engine, smtp_server: SmtpServer):
    staff = make_staff(engine)
    a, b = new_tickets(engine, 2)
    with read_session(engine) as s:
        ids = {t: s.scalars(select(OutboxMail.id).where(OutboxMail.ticket_id == t)).one() for t in (a, b)}
    # the lead cancels a's mail before the worker's pass; the server refuses b's for good
    with transaction(engine) as s:
        admin.cancel_mail(s, ids[a], actor=staff.lead)
    smtp_server.handler.reply = "550 5.1.1 No such user"
    report = outbound.send_outbox(engine, smtp_server.config())
    assert (report.sent, report.failed) == (0, 1) and smtp_server.handler.refused == 1
    smtp_server.handler.reply = None

    # the failed one is sent again; the cancelled one stays unsent, however many passes
    with transaction(engine) as s:
        admin.retry_mail(s, ids[b], actor=staff.lead)
    assert outbound.send_outbox(engine, smtp_server.config()).sent == 1
    assert outbound.send_outbox(engine, smtp_server.config()).sent == 0
    assert [r.rcpt_tos for r in smtp_server.received] == [["user1@example.com"]]
    with read_session(engine) as s:
        assert {t: s.get(OutboxMail, ids[t]).state for t in (a, b)} == {a: "cancelled", b: "sent"}

    # cancelled by mistake: queued again from the same screen, it goes out once
    with transaction(engine) as s:
        admin.retry_mail(s, ids[a], actor=staff.lead)
    assert outbound.send_outbox(engine, smtp_server.config()).sent == 1
    assert outbound.send_outbox(engine, smtp_server.config()).sent == 0
    assert [r.rcpt_tos for r in smtp_server.received] == [["user1@example.com"], ["user0@example.com"]]
