"""Who should take a ticket, and why: ranking by skill, workload against capacity, and urgency.

The rule (also in docs/assignment.md):

* **Who is considered**: active staff who are not away (``away_until`` unset or past). Technicians,
  seniors and leads for ordinary tickets; only seniors and leads for escalated tickets.
* **Skill**: the person's level in the ticket's category, 0 (none recorded) to 3 (expert).
* **Load**: their open tickets (new, assigned, in progress, waiting) weighted by priority — the
  setting ``assignment_weights``, default critical 4, high 3, medium 2, low 1 — against their capacity.
  The ticket being placed is not counted. At or over capacity is **full**.
* **Urgent work (High, Critical)**: the most skilled person who still has room; equal skill → the lower
  share of capacity used.
* **Routine work (Low, Medium)**: the least loaded (share of capacity used) among those with the skill;
  equal load → the more skilled. People without the skill come after them.
* **Leads after the team**: a lead with room comes after the technicians and seniors with room, unless none
  of them has room, or the lead has the skill and none of them does ("a lead: after the team members with room").
* **Full people come last**, in the same order, marked "full".

Each candidate carries a one-line explanation a person can check, e.g.
``Networking 3/3; load 6 of 10 = 1 high + 1 medium + 1 low; lowest of 4``.
Everything is read with a handful of queries (GROUP BY), whatever the number of people.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import cast

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from lib import tickets
from lib.audit_log import audit
from lib.desk_settings import MAX_WEIGHT, WEIGHTS_KEY, get_weights
from lib.errors import NotFound, PermissionDenied, ValidationError
from lib.models import Category, Setting, Ticket, User, UserSkill
from lib.ticket_core import ActorArg, SystemActor, load_actor, lock_ticket, now_utc, require_permission
from lib.workflow import EscalationLevel, Permission, Priority, Role

MAX_SKILL = 3
#: Routine work goes to the least loaded person with at least this level in the category.
ADEQUATE_SKILL = 1
URGENT = (Priority.HIGH, Priority.CRITICAL)
#: How many people to list unless the caller asks otherwise.
DEFAULT_LIMIT = 5
AUTO_ASSIGNER = SystemActor(label="auto-assign")


@dataclass(frozen=True)
class Need:
    """What a ticket needs, for a ticket that is not saved yet (the intake form) or a what-if."""

    category_id: int
    priority: Priority | int
    escalation: EscalationLevel | int = EscalationLevel.TECHNICIAN


@dataclass(frozen=True)
class Candidate:
    user_id: int
    name: str
    role: Role
    score: float
    skill: int
    load: int
    capacity: int
    counts: dict[Priority, int]
    full: bool
    explanation: str
    #: The person already holds this ticket.
    current: bool = False

    @property
    def share(self) -> float:
        """Share of capacity used (above 1 when over capacity)."""
        return _share(self.load, self.capacity)


@dataclass(frozen=True)
class Suggestions:
    """The ranked people for one ticket, and what the ranking was based on."""

    candidates: list[Candidate]
    category: str
    priority: Priority
    escalated: bool
    weights: dict[Priority, int]
    considered: int = 0
    excluded: dict[str, int] = field(default_factory=dict)

    @property
    def best(self) -> Candidate | None:
        """The top candidate with room, if any."""
        return next((c for c in self.candidates if not c.full), None)


# --- weights -----------------------------------------------------------------------------------


def save_weights(session: Session, *, actor: int, weights: dict[Priority | str, object],
                 now: datetime | None = None) -> dict[Priority, int]:
    """A lead sets the priority weights of the workload (whole numbers 0..100)."""
    now = now_utc(now)
    lead = load_actor(session, actor)
    require_permission(lead, Permission.CONFIGURE_ASSIGNMENT, "change the assignment weights")
    clean: dict[Priority, int] = {}
    errors: dict[str, str] = {}
    for key, raw in weights.items():
        try:
            p = Priority.parse(key)
        except ValueError:
            errors[str(key)] = "unknown priority"
            continue
        if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= MAX_WEIGHT:
            errors[p.label.lower()] = f"must be a whole number from 0 to {MAX_WEIGHT}"
            continue
        clean[p] = raw
    if errors:
        raise ValidationError(errors)
    merged = {**get_weights(session), **clean}
    value = {p.name.lower(): merged[p] for p in sorted(merged, reverse=True)}
    row = session.get(Setting, WEIGHTS_KEY)
    if row is None:
        session.add(Setting(key=WEIGHTS_KEY, value=value, updated_at=now))
    else:
        row.value, row.updated_at = value, now
    audit(session, actor=lead.username if lead else "system", action="assignment_weights_changed",
          detail=str(value), now=now)
    return merged


def weights_text(weights: dict[Priority, int]) -> str:
    return ", ".join(f"{p.label.lower()} {weights[p]}" for p in sorted(weights, reverse=True))


# --- load --------------------------------------------------------------------------------------


def open_counts_by_assignee(session: Session, user_ids: Iterable[int] | None = None, *,
                            exclude_ticket: int | None = None) -> dict[int, dict[Priority, int]]:
    """Open tickets per person and priority, in one GROUP BY (through the assignee index)."""
    stmt = (select(Ticket.assignee_id, Ticket.priority, func.count())
            .where(Ticket.is_open.is_(True), Ticket.assignee_id.is_not(None))
            .group_by(Ticket.assignee_id, Ticket.priority))
    if user_ids is not None:
        ids = list(user_ids)
        if not ids:
            return {}
        stmt = stmt.where(Ticket.assignee_id.in_(ids))
    if exclude_ticket is not None:
        stmt = stmt.where(Ticket.id != exclude_ticket)
    out: dict[int, dict[Priority, int]] = {}
    for uid, prio, n in session.execute(stmt):
        out.setdefault(cast(int, uid), {})[Priority(prio)] = n  # assignee_id IS NOT NULL in the query
    return out


def weighted_load(counts: dict[Priority, int], weights: dict[Priority, int]) -> int:
    return sum(n * weights.get(p, 0) for p, n in counts.items())


def load_breakdown(counts: dict[Priority, int]) -> str:
    """'1 high + 1 medium + 1 low', highest priority first; 'no open tickets' when empty."""
    parts = [f"{counts[p]} {p.label.lower()}" for p in sorted(counts, reverse=True) if counts[p]]
    return " + ".join(parts) if parts else "no open tickets"


def _share(load: int, capacity: int) -> float:
    if capacity <= 0:
        return float("inf")
    return load / capacity


def is_full(load: int, capacity: int) -> bool:
    return capacity <= 0 or load >= capacity


# --- scoring -----------------------------------------------------------------------------------


def score(*, skill: int, load: int, capacity: int, priority: Priority) -> float:
    """The ranking as one number (higher ranks first). Non-decreasing in skill and in free capacity.

    Urgent:  100 × skill + 99 × free share           (skill first, then room)
    Routine: 300 × (skill ≥ 1) + 99 × free share     (room first among the skilled; skill breaks ties)
    Full people get 1000 less, so they always come last.
    """
    free = 0.0 if capacity <= 0 else max(0.0, 1.0 - load / capacity)
    skill = max(0, min(MAX_SKILL, skill))
    if Priority(priority) in URGENT:
        value = 100.0 * skill + 99.0 * free
    else:
        value = 300.0 * (skill >= ADEQUATE_SKILL) + 99.0 * free
    return value - (1000.0 if is_full(load, capacity) else 0.0)


def _ordinal(n: int) -> str:
    if 10 <= n % 100 <= 20:
        suffix = "th"
    else:
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


@dataclass(frozen=True)
class Standing:
    """One person's position for one ticket, before ranking."""

    user_id: int
    name: str
    role: Role
    capacity: int
    skill: int
    counts: dict[Priority, int]
    load: int
    full: bool
    score: float


def standing(*, user_id: int, name: str, capacity: int, skill: int, counts: dict[Priority, int],
             weights: dict[Priority, int], priority: Priority, role: Role = Role.TECHNICIAN) -> Standing:
    load = weighted_load(counts, weights)
    return Standing(user_id=user_id, name=name, role=role, capacity=capacity, skill=skill, counts=dict(counts),
                    load=load, full=is_full(load, capacity),
                    score=score(skill=skill, load=load, capacity=capacity, priority=priority))


def rank(rows: list[Standing], *, priority: Priority, category: str) -> list[Candidate]:
    """Order people and write each one's explanation (pure: no database)."""
    urgent = priority in URGENT
    staff_room = [r for r in rows if not r.full and r.role < Role.LEAD]
    staff_skilled = any(r.skill >= ADEQUATE_SKILL for r in staff_room)

    def deferred(r: Standing) -> bool:
        """A lead with room comes after the others with room, unless none of them has room, or the lead has the
        skill and none of them does (the lead runs the desk; ordinary work goes to the team first)."""
        return (r.role >= Role.LEAD and not r.full and bool(staff_room)
                and (staff_skilled or r.skill < ADEQUATE_SKILL))

    rows = sorted(rows, key=lambda r: (r.full, deferred(r), -r.score, -r.skill, _share(r.load, r.capacity),
                                       r.name.lower(), r.user_id))
    room = [r for r in rows if not r.full]
    best_skill = max((r.skill for r in room), default=0)
    skilled_room = [r for r in room if r.skill >= ADEQUATE_SKILL]
    out: list[Candidate] = []
    for r in rows:
        head = f"{category} {r.skill}/{MAX_SKILL}" if r.skill else f"no {category} skill recorded"
        load = f"load {r.load} of {r.capacity} = {load_breakdown(r.counts)}"
        if r.full:
            reason = "full"
        elif urgent:
            if r.skill == best_skill and r.skill > 0:
                peers = [p for p in room if p.skill == r.skill]
                reason = "most skilled with room"
                if len(peers) > 1:
                    pos = _load_position(r, peers)
                    reason += f"; {'least' if pos == 1 else _ordinal(pos) + ' least'} loaded of {len(peers)} at " \
                              f"{r.skill}/{MAX_SKILL}"
            elif r.skill > 0:
                reason = f"less skilled than the best with room ({best_skill}/{MAX_SKILL})"
            else:
                reason = "nobody with the skill has room" if best_skill == 0 else "has room"
        elif r.skill >= ADEQUATE_SKILL:
            pos = _load_position(r, skilled_room)
            if len(skilled_room) == 1:
                reason = "the only one with the skill and room"
            else:
                reason = f"{'lowest' if pos == 1 else _ordinal(pos) + ' lowest'} of {len(skilled_room)}"
        else:
            reason = "nobody with the skill has room" if not skilled_room else "has room"
        out.append(Candidate(
            user_id=r.user_id, name=r.name, role=r.role, score=round(r.score, 3), skill=r.skill, load=r.load,
            capacity=r.capacity, counts=dict(r.counts), full=r.full,
            explanation=f"{head}; {load}; {reason}" + ("; a lead: after the team members with room" if deferred(r)
                                                         else ""),
        ))
    return out


def _load_position(row: Standing, peers: list[Standing]) -> int:
    """1 + how many peers carry a strictly lower share of their capacity (ties share a place)."""
    mine = _share(row.load, row.capacity)
    return 1 + sum(1 for p in peers if _share(p.load, p.capacity) < mine)


# --- suggestions -------------------------------------------------------------------------------


def suggest(session: Session, ticket: int | Need, *, now: datetime | None = None,
            weights: dict[Priority, int] | None = None, limit: int | None = DEFAULT_LIMIT,
            exclude: Iterable[int] = (),
            open_counts: Callable[..., dict[int, dict[Priority, int]]] | None = None) -> Suggestions:
    """Rank the people who could take ``ticket`` (an id, or a :class:`Need` for an unsaved one).

    ``limit`` None lists everyone considered. ``exclude``: people to leave out (e.g. those who let the
    acknowledgement lapse). For a saved ticket, the ticket itself is not counted in anyone's load.
    ``open_counts``: what counts the open tickets per person (:func:`open_counts_by_assignee`, or the app
    server's kept copy, lib.board_snapshot.open_counts).
    """
    now = now_utc(now)
    ticket_id: int | None = None
    current: int | None = None
    if isinstance(ticket, Need):
        need = ticket
    else:
        t = session.get(Ticket, ticket) if isinstance(ticket, int) and not isinstance(ticket, bool) else None
        if t is None:
            raise NotFound(f"ticket {ticket!r} does not exist")
        ticket_id, current = t.id, t.assignee_id
        need = Need(category_id=t.category_id, priority=t.priority, escalation=t.escalation_level)
    priority = Priority(int(need.priority))
    escalated = int(need.escalation) >= int(EscalationLevel.SENIOR)
    weights = weights if weights is not None else get_weights(session)
    category = session.scalar(select(Category.name).where(Category.id == need.category_id))
    if category is None:
        raise ValidationError({"category": f"category {need.category_id} does not exist"})
    min_role = Role.SENIOR if escalated else Role.TECHNICIAN
    skipped = set(exclude)

    people = session.execute(
        select(User.id, User.name, User.role, User.capacity, User.away_until,
               func.coalesce(UserSkill.level, 0))
        .outerjoin(UserSkill, and_(UserSkill.user_id == User.id, UserSkill.category_id == need.category_id))
        .where(User.active.is_(True))
    ).all()
    excluded = {"away": 0, "role": 0, "excluded": 0}
    eligible = []
    for uid, name, role, capacity, away_until, level in people:
        if uid in skipped:
            excluded["excluded"] += 1
        elif away_until is not None and away_until > now:
            excluded["away"] += 1
        elif Role(role) < min_role:
            excluded["role"] += 1
        else:
            eligible.append((uid, name, Role(role), int(capacity or 0), int(level or 0)))
    counts = (open_counts or open_counts_by_assignee)(session, [e[0] for e in eligible], exclude_ticket=ticket_id)
    rows = [standing(user_id=uid, name=name, role=role, capacity=capacity, skill=level, counts=counts.get(uid, {}),
                     weights=weights, priority=priority)
            for uid, name, role, capacity, level in eligible]
    ranked = rank(rows, priority=priority, category=category)
    if current is not None:
        ranked = [_mark_current(c) if c.user_id == current else c for c in ranked]
    if limit is not None:
        ranked = ranked[: max(0, limit)]
    return Suggestions(candidates=ranked, category=category, priority=priority, escalated=escalated,
                       weights=dict(weights), considered=len(rows), excluded={k: v for k, v in excluded.items() if v})


def _mark_current(c: Candidate) -> Candidate:
    from dataclasses import replace

    return replace(c, current=True)


def explanation_for(session: Session, ticket_id: int, user_id: int, *, now: datetime | None = None) -> str | None:
    """The explanation line of one person for one ticket (None when they are not eligible)."""
    found = suggest(session, ticket_id, now=now, limit=None)
    return next((c.explanation for c in found.candidates if c.user_id == user_id), None)


def auto_assign(session: Session, *, actor: ActorArg, ticket_id: int, now: datetime | None = None,
                expected_version: int | None = None) -> Candidate | None:
    """Assign an unassigned ticket to the best candidate with room, recording the explanation in the event.

    Any staff member may ask for it (the desk's rule chooses, not the person); on a ticket that already
    has an assignee it is a lead's reassignment. Returns the chosen candidate, or None when nobody has room
    (the ticket stays where it is).
    """
    now = now_utc(now)
    user = load_actor(session, actor)
    ticket = lock_ticket(session, ticket_id)
    if ticket.assignee_id is not None and user is not None and Role(user.role) < Role.LEAD:
        raise PermissionDenied("the ticket already has an assignee; only a lead reassigns it")
    found = suggest(session, ticket.id, now=now, limit=None,
                    exclude=[ticket.assignee_id] if ticket.assignee_id is not None else ())
    best = found.best
    if best is None:
        return None
    by = user.name if user is not None else (actor.label if isinstance(actor, SystemActor) else "system")
    # The rule chooses: a technician's request is carried out as the desk's rule (they may not assign others).
    acting: ActorArg = actor if user is None or Role(user.role) >= Role.LEAD else AUTO_ASSIGNER
    tickets.assign(session, actor=acting, ticket_id=ticket.id, assignee_id=best.user_id,
                   expected_version=ticket.version if expected_version is None else expected_version,
                   note=f"Assigned to the best candidate (asked by {by})", explanation=best.explanation, now=now)
    return best


def reassign(session: Session, *, actor: int, moves: list[tuple[int, int]], assignee_id: int,
             note: str | None = None, now: datetime | None = None) -> list[str | None]:
    """A lead moves tickets ``[(ticket id, version the page showed), ...]`` to one person, each through
    ``tickets.assign`` with that person's explanation for that ticket recorded in the event.

    Returns the explanations (None where the person is not among the ticket's candidates, e.g. a
    technician for an escalated ticket: the lead's choice still stands and the event says so).
    """
    now = now_utc(now)
    out: list[str | None] = []
    for ticket_id, version in moves:
        explanation = explanation_for(session, ticket_id, assignee_id, now=now)
        tickets.assign(session, actor=actor, ticket_id=ticket_id, assignee_id=assignee_id, expected_version=version,
                       note=note, explanation=explanation or "chosen by the lead outside the suggestions", now=now)
        out.append(explanation)
    return out
