"""SLA clocks: the policy a ticket carries, its due and at-risk moments, breaches.

Rules (also in docs/sla.md):
* Each priority has targets for acknowledgement, first response and resolution, counted in business
  hours of the desk's calendar, or around the clock (the default for Critical).
* When a ticket is created, the targets and the calendar that apply are copied onto the ticket
  (``sla_policy``), so later edits of the targets never rewrite history. A priority change re-targets
  the ticket from its creation with the new priority's targets.
* The response clock runs from creation and stops at the first of acknowledgement or first public
  reply; it never pauses.
* The resolution clock runs in new / assigned / in progress, pauses in waiting on user, waiting on
  vendor, resolved and awaiting confirmation, and continues after a reopen.
* Due times and the at-risk moments (a configurable share of the target used, default 75 %) are stored
  on the ticket and recomputed in every writing transaction, so the queue filters on indexed columns.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import TYPE_CHECKING, cast

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from lib.audit_log import audit
from lib.bizcal import BusinessCalendar, add_business_time, add_business_time_with_pauses
from lib.config import get_settings
from lib.errors import ValidationError
from lib.models import Setting, SlaTarget, Ticket, TicketEvent, setting_row
from lib.ticket_core import add_event, load_actor, now_utc, require_permission
from lib.workflow import OPEN_STATUSES, PAUSED_STATUSES, RUNNING_STATUSES, EventKind, Permission, Priority, Status

if TYPE_CHECKING:
    from lib.queries import QueueRow

CALENDAR_KEY = "business_calendar"
SLA_OPTIONS_KEY = "sla_options"
DEFAULT_RISK_SHARE = 0.75


class SlaState(enum.StrEnum):
    OK = "ok"
    AT_RISK = "at_risk"
    BREACHED = "breached"
    PAUSED = "paused"
    NONE = "none"  # no target applies (closed, or no policy)

    @property
    def label(self) -> str:
        return {"ok": "On track", "at_risk": "At risk", "breached": "Breached", "paused": "Paused", "none": "—"}[self]


def default_calendar() -> BusinessCalendar:
    return BusinessCalendar(tz=get_settings().timezone)


def get_calendar(session: Session) -> BusinessCalendar:
    row = setting_row(session, CALENDAR_KEY)
    if row is None:
        return default_calendar()
    return BusinessCalendar.from_dict(row.value)


def get_risk_share(session: Session) -> float:
    row = setting_row(session, SLA_OPTIONS_KEY)
    share = (row.value or {}).get("risk_share") if row else None
    return float(share) if share else DEFAULT_RISK_SHARE


def make_calendar(*, tz: str, workdays: list[int], start: time, end: time, holidays: list[date]) -> BusinessCalendar:
    return BusinessCalendar(tz=tz, workdays=frozenset(workdays), start=start, end=end, holidays=frozenset(holidays))


def policy_for(session: Session, priority: Priority | int) -> dict:
    """The policy a ticket of this priority gets now: targets, calendar and at-risk share."""
    target = session.get(SlaTarget, int(priority))
    if target is None:
        return {}
    cal = get_calendar(session)
    if not target.business_hours:
        cal = BusinessCalendar.twenty_four_seven(cal.tz)
    return {
        "priority": int(priority),
        "ack_minutes": target.ack_minutes,
        "response_minutes": target.response_minutes,
        "resolution_minutes": target.resolution_minutes,
        "calendar": cal.to_dict(),
        "risk_share": get_risk_share(session),
    }


def attach_policy(session: Session, ticket: Ticket, *, reason: str | None = None) -> None:
    ticket.sla_policy = policy_for(session, ticket.priority) or None


@dataclass(frozen=True)
class Clock:
    due_at: datetime | None
    risk_at: datetime | None


def running_intervals(session: Session, ticket: Ticket) -> list[tuple[datetime, datetime | None]]:
    """When the resolution clock ran, from the ticket's status history (events with a to_status)."""
    session.flush()
    rows = session.execute(
        select(TicketEvent.occurred_at, TicketEvent.to_status)
        .where(TicketEvent.ticket_id == ticket.id, TicketEvent.to_status.is_not(None))
        .order_by(TicketEvent.occurred_at, TicketEvent.id)
    ).all()
    # to_status IS NOT NULL in the query above
    return intervals_from_history(ticket.created_at, [(t, Status(cast(str, s))) for t, s in rows])


def intervals_from_history(created_at: datetime, history: list[tuple[datetime, Status]]) -> list[tuple[datetime, datetime | None]]:
    intervals: list[tuple[datetime, datetime | None]] = []
    running_since: datetime | None = created_at
    for at, status in history:
        at = max(at, created_at)
        runs = status in RUNNING_STATUSES
        if runs and running_since is None:
            running_since = at
        elif not runs and running_since is not None:
            if at > running_since:
                intervals.append((running_since, at))
            running_since = None
    if running_since is not None:
        intervals.append((running_since, None))
    return intervals


def compute(policy: dict, *, created_at: datetime, intervals: list[tuple[datetime, datetime | None]]) -> tuple[Clock, Clock]:
    """(response clock, resolution clock) for a policy, a creation time and the running intervals."""
    cal = BusinessCalendar.from_dict(policy["calendar"])
    share = float(policy.get("risk_share", DEFAULT_RISK_SHARE))
    resp = policy["response_minutes"] * 60
    response = Clock(add_business_time(cal, created_at, resp), add_business_time(cal, created_at, resp * share))
    res = policy["resolution_minutes"] * 60
    if not intervals:
        return response, Clock(None, None)
    resolution = Clock(
        add_business_time_with_pauses(cal, created_at, res, running=intervals),
        add_business_time_with_pauses(cal, created_at, res * share, running=intervals),
    )
    return response, resolution


def refresh(session: Session, ticket: Ticket, *, now: datetime) -> None:
    """Recompute the stored due and at-risk moments of a ticket (in the caller's transaction)."""
    policy = ticket.sla_policy
    if not policy:
        ticket.response_due_at = ticket.response_risk_at = None
        ticket.resolution_due_at = ticket.resolution_risk_at = None
        return
    response, resolution = compute(policy, created_at=ticket.created_at, intervals=running_intervals(session, ticket))
    ticket.response_due_at, ticket.response_risk_at = response.due_at, response.risk_at
    ticket.resolution_due_at, ticket.resolution_risk_at = resolution.due_at, resolution.risk_at
    check_breaches(session, ticket, now=now)


def responded_at(ticket: Ticket | QueueRow) -> datetime | None:
    times = [t for t in (ticket.acknowledged_at, ticket.first_response_at) if t is not None]
    return min(times) if times else None


def state(ticket: Ticket | QueueRow, *, now: datetime) -> SlaState:
    """The SLA state shown on the queue and the ticket page (a Ticket or a queue row)."""
    status = Status(ticket.status)
    has_policy = getattr(ticket, "has_policy", None)
    if has_policy is None:
        has_policy = bool(getattr(ticket, "sla_policy", None))
    if not has_policy or status is Status.CLOSED:
        return SlaState.NONE
    resp_done = responded_at(ticket)
    g = ticket.__getattribute__
    breached = g("resolution_breached_at") is not None or (
        g("resolution_due_at") is not None and g("resolution_due_at") <= now
    )
    if resp_done is None and g("response_due_at") is not None and g("response_due_at") <= now:
        breached = True
    if status in OPEN_STATUSES and breached:
        return SlaState.BREACHED
    if status in PAUSED_STATUSES:
        return SlaState.PAUSED
    at_risk = (g("resolution_risk_at") is not None and g("resolution_risk_at") <= now) or (
        resp_done is None and g("response_risk_at") is not None and g("response_risk_at") <= now
    )
    return SlaState.AT_RISK if at_risk else SlaState.OK


SLA_ICONS = {SlaState.OK: "🟩", SlaState.AT_RISK: "🟧", SlaState.BREACHED: "🟥", SlaState.PAUSED: "⏸", SlaState.NONE: ""}


def _breach(session: Session, ticket: Ticket, clock: str, due: datetime, now: datetime) -> None:
    setattr(ticket, f"{clock}_breached_at", due)
    add_event(session, ticket, EventKind.SLA_BREACHED, actor=None, actor_label="system", now=max(due, ticket.created_at),
              body=f"{clock.capitalize()} target missed (due {due:%Y-%m-%d %H:%M} UTC)",
              meta={"clock": clock, "due_at": due.isoformat(), "priority": ticket.priority})


def check_breaches(session: Session, ticket: Ticket, *, now: datetime) -> int:
    """Record a breach of either clock once, when its due time has passed (in the caller's transaction)."""
    count = 0
    responded = responded_at(ticket)
    due = ticket.response_due_at
    if due is not None and ticket.response_breached_at is None and due <= (responded or now):
        if responded is None or responded > due:
            _breach(session, ticket, "response", due, now)
            count += 1
    due = ticket.resolution_due_at
    if due is not None and ticket.resolution_breached_at is None and due <= now:
        _breach(session, ticket, "resolution", due, now)
        count += 1
    return count


def record_breaches(session: Session, *, now: datetime | None = None) -> int:
    """Record each response and resolution breach once, as an event (for cron and the worker)."""
    now = now_utc(now)
    overdue = select(Ticket).where(
        Ticket.is_open.is_(True),
        or_(
            and_(Ticket.resolution_due_at <= now, Ticket.resolution_breached_at.is_(None)),
            and_(Ticket.response_due_at <= now, Ticket.response_breached_at.is_(None),
                 Ticket.acknowledged_at.is_(None), Ticket.first_response_at.is_(None)),
        ),
    )
    return sum(check_breaches(session, t, now=now) for t in session.scalars(overdue).unique())


def list_targets(session: Session) -> list[SlaTarget]:
    return list(session.scalars(select(SlaTarget).order_by(SlaTarget.priority.desc())))


def update_target(session: Session, *, actor: int, priority: Priority | int, ack_minutes: int, response_minutes: int,
                  resolution_minutes: int, business_hours: bool, now: datetime | None = None) -> SlaTarget:
    """A lead edits a priority's targets. Tickets keep the policy they were created with."""
    now = now_utc(now)
    lead = load_actor(session, actor)
    require_permission(lead, Permission.CONFIGURE_SLA, "edit SLA targets")
    values = {"ack_minutes": ack_minutes, "response_minutes": response_minutes, "resolution_minutes": resolution_minutes}
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 60 * 24 * 365:
            raise ValidationError({name: "must be a whole number of minutes between 1 and 525600"})
    if not ack_minutes <= response_minutes <= resolution_minutes:
        raise ValidationError({"ack_minutes": "acknowledgement ≤ first response ≤ resolution"})
    target = session.get(SlaTarget, int(priority))
    if target is None:
        target = SlaTarget(priority=int(priority))
        session.add(target)
    old = (target.ack_minutes, target.response_minutes, target.resolution_minutes, target.business_hours)
    target.ack_minutes, target.response_minutes, target.resolution_minutes = ack_minutes, response_minutes, resolution_minutes
    target.business_hours, target.updated_at = bool(business_hours), now
    audit(session, actor=lead.username if lead else "system", action="sla_target_changed",
          target=Priority(int(priority)).label, detail=f"{old} -> {(ack_minutes, response_minutes, resolution_minutes, business_hours)}",
          now=now)
    return target


def save_calendar(session: Session, *, actor: int, calendar: BusinessCalendar, risk_share: float | None = None,
                  now: datetime | None = None) -> None:
    """A lead edits the business calendar (applies to tickets created from now on)."""
    now = now_utc(now)
    lead = load_actor(session, actor)
    require_permission(lead, Permission.CONFIGURE_SLA, "edit the business calendar")
    row = session.get(Setting, CALENDAR_KEY)
    if row is None:
        session.add(Setting(key=CALENDAR_KEY, value=calendar.to_dict(), updated_at=now))
    else:
        row.value, row.updated_at = calendar.to_dict(), now
    if risk_share is not None:
        if not 0.1 <= risk_share <= 0.99:
            raise ValidationError({"risk_share": "between 10% and 99%"})
        opt = session.get(Setting, SLA_OPTIONS_KEY)
        if opt is None:
            session.add(Setting(key=SLA_OPTIONS_KEY, value={"risk_share": risk_share}, updated_at=now))
        else:
            opt.value, opt.updated_at = {**(opt.value or {}), "risk_share": risk_share}, now
    audit(session, actor=lead.username if lead else "system", action="calendar_changed",
          detail=str(calendar.to_dict()), now=now)
