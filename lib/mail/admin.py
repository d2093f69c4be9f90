"""The lead's mail screens (Admin → Mail): the mail templates, the outbox and the quarantine.

* **Templates** (:data:`lib.notify.DEFAULT_TEMPLATES`, edits in the settings table under
  :data:`lib.notify.TEMPLATES_KEY`, merged per template): an edit is checked by :func:`check_template` before it
  is saved — only the known placeholders, balanced braces, a subject of 1 to 300 characters, a body — so
  ``notify.render``'s fall-back to the default never has to act on an edit made here. :func:`preview` shows
  what a real ticket's requester would get, the confirmation links as a sample (no link is issued).
* **Outbox** (lib.mail.outbound): list and read mails; send a failed (or cancelled) one again; cancel a waiting
  one, which is then never sent.
* **Quarantine** (lib.mail.inbound): list and read messages; release one into intake
  (:func:`lib.mail.inbound.release_message`); delete one.

Every change needs the *open the admin page* permission, read from the database, and is audited.
"""

from __future__ import annotations

import difflib
import string
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from lib import notify, tickets
from lib.audit_log import audit
from lib.config import get_settings
from lib.confirm_links import TTL
from lib.errors import NotFound, ValidationError
from lib.mail import outbound
from lib.mail.inbound import IngestResult, release_message
from lib.mail.parse import MailParseError, parse_mail
from lib.mail.settings import InboundDefaults
from lib.models import (
    PUBLIC_URL_MARK,
    OutboxMail,
    ProcessedMail,
    QuarantinedMail,
    Requester,
    Setting,
    Ticket,
    User,
    ticket_ref,
)
from lib.ticket_core import load_actor, lock_row, now_utc, require_permission
from lib.workflow import Permission, Status

MAX_SUBJECT = 300

#: Every placeholder a template may use, with what it becomes.
PLACEHOLDERS: dict[str, str] = {
    "ref": "the ticket number, e.g. HD-000123 (keep it in the subject: replies are matched by it)",
    "summary": "the ticket's summary",
    "name": "the recipient's name (the requester's; in mail to staff, the staff member's)",
    "message": "the text of the moment: the question asked, the workaround, the reply, the resolution, ...",
    "status": "the ticket's status, as staff see it (e.g. In progress)",
    "desk": "the desk's signature (setting desk_signature)",
    "link": "the address of the page the mail is about (mail to staff)",
    "count": "how many notifications the digest lists",
}
#: The placeholders of the mail about a ticket (lib.notify.outbox_mail fills them all).
TICKET_PLACEHOLDERS = ("ref", "summary", "name", "message", "status", "desk")
#: Templates mailed with :data:`TICKET_PLACEHOLDERS`; any other template may use the placeholders its default uses.
TICKET_TEMPLATES = ("created", "info_requested", "workaround", "public_reply", "resolved", "confirmation_requested",
                    "reopened", "status_update", "closed", "follow_up_due")
#: Templates mailed to the ticket's requester (the others go to staff: the preview shows the ticket's assignee).
REQUESTER_TEMPLATES = TICKET_TEMPLATES[:-1]


def placeholders(name: str) -> tuple[str, ...]:
    """The placeholders template ``name`` may use: exactly those its mail fills in."""
    if name in TICKET_TEMPLATES:
        return TICKET_PLACEHOLDERS
    default = notify.DEFAULT_TEMPLATES[name]
    used = {f for text in default.values() for _, f, _, _ in string.Formatter().parse(text) if f}
    return tuple(k for k in PLACEHOLDERS if k in used) + tuple(sorted(used - set(PLACEHOLDERS)))


#: What each template is for, and what {message} holds in it.
PURPOSES: dict[str, str] = {
    "created": "the receipt when a ticket is logged ({message} is empty)",
    "info_requested": "a technician asks the requester for information ({message}: the question)",
    "workaround": "a workaround is given ({message}: the workaround)",
    "public_reply": "a technician's public reply ({message}: the reply)",
    "resolved": "the ticket is resolved ({message}: the resolution)",
    "confirmation_requested": "the requester is asked to confirm the fix ({message}: the technician's words); "
                              "the confirmation links are added below the body",
    "reopened": "the ticket is reopened ({message}: why)",
    "status_update": "a status update the lead chose under Notifications ({message}: what happened)",
    "closed": "the ticket is closed ({message}: the closing words)",
    "follow_up_due": "to the staff member who owns a due follow-up, not to the requester ({message}: its note)",
}

#: {message} in a preview: a sample of what the moment's text looks like.
SAMPLE_MESSAGES: dict[str, str] = {
    "created": "",
    "info_requested": "(the technician's question, e.g.: Which room is the printer in?)",
    "workaround": "(the workaround, e.g.: Print to the printer on floor 2 meanwhile.)",
    "public_reply": "(the technician's reply)",
    "resolved": "(the resolution, e.g.: We replaced the fuser unit.)",
    "confirmation_requested": "(the technician's words to the requester)",
    "reopened": "(why the ticket was reopened)",
    "status_update": "(what happened, e.g.: A technician has taken on the ticket and will be in touch.)",
    "closed": "(the closing words)",
    "follow_up_due": "(the follow-up's note)",
}
SAMPLE_TOKEN = "SAMPLE-NOT-A-REAL-LINK"

ACTION_SAVED, ACTION_RESET = "mail_template_saved", "mail_template_reset"
ACTION_RETRIED, ACTION_CANCELLED = "outbox_mail_retried", "outbox_mail_cancelled"
ACTION_RELEASED, ACTION_DELETED = "quarantine_released", "quarantine_deleted"


def _lead(session: Session, actor: int) -> User:
    user = load_actor(session, actor)
    require_permission(user, Permission.ADMIN, "manage the desk's mail")
    return user


# --- templates -------------------------------------------------------------------------------------


def _check_text(text: str, allowed: tuple[str, ...]) -> str | None:
    """What is wrong with one template text, or None."""
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError:
        return ("has a “{” or “}” without its partner: placeholders are written {ref}, and a brace meant as "
                "text is doubled ({{ or }})")
    known = ", ".join(f"{{{k}}}" for k in allowed)
    for _, field, spec, conversion in parts:
        if field is None:
            continue
        if not field.strip():
            return f"has an empty placeholder {{}}: write one of {known}"
        if spec or conversion or not field.isidentifier():
            shown = "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            return f"{shown} is not a plain placeholder: write it alone, one of {known}"
        if field not in allowed:
            close = difflib.get_close_matches(field, list(allowed), n=1)
            hint = f" (did you mean {{{close[0]}}}?)" if close else ""
            return f"uses an unknown placeholder {{{field}}}{hint}; the placeholders are {known}"
    try:
        text.format(**{k: k for k in allowed})
    except (KeyError, IndexError, ValueError, AttributeError) as exc:  # pragma: no cover - the checks above catch it
        return f"does not format: {exc}"
    return None


def check_template(name: str, subject: str, body: str) -> dict[str, str]:
    """Field → what is wrong, for an edited text of template ``name`` (empty: it may be saved)."""
    allowed = placeholders(name)
    errors: dict[str, str] = {}
    if not subject.strip():
        errors["subject"] = "is empty: a mail needs a subject"
    elif "\n" in subject or "\r" in subject:
        errors["subject"] = "must be one line"
    elif len(subject) > MAX_SUBJECT:
        errors["subject"] = f"is {len(subject)} characters long; at most {MAX_SUBJECT}"
    elif problem := _check_text(subject, allowed):
        errors["subject"] = problem
    if not body.strip():
        errors["body"] = "is empty: a mail needs a body"
    elif problem := _check_text(body, allowed):
        errors["body"] = problem
    return errors


def _known(name: str) -> None:
    if name not in notify.DEFAULT_TEMPLATES:
        raise NotFound(f"there is no mail template {name!r}")


def _stored(session: Session, *, lock: bool = False) -> tuple[dict[str, dict[str, str]], Setting | None]:
    row = session.get(Setting, notify.TEMPLATES_KEY,
                      with_for_update=lock and session.get_bind().dialect.name == "postgresql")
    value = row.value if row is not None and isinstance(row.value, dict) else {}
    return {k: dict(v) for k, v in value.items() if isinstance(v, dict)}, row


def edited(session: Session) -> set[str]:
    """The templates whose stored text differs from the default."""
    stored, _ = _stored(session)
    current = notify.templates(session)
    return {k for k in stored if k in current and current[k] != notify.DEFAULT_TEMPLATES[k]}


def stored_problems(session: Session) -> dict[str, str]:
    """Templates stored (e.g. before these checks existed) that would not format: mail uses the default."""
    out: dict[str, str] = {}
    for name, tpl in notify.templates(session).items():
        errors = check_template(name, tpl["subject"], tpl["body"])
        if errors:
            out[name] = "; ".join(f"{k} {v}" for k, v in errors.items())
    return out


def save_template(session: Session, name: str, *, subject: str, body: str, actor: int,
                  now: datetime | None = None) -> dict[str, str]:
    """Save one template's subject and body (checked first; the others are left as they are); returns them."""
    lead = _lead(session, actor)
    _known(name)
    errors = check_template(name, subject, body)
    if errors:
        raise ValidationError(errors)
    stored, row = _stored(session, lock=True)
    before = notify.templates(session)[name]
    stored[name] = {"subject": subject, "body": body}
    now = now_utc(now)
    if row is None:
        session.add(Setting(key=notify.TEMPLATES_KEY, value=stored, updated_at=now))
    else:
        row.value, row.updated_at = stored, now
    changed = [k for k in ("subject", "body") if before[k] != stored[name][k]] or ["nothing"]
    audit(session, actor=lead.username, action=ACTION_SAVED, target=name, now=now,
          detail=f"changed: {', '.join(changed)}; subject: {subject}"[:2000])
    return stored[name]


def reset_template(session: Session, name: str, *, actor: int, now: datetime | None = None) -> dict[str, str]:
    """Back to the default text for one template; returns the default."""
    lead = _lead(session, actor)
    _known(name)
    stored, row = _stored(session, lock=True)
    if name not in stored:
        raise ValidationError({"template": f"{name} already is the default"})
    del stored[name]
    now = now_utc(now)
    assert row is not None  # name was stored in it
    row.value, row.updated_at = stored, now
    audit(session, actor=lead.username, action=ACTION_RESET, target=name, now=now, detail="back to the default")
    return dict(notify.DEFAULT_TEMPLATES[name])


@dataclass(frozen=True)
class Preview:
    ticket_id: int
    to: str
    subject: str
    body: str


def default_preview_ticket(session: Session) -> int | None:
    """The newest ticket whose requester has an e-mail address (else the newest ticket)."""
    found = session.scalar(select(Ticket.id).join(Requester, Ticket.requester_id == Requester.id)
                           .where(Requester.email.is_not(None)).order_by(Ticket.id.desc()).limit(1))
    return found if found is not None else session.scalar(select(func.max(Ticket.id)))


def sample_links_text() -> str:
    """The confirmation-links block as :func:`lib.confirm_links.links_text` writes it, with a sample token."""
    return (f"Confirm or tell us it is still broken here (the link works once, for {TTL.days} days):\n"
            f"{PUBLIC_URL_MARK}/confirm?t={SAMPLE_TOKEN}")


def values_for(ticket: Ticket, *, name: str, message: str) -> dict[str, str]:
    """The placeholders' values for one mail about ``ticket`` (as lib.notify.outbox_mail fills them)."""
    return {"ref": ticket_ref(ticket.id), "summary": ticket.summary, "name": name, "message": message or "",
            "status": Status(ticket.status).label, "desk": get_settings().desk_signature}


def preview(session: Session, name: str, *, ticket_id: int, subject: str, body: str) -> Preview:
    """What ``ticket_id``'s requester would get from this (possibly unsaved) template text. Raises
    ValidationError when the text does not pass :func:`check_template`, NotFound for no such ticket."""
    _known(name)
    errors = check_template(name, subject, body)
    if errors:
        raise ValidationError(errors)
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        raise NotFound(f"ticket {ticket_ref(ticket_id)} does not exist")
    if name in REQUESTER_TEMPLATES:
        requester = ticket.requester
        to = (requester.email or "") if requester is not None else ""
        who = (requester.name or requester.email or "") if requester is not None else ""
    else:  # mail to staff: the ticket's assignee stands in for the recipient
        owner = session.get(User, ticket.assignee_id) if ticket.assignee_id else None
        to = (owner.email or "") if owner is not None else ""
        who = owner.name if owner is not None else "(the staff member)"
    values = values_for(ticket, name=who, message=SAMPLE_MESSAGES.get(name, "(the notification's text)"))
    values.update(link=f"{PUBLIC_URL_MARK}/ticket?id={ticket.id}", count="3")
    text = body.format(**values)
    if name == "confirmation_requested":
        text = text.rstrip() + "\n\n" + sample_links_text()
    base = (get_settings().public_url or "").rstrip("/") or "(public_url is not set)"
    return Preview(ticket_id=ticket.id, to=to, subject=" ".join(subject.format(**values).split())[:MAX_SUBJECT],
                   body=text.replace(PUBLIC_URL_MARK, base))


# --- outbox ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutboxRow:
    id: int
    state: str
    to: str
    subject: str
    ticket_id: int | None
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
    claimed: bool  # a worker holds it right now (it may be on the wire)


def outbox_counts(session: Session) -> dict[str, int]:
    counts = dict.fromkeys(outbound.STATES, 0)
    for state, n in session.execute(select(OutboxMail.state, func.count()).group_by(OutboxMail.state)):
        counts[state] = int(n)
    return counts


def list_outbox(session: Session, *, state: str | None = None, limit: int = 100,
                now: datetime | None = None) -> list[OutboxRow]:
    """The most recent mails (newest first), of one state or all."""
    now = now_utc(now)
    stmt = select(OutboxMail.id, OutboxMail.state, OutboxMail.to_address, OutboxMail.subject, OutboxMail.ticket_id,
                  OutboxMail.attempts, OutboxMail.next_attempt_at, OutboxMail.last_error, OutboxMail.created_at,
                  OutboxMail.sent_at, OutboxMail.claimed_until)
    if state:
        stmt = stmt.where(OutboxMail.state == state)
    rows = session.execute(stmt.order_by(OutboxMail.id.desc()).limit(limit))
    return [OutboxRow(*r[:10], claimed=r[10] is not None and now_utc(r[10]) > now) for r in rows]


def get_mail(session: Session, mail_id: int) -> OutboxMail:
    row = session.get(OutboxMail, mail_id)
    if row is None:
        raise NotFound(f"there is no mail {mail_id} in the outbox")
    return row


def retry_mail(session: Session, mail_id: int, *, actor: int, now: datetime | None = None) -> OutboxMail:
    """A failed or cancelled mail goes back in the outbox: waiting, no attempts, due now."""
    lead = _lead(session, actor)
    now = now_utc(now)
    row = lock_row(session, OutboxMail, mail_id, missing=f"there is no mail {mail_id} in the outbox")
    if row.state not in (outbound.FAILED, outbound.CANCELLED):
        raise ValidationError({"mail": f"mail {mail_id} is {row.state}: only a failed or cancelled mail is sent again"})
    was = row.state
    row.state, row.attempts, row.next_attempt_at, row.claimed_until = outbound.PENDING, 0, now, None
    audit(session, actor=lead.username, action=ACTION_RETRIED, target=f"outbox {row.id}", now=now,
          detail=f"was {was}; to {row.to_address}: {row.subject}"[:2000])
    return row


def cancel_mail(session: Session, mail_id: int, *, actor: int, now: datetime | None = None) -> OutboxMail:
    """A waiting mail is cancelled: never sent (unless sent again from here). Its ticket gets an internal note,
    so nobody believes the requester was told."""
    lead = _lead(session, actor)
    now = now_utc(now)
    row = lock_row(session, OutboxMail, mail_id, missing=f"there is no mail {mail_id} in the outbox")
    if row.state != outbound.PENDING:
        raise ValidationError({"mail": f"mail {mail_id} is {row.state}: only a waiting mail can be cancelled"})
    if row.claimed_until is not None and now_utc(row.claimed_until) > now:
        raise ValidationError({"mail": f"mail {mail_id} is being sent right now; look again in a minute"})
    row.state, row.claimed_until = outbound.CANCELLED, None
    if row.ticket_id is not None:
        tickets.internal_note(session, actor=lead.id, ticket_id=row.ticket_id, now=now,
                              text=f"Mail to {row.to_address} cancelled by {lead.name} before it was sent: "
                                   f"{row.subject}")
    audit(session, actor=lead.username, action=ACTION_CANCELLED, target=f"outbox {row.id}", now=now,
          detail=f"to {row.to_address}: {row.subject}"[:2000])
    return row


# --- quarantine ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuarantineRow:
    id: int
    received_at: datetime
    from_address: str | None
    subject: str | None
    reason: str
    resolved: bool
    message_id: str | None
    ticket_id: int | None  # what a release made of it (a ticket or a comment on one)
    outcome: str | None


def list_quarantine(session: Session, *, limit: int = 200) -> list[QuarantineRow]:
    """Quarantined messages, unresolved first, newest first within each."""
    taken = (select(ProcessedMail.message_id, ProcessedMail.ticket_id, ProcessedMail.outcome)
             .where(ProcessedMail.outcome.in_(("ticket", "comment"))).subquery())
    rows = session.execute(
        select(QuarantinedMail.id, QuarantinedMail.received_at, QuarantinedMail.from_address, QuarantinedMail.subject,
               QuarantinedMail.reason, QuarantinedMail.resolved, QuarantinedMail.message_id, taken.c.ticket_id,
               taken.c.outcome)
        .outerjoin(taken, taken.c.message_id == QuarantinedMail.message_id)
        .order_by(QuarantinedMail.resolved, QuarantinedMail.received_at.desc(), QuarantinedMail.id.desc())
        .limit(limit))
    return [QuarantineRow(*r) for r in rows]


def quarantine_count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(QuarantinedMail)
                              .where(QuarantinedMail.resolved.is_(False))) or 0)


def get_quarantined(session: Session, qid: int) -> QuarantinedMail:
    row = session.get(QuarantinedMail, qid)
    if row is None:
        raise NotFound(f"there is no quarantined message {qid} (deleted?)")
    return row


def unreadable(raw: bytes) -> str | None:
    """Why a message cannot be released at all (it cannot be read as an e-mail), or None."""
    try:
        parse_mail(bytes(raw), tag_prefix=get_settings().ticket_prefix)
    except MailParseError as exc:
        return f"it cannot be read as an e-mail ({exc}), so it cannot be released"
    return None


def release(session: Session, qid: int, *, actor: int, now: datetime | None = None,
            defaults: InboundDefaults | None = None) -> IngestResult:
    """Take a quarantined message into intake as if it had just arrived, past the check that held it (spam,
    bulk, automatic): a ticket, or a comment on the ticket it answers. The row is marked resolved; the ticket
    gets an internal note saying the lead released it. Refused (ValidationError, nothing written) when it was
    resolved already, cannot be read, or would be held again."""
    lead = _lead(session, actor)
    now = now_utc(now)
    row = lock_row(session, QuarantinedMail, qid, missing=f"there is no quarantined message {qid} (deleted?)")
    if row.resolved:
        raise ValidationError({"message": f"quarantined message {qid} was already resolved"})
    result = release_message(session, bytes(row.raw), now=now, defaults=defaults)
    row.resolved = True
    assert result.ticket_id is not None  # a ticket or a comment: release_message refuses anything else
    what = "a new ticket" if result.kind == "ticket" else "a comment"
    tickets.internal_note(session, actor=lead.id, ticket_id=result.ticket_id, now=now,
                          text=f"Taken in from the mail quarantine as {what} by {lead.name}; it had been held "
                               f"because: {row.reason}")
    audit(session, actor=lead.username, action=ACTION_RELEASED, target=f"quarantine {qid}", now=now,
          detail=f"{result.kind} {ticket_ref(result.ticket_id)}; from {row.from_address or '?'}: "
                 f"{row.subject or ''}; held because: {row.reason}"[:2000])
    return result


def delete_quarantined(session: Session, qid: int, *, actor: int, now: datetime | None = None) -> int:
    """Remove a quarantined message for good. Its Message-ID stays recorded: a copy arriving later is a
    duplicate, not a new ticket."""
    lead = _lead(session, actor)
    row = lock_row(session, QuarantinedMail, qid, missing=f"there is no quarantined message {qid} (deleted?)")
    detail = f"from {row.from_address or '?'}: {row.subject or ''}; {row.reason}"[:2000]
    session.execute(delete(QuarantinedMail).where(QuarantinedMail.id == qid))
    audit(session, actor=lead.username, action=ACTION_DELETED, target=f"quarantine {qid}", now=now_utc(now),
          detail=detail)
    return qid
