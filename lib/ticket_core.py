"""Shared plumbing of the ticket services: actors, row locks, version checks, events, validation.

Service functions in ``lib.tickets`` build on these; pages never call them directly.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, TypeGuard, TypeVar, overload

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from lib import clock, notify
from lib.errors import NotFound, PermissionDenied, StaleTicket, ValidationError
from lib.models import Ticket, TicketEvent, User, ticket_ref
from lib.workflow import (
    OPEN_STATUSES,
    PERMISSIONS,
    ROLE_RULES,
    Action,
    EscalationLevel,
    EventKind,
    Permission,
    Role,
    Status,
    TicketFacts,
    has_permission,
    may,
)


@dataclass(frozen=True)
class SystemActor:
    """An automated caller (e-mail ingestion, alerts, import, the worker, a requester's signed link)."""

    label: str = "system"


SYSTEM = SystemActor()
ActorArg = int | SystemActor


def now_utc(now: datetime | None = None) -> datetime:
    return clock.utc(now)


@overload
def load_actor(session: Session, actor: int) -> User: ...
@overload
def load_actor(session: Session, actor: ActorArg) -> User | None: ...
def load_actor(session: Session, actor: ActorArg) -> User | None:
    """The acting user, read from the database now (a deactivated user loses rights at once)."""
    if isinstance(actor, SystemActor):
        return None
    if not isinstance(actor, int) or isinstance(actor, bool):
        raise PermissionDenied("unknown actor")
    user = session.get(User, actor)
    if user is None or not user.active:
        raise PermissionDenied("your account is not active; ask a lead")
    return user


def require(action: Action, user: User | None, ticket: Ticket | None = None) -> None:
    """Raise PermissionDenied unless ``user`` may perform ``action`` (on ``ticket``). System actors may."""
    if user is None:
        return
    assignee = ticket.assignee_id if ticket is not None else None
    escalation = EscalationLevel(ticket.escalation_level) if ticket is not None else EscalationLevel.TECHNICIAN
    if not may(action, role=Role(user.role), actor_id=user.id, assignee_id=assignee, escalation=escalation):
        raise PermissionDenied(f"only {ROLE_RULES[action].value} may {action.label.lower()}")


def require_permission(user: User | None, permission: Permission, what: str | None = None) -> None:
    """Raise PermissionDenied unless ``user`` holds the desk-wide ``permission`` (system actors do)."""
    if user is not None and not has_permission(Role(user.role), permission):
        role = PERMISSIONS[permission]
        raise PermissionDenied(f"only a {role.label.lower()} may {what or permission.label}")


_Row = TypeVar("_Row")


def lock_row(session: Session, model: type[_Row], row_id: int, *, missing: str) -> _Row:
    """Load a row for change. PostgreSQL: row lock; SQLite: the BEGIN IMMEDIATE write lock already serialises.
    ``missing``: the NotFound message when there is no such row."""
    stmt = select(model).where(model.id == row_id)  # type: ignore[attr-defined]  # every model passed has an id
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(of=model)
    row = session.execute(stmt).unique().scalar_one_or_none()
    if row is None:
        raise NotFound(missing)
    session.refresh(row)  # never act on a stale identity-map copy
    return row


def lock_ticket(session: Session, ticket_id: int) -> Ticket:
    """Load a ticket for change (see :func:`lock_row`)."""
    if not _is_id(ticket_id):
        raise NotFound(f"ticket {ticket_id!r} does not exist")
    return lock_row(session, Ticket, ticket_id, missing=f"ticket {ticket_ref(ticket_id)} does not exist")


def check_version(session: Session, ticket: Ticket, expected_version: int | None) -> None:
    """Field edits and status changes pass the version their page rendered; a mismatch is refused."""
    if expected_version is None:
        raise ValidationError({"expected_version": "required for field and status changes"})
    if ticket.version == expected_version:
        return
    events = session.scalars(
        select(TicketEvent).where(TicketEvent.ticket_id == ticket.id).order_by(TicketEvent.id.desc()).limit(50)
    ).unique().all()
    changes = []
    for ev in reversed(events):
        v = (ev.meta or {}).get("v")
        if isinstance(v, int) and v > expected_version:
            changes.append(describe_event(ev))
    raise StaleTicket(ticket_ref(ticket.id), expected=expected_version, current=ticket.version, changes=changes)


def describe_event(ev: TicketEvent) -> str:
    who = ev.actor.name if ev.actor is not None else (ev.actor_label or "system")
    when = ev.occurred_at.strftime("%Y-%m-%d %H:%M UTC")
    if ev.field:
        what = f"changed {ev.field} from {ev.old_value or '—'} to {ev.new_value or '—'}"
    elif ev.from_status != ev.to_status and ev.to_status:
        what = f"{ev.kind.replace('_', ' ')}: {Status(ev.from_status).label if ev.from_status else '—'} → {Status(ev.to_status).label}"
    else:
        what = ev.kind.replace("_", " ")
    return f"{who} {what} at {when}"


def bump(ticket: Ticket, now: datetime) -> int:
    ticket.version += 1
    ticket.updated_at = now
    return ticket.version


def move(ticket: Ticket, to: Status) -> None:
    ticket.status = to.value
    ticket.is_open = to in OPEN_STATUSES


def add_event(
    session: Session,
    ticket: Ticket,
    kind: EventKind,
    *,
    actor: User | None,
    actor_label: str | None = None,
    now: datetime,
    from_status: Status | str | None = None,
    to_status: Status | str | None = None,
    field: str | None = None,
    old: object = None,
    new: object = None,
    body: str | None = None,
    public: bool = False,
    minutes: int | None = None,
    meta: dict | None = None,
    version: int | None = None,
) -> TicketEvent:
    meta = dict(meta or {})
    if version is not None:
        meta["v"] = version
    ev = TicketEvent(
        ticket_id=ticket.id,
        kind=kind.value,
        actor_id=actor.id if actor is not None else None,
        actor_label=actor_label if actor is None else None,
        from_status=str(from_status) if from_status is not None else None,
        to_status=str(to_status) if to_status is not None else None,
        field=field,
        old_value=None if old is None else str(old),
        new_value=None if new is None else str(new),
        body=body,
        public=public,
        minutes=minutes,
        meta=meta or None,
        occurred_at=now,
        recorded_at=clock.now(),
    )
    session.add(ev)
    notify.on_event(session, ticket, ev)  # who hears of it, by which channel: lib.notify.ROUTES
    return ev


def action_count(session: Session, ticket_id: int) -> int:
    # The kind is counted inside the aggregate, not tested in WHERE: with "kind = ?" there PostgreSQL may AND the
    # ticket's index with the (kind, occurred_at) one and read every action of the desk (8 ms at 10,000 tickets
    # for a ticket newer than its statistics).
    return session.scalar(
        select(func.count(case((TicketEvent.kind == EventKind.ACTION.value, 1))))
        .where(TicketEvent.ticket_id == ticket_id)
    ) or 0


def last_requester_reply(session: Session, ticket_id: int) -> datetime | None:
    # The kind is tested inside the aggregate, not in WHERE: with "kind = ?" there SQLite answers max() by
    # walking the (kind, occurred_at) index backwards over every ticket's mail (130 ms at 1M tickets).
    return session.scalar(
        select(func.max(case((TicketEvent.kind == EventKind.INBOUND_EMAIL.value, TicketEvent.occurred_at))))
        .where(TicketEvent.ticket_id == ticket_id)
    )


def facts(session: Session, ticket: Ticket) -> TicketFacts:
    return TicketFacts(
        status=Status(ticket.status),
        assignee_id=ticket.assignee_id,
        resolution_notes=ticket.resolution_notes,
        root_cause=ticket.root_cause,
        root_cause_unknown_reason=ticket.root_cause_unknown_reason,
        confirmed_at=ticket.confirmed_at,
        confirmation_via=ticket.confirmation_via,
        confirmed_by=ticket.confirmed_by,
        confirmation_requested_at=ticket.confirmation_requested_at,
        action_count=action_count(session, ticket.id),
        closed_at=ticket.closed_at,
        last_requester_reply_at=last_requester_reply(session, ticket.id),
    )


# --- validation --------------------------------------------------------------------------------

MAX_SUMMARY = 200
MAX_TEXT = 200_000
# C0 controls except tab and line breaks, DEL, and lone surrogates (they cannot be stored as UTF-8).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_MAX_ID = 2**31 - 1


@overload
def clean_line(value: object, field: str, *, required: Literal[True] = True, max_len: int = MAX_SUMMARY) -> str: ...
@overload
def clean_line(value: object, field: str, *, required: bool, max_len: int = MAX_SUMMARY) -> str | None: ...
def clean_line(value: object, field: str, *, required: bool = True, max_len: int = MAX_SUMMARY) -> str | None:
    """A one-line text: whitespace collapsed; control characters refused with a clear message."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ValidationError({field: f"must be text, not {type(value).__name__}"})
    if _CONTROL.search(value):
        raise ValidationError({field: "contains control characters; remove them"})
    text = " ".join(value.split())
    if not text:
        if required:
            raise ValidationError({field: "is required"})
        return None
    if len(text) > max_len:
        raise ValidationError({field: f"is {len(text)} characters long; at most {max_len}"})
    return unicodedata.normalize("NFC", text)


@overload
def clean_text(value: object, field: str, *, required: Literal[True], max_len: int = MAX_TEXT) -> str: ...
@overload
def clean_text(value: object, field: str, *, required: bool = False, max_len: int = MAX_TEXT) -> str | None: ...
def clean_text(value: object, field: str, *, required: bool = False, max_len: int = MAX_TEXT) -> str | None:
    """A multi-line text kept as typed (line breaks and tabs kept; NUL and other controls refused)."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ValidationError({field: f"must be text, not {type(value).__name__}"})
    if _CONTROL.search(value):
        raise ValidationError({field: "contains control characters; remove them"})
    text = value.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        if required:
            raise ValidationError({field: "is required"})
        return None
    if len(text) > max_len:
        raise ValidationError({field: f"is {len(text):,} characters long; at most {max_len:,}"})
    return text


def _is_id(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= _MAX_ID


def clean_id(value: object, field: str) -> int | None:
    """An optional row id from a caller: a positive whole number, or None. Anything else is refused by name
    (a string or a huge number would otherwise reach the database and fail there)."""
    if value is None:
        return None
    if not _is_id(value):
        raise ValidationError({field: f"must be the number of an existing record, not {value!r}"[:200]})
    return value


def clean_minutes(value: object) -> int | None:
    if value in (None, ""):
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValidationError({"minutes": "must be a whole number of minutes"})
    try:
        minutes = int(value)
    except (TypeError, ValueError):
        raise ValidationError({"minutes": f"{value!r} is not a whole number of minutes"}) from None
    if minutes < 0 or minutes > 24 * 60:
        raise ValidationError({"minutes": "must be between 0 and 1440"})
    return minutes


def ref(ticket: Ticket) -> str:
    return ticket_ref(ticket.id)
