"""Read side of the lead's workload board: load per person against capacity, SLA risk, and the flags.

* Per person: open tickets by priority, the weighted load against capacity (weights from
  ``lib.assignment``), how many wait for their acknowledgement (and how many of those are past the
  target), how many are at risk or breached (``lib.sla.state``'s rule, in SQL), the oldest open ticket.
* Flags for the lead: High and Critical tickets at risk, breached, or not acknowledged in time.

"Waiting for an acknowledgement" has one definition, :func:`waiting_for_ack_sql` (assigned to someone, not yet
acknowledged: the tickets ``lib.acknowledge`` runs a clock for), and "past its target" one too
(``acknowledge.overdue_sql``): the per-person columns, the desk's totals and the flags all count with them,
so :func:`ack_summary` can say how the flags relate to the per-person numbers.

A handful of GROUP BY queries over the open tickets, whatever the size of the history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, case, func, literal, or_, select
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import ColumnElement

from lib import acknowledge
from lib.assignment import is_full, load_breakdown, weighted_load
from lib.clock import desk_time
from lib.desk_settings import get_weights
from lib.models import Category, Ticket, User
from lib.sla import SlaState
from lib.ticket_core import now_utc
from lib.workflow import RUNNING_STATUSES, Priority, Role, Status

FLAG_PRIORITIES = (Priority.HIGH, Priority.CRITICAL)
FLAG_LIMIT = 100


def waiting_for_ack_sql() -> ColumnElement[bool]:
    """An open ticket waiting for its holder's acknowledgement: the same tickets ``acknowledge.unacknowledged``
    gives a clock (status "assigned", with an assignee)."""
    return and_(Ticket.status == Status.ASSIGNED.value, Ticket.assignee_id.is_not(None))


def _not_responded():
    return and_(Ticket.acknowledged_at.is_(None), Ticket.first_response_at.is_(None))


def breached_sql(now: datetime):
    """``sla.state(...) is BREACHED`` for an open ticket, as SQL."""
    return or_(Ticket.resolution_breached_at.is_not(None), Ticket.resolution_due_at <= now,
               and_(_not_responded(), Ticket.response_due_at <= now))


def at_risk_sql(now: datetime):
    """``sla.state(...) is AT_RISK`` for an open ticket that is not breached, as SQL."""
    return and_(Ticket.status.in_([s.value for s in RUNNING_STATUSES]),
                or_(Ticket.resolution_risk_at <= now, and_(_not_responded(), Ticket.response_risk_at <= now)))


def sla_state_sql(now: datetime):
    """'breached' / 'at_risk' / 'ok' for an open ticket (CASE takes the first true branch, as sla.state does)."""
    return case((breached_sql(now), literal(SlaState.BREACHED.value)),
                (at_risk_sql(now), literal(SlaState.AT_RISK.value)), else_=literal(SlaState.OK.value))


@dataclass(frozen=True)
class PersonLoad:
    user_id: int
    name: str
    role: Role
    capacity: int
    active: bool
    away_until: datetime | None
    counts: dict[Priority, int]
    load: int
    unacknowledged: int
    ack_overdue: int
    at_risk: int
    breached: int
    oldest_created_at: datetime | None

    @property
    def open(self) -> int:
        return sum(self.counts.values())

    @property
    def share(self) -> float:
        return self.load / self.capacity if self.capacity > 0 else (float("inf") if self.load else 0.0)

    @property
    def full(self) -> bool:
        return is_full(self.load, self.capacity)

    @property
    def overloaded(self) -> bool:
        return self.load > self.capacity

    def away(self, now: datetime) -> bool:
        return self.away_until is not None and self.away_until > now

    def why(self, now: datetime) -> str:
        """One line: the load and what makes it heavy, e.g.
        'over capacity: load 14 of 10 = 2 critical + 2 high; 1 breached; 2 not acknowledged (1 past target)'."""
        if self.overloaded:
            lead = "over capacity: "
        elif self.full:
            lead = "at capacity: "
        else:
            lead = ""
        parts = [f"{lead}load {self.load} of {self.capacity} = {load_breakdown(self.counts)}"]
        if self.breached:
            parts.append(f"{self.breached} breached")
        if self.at_risk:
            parts.append(f"{self.at_risk} at risk")
        if self.unacknowledged:
            late = f" ({self.ack_overdue} past target)" if self.ack_overdue else ""
            parts.append(f"{self.unacknowledged} not acknowledged{late}")
        if not self.active:
            parts.append("inactive: reassign their tickets")
        elif self.away(now):
            parts.append(f"away until {desk_time(self.away_until, '%a %d %b %H:%M')}")
        return "; ".join(parts)


@dataclass(frozen=True)
class Flag:
    """A High/Critical ticket the lead should look at, and why."""

    ticket_id: int
    summary: str
    priority: Priority
    status: Status
    assignee_id: int | None
    assignee: str | None
    state: SlaState
    reasons: tuple[str, ...]
    due_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class Board:
    now: datetime
    people: list[PersonLoad]
    unassigned: dict[Priority, int]
    unassigned_oldest: datetime | None
    flags: list[Flag]
    flags_total: int
    weights: dict[Priority, int] = field(default_factory=dict)
    #: The whole desk: tickets waiting for an acknowledgement, those past their target, and those of them that
    #: are High or Critical (flagged). The per-person columns add up to the first two.
    unacknowledged_total: int = 0
    ack_overdue_total: int = 0
    ack_overdue_flagged: int = 0

    @property
    def overloaded(self) -> list[PersonLoad]:
        return [p for p in self.people if p.overloaded]


def load_board(session: Session, *, now: datetime | None = None,
               weights: dict[Priority, int] | None = None) -> Board:
    now = now_utc(now)
    weights = weights if weights is not None else get_weights(session)
    state = sla_state_sql(now)
    rows = list(session.execute(
        select(Ticket.assignee_id, Ticket.priority, func.count(),
               func.sum(case((state == SlaState.BREACHED.value, 1), else_=0)),
               func.sum(case((state == SlaState.AT_RISK.value, 1), else_=0)),
               func.sum(case((waiting_for_ack_sql(), 1), else_=0)),
               func.min(Ticket.created_at))
        .where(Ticket.is_open.is_(True))
        .group_by(Ticket.assignee_id, Ticket.priority)
    ).all())
    overdue = acknowledge.overdue_sql(session, now=now)
    late = acknowledge.overdue_counts(session, now=now, condition=overdue)
    flags, total = flagged(session, now=now, overdue=overdue)
    waiting, late_total, late_flagged = session.execute(
        select(func.count(), func.sum(case((overdue, 1), else_=0)),
               func.sum(case((and_(overdue, Ticket.priority.in_([int(p) for p in FLAG_PRIORITIES])), 1), else_=0)))
        .select_from(Ticket).where(Ticket.is_open.is_(True), waiting_for_ack_sql())
    ).one()
    return assemble(session, now=now, weights=weights, groups=rows, late=late, flags=flags, flags_total=total,
                    totals=(int(waiting or 0), int(late_total or 0), int(late_flagged or 0)))


def assemble(session: Session, *, now: datetime, weights: dict[Priority, int], groups: list, late: dict[int, int],
             flags: list[Flag], flags_total: int, totals: tuple[int, int, int]) -> Board:
    """The board from its counts: ``groups`` rows of (assignee, priority, open, breached, at risk, waiting for an
    acknowledgement, oldest creation), ``late`` past the acknowledgement target per assignee, the flags and the
    desk's acknowledgement totals (waiting, past target, past target and flagged). Both :func:`load_board` and
    the kept snapshot (lib.board_snapshot) end here, so they can only differ in how they counted."""
    per: dict[int | None, dict] = {}
    for uid, prio, n, breached, at_risk, unacked, oldest in groups:
        d = per.setdefault(uid, {"counts": {}, "breached": 0, "at_risk": 0, "unacked": 0, "oldest": None})
        d["counts"][Priority(prio)] = n
        d["breached"] += int(breached or 0)
        d["at_risk"] += int(at_risk or 0)
        d["unacked"] += int(unacked or 0)
        if oldest is not None and (d["oldest"] is None or oldest < d["oldest"]):
            d["oldest"] = oldest
    holders = [uid for uid in per if uid is not None]
    users = session.execute(
        select(User.id, User.name, User.role, User.capacity, User.active, User.away_until)
        .where(or_(User.active.is_(True), User.id.in_(holders or [-1])))
    ).all()
    people = []
    for uid, name, role, capacity, active, away_until in users:
        d = per.get(uid, {"counts": {}, "breached": 0, "at_risk": 0, "unacked": 0, "oldest": None})
        people.append(PersonLoad(
            user_id=uid, name=name, role=Role(role), capacity=int(capacity or 0), active=bool(active),
            away_until=away_until, counts=d["counts"], load=weighted_load(d["counts"], weights),
            unacknowledged=d["unacked"], ack_overdue=late.get(uid, 0), at_risk=d["at_risk"], breached=d["breached"],
            oldest_created_at=d["oldest"],
        ))
    # Most loaded first (share of capacity), so whoever is overloaded is at the top.
    people.sort(key=lambda p: (-min(p.share, 1e9), -p.breached, p.name.lower()))
    none = per.get(None, {"counts": {}, "oldest": None})
    waiting, late_total, late_flagged = totals
    return Board(now=now, people=people, unassigned=none["counts"], unassigned_oldest=none["oldest"], flags=flags,
                 flags_total=flags_total, weights=dict(weights), unacknowledged_total=waiting,
                 ack_overdue_total=late_total, ack_overdue_flagged=late_flagged)


def ack_summary(b: Board) -> str:
    """One line on acknowledgements for the whole desk, in the words of the per-person columns, saying which of
    them the flags include (only High and Critical tickets past their target)."""
    if not b.unacknowledged_total:
        return "No ticket is waiting for an acknowledgement."
    n = b.unacknowledged_total
    waiting = f"{n} ticket{'' if n == 1 else 's'} waiting for an acknowledgement"
    if not b.ack_overdue_total:
        return f"{waiting}, none past its target (so none is flagged)."
    late = f"{b.ack_overdue_total} past {'its' if b.ack_overdue_total == 1 else 'their'} target"
    if b.ack_overdue_flagged == b.ack_overdue_total:
        flagged_part = "all High or Critical, so flagged above"
    elif b.ack_overdue_flagged:
        flagged_part = f"{b.ack_overdue_flagged} of them High or Critical, flagged above"
    else:
        flagged_part = "none High or Critical, so none flagged"
    return f"{waiting}: {late} ({flagged_part})."


def flagged(session: Session, *, now: datetime | None = None, limit: int = FLAG_LIMIT,
            overdue: ColumnElement[bool] | None = None) -> tuple[list[Flag], int]:
    """High/Critical open tickets at risk, breached or not acknowledged in time: (first ``limit``, total).

    ``overdue``: an ``acknowledge.overdue_sql`` condition already built for this ``now``."""
    now = now_utc(now)
    cond = and_(Ticket.is_open.is_(True), Ticket.priority.in_([int(p) for p in FLAG_PRIORITIES]))
    if overdue is None:
        overdue = acknowledge.overdue_sql(session, now=now)
    risky = or_(breached_sql(now), at_risk_sql(now), overdue)
    total = session.scalar(select(func.count()).select_from(Ticket).where(cond, risky)) or 0
    return flags_of(session, and_(cond, risky), now=now, limit=limit), total


def flags_of(session: Session, where: ColumnElement[bool], *, now: datetime, limit: int = FLAG_LIMIT) -> list[Flag]:
    """The flags of the tickets ``where`` selects (already known to be flagged), in the board's order: breached,
    then at risk, then late acknowledgements; higher priority, earlier resolution target, older first."""
    state = sla_state_sql(now)
    assignee = aliased(User)
    rank = case((state == SlaState.BREACHED.value, 0), (state == SlaState.AT_RISK.value, 1), else_=2)
    rows = session.execute(
        select(Ticket.id, Ticket.summary, Ticket.priority, Ticket.status, Ticket.assignee_id, assignee.name, state,
               Ticket.acknowledged_at, Ticket.first_response_at, Ticket.response_due_at, Ticket.response_risk_at,
               Ticket.resolution_due_at, Ticket.resolution_risk_at, Ticket.resolution_breached_at, Ticket.created_at)
        .outerjoin(assignee, assignee.id == Ticket.assignee_id)
        .where(where)
        .order_by(rank, Ticket.priority.desc(), Ticket.resolution_due_at.is_(None), Ticket.resolution_due_at,
                  Ticket.created_at, Ticket.id)
        .limit(limit)
    ).all()
    late = {c.ticket_id: c for c in acknowledge.unacknowledged(session, ticket_ids=[r[0] for r in rows])
            if c.overdue(now)}
    flags = []
    for (tid, summary, prio, status, assignee_id, name, st, ack, first, resp_due, resp_risk, res_due, res_risk,
         res_breached, created) in rows:
        responded = ack is not None or first is not None
        reasons = []
        if res_breached is not None or (res_due is not None and res_due <= now):
            reasons.append("resolution breached")
        elif res_risk is not None and res_risk <= now and Status(status) in RUNNING_STATUSES:
            reasons.append("resolution at risk")
        if not responded and resp_due is not None and resp_due <= now:
            reasons.append("response breached")
        elif not responded and resp_risk is not None and resp_risk <= now and Status(status) in RUNNING_STATUSES:
            reasons.append("response at risk")
        if tid in late:
            reasons.append(f"not acknowledged (due {desk_time(late[tid].due_at, '%H:%M')})")
        due = res_due if res_due is not None else resp_due
        state_value = SlaState(st) if tid not in late or st != SlaState.OK.value else SlaState.AT_RISK
        flags.append(Flag(ticket_id=tid, summary=summary, priority=Priority(prio), status=Status(status),
                          assignee_id=assignee_id, assignee=name, state=state_value, reasons=tuple(reasons),
                          due_at=due, created_at=created))
    return flags


@dataclass(frozen=True)
class BoardTicket:
    """An open ticket as the board lists it for reassignment."""

    id: int
    summary: str
    priority: Priority
    status: Status
    category: str
    category_id: int
    assignee_id: int | None
    created_at: datetime
    version: int
    state: SlaState
    ack_due_at: datetime | None


def open_tickets(session: Session, *, assignee_id: int | None, now: datetime | None = None,
                 limit: int = 200) -> list[BoardTicket]:
    """Open tickets of one person (None: unassigned), highest priority and oldest first."""
    now = now_utc(now)
    state = sla_state_sql(now)
    owner = Ticket.assignee_id.is_(None) if assignee_id is None else Ticket.assignee_id == assignee_id
    rows = session.execute(
        select(Ticket.id, Ticket.summary, Ticket.priority, Ticket.status, Category.name, Ticket.category_id,
               Ticket.assignee_id, Ticket.created_at, Ticket.version, state)
        .join(Category, Category.id == Ticket.category_id)
        .where(owner, Ticket.is_open.is_(True))
        .order_by(Ticket.priority.desc(), Ticket.created_at, Ticket.id)
        .limit(limit)
    ).all()
    # the clocks of the listed tickets only: a person's waiting tickets can number hundreds, each due moment
    # worked out on their calendar in Python (half of the board page's run after a write, at 1M tickets)
    waiting = [r[0] for r in rows if r[3] == Status.ASSIGNED.value and r[6] is not None]
    clocks = {} if assignee_id is None or not waiting else {
        c.ticket_id: c for c in acknowledge.unacknowledged(session, ticket_ids=waiting)}
    out = []
    for tid, summary, prio, status, cat, cat_id, aid, created, version, st in rows:
        clock = clocks.get(tid)
        out.append(BoardTicket(id=tid, summary=summary, priority=Priority(prio), status=Status(status), category=cat,
                               category_id=cat_id, assignee_id=aid, created_at=created, version=version,
                               state=SlaState(st), ack_due_at=clock.due_at if clock else None))
    return out
