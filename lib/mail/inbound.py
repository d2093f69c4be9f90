"""Inbound e-mail: one raw message becomes a ticket, a comment, an ignored auto-reply or a quarantine row.

Both inbound routes (the MTA pipe / batch command ``python -m lib.cli ingest-email`` and the IMAP poll
of the worker) end in :func:`ingest_message`, which works in the caller's transaction and goes through
the same service functions as the pages (``tickets.create_ticket``, ``tickets.requester_reply``, ...).

Rules (also in docs/email.md):

* Every Message-ID is handled once: ``mail_processed`` keeps each one with its outcome; a second copy
  returns ``duplicate`` and writes nothing (the primary key settles races between two processes).
* A message that cannot be parsed, or that a service refuses (e.g. a sender address without a domain),
  goes to the quarantine with the reason. Bad input never raises.
* Spam (``X-Spam-Flag``/``X-Spam-Status``), bulk and list mail (``Precedence``, ``List-Id``,
  ``List-Unsubscribe``), auto-replies and bounces never resume a ticket and never trigger a mail: an internal
  note on the ticket they answer; when they answer none, quarantine (reason ``spam: ...``, ``bulk: ...``,
  ``auto-reply: ...``) or, with the setting ``spam_mail = ticket``, a new ticket whose acknowledgement is
  withheld, with an internal note saying why.
* The raw message of everything that is not quarantined is kept in ``mail_raw`` (lib.mail.raw_store) and
  linked from the ticket's created event (``meta["raw_mail_url"]``), comment or note. A body that could not
  be read is said so in the description, with that link, instead of an empty description.
* A reply is matched to a ticket by In-Reply-To/References (a message we sent, the ticket's own first
  message, or an earlier inbound message on it), else by the ``[HD-123]`` tag in the subject.
* A match from a known participant (the requester, a staff address, an address that already wrote on the
  ticket) becomes a public comment with the quoted history cut off (the full text stays in the event's
  ``meta["full_text"]``); it resumes a ticket waiting on the user and never confirms a fix.
* A match from an unknown sender, or a reply to a closed ticket, opens a new ticket linked to the
  matched one (``parent_id``); a closed ticket stays closed.
* Anything else opens a new ticket (channel e-mail); its acknowledgement mail is queued by
  ``create_ticket``. Attachments over the size limit are dropped with an internal note saying so.
"""

from __future__ import annotations

import email
import hashlib
import logging
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from email import policy
from email.errors import MessageError
from email.header import decode_header, make_header
from email.message import Message
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from lib import notify, tickets
from lib.config import get_settings
from lib.db import transaction
from lib.directory import RequesterInput
from lib.errors import HelpdeskError, ValidationError
from lib.mail import raw_store
from lib.mail.parse import (
    AUTO,
    BULK,
    SPAM,
    SYNTHETIC_ID_DOMAIN,
    InboundMail,
    MailParseError,
    find_ticket_tag,
    parse_mail,
    strip_quoted_reply,
)
from lib.mail.settings import InboundDefaults
from lib.models import OutboxMail, ProcessedMail, QuarantinedMail, RawMail, Ticket, User, ticket_ref
from lib.ticket_core import MAX_TEXT, SystemActor, now_utc
from lib.tickets import DuplicateExternalRef, NewAttachment, TicketDraft
from lib.workflow import Status

log = logging.getLogger("helpdesk.mail_in")

SOURCE = "email"
MAX_ID = 255
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
#: The description (or comment) of a mail whose body could not be read, followed by the raw message's link.
UNREADABLE_BODY = "The message body could not be read; the raw message is kept:"
#: Why such mail gets no acknowledgement, and how its note on a ticket starts.
_NO_ACK_WHY = {SPAM: "the mail is marked as spam", BULK: "it is bulk or mailing-list mail",
               AUTO: "it was sent automatically (an auto-reply, a bounce or a machine's report)"}
_NOTE_LABEL = {SPAM: "Spam", BULK: "Bulk mail", AUTO: "Automatic mail"}


@dataclass(frozen=True)
class IngestResult:
    kind: str  # "ticket" | "comment" | "duplicate" | "ignored_auto" | "quarantined"
    ticket_id: int | None = None
    reason: str | None = None
    message_id: str | None = None

    def __str__(self) -> str:
        where = f" {ticket_ref(self.ticket_id)}" if self.ticket_id else ""
        why = f" ({self.reason})" if self.reason else ""
        return f"{self.kind}{where}{why}"


KINDS = ("ticket", "comment", "duplicate", "ignored_auto", "quarantined")


@dataclass(frozen=True)
class _Match:
    ticket: Ticket
    how: str  # "in-reply-to", "references", "tag"


# --- one message --------------------------------------------------------------------------------


def message_key(message_id: str) -> str:
    """The Message-ID as stored (external_ref, mail_processed); over-long ids are replaced by their hash."""
    if len(message_id) <= MAX_ID:
        return message_id
    return f"<{hashlib.sha256(message_id.encode('utf-8', 'replace')).hexdigest()}@long-id.{SYNTHETIC_ID_DOMAIN}>"


def ingest_message(session: Session, raw: bytes, *, now: datetime | None = None,
                   defaults: InboundDefaults | None = None) -> IngestResult:
    """Turn one raw message into a ticket, a comment, an ignored auto-reply or a quarantine row.

    Works in the caller's transaction and never commits. Raises only for database failures (the
    caller's transaction is then unusable: roll back and retry later); bad input is quarantined.
    """
    now = now_utc(now)
    defaults = defaults or InboundDefaults.from_settings()
    raw = bytes(raw) if isinstance(raw, bytes | bytearray | memoryview) else b""
    try:
        mail = parse_mail(raw, tag_prefix=get_settings().ticket_prefix)
    except MailParseError as exc:
        key = f"<{hashlib.sha256(raw).hexdigest()}@{SYNTHETIC_ID_DOMAIN}>"
        return _quarantine_once(session, raw, key, reason=f"cannot be read as an e-mail: {exc}", now=now)

    key = message_key(mail.message_id)
    seen = session.get(ProcessedMail, key)
    if seen is not None:
        return IngestResult("duplicate", seen.ticket_id, f"already processed ({seen.outcome})", key)
    try:
        with session.begin_nested():
            result = _route(session, mail, raw, key, now=now, defaults=defaults)
            # A concurrent copy of this message fails here on the primary key (on PostgreSQL after waiting
            # for the first one's commit), which rolls back everything it did.
            session.add(ProcessedMail(message_id=key, from_address=mail.from_address[:254], outcome=result.kind,
                                      ticket_id=result.ticket_id, processed_at=now))
            session.flush()
        return result
    except DuplicateExternalRef as exc:  # made concurrently, or before mail_processed existed
        if session.get(ProcessedMail, key, populate_existing=True) is None:
            try:
                with session.begin_nested():
                    session.add(ProcessedMail(message_id=key, ticket_id=exc.ticket_id, outcome="ticket",
                                              from_address=mail.from_address[:254], processed_at=now))
                    session.flush()
            except IntegrityError:
                pass  # the concurrent ingester recorded it
        return IngestResult("duplicate", exc.ticket_id, "a ticket from this message exists", key)
    except IntegrityError as exc:
        seen = session.get(ProcessedMail, key, populate_existing=True)
        if seen is not None:  # another process recorded the same Message-ID first
            return IngestResult("duplicate", seen.ticket_id, "processed concurrently", key)
        log.exception("ingesting %s failed", key)
        return _quarantine_once(session, raw, key, mail=mail, now=now,
                                reason=f"internal error: {type(exc.orig).__name__}: {exc.orig}")
    except HelpdeskError as exc:
        return _quarantine_once(session, raw, key, mail=mail, reason=f"refused: {_describe(exc)}", now=now)
    except SQLAlchemyError:
        raise
    except Exception as exc:  # noqa: BLE001 - odd input must not stop the loop; the mail is kept in quarantine
        log.exception("ingesting %s failed", key)
        return _quarantine_once(session, raw, key, mail=mail, reason=f"internal error: {type(exc).__name__}: {exc}",
                                now=now)


def _describe(exc: HelpdeskError) -> str:
    fields = getattr(exc, "fields", None)
    if fields:
        return "; ".join(f"{k}: {v}" for k, v in fields.items())
    return str(exc)


def _quarantine_once(session: Session, raw: bytes, key: str, *, reason: str, now: datetime,
                     mail: InboundMail | None = None) -> IngestResult:
    if session.get(ProcessedMail, key) is not None:
        return IngestResult("duplicate", None, "already quarantined", key)
    try:
        with session.begin_nested():
            session.add(ProcessedMail(message_id=key, from_address=mail.from_address[:254] if mail else None,
                                      outcome="quarantined", processed_at=now))
            session.flush()
            _quarantine(session, raw, mail=mail, message_id=key, reason=reason, now=now)
    except IntegrityError:
        return IngestResult("duplicate", None, "processed concurrently", key)
    return IngestResult("quarantined", None, reason, key)


def _quarantine(session: Session, raw: bytes, *, mail: InboundMail | None, message_id: str, reason: str,
                now: datetime) -> None:
    session.add(QuarantinedMail(
        received_at=now, message_id=message_id[:255], reason=reason,
        from_address=mail.from_address[:254] if mail else None,
        subject=mail.subject[:300] if mail else None, raw=raw,
    ))
    session.flush()


def _route(session: Session, mail: InboundMail, raw: bytes, key: str, *, now: datetime,
           defaults: InboundDefaults) -> IngestResult:
    sender = mail.from_address
    if sender in defaults.own_addresses:
        reason = f"sent from the desk's own address {sender} (a mail loop?)"
        _quarantine(session, raw, mail=mail, message_id=key, reason=reason, now=now)
        return IngestResult("quarantined", None, reason, key)
    match = _match_ticket(session, mail, key)
    if mail.is_auto and match is None:
        match = _bounce_match(session, mail, raw, key)
    if mail.is_auto and match is None and defaults.spam_mail != "ticket":
        reason = f"{mail.auto_kind or AUTO}: {mail.auto_reason} (answers no ticket)"
        _quarantine(session, raw, mail=mail, message_id=key, reason=reason, now=now)
        return IngestResult("ignored_auto", None, reason, key)
    kept = raw_store.keep(session, raw, message_id=key, now=now)
    result = _deliver(session, mail, key, match, kept, now=now, defaults=defaults)
    kept.ticket_id = result.ticket_id
    return result


def _deliver(session: Session, mail: InboundMail, key: str, match: _Match | None, kept: RawMail, *, now: datetime,
             defaults: InboundDefaults) -> IngestResult:
    if mail.is_auto:
        if match is not None:
            return _auto_reply(session, mail, key, match, kept, now=now)
        return _new_ticket(session, mail, key, kept, now=now, defaults=defaults, withheld=True)
    if match is None:
        return _new_ticket(session, mail, key, kept, now=now, defaults=defaults)
    ticket = match.ticket
    ref = ticket_ref(ticket.id)
    if ticket.status == Status.CLOSED.value:
        return _new_ticket(session, mail, key, kept, now=now, defaults=defaults, parent=ticket,
                           reason=f"reply to closed {ref}: new ticket linked to it")
    if not _is_participant(session, ticket, mail.from_address):
        return _new_ticket(session, mail, key, kept, now=now, defaults=defaults, parent=ticket,
                           reason=f"{mail.from_address} is not a participant of {ref}: new ticket linked to it")
    return _comment(session, mail, key, match, kept, now=now)


def _returned_headers(raw: bytes) -> list[Message]:
    """Headers of the original message inside a bounce (message/rfc822 or text/rfc822-headers parts)."""
    found: list[Message] = []
    try:
        msg = email.message_from_bytes(raw, policy=policy.compat32)
        for part in msg.walk():
            kind = part.get_content_type()
            if kind in ("text/rfc822-headers", "message/rfc822-headers"):
                data = part.get_payload(decode=True)
                if isinstance(data, bytes):
                    found.append(email.message_from_bytes(data, policy=policy.compat32))
            elif kind == "message/rfc822" and part.is_multipart():
                found.extend(p for p in part.get_payload() if isinstance(p, Message))
    except (MessageError, LookupError, ValueError, IndexError, TypeError, AttributeError):
        pass  # a malformed report: matched by its own headers only
    return found


def _bounce_match(session: Session, mail: InboundMail, raw: bytes, key: str) -> _Match | None:
    """The ticket a bounce is about: the Message-ID or tag of the returned original."""
    for headers in _returned_headers(raw):
        ids = re.findall(r"<[^<>]+>", str(headers.get("Message-ID", "")))
        try:
            subject = str(make_header(decode_header(str(headers.get("Subject", "")))))
        except (MessageError, LookupError, ValueError, UnicodeError):
            subject = str(headers.get("Subject", ""))
        match = _match_ids(session, [(i, "returned message") for i in ids], key)
        if match is not None:
            return match
        tag = find_ticket_tag(subject, tag_prefix=get_settings().ticket_prefix)
        ticket = session.get(Ticket, tag) if tag is not None else None
        if ticket is not None:
            return _Match(ticket, "returned message tag")
    return None


def _match_ticket(session: Session, mail: InboundMail, key: str) -> _Match | None:
    """The ticket a reply belongs to: by our Message-IDs in In-Reply-To/References, else the subject tag."""
    ordered = [(i, "in-reply-to") for i in mail.in_reply_to]
    ordered += [(i, "references") for i in reversed(mail.references)]  # the newest reference first
    match = _match_ids(session, ordered, key)
    if match is not None:
        return match
    if mail.ticket_ref is not None:
        ticket = session.get(Ticket, mail.ticket_ref)
        if ticket is not None:
            return _Match(ticket, "tag")
    return None


def _match_ids(session: Session, ordered: list[tuple[str, str]], key: str) -> _Match | None:
    ids = list(dict.fromkeys(message_key(i) for i, _ in ordered if message_key(i) != key))
    if ids:
        # nullable columns, though the queries leave the NULLs out
        mid: str | None
        found: dict[str | None, int | None] = {}
        for mid, tid in session.execute(select(OutboxMail.message_id, OutboxMail.ticket_id)
                                        .where(OutboxMail.message_id.in_(ids), OutboxMail.ticket_id.is_not(None))):
            found.setdefault(mid, tid)
        for mid, tid in session.execute(select(Ticket.external_ref, Ticket.id)
                                        .where(Ticket.external_source == SOURCE, Ticket.external_ref.in_(ids))):
            found.setdefault(mid, tid)
        for mid, tid in session.execute(select(ProcessedMail.message_id, ProcessedMail.ticket_id)
                                        .where(ProcessedMail.message_id.in_(ids),
                                               ProcessedMail.ticket_id.is_not(None),
                                               ProcessedMail.outcome.in_(("ticket", "comment")))):
            found.setdefault(mid, tid)
        for mid, how in ordered:
            tid = found.get(message_key(mid))
            if tid is not None:
                ticket = session.get(Ticket, tid)
                if ticket is not None:
                    return _Match(ticket, how)
    return None


def _is_participant(session: Session, ticket: Ticket, address: str) -> bool:
    if ticket.requester is not None and (ticket.requester.email or "").lower() == address:
        return True
    staff = session.scalar(select(User.id).where(func.lower(User.email) == address).limit(1))
    if staff is not None:
        return True
    wrote = session.scalar(select(ProcessedMail.message_id).where(
        ProcessedMail.ticket_id == ticket.id, ProcessedMail.from_address == address,
        ProcessedMail.outcome.in_(("ticket", "comment"))).limit(1))
    return wrote is not None


def _sender_label(mail: InboundMail) -> str:
    name = " ".join(_CONTROL.sub(" ", mail.from_name).split())
    label = f"{name} <{mail.from_address}>" if name and name.lower() != mail.from_address else mail.from_address
    return label[:200]


def _text(value: str) -> str:
    text = _CONTROL.sub("", value or "")
    if len(text) > MAX_TEXT:
        text = text[: MAX_TEXT - 100].rstrip() + "\n\n[... message cut: it was longer than the desk keeps]"
    return text


def _body(mail: InboundMail, kept: RawMail) -> str:
    """The mail's text; for a body that could not be read, a sentence saying so with the raw message's link."""
    text = _text(mail.body_text)
    if mail.body_unreadable and not text.strip():
        return f"{UNREADABLE_BODY} {raw_store.raw_url(kept.id)}"
    return text


def _raw_meta(kept: RawMail) -> dict[str, object]:
    return {"raw_mail_id": kept.id, "raw_mail_url": raw_store.raw_url(kept.id)}


def _summary(subject: str) -> str:
    text = " ".join(_CONTROL.sub(" ", subject).split()) or "(no subject)"
    return text if len(text) <= 200 else text[:199].rstrip() + "…"


def _split_attachments(mail: InboundMail) -> tuple[list[NewAttachment], list[tuple[str, int]]]:
    limit = get_settings().attachment_max_bytes
    kept = [NewAttachment(a.filename, a.content_type, a.data) for a in mail.attachments if len(a.data) <= limit]
    dropped = [(a.filename, len(a.data)) for a in mail.attachments if len(a.data) > limit]
    return kept, dropped


def _note_dropped(session: Session, ticket_id: int, dropped: list[tuple[str, int]], *, actor: SystemActor,
                  now: datetime) -> None:
    if not dropped:
        return
    limit = get_settings().attachment_max_bytes
    lines = "\n".join(f"- {name} ({size:,} bytes)" for name, size in dropped)
    text = (f"{'This attachment was' if len(dropped) == 1 else 'These attachments were'} not kept: larger than the "
            f"limit of {limit:,} bytes. Ask the sender for another way to share "
            f"{'it' if len(dropped) == 1 else 'them'}.\n{lines}")
    tickets.internal_note(session, actor=actor, ticket_id=ticket_id, text=text, now=now)


def _new_ticket(session: Session, mail: InboundMail, key: str, raw_row: RawMail, *, now: datetime,
                defaults: InboundDefaults, parent: Ticket | None = None, reason: str | None = None,
                withheld: bool = False) -> IngestResult:
    kept, dropped = _split_attachments(mail)
    actor = SystemActor(label=f"{_sender_label(mail)} (e-mail)"[:200])
    name = " ".join(mail.from_name.split())[:120] or None
    summary = _summary(mail.subject)
    description = _body(mail, raw_row)
    if summary != " ".join(mail.subject.split()):  # cut to fit: keep the whole subject in the description
        description = _text(f"Subject: {mail.subject}\n\n{description}".rstrip())
    draft = TicketDraft(
        summary=summary,
        description=description,
        category=defaults.category,
        priority=defaults.priority,
        channel="email",
        requester=RequesterInput(name=name, email=mail.from_address),
        parent_id=parent.id if parent is not None else None,
        external_source=SOURCE,
        external_ref=key,
        attachments=kept,
        event_meta=_raw_meta(raw_row),
    )
    why = f"{_NO_ACK_WHY[mail.auto_kind or AUTO]} ({mail.auto_reason})" if withheld else None
    if why is not None:
        draft.event_meta = {**(draft.event_meta or {}), "acknowledgement": f"not sent: {why}", notify.QUIET: why}
    ticket = tickets.create_ticket(session, actor=actor, draft=draft, now=now)
    if why is not None:
        tickets.internal_note(
            session, actor=SystemActor(label="e-mail"), ticket_id=ticket.id, now=now,
            text=(f"No acknowledgement was sent to {mail.from_address}: {why}. Nothing is mailed back "
                  "automatically for such mail; if the request is genuine, answer it with a public reply.\n"
                  f"Raw message: {raw_store.raw_url(raw_row.id)}"))
        reason = f"not acknowledged: {mail.auto_kind or AUTO} ({mail.auto_reason})"
    _note_dropped(session, ticket.id, dropped, actor=actor, now=now)
    return IngestResult("ticket", ticket.id, reason, key)


def _comment(session: Session, mail: InboundMail, key: str, match: _Match, raw_row: RawMail, *,
             now: datetime) -> IngestResult:
    ticket_id = match.ticket.id
    full = _body(mail, raw_row)
    text = strip_quoted_reply(full)
    meta: dict[str, object] = {"message_id": key, "from": mail.from_address, "subject": mail.subject[:300],
                               "matched_by": match.how, **_raw_meta(raw_row)}
    if text.strip() != full.strip():
        meta["full_text"] = full
    label = _sender_label(mail)
    tickets.requester_reply(session, ticket_id=ticket_id, from_label=label, text=text, meta=meta, now=now)
    kept, dropped = _split_attachments(mail)
    actor = SystemActor(label=f"{label} (e-mail)"[:200])
    for att in kept:
        tickets.add_attachment(session, actor=actor, ticket_id=ticket_id, attachment=att, now=now)
    _note_dropped(session, ticket_id, dropped, actor=actor, now=now)
    return IngestResult("comment", ticket_id, f"matched by {match.how}", key)


def _auto_reply(session: Session, mail: InboundMail, key: str, match: _Match, raw_row: RawMail, *,
                now: datetime) -> IngestResult:
    body = _body(mail, raw_row).strip()
    if len(body) > 4000:
        body = body[:4000].rstrip() + "\n[...]"
    text = (f"{_NOTE_LABEL[mail.auto_kind or AUTO]} from {_sender_label(mail)} ignored ({mail.auto_reason}); it "
            f"neither resumed the ticket nor was answered.\nSubject: {mail.subject}\n"
            f"Raw message: {raw_store.raw_url(raw_row.id)}" + (f"\n\n{body}" if body else ""))
    tickets.internal_note(session, actor=SystemActor(label="e-mail"), ticket_id=match.ticket.id,
                          text=text, now=now)
    return IngestResult("ignored_auto", match.ticket.id, mail.auto_reason, key)


# --- a quarantined message a lead releases ------------------------------------------------------

#: mail_processed outcomes of a message held in the quarantine: the only ones a release may replace
HELD = ("quarantined", "ignored_auto")


class _NotTaken(Exception):
    """Raised inside the savepoint of a release that would quarantine the message again (rolls it back)."""


def release_message(session: Session, raw: bytes, *, now: datetime | None = None,
                    defaults: InboundDefaults | None = None) -> IngestResult:
    """Take in a quarantined message a lead judged genuine: routed by the same rules as :func:`ingest_message`
    (same matching, same services, an acknowledgement for a new ticket), except that spam, bulk and automatic
    mail is treated as ordinary mail. Its ``mail_processed`` record, written when it was quarantined, is
    replaced by the outcome ("ticket" or "comment"), so a later copy of the message is a duplicate of the
    result. Raises :class:`~lib.errors.ValidationError` (nothing written) when the message cannot be read as
    an e-mail, was already taken in, or would be held again (e.g. it comes from the desk's own address, or a
    service refuses it)."""
    now = now_utc(now)
    defaults = defaults or InboundDefaults.from_settings()
    try:
        mail = parse_mail(bytes(raw), tag_prefix=get_settings().ticket_prefix)
    except MailParseError as exc:
        raise ValidationError({"message": f"cannot be released: it cannot be read as an e-mail ({exc})"}) from exc
    key = message_key(mail.message_id)
    seen = session.get(ProcessedMail, key)
    if seen is not None and seen.outcome not in HELD:
        where = f" as {ticket_ref(seen.ticket_id)}" if seen.ticket_id else ""
        raise ValidationError({"message": f"this message was already taken in{where} ({seen.outcome})"})
    if mail.is_auto:  # the lead's decision overrides the headers that held it back
        mail = replace(mail, is_auto=False, auto_kind=None, auto_reason=None)
    try:
        with session.begin_nested():
            result = _route(session, mail, bytes(raw), key, now=now, defaults=defaults)
            if result.kind not in ("ticket", "comment"):
                raise _NotTaken(result.reason or result.kind)
            if seen is None:
                session.add(ProcessedMail(message_id=key, from_address=mail.from_address[:254], outcome=result.kind,
                                          ticket_id=result.ticket_id, processed_at=now))
            else:
                seen.outcome, seen.ticket_id, seen.processed_at = result.kind, result.ticket_id, now
            session.flush()
    except _NotTaken as exc:
        raise ValidationError({"message": f"cannot be released: it would be held again ({exc})"}) from exc
    except DuplicateExternalRef as exc:
        raise ValidationError({"message": f"a ticket from this message exists: {ticket_ref(exc.ticket_id)}"}) from exc
    except HelpdeskError as exc:
        raise ValidationError({"message": f"cannot be released: {_describe(exc)}"}) from exc
    return result


# --- batches: files, Maildirs, stdin ------------------------------------------------------------


@dataclass
class IngestSummary:
    counts: Counter = field(default_factory=Counter)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (source, error): not processed, retry later
    results: list[tuple[str, IngestResult]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values()) + len(self.errors)

    def __str__(self) -> str:
        parts = [f"{self.counts[k]} {k.replace('_', ' ')}" for k in KINDS if self.counts[k]]
        if self.errors:
            parts.append(f"{len(self.errors)} failed (left for a retry)")
        return f"{self.total} message(s): " + (", ".join(parts) or "nothing")


@dataclass(frozen=True)
class _Source:
    label: str
    read: Callable[[], bytes]
    path: Path | None = None  # a Maildir message in new/: moved to cur/ once processed


def _is_maildir(path: Path) -> bool:
    return (path / "cur").is_dir() and (path / "new").is_dir()


def _expand(sources: Iterable[str | Path], stdin: object) -> Iterator[_Source]:
    for source in sources:
        if str(source) == "-":
            stream = stdin if stdin is not None else sys.stdin.buffer
            yield _Source("<stdin>", lambda s=stream: s.read())  # type: ignore[misc]  # mypy cannot type a default-bound lambda argument; s=stream binds this stream
            continue
        path = Path(source)
        if path.is_dir():
            if _is_maildir(path):
                for sub in ("new", "cur"):
                    for item in sorted(p for p in (path / sub).iterdir() if p.is_file() and not p.name.startswith(".")):
                        yield _Source(str(item), item.read_bytes, item if sub == "new" else None)
            else:
                for item in sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")):
                    yield _Source(str(item), item.read_bytes)
        else:
            yield _Source(str(path), path.read_bytes)


def _mark_seen(path: Path) -> None:
    """Maildir: a processed message moves from new/ to cur/ with the Seen flag."""
    target = path.parent.parent / "cur" / (path.name if ":2," in path.name else f"{path.name}:2,S")
    try:
        path.rename(target)
    except OSError as exc:  # someone else moved it: harmless, the Message-ID is recorded
        log.warning("could not move %s to cur/: %s", path, exc)


def ingest_files(engine: Engine, sources: Iterable[str | Path], *, progress: Callable[[int, int | None], None] | None = None,
                 stdin: object = None, now: datetime | None = None) -> IngestSummary:
    """Ingest files, Maildirs (new/ and cur/) and ``-`` (one message from stdin), each in its own transaction.

    A message that fails for a database reason is listed in ``errors`` and left as it was; the rest go on.
    """
    summary = IngestSummary()
    defaults = InboundDefaults.from_settings()
    items = list(_expand(sources, stdin))
    for done, item in enumerate(items, start=1):
        try:
            raw = item.read()
        except OSError as exc:
            summary.errors.append((item.label, f"cannot read: {exc}"))
            continue
        try:
            with transaction(engine) as session:
                result = ingest_message(session, raw, now=now, defaults=defaults)
        except SQLAlchemyError as exc:
            log.warning("%s not ingested: %s", item.label, exc)
            summary.errors.append((item.label, f"database error: {type(exc).__name__}: {exc}".splitlines()[0]))
            continue
        summary.counts[result.kind] += 1
        summary.results.append((item.label, result))
        if item.path is not None:
            _mark_seen(item.path)
        if progress is not None:
            progress(done, len(items))
    return summary
