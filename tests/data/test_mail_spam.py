"""Spam, bulk and automatic mail on SQLite and PostgreSQL: never acknowledged; a ticket or the quarantine, as set."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from lib.config import get_settings
from lib.db import read_session, transaction
from lib.mail.inbound import ingest_message
from lib.mail.settings import InboundDefaults
from lib.models import OutboxMail, QuarantinedMail, RawMail, Ticket, TicketEvent, ticket_ref
from lib.workflow import EventKind, Status
from tests.data.test_mail_in import count, events, make_mail, ticket, waiting_on_user
from tests.mail_fixtures import NEWSLETTER, SPAM_UNQUOTED_BOUNDARY

NOW = datetime(2026, 11, 16, 9, 30, tzinfo=UTC)


def ingest(engine, raw: bytes, *, spam_mail: str = "quarantine"):
    defaults = InboundDefaults(own_addresses=("helpdesk@desk.example",), spam_mail=spam_mail)
    with transaction(engine) as s:
        return ingest_message(s, raw, now=NOW, defaults=defaults)


def outbox_to(engine, address: str) -> list[str]:
    """Subjects of the mails queued to ``address``."""
    with read_session(engine) as s:
        return list(s.scalars(select(OutboxMail.subject).where(OutboxMail.to_address == address)))


def created_event(engine, ticket_id: int) -> TicketEvent:
    return events(engine, ticket_id, EventKind.CREATED)[0]


def test_forged_spam_and_a_newsletter_get_no_acknowledgement_but_a_ticket_when_the_lead_wants_them(engine):
    spam = ingest(engine, SPAM_UNQUOTED_BOUNDARY, spam_mail="ticket")
    news = ingest(engine, NEWSLETTER, spam_mail="ticket")
    assert spam.kind == news.kind == "ticket"
    assert spam.reason == "not acknowledged: spam (X-Spam-Flag: YES)"
    assert news.reason.startswith("not acknowledged: bulk (List-Id: Contoso Cloud customers")
    # Nothing at all goes to the forged sender or to the list address.
    assert outbox_to(engine, "billing@paypa1-secure.example") == []
    assert outbox_to(engine, "news@mail.contoso-cloud.example") == []
    assert count(engine, OutboxMail) == 0
    for result, why in ((spam, "the mail is marked as spam (X-Spam-Flag: YES)"),
                        (news, "it is bulk or mailing-list mail (List-Id: ")):
        t = ticket(engine, result.ticket_id)
        assert t.channel == "email" and t.status == Status.NEW
        notes = events(engine, t.id, EventKind.INTERNAL_NOTE)
        assert len(notes) == 1 and not notes[0].public
        assert notes[0].body.startswith("No acknowledgement was sent to ") and why in notes[0].body
        assert f"/raw_mail?id={created_event(engine, t.id).meta['raw_mail_id']}" in notes[0].body
        meta = created_event(engine, t.id).meta
        assert meta["acknowledgement"].startswith(f"not sent: {why}")
        assert meta["no_requester_mail"].startswith(why)  # the notifications mail the requester nothing for it
    # Both bodies are readable: the spam's plain part despite its boundary, the newsletter as lines of text.
    assert ticket(engine, spam.ticket_id).description.startswith("Dear customer, your account has been suspended.")
    description = ticket(engine, news.ticket_id).description
    assert "Europe · 4 Dec, 22:00–23:00 UTC" in description
    assert "| --- |" not in description and "[](" not in description and "<" not in description


def test_by_default_spam_and_newsletters_are_quarantined_and_never_answered(engine):
    spam = ingest(engine, SPAM_UNQUOTED_BOUNDARY)
    news = ingest(engine, NEWSLETTER)
    assert (spam.kind, spam.ticket_id) == ("ignored_auto", None)
    assert (news.kind, news.ticket_id) == ("ignored_auto", None)
    with read_session(engine) as s:
        reasons = sorted(s.scalars(select(QuarantinedMail.reason)))
        raws = sorted(bytes(r) for r in s.scalars(select(QuarantinedMail.raw)))
    assert reasons[0].startswith("bulk: List-Id: Contoso Cloud customers") and reasons[0].endswith("(answers no ticket)")
    assert reasons[1] == "spam: X-Spam-Flag: YES (answers no ticket)"
    assert raws == sorted([SPAM_UNQUOTED_BOUNDARY, NEWSLETTER])  # the quarantine keeps them whole
    assert count(engine, Ticket) == 0 and count(engine, OutboxMail) == 0
    assert count(engine, RawMail) == 0  # the quarantine's own copy is enough


@pytest.mark.parametrize("headers, kind", [
    ({"X-Spam-Status": "yes, score=12.3 required=5.0 tests=BAYES_99"}, "spam"),
    ({"X-Spam-Status": "YES"}, "spam"),
    ({"X-Spam-Flag": "yes"}, "spam"),
    ({"Precedence": "list"}, "bulk"),
    ({"Precedence": "JUNK"}, "bulk"),
    ({"List-Unsubscribe": "<mailto:leave@lists.example.com>"}, "bulk"),
    ({"Auto-Submitted": "auto-generated"}, "auto-reply"),
    ({"X-Autoreply": "yes"}, "auto-reply"),
])
def test_each_marker_withholds_the_acknowledgement(engine, headers, kind):
    result = ingest(engine, make_mail(headers=headers), spam_mail="ticket")
    assert result.kind == "ticket" and result.reason.startswith(f"not acknowledged: {kind} (")
    assert count(engine, OutboxMail) == 0
    assert "No acknowledgement was sent" in events(engine, result.ticket_id, EventKind.INTERNAL_NOTE)[0].body


@pytest.mark.parametrize("headers", [
    {"X-Spam-Status": "No, score=0.4 required=5.0"},
    {"X-Spam-Flag": "NO"},
    {"Auto-Submitted": "no"},
    {"Precedence": "first-class"},
])
def test_ordinary_mail_is_still_acknowledged(engine, headers):
    result = ingest(engine, make_mail(headers=headers), spam_mail="ticket")
    assert (result.kind, result.reason) == ("ticket", None)
    acks = outbox_to(engine, "ann@example.com")
    assert len(acks) == 1 and acks[0].startswith(f"[{ticket_ref(result.ticket_id)}] We received")
    assert not events(engine, result.ticket_id, EventKind.INTERNAL_NOTE)


def test_spam_naming_a_ticket_leaves_a_note_and_neither_resumes_nor_answers(engine, staff):
    first = ingest(engine, make_mail())
    waiting_on_user(engine, staff, first.ticket_id)
    before = count(engine, OutboxMail)
    spam = make_mail(subject=f"Re: [{ticket_ref(first.ticket_id)}] invoice", body="Open the attached invoice.",
                     headers={"X-Spam-Flag": "YES"})
    result = ingest(engine, spam, spam_mail="ticket")
    assert (result.kind, result.ticket_id) == ("ignored_auto", first.ticket_id)
    assert ticket(engine, first.ticket_id).status == Status.WAITING_USER
    assert count(engine, OutboxMail) == before and count(engine, Ticket) == 1
    note = events(engine, first.ticket_id, EventKind.INTERNAL_NOTE)[-1]
    assert note.body.startswith("Spam from Ann Smith <ann@example.com> ignored (X-Spam-Flag: YES)")
    assert "Open the attached invoice." in note.body and "/raw_mail?id=" in note.body


def test_the_setting_is_read_from_the_environment(engine, monkeypatch):
    monkeypatch.setenv("HELPDESK_SPAM_MAIL", "ticket")
    get_settings.cache_clear()
    try:
        defaults = InboundDefaults.from_settings()
        assert defaults.spam_mail == "ticket"
        with transaction(engine) as s:
            result = ingest_message(s, SPAM_UNQUOTED_BOUNDARY, now=NOW, defaults=defaults)
        assert result.kind == "ticket" and count(engine, OutboxMail) == 0
        monkeypatch.setenv("HELPDESK_SPAM_MAIL", "delete")
        with pytest.raises(ValueError, match="HELPDESK_SPAM_MAIL.*must be ticket or quarantine"):
            InboundDefaults.from_settings()
    finally:
        monkeypatch.delenv("HELPDESK_SPAM_MAIL")
        get_settings.cache_clear()
    assert InboundDefaults.from_settings().spam_mail == "quarantine"
