"""Follow-ups and preventive steps.

A follow-up is a check scheduled on a ticket (closed ones included: "call back in two weeks to see the
printer still behaves"): a due date, an owner and a note. Once due it appears in the owner's queue view
"Follow-ups due" and the worker reminds the owner once (:func:`send_due_reminders`: an event on the
ticket and, when the owner has an e-mail address, a mail through the outbox). It is completed with an
outcome. Scheduling, the reminder and the completion are all events on the ticket's timeline.

Preventive steps ("what we did so it does not happen again") are recorded at closure
(``tickets.close(..., preventive_steps=..., follow_up=...)``), optionally with a follow-up, and listed
in the weekly report (:func:`preventive_steps_between`).

Follow-ups and preventive steps are appends to a ticket: they never need the ticket's version.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session, aliased

from lib.config import get_settings
from lib.errors import NotFound, PermissionDenied, ValidationError
from lib.models import Category, FollowUp, PreventiveStep, Ticket, User, ticket_ref
from lib.ticket_core import (
    ActorArg,
    add_event,
    clean_id,
    clean_text,
    load_actor,
    lock_row,
    lock_ticket,
    now_utc,
    require,
)
from lib.workflow import Action, EventKind, FollowUpSource, Role

log = logging.getLogger("helpdesk.followups")

MAX_AHEAD = timedelta(days=366)
REMINDER_LABEL = "worker"
TEMPLATE = "follow_up_due"


@dataclass(frozen=True)
class FollowUpRequest:
    """A follow-up to schedule along with something else (preventive steps at closure, a repeat issue)."""

    due_at: datetime
    owner_id: int | None = None  # None: the person scheduling it
    note: str = ""


def _clean_due(due_at: object, now: datetime) -> datetime:
    if not isinstance(due_at, datetime):
        raise ValidationError({"due_at": "choose a due date"})
    if due_at.tzinfo is None:
        raise ValidationError({"due_at": "needs a time zone"})
    if due_at < now - timedelta(minutes=5):
        raise ValidationError({"due_at": "is in the past; choose a later date"})
    if due_at > now + MAX_AHEAD:
        raise ValidationError({"due_at": "is more than a year ahead"})
    return due_at


def _owner(session: Session, owner_id: object, user: User | None) -> User:
    oid = clean_id(owner_id, "owner")
    if oid is None:
        if user is None:
            raise ValidationError({"owner": "choose who follows up"})
        return user
    owner = session.get(User, oid)
    if owner is None or not owner.active:
        raise ValidationError({"owner": "choose an active staff member"})
    return owner


def schedule(session: Session, *, actor: ActorArg, ticket_id: int, due_at: datetime, owner_id: int | None = None,
             note: str = "", source: FollowUpSource | str = FollowUpSource.MANUAL,
             now: datetime | None = None) -> FollowUp:
    """Schedule a follow-up on a ticket (open or closed). Any staff member; the owner defaults to the actor."""
    now = now_utc(now)
    user = load_actor(session, actor)
    ticket = lock_ticket(session, ticket_id)
    require(Action.INTERNAL_NOTE, user, ticket)
    return _add(session, ticket, user, due_at=due_at, owner_id=owner_id, note=note, source=source, now=now)


def _add(session: Session, ticket: Ticket, user: User | None, *, due_at: datetime, owner_id: int | None, note: str,
         source: FollowUpSource | str, now: datetime) -> FollowUp:
    due = _clean_due(due_at, now)
    owner = _owner(session, owner_id, user)
    body = clean_text(note, "note", max_len=5000) or ""
    try:
        origin = FollowUpSource(source)
    except ValueError:
        raise ValidationError({"source": f"unknown follow-up source {source!r}"}) from None
    follow_up = FollowUp(ticket_id=ticket.id, due_at=due, owner_id=owner.id, note=body, source=origin.value,
                         created_by_id=user.id if user else None, created_at=now)
    session.add(follow_up)
    session.flush()
    add_event(session, ticket, EventKind.FOLLOW_UP_SCHEDULED, actor=user, actor_label=None if user else "system",
              now=now, body=f"Follow-up for {owner.name}, due {due:%Y-%m-%d %H:%M} UTC" + (f": {body}" if body else ""),
              meta={"follow_up_id": follow_up.id, "owner_id": owner.id, "due_at": due.isoformat(),
                    "source": origin.value})
    return follow_up


def _lock_follow_up(session: Session, follow_up_id: int) -> FollowUp:
    if clean_id(follow_up_id, "follow_up") is None:
        raise NotFound("no follow-up given")
    return lock_row(session, FollowUp, follow_up_id, missing=f"follow-up {follow_up_id} does not exist")


def complete(session: Session, *, actor: int, follow_up_id: int, outcome: str,
             now: datetime | None = None) -> FollowUp:
    """Complete a follow-up with its outcome: the owner, whoever scheduled it, or a lead."""
    now = now_utc(now)
    user = load_actor(session, actor)
    follow_up = _lock_follow_up(session, follow_up_id)
    ticket = lock_ticket(session, follow_up.ticket_id)
    if user is not None and user.id not in (follow_up.owner_id, follow_up.created_by_id) and Role(user.role) < Role.LEAD:
        raise PermissionDenied("only its owner, whoever scheduled it, or a lead may complete a follow-up")
    text = clean_text(outcome, "outcome", required=True, max_len=5000)
    if follow_up.completed_at is not None:
        raise ValidationError({"follow_up": f"was already completed on {follow_up.completed_at:%Y-%m-%d %H:%M} UTC"})
    follow_up.completed_at, follow_up.completed_by_id, follow_up.outcome = now, user.id if user else None, text
    add_event(session, ticket, EventKind.FOLLOW_UP_COMPLETED, actor=user, actor_label=None if user else "system",
              now=now, body=f"Follow-up done: {text}", meta={"follow_up_id": follow_up.id})
    return follow_up


def send_due_reminders(session: Session, *, now: datetime, limit: int = 200) -> int:
    """Remind the owners of follow-ups that fell due (the worker calls this each cycle); returns how many.

    Each follow-up is reminded once: ``reminded_at`` is set in the same transaction as the ticket event and
    the mail. Two workers never both remind: PostgreSQL skips rows another worker holds, SQLite's write
    lock serialises the transactions.
    """
    now = now_utc(now)
    stmt = (select(FollowUp).where(FollowUp.completed_at.is_(None), FollowUp.reminded_at.is_(None),
                                   FollowUp.due_at <= now)
            .order_by(FollowUp.due_at, FollowUp.id).limit(limit))
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(of=FollowUp, skip_locked=True)
    due = list(session.scalars(stmt).unique())
    for follow_up in due:
        ticket = session.get(Ticket, follow_up.ticket_id)
        owner = follow_up.owner
        follow_up.reminded_at = now
        if ticket is None:
            continue
        mailed = owner.email if owner is not None and owner.active and owner.email else None
        add_event(session, ticket, EventKind.FOLLOW_UP_REMINDED, actor=None, actor_label=REMINDER_LABEL, now=now,
                       body=f"Follow-up due for {owner.name if owner else 'its owner'}"
                            + (f" (reminder mailed to {mailed})" if mailed else "")
                            + (f": {follow_up.note}" if follow_up.note else ""),
                       meta={"follow_up_id": follow_up.id, "owner_id": follow_up.owner_id,
                             "note": follow_up.note})  # lib.notify mails the owner (template follow_up_due)
    return len(due)


# --- preventive steps ------------------------------------------------------------------------------------


def at_closure(session: Session, ticket: Ticket, *, user: User | None, preventive_steps: str | None,
               follow_up: FollowUpRequest | None, now: datetime) -> None:
    """What ``tickets.close`` records besides the closure: preventive steps, a follow-up, both or neither."""
    if preventive_steps is not None and clean_text(preventive_steps, "preventive_steps") is not None:
        record_preventive_steps(session, ticket, user=user, text=preventive_steps, follow_up=follow_up, now=now)
    elif follow_up is not None:
        if user is None and follow_up.owner_id is None:
            raise ValidationError({"follow_up": "choose who follows up"})
        _add(session, ticket, user, due_at=follow_up.due_at, owner_id=follow_up.owner_id, note=follow_up.note,
             source=FollowUpSource.MANUAL, now=now)


def record_preventive_steps(session: Session, ticket: Ticket, *, user: User | None, text: str,
                            follow_up: FollowUpRequest | None = None, now: datetime) -> PreventiveStep:
    """Preventive steps for a ticket (called by ``tickets.close`` in its transaction), with an optional follow-up."""
    body = clean_text(text, "preventive_steps", required=True, max_len=20_000)
    scheduled = None
    if follow_up is not None:
        if user is None and follow_up.owner_id is None:
            raise ValidationError({"follow_up": "choose who follows up"})
        scheduled = _add(session, ticket, user, due_at=follow_up.due_at, owner_id=follow_up.owner_id,
                         note=follow_up.note or f"Check the preventive steps worked: {(body or '')[:200]}",
                         source=FollowUpSource.PREVENTIVE, now=now)
    step = PreventiveStep(ticket_id=ticket.id, body=body or "", follow_up_id=scheduled.id if scheduled else None,
                          created_by_id=user.id if user else None, created_at=now)
    session.add(step)
    session.flush()
    add_event(session, ticket, EventKind.PREVENTIVE_STEPS, actor=user, actor_label=None if user else "system", now=now,
              body=body, meta={"preventive_step_id": step.id, "follow_up_id": step.follow_up_id})
    return step


# --- reads -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FollowUpRow:
    id: int
    ticket_id: int
    summary: str
    due_at: datetime
    owner_id: int
    owner: str
    note: str
    source: str
    reminded_at: datetime | None
    completed_at: datetime | None
    outcome: str | None


def _rows(session: Session, *conds: ColumnElement[bool], order=None, limit: int = 200) -> list[FollowUpRow]:
    owner = aliased(User)
    stmt = (select(FollowUp.id, FollowUp.ticket_id, Ticket.summary, FollowUp.due_at, FollowUp.owner_id, owner.name,
                   FollowUp.note, FollowUp.source, FollowUp.reminded_at, FollowUp.completed_at, FollowUp.outcome)
            .join(Ticket, Ticket.id == FollowUp.ticket_id).join(owner, owner.id == FollowUp.owner_id)
            .where(*conds).order_by(*(order or [FollowUp.due_at, FollowUp.id])).limit(limit))
    return [FollowUpRow(*r) for r in session.execute(stmt)]


def list_for_ticket(session: Session, ticket_id: int) -> list[FollowUpRow]:
    return _rows(session, FollowUp.ticket_id == ticket_id)


def list_due(session: Session, *, owner_id: int, now: datetime | None = None, limit: int = 200) -> list[FollowUpRow]:
    """Open follow-ups of ``owner_id`` due by ``now`` (what the "Follow-ups due" queue view shows)."""
    now = now_utc(now)
    return _rows(session, FollowUp.owner_id == owner_id, FollowUp.completed_at.is_(None), FollowUp.due_at <= now,
                 limit=limit)


def due_ticket_ids(owner_id: int, now: datetime):
    """A subquery of tickets with a follow-up of ``owner_id`` due by ``now`` (for the queue view)."""
    return select(FollowUp.ticket_id).where(FollowUp.owner_id == owner_id, FollowUp.completed_at.is_(None),
                                            FollowUp.due_at <= now)


@dataclass(frozen=True)
class PreventiveRow:
    id: int
    ticket_id: int
    ref: str
    summary: str
    category: str | None
    body: str
    recorded_by: str | None
    recorded_at: datetime
    follow_up_due_at: datetime | None


def preventive_steps_between(session: Session, start: datetime, end: datetime, *, limit: int = 500) -> list[PreventiveRow]:
    """Preventive steps recorded in [start, end), oldest first (the weekly report's list)."""
    author = aliased(User)
    rows = session.execute(
        select(PreventiveStep.id, PreventiveStep.ticket_id, Ticket.summary, Category.name, PreventiveStep.body,
               author.name, PreventiveStep.created_at, FollowUp.due_at)
        .join(Ticket, Ticket.id == PreventiveStep.ticket_id)
        .join(Category, Category.id == Ticket.category_id)
        .outerjoin(author, author.id == PreventiveStep.created_by_id)
        .outerjoin(FollowUp, FollowUp.id == PreventiveStep.follow_up_id)
        .where(PreventiveStep.created_at >= start, PreventiveStep.created_at < end)
        .order_by(PreventiveStep.created_at, PreventiveStep.id).limit(limit)
    ).all()
    prefix = get_settings().ticket_prefix
    return [PreventiveRow(r[0], r[1], ticket_ref(r[1], prefix), r[2], r[3], r[4], r[5], r[6], r[7]) for r in rows]
