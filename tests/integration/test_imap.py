"""IMAP polling against a real dovecot on 127.0.0.1: messages appended with imaplib become tickets."""

from __future__ import annotations

import threading

from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from lib.db import read_session
from lib.mail import imap_poll
from lib.mail.inbound import ingest_message
from lib.models import QuarantinedMail, Ticket, TicketEvent, ticket_ref
from lib.workflow import EventKind


def count(engine, model, *where) -> int:
    with read_session(engine) as s:
        return s.scalar(select(func.count()).select_from(model).where(*where)) or 0


def test_unseen_messages_become_tickets_and_are_flagged_seen_once(engine, imap_server, mail_factory):
    for n in range(3):
        imap_server.append(mail_factory(subject=f"Problem {n}", sender=f"user{n}@example.com"))
    imap_server.append(b"\x00\x01 not a mail at all \xff")
    assert len(imap_server.uids("UNSEEN")) == 4

    report = imap_poll.poll(engine, imap_server.config())
    assert report.unavailable is None and not report.errors
    assert sorted(r.kind for r in report.results) == ["quarantined", "ticket", "ticket", "ticket"]
    assert imap_server.uids("UNSEEN") == [] and len(imap_server.uids("SEEN")) == 4
    with read_session(engine) as s:
        assert sorted(s.scalars(select(Ticket.summary))) == ["Problem 0", "Problem 1", "Problem 2"]
        assert s.scalar(select(func.count()).select_from(QuarantinedMail)) == 1

    # Nothing new: nothing fetched, nothing written.
    again = imap_poll.poll(engine, imap_server.config())
    assert again.fetched == 0 and again.results == []
    assert count(engine, Ticket) == 3

    # A reply arriving later lands on its ticket.
    with read_session(engine) as s:
        first = s.scalar(select(Ticket).where(Ticket.summary == "Problem 0"))
        first_id = first.id
    imap_server.append(mail_factory(subject=f"Re: [{ticket_ref(first_id)}]", sender="user0@example.com",
                                    body="More details."))
    report = imap_poll.poll(engine, imap_server.config())
    assert [(r.kind, r.ticket_id) for r in report.results] == [("comment", first_id)]
    assert count(engine, TicketEvent, TicketEvent.ticket_id == first_id,
                 TicketEvent.kind == EventKind.INBOUND_EMAIL.value) == 1


def test_a_message_seen_by_someone_else_is_not_ingested_but_a_reset_flag_is_harmless(engine, imap_server, mail_factory):
    imap_server.append(mail_factory(subject="Once"))
    assert len(imap_poll.poll(engine, imap_server.config()).results) == 1
    # Someone marks it unread again in their mail client: it is fetched again, recognised, and flagged.
    conn = imap_server.connect()
    conn.select("INBOX")
    conn.uid("STORE", imap_server.uids("ALL")[0], "-FLAGS", r"(\Seen)")
    conn.logout()
    report = imap_poll.poll(engine, imap_server.config())
    assert [r.kind for r in report.results] == ["duplicate"]
    assert imap_server.uids("UNSEEN") == []
    assert count(engine, Ticket) == 1


def test_processed_messages_can_be_moved_to_a_folder(engine, imap_server, mail_factory):
    imap_server.append(mail_factory(subject="Move me"))
    imap_server.append(mail_factory(subject="Me too"))
    report = imap_poll.poll(engine, imap_server.config(processed_folder="Processed mail"))
    assert [r.kind for r in report.results] == ["ticket", "ticket"]
    assert imap_server.uids("ALL") == []
    assert len(imap_server.uids("SEEN", folder='"Processed mail"')) == 2
    assert count(engine, Ticket) == 2


def test_a_failing_message_stays_unseen_and_the_loop_goes_on(engine, imap_server, mail_factory, monkeypatch):
    for subject in ("first", "breaks", "third"):
        imap_server.append(mail_factory(subject=subject))

    def flaky(session, raw, **kwargs):
        if b"Subject: breaks" in raw:
            raise OperationalError("INSERT ...", {}, Exception("database is locked"))
        return ingest_message(session, raw, **kwargs)

    monkeypatch.setattr(imap_poll, "ingest_message", flaky)
    report = imap_poll.poll(engine, imap_server.config())
    assert [r.kind for r in report.results] == ["ticket", "ticket"]
    assert len(report.errors) == 1 and "database is locked" in report.errors[0]
    assert len(imap_server.uids("UNSEEN")) == 1  # flagged only after a commit

    monkeypatch.setattr(imap_poll, "ingest_message", ingest_message)
    report = imap_poll.poll(engine, imap_server.config())
    assert [r.kind for r in report.results] == ["ticket"]
    with read_session(engine) as s:
        assert sorted(s.scalars(select(Ticket.summary))) == ["breaks", "first", "third"]
    assert imap_server.uids("UNSEEN") == []


def test_wrong_password_or_no_server_is_reported_not_raised(engine, imap_server):
    report = imap_poll.poll(engine, imap_server.config(password="wrong"))
    assert report.unavailable and "AUTHENTICATIONFAILED" in report.unavailable.upper().replace(" ", "")
    report = imap_poll.poll(engine, imap_server.config(port=1))
    assert report.unavailable and report.results == []


def test_two_pollers_at_once_take_each_message_in_once(engine, imap_server, mail_factory):
    for n in range(12):
        imap_server.append(mail_factory(subject=f"Burst {n}", sender=f"burst{n}@example.com"))
    reports: list[imap_poll.PollReport] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        barrier.wait()
        reports.append(imap_poll.poll(engine, imap_server.config()))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    kinds = [r.kind for report in reports for r in report.results]
    assert kinds.count("ticket") == 12 and set(kinds) <= {"ticket", "duplicate"}
    assert all(not report.errors for report in reports)
    assert count(engine, Ticket) == 12
    assert imap_server.uids("UNSEEN") == []
