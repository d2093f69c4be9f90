"""Raw messages kept for every ingested mail, their retention, and bodies that a strict parse cannot read
(SQLite and PostgreSQL), including every real mail of the shared test data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from lib import worker
from lib.config import get_settings
from lib.db import read_session, transaction
from lib.mail import raw_store
from lib.mail.inbound import UNREADABLE_BODY, ingest_message
from lib.mail.settings import InboundDefaults
from lib.models import OutboxMail, RawMail, Ticket
from lib.workflow import EventKind
from tests.conftest import testdata_dir as shared_testdata
from tests.data.test_mail_in import EXPECTED, count, events, make_mail, ticket
from tests.mail_fixtures import unquoted_boundary

NOW = datetime(2026, 11, 16, 9, 30, tzinfo=UTC)


def ingest(engine, raw: bytes, *, now: datetime = NOW):
    with transaction(engine) as s:
        return ingest_message(s, raw, now=now, defaults=InboundDefaults(own_addresses=("helpdesk@desk.example",)))


def raw_rows(engine) -> list[tuple[int, str, int | None, bytes, int]]:
    with read_session(engine) as s:
        return [(r.id, r.message_id, r.ticket_id, bytes(r.raw), r.size)
                for r in s.scalars(select(RawMail).order_by(RawMail.id))]


def test_every_ingested_mail_keeps_its_raw_message_linked_from_the_ticket(engine):
    first_raw = make_mail(message_id="<first@example.com>", body="<b>not markup</b> & text")
    first = ingest(engine, first_raw)
    reply_raw = make_mail(subject=f"Re: [HD-{first.ticket_id}]", body="More detail.", message_id="<reply@example.com>")
    reply = ingest(engine, reply_raw)
    assert (first.kind, reply.kind) == ("ticket", "comment")
    rows = raw_rows(engine)
    assert [(m, t, r, n) for _, m, t, r, n in rows] == [
        ("<first@example.com>", first.ticket_id, first_raw, len(first_raw)),
        ("<reply@example.com>", first.ticket_id, reply_raw, len(reply_raw)),
    ]
    created = events(engine, first.ticket_id, EventKind.CREATED)[0]
    assert created.meta["raw_mail_id"] == rows[0][0]
    assert created.meta["raw_mail_url"] == f"/raw_mail?id={rows[0][0]}"
    assert created.meta["channel"] == "email"  # the service's own meta is kept
    comment = events(engine, first.ticket_id, EventKind.INBOUND_EMAIL)[0]
    assert comment.meta["raw_mail_url"] == f"/raw_mail?id={rows[1][0]}"
    # A duplicate stores nothing again; an unusable mail is kept by the quarantine, not here.
    assert ingest(engine, first_raw).kind == "duplicate"
    assert ingest(engine, b"\x00\x01binary junk").kind == "quarantined"
    assert len(raw_rows(engine)) == 2
    with read_session(engine) as s:
        assert [i.id for i in raw_store.list_for_ticket(s, first.ticket_id)] == [rows[0][0], rows[1][0]]
        assert raw_store.as_text(bytes(raw_store.get(s, rows[0][0]).raw)).count("<b>not markup</b>") == 1


def test_an_unquoted_boundary_with_equals_signs_is_read_by_the_tolerant_parse(engine):
    result = ingest(engine, unquoted_boundary(spam=False))
    assert result.kind == "ticket"
    description = ticket(engine, result.ticket_id).description
    assert description == ("Dear customer, your account has been suspended. Verify your details within 24 hours "
                           "at http://paypa1-secure.example/verify – or lose access.")
    assert count(engine, OutboxMail) == 1  # an ordinary sender: acknowledged as usual


BROKEN = b"""\
From: Olga Novak <olga@example.org>
To: helpdesk@desk.example
Subject: Scanner report
Message-ID: <broken-1@example.org>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="never-used-boundary"

--other-boundary
Content-Type: text/plain

The scanner on floor 2 stopped.
--other-boundary--
"""


def test_a_body_that_cannot_be_read_is_said_so_with_the_raw_message_link(engine, staff):
    result = ingest(engine, BROKEN)
    assert result.kind == "ticket"
    (raw_id, *_), = raw_rows(engine)
    description = ticket(engine, result.ticket_id).description
    assert description == f"{UNREADABLE_BODY} /raw_mail?id={raw_id}"
    # The same on a reply: the comment says so instead of being empty.
    reply = BROKEN.replace(b"<broken-1@example.org>", b"<broken-2@example.org>").replace(
        b"Subject: Scanner report", f"Subject: Re: [HD-{result.ticket_id}] Scanner report".encode())
    assert ingest(engine, reply).kind == "comment"
    comment = events(engine, result.ticket_id, EventKind.INBOUND_EMAIL)[0]
    assert comment.body.startswith(UNREADABLE_BODY) and "/raw_mail?id=" in comment.body


def test_raw_messages_are_pruned_after_the_retention_the_lead_sets(engine, monkeypatch):
    old = ingest(engine, make_mail(message_id="<old@example.com>"), now=NOW - timedelta(days=40))
    new = ingest(engine, make_mail(message_id="<new@example.com>"), now=NOW - timedelta(days=5))
    assert raw_store.prune(engine, now=NOW, days=0) == 0  # 0 keeps them forever
    assert len(raw_rows(engine)) == 2
    monkeypatch.setenv("HELPDESK_MAIL_RAW_RETENTION_DAYS", "30")
    get_settings.cache_clear()
    try:
        worker.run_cycle(engine, now=NOW)  # the worker's step, with the setting from the environment
    finally:
        monkeypatch.delenv("HELPDESK_MAIL_RAW_RETENTION_DAYS")
        get_settings.cache_clear()
    assert [m for _, m, *_ in raw_rows(engine)] == ["<new@example.com>"]
    # The ticket made from the pruned mail stays whole.
    assert ticket(engine, old.ticket_id).description == "The printer shows error E5 since this morning."
    assert raw_store.prune(engine, now=NOW, days=1) == 1 and raw_rows(engine) == []
    assert count(engine, Ticket) == 2 and new.kind == "ticket"
    monkeypatch.setenv("HELPDESK_MAIL_RAW_RETENTION_DAYS", "-1")
    with pytest.raises(ValueError, match="HELPDESK_MAIL_RAW_RETENTION_DAYS"):
        get_settings.cache_clear()
        get_settings()
    monkeypatch.delenv("HELPDESK_MAIL_RAW_RETENTION_DAYS")
    get_settings.cache_clear()


def test_every_shared_real_mail_ingests_with_a_readable_body_and_its_raw_message(engine):
    folder = shared_testdata("email")
    assert {p.name for p in folder.glob("*.eml")} == set(EXPECTED)  # every one of them, and no test without one
    for path in sorted(folder.glob("*.eml")):
        raw = path.read_bytes()
        result = ingest(engine, raw)
        assert result.kind == "ticket", (path.name, result)
        description = ticket(engine, result.ticket_id).description
        expected_body = EXPECTED[path.name][3]
        assert expected_body in description, path.name
        assert UNREADABLE_BODY not in description, path.name
        assert "<html" not in description.lower() and "| --- |" not in description and "[](" not in description
        with read_session(engine) as s:
            kept = s.scalars(select(RawMail).where(RawMail.ticket_id == result.ticket_id)).one()
            assert bytes(kept.raw) == raw and kept.size == len(raw), path.name
            kept_id = kept.id
        created = events(engine, result.ticket_id, EventKind.CREATED)[0]
        assert created.meta["raw_mail_url"] == f"/raw_mail?id={kept_id}"
