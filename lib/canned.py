"""Canned responses: reply snippets the lead keeps (a title and a text with placeholders), which technicians insert
into a public reply or an internal note and edit before sending.

Placeholders are filled in from the ticket when a snippet is inserted: ``{requester_name}``, ``{ticket}`` (its
number), ``{summary}``, ``{public_url}`` (the desk's address) and ``{technician}`` (who inserts it). A text with any
other placeholder, or with a brace that opens no placeholder, is refused when saved, with the reason; ``{{`` and
``}}`` stand for literal braces. Every change is in the audit log.
"""

from __future__ import annotations

import string
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lib.audit_log import audit
from lib.config import get_settings
from lib.errors import NotFound, ValidationError
from lib.models import PUBLIC_URL_MARK, CannedResponse, Ticket, User, ticket_ref
from lib.ticket_core import clean_line, clean_text, load_actor, now_utc, require_permission
from lib.workflow import Permission

#: The placeholders a canned response may use, and what each stands for.
PLACEHOLDERS: dict[str, str] = {
    "requester_name": "the requester's name",
    "ticket": "the ticket number, e.g. HD-000123",
    "summary": "the ticket's summary",
    "public_url": "the desk's public address",
    "technician": "your name (whoever inserts the reply)",
}
TITLE_MAX, BODY_MAX = 120, 10_000


def placeholder_problems(body: str) -> list[str]:
    """What is wrong with the placeholders of ``body`` (empty: fine)."""
    try:
        parts = list(string.Formatter().parse(body))
    except ValueError as exc:
        return [f"{exc} (write {{{{ and }}}} for literal braces)"]
    problems: list[str] = []
    for _literal, name, spec, conversion in parts:
        if name is None:
            continue
        if name == "":
            problems.append("an empty placeholder {}")
        elif name not in PLACEHOLDERS:
            problems.append(f"unknown placeholder {{{name}}}")
        elif spec or conversion:
            problems.append(f"write {{{name}}} without a format or conversion")
    return list(dict.fromkeys(problems))


def _clean(session: Session, *, title: object, body: object, canned_id: int | None) -> tuple[str, str]:
    errors: dict[str, str] = {}
    clean_title = clean_body = ""
    try:
        clean_title = clean_line(title, "title", max_len=TITLE_MAX)
    except ValidationError as exc:
        errors.update(exc.fields)
    try:
        clean_body = clean_text(body, "text", required=True, max_len=BODY_MAX)
    except ValidationError as exc:
        errors.update(exc.fields)
    if clean_body and (problems := placeholder_problems(clean_body)):
        known = ", ".join(f"{{{k}}}" for k in PLACEHOLDERS)
        errors["text"] = "; ".join(problems) + f". The placeholders are {known}"
    if clean_title:
        same = session.scalar(select(CannedResponse.id).where(func.lower(CannedResponse.title) == clean_title.lower()))
        if same is not None and same != canned_id:
            errors["title"] = f"a canned reply called {clean_title!r} exists already"
    if errors:
        raise ValidationError(errors)
    return clean_title, clean_body


def _lead(session: Session, actor: int, what: str) -> User:
    lead = load_actor(session, actor)
    require_permission(lead, Permission.ADMIN, what)
    return lead


def list_responses(session: Session) -> list[CannedResponse]:
    return list(session.scalars(select(CannedResponse).order_by(func.lower(CannedResponse.title))))


def create(session: Session, *, actor: int, title: str, body: str, now: datetime | None = None) -> CannedResponse:
    """A lead adds a canned reply (validated, audited)."""
    now = now_utc(now)
    lead = _lead(session, actor, "keep canned replies")
    clean_title, clean_body = _clean(session, title=title, body=body, canned_id=None)
    row = CannedResponse(title=clean_title, body=clean_body, updated_by=lead.username, created_at=now, updated_at=now)
    session.add(row)
    session.flush()
    audit(session, actor=lead.username, action="canned_created", target=clean_title, detail=clean_body[:500], now=now)
    return row


def update(session: Session, *, actor: int, canned_id: int, title: str, body: str,
           now: datetime | None = None) -> CannedResponse:
    """A lead edits a canned reply (validated, audited)."""
    now = now_utc(now)
    lead = _lead(session, actor, "keep canned replies")
    row = session.get(CannedResponse, canned_id)
    if row is None:
        raise NotFound(f"no canned reply {canned_id}")
    clean_title, clean_body = _clean(session, title=title, body=body, canned_id=canned_id)
    old_title = row.title
    row.title, row.body, row.updated_by, row.updated_at = clean_title, clean_body, lead.username, now
    detail = (f"renamed from {old_title!r}; " if old_title != clean_title else "") + clean_body[:500]
    audit(session, actor=lead.username, action="canned_changed", target=clean_title, detail=detail, now=now)
    return row


def delete(session: Session, *, actor: int, canned_id: int, now: datetime | None = None) -> None:
    """A lead removes a canned reply (audited, with its text)."""
    now = now_utc(now)
    lead = _lead(session, actor, "keep canned replies")
    row = session.get(CannedResponse, canned_id)
    if row is None:
        raise NotFound(f"no canned reply {canned_id}")
    audit(session, actor=lead.username, action="canned_removed", target=row.title, detail=row.body[:500], now=now)
    session.delete(row)


def values_for(ticket: Ticket, technician: User | None) -> dict[str, str]:
    requester = ticket.requester
    name = (requester.name or requester.email or "") if requester is not None else ""
    return {
        "requester_name": name or "there",
        "ticket": ticket_ref(ticket.id),
        "summary": ticket.summary,
        # in mail the sender puts in the configured address; in the app it is shown as set
        "public_url": (get_settings().public_url or PUBLIC_URL_MARK).rstrip("/"),
        "technician": technician.name if technician is not None else "",
    }


def render_text(body: str, ticket: Ticket, technician: User | None) -> str:
    """``body`` with its placeholders filled in for ``ticket``; a text that no longer checks is returned as it is."""
    if placeholder_problems(body):
        return body
    return body.format(**values_for(ticket, technician))


def render(session: Session, *, canned_id: int, ticket_id: int, technician_id: int | None) -> str:
    """The canned reply ``canned_id`` filled in for a ticket and the technician inserting it."""
    row = session.get(CannedResponse, canned_id)
    if row is None:
        raise NotFound(f"no canned reply {canned_id}")
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        raise NotFound(f"no ticket {ticket_id}")
    technician = session.get(User, technician_id) if technician_id is not None else None
    return render_text(row.body, ticket, technician)
