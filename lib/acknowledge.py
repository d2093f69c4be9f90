"""Acknowledgement clocks: an assigned ticket nobody has acknowledged yet, and what happens past its target.

* The clock starts when the ticket was last put in *assigned* for its current holder (an assignment, a
  reassignment or an escalation to a senior) and stops when that person acknowledges (the ticket moves to
  *in progress*; ``Ticket.acknowledged_at`` keeps the first acknowledgement for the metrics).
* The target is the priority's ``ack_minutes`` from the SLA policy copied onto the ticket, counted like
  the response clock: in business hours of the ticket's calendar, or around the clock when its policy is
  24×7 (Critical by default).
* Past the target the ticket is **at risk** (ticket page, the lead's board).
* With the setting ``auto_reassign_unacknowledged`` on, the worker hands such a ticket to the next
  candidate with room (``lib.assignment.suggest``, leaving out everyone who already let it lapse) through
  ``tickets.assign``; the event carries the note and the candidate's explanation.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import and_, case, false, func, literal, null, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from lib import assignment, tickets
from lib.audit_log import audit
from lib.bizcal import BusinessCalendar, add_business_time
from lib.errors import HelpdeskError
from lib.models import Setting, Ticket, TicketEvent, User, setting_row
from lib.ticket_core import SystemActor, load_actor, now_utc, require_permission
from lib.workflow import EventKind, Permission, Priority, Status

log = logging.getLogger("helpdesk.acknowledge")

AUTO_REASSIGN_KEY = "auto_reassign_unacknowledged"
#: The note of an automatic reassignment starts with this (it also marks who let the ticket lapse).
LAPSED_NOTE = "Not acknowledged in time"
REASSIGNER = SystemActor(label="worker")


@dataclass(frozen=True)
class AckClock:
    """An assigned, unacknowledged ticket and its acknowledgement target."""

    ticket_id: int
    version: int
    assignee_id: int
    priority: Priority
    assigned_at: datetime
    target_minutes: int | None
    due_at: datetime | None
    around_the_clock: bool

    def overdue(self, now: datetime) -> bool:
        return self.due_at is not None and self.due_at <= now

    def describe(self) -> str:
        if self.target_minutes is None:
            return "no acknowledgement target"
        hours = "" if self.around_the_clock else " business"
        return f"{_minutes_text(self.target_minutes)}{hours} target"


def _minutes_text(minutes: int) -> str:
    return f"{minutes // 60} h" if minutes % 60 == 0 else f"{minutes} min"


def ack_due(policy: dict | None, assigned_at: datetime) -> tuple[int | None, datetime | None, bool]:
    """(target minutes, due moment, around the clock) for a ticket's copied SLA policy."""
    if not policy or not policy.get("ack_minutes") or not policy.get("calendar"):
        return None, None, False
    cal = BusinessCalendar.from_dict(policy["calendar"])
    minutes = int(policy["ack_minutes"])
    return minutes, add_business_time(cal, assigned_at, minutes * 60), cal.always_on


def _assigned_at():  # the moment the ticket last entered "assigned" (correlated subquery; never logged: last update)
    # The status is tested inside the aggregate so the ticket's own events are read (see
    # ticket_core.last_requester_reply), not the (to_status, occurred_at) index over every ticket.
    last = (select(func.max(case((TicketEvent.to_status == Status.ASSIGNED.value, TicketEvent.occurred_at))))
            .where(TicketEvent.ticket_id == Ticket.id)
            .correlate(Ticket).scalar_subquery())
    return func.coalesce(last, Ticket.updated_at)


def _waiting():
    return and_(Ticket.status == Status.ASSIGNED.value, Ticket.assignee_id.is_not(None))


def unacknowledged(session: Session, *, assignee_ids: list[int] | None = None, ticket_ids: list[int] | None = None,
                   ticket_id: int | None = None) -> list[AckClock]:
    """Assigned tickets still waiting for their holder's acknowledgement, with their targets (one query).

    Works out each ticket's due moment in Python: meant for a handful of tickets (one ticket, one person's,
    the flagged ones). Counting over the whole desk goes through :func:`overdue_sql`.
    """
    stmt = select(Ticket.id, Ticket.version, Ticket.assignee_id, Ticket.priority, Ticket.sla_policy,
                  _assigned_at()).where(_waiting())
    if assignee_ids is not None:
        stmt = stmt.where(Ticket.assignee_id.in_(assignee_ids or [-1]))
    if ticket_ids is not None:
        stmt = stmt.where(Ticket.id.in_(ticket_ids or [-1]))
    if ticket_id is not None:
        stmt = stmt.where(Ticket.id == ticket_id)
    out = []
    for tid, version, assignee, prio, policy, assigned_at in session.execute(stmt.order_by(Ticket.id)):
        minutes, due, always = ack_due(policy, assigned_at)
        out.append(AckClock(ticket_id=tid, version=version, assignee_id=assignee, priority=Priority(prio),
                            assigned_at=assigned_at, target_minutes=minutes, due_at=due, around_the_clock=always))
    return out


def clock_for(session: Session, ticket_id: int) -> AckClock | None:
    """The acknowledgement clock of one ticket, or None when it is not waiting for an acknowledgement."""
    found = unacknowledged(session, ticket_id=ticket_id)
    return found[0] if found else None


# --- past the target, for the whole desk at once ---------------------------------------------------

#: How far back to look for the latest assignment moment that is already past its target.
_SEARCH_LIMIT = timedelta(days=400)


def latest_overdue_start(cal: BusinessCalendar, minutes: int, now: datetime) -> datetime | None:
    """The latest assignment moment whose acknowledgement target has passed by ``now`` (None: none has).

    The due moment only moves forward with the assignment moment, so "assigned at or before this" is the
    same as "past the target"; found by bisection to the microsecond.
    """
    seconds = minutes * 60

    def passed(start: datetime) -> bool:
        return add_business_time(cal, start, seconds) <= now

    hi = now - timedelta(seconds=seconds)  # business time never runs faster than the wall clock
    if passed(hi):
        return hi
    step = timedelta(days=1)
    lo = hi - step
    while not passed(lo):
        step *= 2
        if step > _SEARCH_LIMIT:
            return None
        hi, lo = lo, hi - step
    while hi - lo > timedelta(microseconds=1):
        mid = lo + (hi - lo) / 2
        if passed(mid):
            lo = mid
        else:
            hi = mid
    return lo


def overdue_sql(session: Session, *, now: datetime) -> ColumnElement[bool]:
    """A condition on ``tickets``: assigned, unacknowledged and past its acknowledgement target at ``now``.

    Tickets carry their own copy of the policy. The few distinct (target, calendar) pairs among the waiting
    tickets are read first, and for each the latest assignment moment already past the target (the cut-off)
    is worked out once, so the database compares timestamps instead of Python walking the calendar per ticket.
    The assignment moment is looked up in the events only when the ticket's own times cannot decide: a
    ticket last updated by the cut-off was assigned by then too, one created after it was not.
    """
    minutes_sql = Ticket.sla_policy["ack_minutes"].as_integer()
    calendar_sql = Ticket.sla_policy["calendar"].as_string()
    pairs = session.execute(select(minutes_sql, calendar_sql).where(_waiting()).distinct()).all()
    whens = []
    for minutes, calendar in pairs:
        if not minutes or not calendar:
            continue
        cal = BusinessCalendar.from_dict(json.loads(calendar) if isinstance(calendar, str) else calendar)
        cutoff = latest_overdue_start(cal, int(minutes), now)
        if cutoff is not None:
            whens.append((and_(minutes_sql == int(minutes), calendar_sql == calendar),
                          literal(cutoff, Ticket.updated_at.type)))
    if not whens:
        return false()
    cutoff_sql = case(*whens, else_=null())
    return and_(_waiting(), or_(Ticket.updated_at <= cutoff_sql,
                                and_(Ticket.created_at <= cutoff_sql, _assigned_at() <= cutoff_sql)))


def overdue_counts(session: Session, *, now: datetime, condition: ColumnElement[bool] | None = None) -> dict[int, int]:
    """Tickets past their acknowledgement target, per assignee (``condition``: an :func:`overdue_sql` already built
    for this ``now``)."""
    # Counted here rather than with GROUP BY: grouping tempts SQLite into walking the assignee index over
    # every ticket instead of the few assigned ones.
    counts: dict[int, int] = {}
    cond = condition if condition is not None else overdue_sql(session, now=now)
    # the condition holds only assigned tickets: no NULL assignee
    for uid in cast(Iterable[int], session.scalars(select(Ticket.assignee_id).where(cond))):
        counts[uid] = counts.get(uid, 0) + 1
    return counts


def overdue(session: Session, *, now: datetime | None = None, min_priority: Priority | None = None,
            limit: int | None = None) -> list[AckClock]:
    """The clocks of the tickets past their acknowledgement target, highest priority and oldest first."""
    now = now_utc(now)
    stmt = select(Ticket.id).where(overdue_sql(session, now=now))
    if min_priority is not None:
        stmt = stmt.where(Ticket.priority >= int(min_priority))
    ids = list(session.scalars(stmt.order_by(Ticket.priority.desc(), Ticket.id).limit(limit)))
    if not ids:
        return []
    clocks = {c.ticket_id: c for c in unacknowledged(session, ticket_ids=ids) if c.overdue(now)}
    return [clocks[i] for i in ids if i in clocks]


# --- the setting -------------------------------------------------------------------------------


def auto_reassign_enabled(session: Session) -> bool:
    row = setting_row(session, AUTO_REASSIGN_KEY)
    if row is None:
        return False
    value = row.value
    if isinstance(value, dict):
        value = value.get("enabled")
    return value is True


def set_auto_reassign(session: Session, *, actor: int, enabled: bool, now: datetime | None = None) -> None:
    """A lead switches automatic reassignment of unacknowledged tickets on or off."""
    now = now_utc(now)
    lead = load_actor(session, actor)
    require_permission(lead, Permission.CONFIGURE_ASSIGNMENT, "change automatic reassignment")
    value = bool(enabled)
    row = session.get(Setting, AUTO_REASSIGN_KEY)
    if row is None:
        session.add(Setting(key=AUTO_REASSIGN_KEY, value=value, updated_at=now))
    else:
        row.value, row.updated_at = value, now
    audit(session, actor=lead.username if lead else "system", action="auto_reassign_changed",
          detail="on" if value else "off", now=now)


# --- automatic reassignment --------------------------------------------------------------------


def lapsed_holders(session: Session, ticket_id: int) -> set[int]:
    """People an automatic reassignment already took this ticket from (they are not offered it again)."""
    names = set(session.scalars(
        select(TicketEvent.old_value).where(
            TicketEvent.ticket_id == ticket_id, TicketEvent.kind == EventKind.ASSIGNED.value,
            TicketEvent.actor_id.is_(None), TicketEvent.body.like(f"{LAPSED_NOTE}%"),
            TicketEvent.old_value.is_not(None))
    ))
    if not names:
        return set()
    return set(session.scalars(select(User.id).where(User.name.in_(names))))


def lapsed_note(clock: AckClock, holder: str) -> str:
    return (f"{LAPSED_NOTE}: {holder} had not acknowledged it within the {clock.describe()} "
            f"(due {clock.due_at:%Y-%m-%d %H:%M} UTC); reassigned automatically.")


def reassign_one(session: Session, clock: AckClock, *, now: datetime) -> int | None:
    """Hand one overdue ticket to the next candidate with room; the new assignee's id, or None."""
    ticket = session.get(Ticket, clock.ticket_id)
    if ticket is None or ticket.version != clock.version or ticket.status != Status.ASSIGNED.value:
        return None  # changed since it was read: the next cycle sees it afresh
    holder = ticket.assignee.name if ticket.assignee else "the assignee"
    skip = lapsed_holders(session, ticket.id) | {clock.assignee_id}
    best = assignment.suggest(session, ticket.id, now=now, limit=None, exclude=skip).best
    if best is None:
        log.info("ticket %s: acknowledgement overdue, nobody else has room; left for the lead", ticket.id)
        return None
    tickets.assign(session, actor=REASSIGNER, ticket_id=ticket.id, assignee_id=best.user_id,
                   expected_version=clock.version, note=lapsed_note(clock, holder), explanation=best.explanation,
                   now=now)
    return best.user_id


def reassign_unacknowledged(engine: Engine, *, now: datetime | None = None) -> list[int]:
    """The worker's step: reassign each ticket past its acknowledgement target, when the setting is on.

    Each ticket goes in its own transaction with the version read, so a concurrent acknowledgement (or a
    second worker) wins and the ticket is skipped. Returns the ids of reassigned tickets.
    """
    from lib.db import read_session, transaction

    now = now_utc(now)
    with read_session(engine) as session:
        if not auto_reassign_enabled(session):
            return []
        due = overdue(session, now=now)
    done: list[int] = []
    for clock in due:
        try:
            with transaction(engine) as session:
                if reassign_one(session, clock, now=now) is not None:
                    done.append(clock.ticket_id)
        except HelpdeskError as exc:  # stale: someone acknowledged or reassigned it first
            log.info("automatic reassignment of ticket %s skipped: %s", clock.ticket_id, exc)
    if done:
        log.info("reassigned %d unacknowledged ticket(s): %s", len(done), done)
    return done
