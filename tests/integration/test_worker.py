"""The worker with real servers: IMAP in, SMTP out, SLA pass, confirmation reminders and no-reply closures."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from lib import tickets, worker
from lib.config import get_settings
from lib.db import read_session, transaction
from lib.mail.inbound import ingest_message
from lib.mail.settings import InboundDefaults
from lib.models import OutboxMail, Ticket, TicketEvent, ticket_ref
from lib.workflow import ActionKind, ClosureReason, EventKind, Status
from tests.integration.conftest import make_mail

ROOT = Path(__file__).resolve().parents[2]


def get(engine, ticket_id: int) -> Ticket:
    with read_session(engine) as s:
        t = s.get(Ticket, ticket_id)
        s.expunge_all()
        return t


def count(engine, model, *where) -> int:
    with read_session(engine) as s:
        return s.scalar(select(func.count()).select_from(model).where(*where)) or 0


def awaiting_confirmation(engine, staff, *, n: int, at: datetime) -> list[int]:
    """n e-mail tickets resolved and awaiting the requester's confirmation since ``at``."""
    ids = []
    for i in range(n):
        with transaction(engine) as s:
            tid = ingest_message(s, make_mail(subject=f"Broken {i}", sender=f"user{i}@example.com"), now=at,
                                 defaults=InboundDefaults()).ticket_id
            t = tickets.take(s, actor=staff.tech, ticket_id=tid, now=at)
            t = tickets.acknowledge(s, actor=staff.tech, ticket_id=tid, expected_version=t.version, now=at)
            tickets.log_action(s, actor=staff.tech, ticket_id=tid, kind=ActionKind.DIAGNOSIS, text="Looked", now=at)
            t = tickets.resolve(s, actor=staff.tech, ticket_id=tid, expected_version=t.version,
                                resolution_notes="Fixed it", root_cause="Loose cable", now=at)
            tickets.request_confirmation(s, actor=staff.tech, ticket_id=tid, expected_version=t.version, now=at)
            ids.append(tid)
    return ids


def test_mail_in_answer_out_reply_in_through_the_worker(engine, staff, imap_server, smtp_server):
    smtp, imap = smtp_server.config(), imap_server.config()
    imap_server.append(make_mail(message_id="<first@example.com>"))
    report = worker.run(engine, once=True, smtp=smtp, imap=imap)
    assert [r.kind for r in report.imap.results] == ["ticket"] and report.outbox.sent == 1 and not report.errors
    tid = report.imap.results[0].ticket_id
    [ack] = smtp_server.received
    assert ack.message["In-Reply-To"] == "<first@example.com>"
    assert f"[{ticket_ref(tid)}]" in ack.message["Subject"]

    with transaction(engine) as s:
        t = tickets.take(s, actor=staff.tech, ticket_id=tid)
        t = tickets.acknowledge(s, actor=staff.tech, ticket_id=tid, expected_version=t.version)
        tickets.request_info(s, actor=staff.tech, ticket_id=tid, expected_version=t.version, text="Which floor?")
    worker.run(engine, once=True, smtp=smtp, imap=imap)
    question = smtp_server.received[-1].message
    assert question["Subject"].startswith(f"[{ticket_ref(tid)}] We need more information")

    # An out-of-office answer first: ignored, nothing sent back, still waiting.
    imap_server.append(make_mail(subject=f"Out of office: {question['Subject']}", in_reply_to=question["Message-ID"],
                                 headers={"Auto-Submitted": "auto-replied"}))
    report = worker.run(engine, once=True, smtp=smtp, imap=imap)
    assert [r.kind for r in report.imap.results] == ["ignored_auto"] and report.outbox.sent == 0
    assert get(engine, tid).status == Status.WAITING_USER
    # The real answer, threaded on our question without a tag: a comment, and work resumes.
    imap_server.append(make_mail(subject="Re: your question", body="Floor 3.\n\n> Which floor?",
                                 in_reply_to=question["Message-ID"]))
    report = worker.run(engine, once=True, smtp=smtp, imap=imap)
    assert [(r.kind, r.ticket_id) for r in report.imap.results] == [("comment", tid)]
    assert get(engine, tid).status == Status.IN_PROGRESS
    # the receipt, "a technician has taken it on", the question; the requester's replies are not answered
    to_requester = [m for m in smtp_server.received if m.message["To"] != "tech@desk.example"]
    assert [m.message["Subject"].split("] ", 1)[1].split(":")[0] for m in to_requester] == [
        "We received your request", "Update", "We need more information"]
    # the technician hears of the reply in their daily digest (the default mail choice; docs/notifications.md)
    [digest] = [m for m in smtp_server.received if m.message["To"] == "tech@desk.example"]
    assert digest.message["Subject"] == "1 unread notification(s) on the help desk"
    assert imap_server.uids("UNSEEN") == []


def test_reminder_then_closure_with_reason_no_reply(clock, engine, staff, smtp_server):
    wait = get_settings().confirmation_wait_days
    now = clock.now()
    start = now - timedelta(days=wait, hours=1)
    fresh = awaiting_confirmation(engine, staff, n=1, at=now - timedelta(days=wait - 1))[0]
    due, answered = awaiting_confirmation(engine, staff, n=2, at=start)
    with transaction(engine) as s:
        tickets.requester_reply(s, ticket_id=answered, from_label="user1@example.com", text="Still broken!",
                                now=start + timedelta(days=1))

    reminded, closed = worker.follow_up_confirmations(engine, now=now)
    assert (reminded, closed) == ([due], [])
    t = get(engine, due)
    assert t.status == Status.AWAITING_CONFIRMATION and t.confirmation_requested_at == now
    with read_session(engine) as s:
        last = s.scalars(select(OutboxMail).where(OutboxMail.ticket_id == due).order_by(OutboxMail.id.desc())).first()
        assert last.subject.startswith(f"[{ticket_ref(due)}] Please confirm the fix")
        assert "A reminder" in last.body and "/confirm?t=" in last.body

    # The reminder restarts the wait: nothing before it ends, closure after.
    assert worker.follow_up_confirmations(engine, now=now + timedelta(days=wait - 1)) == ([fresh], [])
    assert worker.follow_up_confirmations(engine, now=now + timedelta(days=wait, minutes=1)) == ([], [due])
    t = get(engine, due)
    assert t.status == Status.CLOSED and t.closure_reason == ClosureReason.NO_REPLY
    with read_session(engine) as s:
        last = s.scalars(select(OutboxMail).where(OutboxMail.ticket_id == due).order_by(OutboxMail.id.desc())).first()
        assert last.subject.startswith(f"[{ticket_ref(due)}] Closed")
    # The requester who answered is left to the technician, however long it takes.
    assert get(engine, answered).status == Status.AWAITING_CONFIRMATION
    assert worker.follow_up_confirmations(engine, now=now + timedelta(days=60)) == ([], [fresh])
    assert get(engine, answered).status == Status.AWAITING_CONFIRMATION

    # Everything the worker queued goes out in its cycle.
    report = worker.run_cycle(engine, smtp=smtp_server.config())
    assert report.outbox.sent == count(engine, OutboxMail) and not report.errors


def test_two_workers_at_once_remind_and_close_each_ticket_once(clock, engine, staff):
    wait = get_settings().confirmation_wait_days
    now = clock.now()
    ids = awaiting_confirmation(engine, staff, n=6, at=now - timedelta(days=wait + 1))
    results: list[tuple[list[int], list[int]]] = []
    for moment in (now, now + timedelta(days=wait + 1)):
        barrier = threading.Barrier(2)

        def run(at=moment, barrier=barrier) -> None:
            barrier.wait()
            results.append(worker.follow_up_confirmations(engine, now=at))

        threads = [threading.Thread(target=run) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    reminded = sorted(i for r, _ in results for i in r)
    closed = sorted(i for _, c in results for i in c)
    assert reminded == ids and closed == ids
    assert count(engine, TicketEvent, TicketEvent.kind == EventKind.CONFIRMATION_REQUESTED.value,
                 TicketEvent.actor_id.is_(None)) == 6
    assert count(engine, TicketEvent, TicketEvent.kind == EventKind.CLOSED.value) == 6


def test_sla_breaches_are_recorded_once_by_concurrent_workers(clock, engine):
    with transaction(engine) as s:
        for i in range(5):
            ingest_message(s, make_mail(subject=f"Slow {i}", sender=f"s{i}@example.com"), defaults=InboundDefaults())
    later = clock.now() + timedelta(days=30)
    results: list[int | None] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        barrier.wait()
        results.append(worker.record_sla_breaches(engine, now=later))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    breaches = count(engine, TicketEvent, TicketEvent.kind == EventKind.SLA_BREACHED.value)
    assert breaches == 10  # response and resolution, once each per ticket
    assert sum(r or 0 for r in results) == 10
    assert worker.record_sla_breaches(engine, now=later) == 0


def test_a_failing_step_does_not_stop_the_others(engine, smtp_server, monkeypatch):
    with transaction(engine) as s:
        ingest_message(s, make_mail(), defaults=InboundDefaults())

    def broken(*args, **kwargs):
        raise RuntimeError("SLA calendar is broken")

    monkeypatch.setattr(worker.sla, "record_breaches", broken)
    report = worker.run_cycle(engine, smtp=smtp_server.config())
    assert report.outbox.sent == 1 and report.breaches is None and report.followups == 0
    assert report.errors == ["sla: RuntimeError: SLA calendar is broken"]


def test_background_thread_sends_and_stops(engine, smtp_server):
    stop = worker.start_background(engine, interval=0.1, smtp=smtp_server.config(), imap=None)
    try:
        with transaction(engine) as s:
            ingest_message(s, make_mail(), defaults=InboundDefaults())
        deadline = time.monotonic() + 15
        while not smtp_server.received and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(smtp_server.received) == 1
    finally:
        stop()
    assert not any(t.name == "helpdesk-worker" for t in threading.enumerate())


def test_cli_worker_once_and_ingest(sqlite_engine, smtp_server, tmp_path):
    env = {**os.environ, "HELPDESK_DATABASE_URL": sqlite_engine.url.render_as_string(hide_password=False),
           "HELPDESK_SMTP_HOST": "127.0.0.1", "HELPDESK_SMTP_PORT": str(smtp_server.port),
           "HELPDESK_SMTP_FROM": "helpdesk@desk.example"}
    env.pop("HELPDESK_IMAP_HOST", None)
    mails = tmp_path / "mails"
    mails.mkdir()
    for i in range(3):
        (mails / f"{i}.eml").write_bytes(make_mail(subject=f"Batch {i}", sender=f"b{i}@example.com"))
    run = subprocess.run([sys.executable, "-m", "lib.cli", "ingest-email", str(mails), "--quiet"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "3 message(s): 3 ticket"
    run = subprocess.run([sys.executable, "-m", "lib.cli", "worker", "--once"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "outbox: 3 sent" in run.stdout
    assert len(smtp_server.received) == 3
