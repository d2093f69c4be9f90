"""Sending the outbox to a real SMTP server (aiosmtpd on 127.0.0.1): threading headers, retry, outages."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import func, select

from lib.db import read_session, transaction
from lib.mail import outbound
from lib.mail.inbound import ingest_message
from lib.mail.settings import InboundDefaults
from lib.models import OutboxMail, TicketEvent, ticket_ref
from lib.workflow import EventKind
from tests.integration.conftest import SmtpServer, free_port, make_mail


def new_tickets(engine, n: int) -> list[int]:
    """n e-mail tickets, each with its acknowledgement waiting in the outbox."""
    ids = []
    for i in range(n):
        with transaction(engine) as s:
            result = ingest_message(s, make_mail(subject=f"Request {i}", sender=f"user{i}@example.com",
                                                 message_id=f"<req-{i}@example.com>"),
                                    defaults=InboundDefaults())
            ids.append(result.ticket_id)
    return ids


def outbox(engine) -> list[OutboxMail]:
    with read_session(engine) as s:
        rows = list(s.scalars(select(OutboxMail).order_by(OutboxMail.id)))
        s.expunge_all()
        return rows


def timeline(engine, ticket_id: int, kind: EventKind) -> list[TicketEvent]:
    with read_session(engine) as s:
        rows = list(s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket_id,
                                                        TicketEvent.kind == kind.value)).unique())
        s.expunge_all()
        return rows


def test_outbox_is_sent_with_stable_ids_and_threading_and_shows_on_the_timeline(engine, smtp_server):
    [tid] = new_tickets(engine, 1)
    [row] = outbox(engine)
    report = outbound.send_outbox(engine, smtp_server.config())
    assert (report.sent, report.retried, report.failed) == (1, 0, 0)
    [got] = smtp_server.received
    msg = got.message
    assert msg["Message-ID"] == row.message_id
    assert msg["In-Reply-To"] == "<req-0@example.com>" and msg["References"] == "<req-0@example.com>"
    assert msg["Subject"].startswith(f"[{ticket_ref(tid)}] We received your request")
    assert msg["From"] == "IT help desk <helpdesk@desk.example>" and msg["To"] == "user0@example.com"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert got.mail_from == "helpdesk@desk.example" and got.rcpt_tos == ["user0@example.com"]
    assert "logged it as" in msg.get_payload(decode=True).decode()
    [row] = outbox(engine)
    assert row.state == "sent" and row.attempts == 1 and row.sent_at is not None and row.claimed_until is None
    [event] = timeline(engine, tid, EventKind.MAIL_SENT)
    assert event.meta["message_id"] == row.message_id and event.meta["to"] == "user0@example.com"
    # Sent once: another pass sends nothing.
    assert outbound.send_outbox(engine, smtp_server.config()).sent == 0
    assert len(smtp_server.received) == 1


def test_a_temporary_refusal_is_retried_later_with_backoff(clock, engine, smtp_server):
    [tid] = new_tickets(engine, 1)
    config = smtp_server.config(retry_base_seconds=60, retry_max_seconds=3600)
    smtp_server.handler.reply = "451 4.3.0 Try again later"
    t0 = clock.now()
    report = outbound.send_outbox(engine, config, now=t0)
    assert (report.sent, report.retried, report.failed) == (0, 1, 0)
    [row] = outbox(engine)
    assert row.state == "pending" and row.attempts == 1 and "451" in row.last_error
    assert row.next_attempt_at == t0 + timedelta(seconds=60)
    # Not due yet: not even tried.
    assert outbound.send_outbox(engine, config, now=t0 + timedelta(seconds=59)).retried == 0
    assert smtp_server.handler.refused == 1
    # Second refusal: the delay doubles.
    t1 = t0 + timedelta(seconds=61)
    outbound.send_outbox(engine, config, now=t1)
    [row] = outbox(engine)
    assert row.attempts == 2 and row.next_attempt_at == t1 + timedelta(seconds=120)
    # The server takes mail again: sent, with the same Message-ID.
    smtp_server.handler.reply = None
    report = outbound.send_outbox(engine, config, now=t1 + timedelta(seconds=121))
    assert report.sent == 1
    assert smtp_server.message_ids() == [row.message_id]
    [row] = outbox(engine)
    assert row.state == "sent" and row.attempts == 3
    [event] = timeline(engine, tid, EventKind.MAIL_SENT)
    assert event.meta["attempts"] == 3


def test_backoff_is_capped():
    config = SmtpServer(port=1).config(retry_base_seconds=60, retry_max_seconds=3600)
    assert [outbound.backoff(n, config).total_seconds() for n in (1, 2, 3, 6, 7, 20)] == [60, 120, 240, 1920, 3600, 3600]


def test_permanent_refusal_and_too_many_temporary_ones_fail_visibly(clock, engine, smtp_server):
    first, second = new_tickets(engine, 2)
    config = smtp_server.config(max_attempts=3, retry_base_seconds=1)
    smtp_server.handler.reply = "550 5.1.1 No such user"
    report = outbound.send_outbox(engine, config, limit=1)
    assert report.failed == 1
    rows = outbox(engine)
    assert rows[0].state == "failed" and "550" in rows[0].last_error and rows[0].attempts == 1
    [note] = timeline(engine, first, EventKind.INTERNAL_NOTE)
    assert "could not be delivered (refused by the mail server)" in note.body and not note.public

    smtp_server.handler.reply = "452 4.2.2 Mailbox full"
    t = clock.now()
    for n in range(3):
        outbound.send_outbox(engine, config, now=t + timedelta(hours=n))
    rows = outbox(engine)
    assert rows[1].state == "failed" and rows[1].attempts == 3
    [note] = timeline(engine, second, EventKind.INTERNAL_NOTE)
    assert "not accepted after 3 attempts" in note.body
    assert not timeline(engine, second, EventKind.MAIL_SENT)


def test_smtp_down_loses_nothing_and_sends_when_back(clock, engine):
    server = SmtpServer(port=free_port())  # not started: connections are refused
    config = server.config(max_attempts=2, retry_base_seconds=60, retry_max_seconds=600)
    new_tickets(engine, 3)
    t = clock.now()
    for n in range(6):  # far more tries than max_attempts: an outage never fails a mail
        report = outbound.send_outbox(engine, config, now=t + timedelta(hours=n))
        assert report.unavailable and report.retried == 3 and report.failed == 0
    rows = outbox(engine)
    assert {r.state for r in rows} == {"pending"} and all(r.attempts == 6 for r in rows)
    assert all("server unavailable" in r.last_error for r in rows)
    assert max(r.next_attempt_at for r in rows) <= t + timedelta(hours=5, seconds=600)  # capped backoff

    server.start()
    try:
        report = outbound.send_outbox(engine, config, now=t + timedelta(hours=6))
        assert report.sent == 3 and report.unavailable is None
        assert sorted(server.message_ids()) == sorted(r.message_id for r in rows)
    finally:
        server.stop()
    assert {r.state for r in outbox(engine)} == {"sent"}


def test_the_server_going_away_and_coming_back_on_the_same_port(clock, engine, smtp_server):
    new_tickets(engine, 1)
    smtp_server.stop()
    assert outbound.send_outbox(engine, smtp_server.config()).unavailable
    smtp_server.start()  # a new Controller on the same port
    report = outbound.send_outbox(engine, smtp_server.config(), now=clock.now() + timedelta(minutes=5))
    assert report.sent == 1 and len(smtp_server.received) == 1


def test_a_crashed_workers_claim_expires(clock, engine, smtp_server):
    new_tickets(engine, 2)
    config = smtp_server.config(claim_seconds=300)
    t = clock.now()
    claimed = outbound.claim(engine, config, now=t)  # ... and the worker dies before sending
    assert len(claimed) == 2
    assert outbound.send_outbox(engine, config, now=t + timedelta(seconds=299)).sent == 0
    assert outbound.send_outbox(engine, config, now=t + timedelta(seconds=301)).sent == 2
    assert len(smtp_server.received) == 2


def test_two_workers_at_once_send_each_mail_exactly_once(engine, smtp_server):
    new_tickets(engine, 40)
    config = smtp_server.config(batch=3)
    errors: list[BaseException] = []
    sent: list[int] = []
    start = threading.Barrier(2)

    def worker() -> None:
        try:
            start.wait()
            for _ in range(40):
                sent.append(outbound.send_outbox(engine, config).sent)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and sum(sent) == 40
    ids = smtp_server.message_ids()
    assert len(ids) == 40 and len(set(ids)) == 40
    with read_session(engine) as s:
        assert s.scalar(select(func.count()).select_from(OutboxMail).where(OutboxMail.state == "sent")) == 40
        assert s.scalar(select(func.count()).select_from(TicketEvent)
                        .where(TicketEvent.kind == EventKind.MAIL_SENT.value)) == 40
