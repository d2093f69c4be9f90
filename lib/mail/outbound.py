"""Send the outbox over SMTP: claimed rows, retry with exponential backoff, delivery on the timeline.

* **Claims.** A worker claims due rows (``pending``, ``next_attempt_at`` passed, no live claim) in a short
  write transaction by setting ``claimed_until``: on PostgreSQL with ``SELECT ... FOR UPDATE SKIP LOCKED``,
  on SQLite under the ``BEGIN IMMEDIATE`` write lock. Two workers therefore never send the same row. A
  worker that dies after claiming leaves the row to others once the claim expires.
* **Sending** happens outside any transaction; each result is written in its own short transaction.
* **Accepted** → ``sent``, with a ``mail_sent`` event on the ticket's timeline.
* **Refused for good** (5xx for this message) → ``failed`` at once, with an internal note on the ticket.
* **Refused for now** (4xx for this message) → retried after ``retry_base * 2^(attempts-1)`` seconds
  (capped at ``retry_max``); after ``max_attempts`` such refusals → ``failed`` with a note.
* **Server unreachable** (connection refused, timeout, TLS or login failure) → nothing is lost: the rows
  wait with the same backoff, however long the outage lasts, and are never marked failed for it.
* **Cancelled** by a lead while it waited → ``cancelled``: only ``pending`` rows are claimed, so it is never
  sent; a lead cannot cancel a row under a live claim (it may be on the wire), and a result recorded for a row
  that is no longer ``pending`` is dropped.

The Message-ID header is the row's ``message_id``, so a rare second delivery (a worker that sent and
then died before recording it) is recognisable as the same mail by the receiving side.
"""

from __future__ import annotations

import base64
import logging
import smtplib
import ssl
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, formataddr
from typing import cast

from sqlalchemy import or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from lib import tickets
from lib.config import load_settings
from lib.db import transaction
from lib.mail.settings import SmtpConfig
from lib.models import PUBLIC_URL_MARK, OutboxMail, Ticket
from lib.ticket_core import SystemActor, add_event, now_utc
from lib.workflow import EventKind

log = logging.getLogger("helpdesk.mailer")
NO_PUBLIC_URL = ("public_url (HELPDESK_PUBLIC_URL) is not set; mail waits in the outbox until it is, because the "
                 "links in it (e.g. confirm the fix) would point nowhere")

PENDING, SENT, FAILED = "pending", "sent", "failed"
#: A lead cancelled it while it waited (Admin → Mail): never claimed, so never sent; it may be queued again.
CANCELLED = "cancelled"
STATES = (PENDING, SENT, FAILED, CANCELLED)
MAILER = SystemActor(label="mailer")


class SmtpUnavailable(Exception):
    """The server cannot be reached or refuses us as a whole (not this one message)."""


@dataclass
class SendReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    unavailable: str | None = None  # why the server could not be used, when it could not
    errors: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        text = f"{self.sent} sent, {self.retried} to retry, {self.failed} failed"
        return text + (f" (server unavailable: {self.unavailable})" if self.unavailable else "")


def backoff(attempts: int, config: SmtpConfig) -> timedelta:
    """Delay before the next try after ``attempts`` failed tries (1 → base, 2 → 2×base, ... capped)."""
    seconds = config.retry_base_seconds * (2 ** max(attempts - 1, 0))
    return timedelta(seconds=min(seconds, config.retry_max_seconds))


def build_message(row: OutboxMail, config: SmtpConfig, public_url: str | None = None) -> EmailMessage:
    """The mail as it goes out; links in the body get ``public_url`` (the sender refuses to run without it)."""
    msg = EmailMessage(policy=SMTP_POLICY)
    msg["From"] = formataddr((config.from_name, config.from_address)) if config.from_name else config.from_address
    msg["To"] = row.to_address
    msg["Subject"] = row.subject
    msg["Date"] = format_datetime(row.created_at)
    msg["Message-ID"] = row.message_id
    if row.in_reply_to:
        msg["In-Reply-To"] = row.in_reply_to
        msg["References"] = row.in_reply_to
    # RFC 3834: our mails are automatic; well-behaved auto-responders do not answer them (no mail loops).
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    body = row.body if public_url is None else row.body.replace(PUBLIC_URL_MARK, public_url.rstrip("/"))
    msg.set_content(body, charset="utf-8")
    parts = row.parts or []
    if row.html_body:
        msg.add_alternative(row.html_body, subtype="html", charset="utf-8")
        html_part = cast(EmailMessage, next(p for p in msg.iter_parts() if p.get_content_type() == "text/html"))
        for part in parts:
            if part.get("cid"):  # an image the HTML shows inline (multipart/related)
                maintype, _, subtype = part["content_type"].partition("/")
                html_part.add_related(base64.b64decode(part["data"]), maintype=maintype, subtype=subtype,
                                      cid=f"<{part['cid']}>", filename=part["filename"], disposition="inline")
    for part in parts:
        if not part.get("cid"):
            maintype, _, subtype = part["content_type"].partition("/")
            msg.add_attachment(base64.b64decode(part["data"]), maintype=maintype, subtype=subtype,
                               filename=part["filename"])
    return msg


# --- claims and results -------------------------------------------------------------------------


def claim(engine: Engine, config: SmtpConfig, *, now: datetime | None = None, limit: int | None = None) -> list[OutboxMail]:
    """Claim up to ``limit`` due rows for this worker (committed before any mail is sent)."""
    now = now_utc(now)
    with transaction(engine) as session:
        stmt = (
            select(OutboxMail)
            .where(OutboxMail.state == PENDING, OutboxMail.next_attempt_at <= now,
                   or_(OutboxMail.claimed_until.is_(None), OutboxMail.claimed_until < now))
            .order_by(OutboxMail.next_attempt_at, OutboxMail.id)
            .limit(limit or config.batch)
        )
        if session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        rows = list(session.scalars(stmt))
        # Long enough to send at least one mail even on a slow server (see the check in send_outbox).
        until = now + timedelta(seconds=max(config.claim_seconds, 2 * config.timeout + 60))
        for row in rows:
            row.claimed_until = until
        return rows


def _record(engine: Engine, row_id: int, claimed_until: datetime | None, update) -> bool:
    """Apply ``update(session, row)`` if this worker's claim still holds; False when it was lost."""
    with transaction(engine) as session:
        stmt = select(OutboxMail).where(OutboxMail.id == row_id)
        if session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        row = session.scalar(stmt)
        if row is None or row.state != PENDING or row.claimed_until != claimed_until:
            log.warning("outbox row %s: claim lost before its result was recorded", row_id)
            return False
        update(session, row)
        return True


def _mark_sent(engine: Engine, row: OutboxMail, *, now: datetime) -> None:
    def update(session: Session, r: OutboxMail) -> None:
        r.state, r.sent_at, r.claimed_until, r.last_error = SENT, now, None, None
        r.attempts += 1
        ticket = session.get(Ticket, r.ticket_id) if r.ticket_id is not None else None
        if ticket is not None:
            add_event(session, ticket, EventKind.MAIL_SENT, actor=None, actor_label=MAILER.label, now=now,
                      body=f"Mail sent to {r.to_address}: {r.subject}",
                      meta={"outbox_id": r.id, "message_id": r.message_id, "to": r.to_address,
                            "attempts": r.attempts, "event_id": r.event_id})

    _record(engine, row.id, row.claimed_until, update)


def _mark_failed_try(engine: Engine, row: OutboxMail, error: str, *, permanent: bool, counts: bool,
                     config: SmtpConfig, now: datetime) -> str:
    """Record a failed try; returns the row's new state."""
    outcome = {"state": PENDING}

    def update(session: Session, r: OutboxMail) -> None:
        r.attempts += 1
        r.last_error = error[:2000]
        r.claimed_until = None
        refusals = r.attempts
        if permanent or (counts and refusals >= config.max_attempts):
            r.state = FAILED
            outcome["state"] = FAILED
            if r.ticket_id is not None:
                why = "refused by the mail server" if permanent else f"not accepted after {r.attempts} attempts"
                tickets.internal_note(
                    session, actor=MAILER, ticket_id=r.ticket_id, now=now,
                    text=f"Mail to {r.to_address} could not be delivered ({why}): {r.subject}\nLast error: {error}",
                )
        else:
            r.next_attempt_at = now + backoff(r.attempts, config)

    _record(engine, row.id, row.claimed_until, update)
    return outcome["state"]


# --- SMTP -----------------------------------------------------------------------------------------


def connect(config: SmtpConfig) -> smtplib.SMTP:
    """An open, greeted (and, as configured, encrypted and logged-in) connection; SmtpUnavailable if not."""
    try:
        if config.ssl:
            server: smtplib.SMTP = smtplib.SMTP_SSL(config.host, config.port, timeout=config.timeout,
                                                    context=ssl.create_default_context())
        else:
            server = smtplib.SMTP(config.host, config.port, timeout=config.timeout)
        try:
            server.ehlo()
            if config.starttls:
                server.starttls(context=ssl.create_default_context())
                server.ehlo()
            if config.user:
                server.login(config.user, config.password or "")
        except BaseException:
            _quit(server)
            raise
        return server
    except (OSError, smtplib.SMTPException) as exc:
        raise SmtpUnavailable(f"{config.host}:{config.port}: {type(exc).__name__}: {exc}") from exc


def _quit(server: smtplib.SMTP) -> None:
    try:
        server.quit()
    except (OSError, smtplib.SMTPException):
        server.close()


def _code_of(exc: smtplib.SMTPException) -> int | None:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return max(codes) if codes else None
    return getattr(exc, "smtp_code", None)


def send_outbox(engine: Engine, config: SmtpConfig | None = None, *, now: datetime | None = None,
                limit: int | None = None) -> SendReport:
    """Claim due rows and send them over one SMTP connection. Never raises for SMTP trouble."""
    config = config or SmtpConfig.from_settings()
    report = SendReport()
    if config is None:
        report.unavailable = "no SMTP server configured (smtp_host)"
        return report
    base = load_settings().public_url
    if not base:
        # Mail to requesters carries links to this app; without the address they would point nowhere.
        report.unavailable = NO_PUBLIC_URL
        log.error("outbox: not sending: %s", NO_PUBLIC_URL)
        return report
    rows = claim(engine, config, now=now, limit=limit)
    if not rows:
        return report
    server: smtplib.SMTP | None = None
    try:
        for index, row in enumerate(rows):
            if now is None and row.claimed_until is not None and \
                    now_utc() > row.claimed_until - timedelta(seconds=2 * config.timeout + 5):
                # A slow server ate the claim: leave the rest to the next cycle rather than risk sending
                # a mail another worker may have claimed meanwhile.
                log.warning("outbox: claim running out; %d mail(s) left for the next cycle", len(rows) - index)
                break
            try:
                if server is None:
                    server = connect(config)
                _send_one(server, row, config, base)
            except SmtpUnavailable as exc:
                report.unavailable = str(exc)
                for rest in rows[index:]:
                    _mark_failed_try(engine, rest, f"server unavailable: {exc}", permanent=False, counts=False,
                                     config=config, now=now or now_utc())
                    report.retried += 1
                break
            except smtplib.SMTPServerDisconnected as exc:  # the connection dropped: reconnect for the next row
                server = None
                _mark_failed_try(engine, row, f"connection lost: {exc}", permanent=False, counts=False,
                                 config=config, now=now or now_utc())
                report.retried += 1
            except (smtplib.SMTPException, OSError, UnicodeError, ValueError) as exc:
                code = _code_of(exc) if isinstance(exc, smtplib.SMTPException) else None
                permanent = code is not None and 500 <= code < 600
                text = f"{code} {exc}" if code else f"{type(exc).__name__}: {exc}"
                if isinstance(exc, OSError):  # socket trouble mid-conversation: treat as a lost connection
                    if server is not None:
                        server.close()
                    server = None
                state = _mark_failed_try(engine, row, text, permanent=permanent,
                                         counts=code is not None or isinstance(exc, UnicodeError | ValueError),
                                         config=config, now=now or now_utc())
                report.errors.append(f"{row.message_id}: {text}")
                if state == FAILED:
                    report.failed += 1
                else:
                    report.retried += 1
                if isinstance(server, smtplib.SMTP):
                    try:
                        server.rset()
                    except (smtplib.SMTPException, OSError):
                        server.close()
                        server = None
            else:
                _mark_sent(engine, row, now=now or now_utc())
                report.sent += 1
    finally:
        if server is not None:
            _quit(server)
    if report.sent or report.failed or report.retried:
        log.info("outbox: %s", report)
    return report


def _send_one(server: smtplib.SMTP, row: OutboxMail, config: SmtpConfig, public_url: str) -> None:
    msg = build_message(row, config, public_url)
    server.send_message(msg, from_addr=config.from_address, to_addrs=[row.to_address])
