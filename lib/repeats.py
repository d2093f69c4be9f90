"""Repeat issues: the same requester, the same device, or the same category on the same device model again
within N days (setting ``repeat_window_days``, default 30).

* :func:`notices_for_draft` (intake, before the ticket exists) and :func:`notices_for_ticket` (the ticket
  page) say "3rd ticket for this printer in 30 days".
* :func:`list_repeat_issues` lists the groups for the lead.
* :func:`open_problem_ticket` opens a parent ticket that the repeats link to (``tickets.link``);
  a follow-up is scheduled with ``lib.followups.schedule(..., source=FollowUpSource.REPEAT)``.

Tickets closed as a duplicate are not repeats (they are the same report twice), nor are parents (problem
tickets, major incidents). Every query runs on an
index: tickets by requester or device and creation time, devices by model, tickets by creation time.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.orm import Session

from lib import tickets
from lib.config import get_settings
from lib.desk_settings import MAX_WINDOW_DAYS, REPEAT_WINDOW_KEY, window_days
from lib.errors import HelpdeskError, ValidationError
from lib.models import Category, Device, Requester, Setting, Ticket, setting_row, ticket_ref
from lib.ticket_core import ActorArg, clean_id, clean_line, load_actor, now_utc, require_permission
from lib.workflow import Channel, Permission, Priority, Status

MAX_ROWS = 2000  # tickets read per requester, device or model and window (a notice needs far fewer)
#: Duplicates are the same report twice; problem tickets and major incidents are the parents of repeats.
NOT_A_REPEAT = (Ticket.duplicate_of_id.is_(None), Ticket.is_major_incident.is_(False))


class RepeatKind(enum.StrEnum):
    REQUESTER = "requester"
    DEVICE = "device"
    MODEL = "model"  # the same category on the same device model (other devices of that model count)

    @property
    def label(self) -> str:
        return {"requester": "Same requester", "device": "Same device",
                "model": "Same category on the same model"}[self.value]


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


# --- the setting -------------------------------------------------------------------------------------------


def set_window_days(session: Session, *, actor: ActorArg, days: int, now: datetime | None = None) -> int:
    now = now_utc(now)
    user = load_actor(session, actor)
    require_permission(user, Permission.CONFIGURE_REPEATS, "change the repeat-issue window")
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_WINDOW_DAYS:
        raise ValidationError({"days": f"must be a whole number of days from 1 to {MAX_WINDOW_DAYS}"})
    row = setting_row(session, REPEAT_WINDOW_KEY)
    if row is None:
        session.add(Setting(key=REPEAT_WINDOW_KEY, value={"days": days}, updated_at=now))
    else:
        row.value, row.updated_at = {"days": days}, now
    return days


# --- notices -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RepeatNotice:
    kind: RepeatKind
    count: int  # tickets in the window, this one included
    window_days: int
    others: tuple[int, ...]  # the other tickets, newest first
    subject: str  # "this printer", "this requester", "Printing on HP LaserJet M404"
    latest: bool  # this ticket is the newest of them (then "3rd ticket ...")
    problem_id: int | None = None  # the problem ticket they all link to, if any

    @property
    def message(self) -> str:
        if self.latest:
            return f"{ordinal(self.count)} ticket {self.subject} in {self.window_days} days"
        return f"{self.count} tickets {self.subject} within {self.window_days} days"


def _device_word(device: Device | None) -> str:
    kind = (device.device_type or "").strip().lower() if device is not None else ""
    return kind if kind and len(kind) <= 30 else "device"


def _nearby(session: Session, cond, *, start: datetime, end: datetime, exclude: int | None,
            category_id: int | None = None) -> list[tuple[int, datetime, int | None, int | None]]:
    """Tickets matching ``cond`` created in [start, end], newest first. ``category_id`` is checked on the rows
    found, so the database walks the requester, device or model index rather than the (large) category one."""
    stmt = (select(Ticket.id, Ticket.created_at, Ticket.parent_id, Ticket.device_id, Ticket.category_id)
            .where(cond, Ticket.created_at >= start, Ticket.created_at <= end, *NOT_A_REPEAT))
    if exclude is not None:
        stmt = stmt.where(Ticket.id != exclude)
    rows = session.execute(stmt.order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(MAX_ROWS)).all()
    return [(r[0], r[1], r[2], r[3]) for r in rows if category_id is None or r[4] == category_id][:200]


def _of_model(model: str):
    return Ticket.device_id.in_(select(Device.id).where(Device.make_model == model))


def _notice(kind: RepeatKind, rows, *, at: datetime, days: int, subject: str,
            parent_id: int | None) -> RepeatNotice | None:
    if not rows:
        return None
    parents = {r[2] for r in rows} | {parent_id}
    return RepeatNotice(kind=kind, count=len(rows) + 1, window_days=days, others=tuple(r[0] for r in rows),
                        subject=subject, latest=all(r[1] <= at for r in rows),
                        problem_id=parents.pop() if len(parents) == 1 and None not in parents else None)


def _notices(session: Session, *, requester_id: int | None, device_id: int | None, make_model: str | None,
             category_id: int | None, at: datetime, exclude: int | None, parent_id: int | None,
             until: datetime | None) -> list[RepeatNotice]:
    days = window_days(session)
    start, end = at - timedelta(days=days), until or at
    out: list[RepeatNotice] = []
    if requester_id is not None:
        rows = _nearby(session, Ticket.requester_id == requester_id, start=start, end=end, exclude=exclude)
        n = _notice(RepeatKind.REQUESTER, rows, at=at, days=days, subject="from this requester", parent_id=parent_id)
        if n:
            out.append(n)
    device = session.get(Device, device_id) if device_id is not None else None
    device_rows: list = []
    if device is not None:
        device_rows = _nearby(session, Ticket.device_id == device.id, start=start, end=end, exclude=exclude)
        n = _notice(RepeatKind.DEVICE, device_rows, at=at, days=days, subject=f"for this {_device_word(device)}",
                    parent_id=parent_id)
        if n:
            out.append(n)
        make_model = make_model or device.make_model
    model = " ".join((make_model or "").split())
    if model and category_id is not None:
        rows = _nearby(session, _of_model(model), start=start, end=end, exclude=exclude, category_id=category_id)
        # Only worth its own notice when other devices of the model are involved.
        if rows and any(r[3] != (device.id if device else None) for r in rows):
            category = session.get(Category, category_id)
            subject = f"in {category.name if category else 'this category'} on a {model}"
            n = _notice(RepeatKind.MODEL, rows, at=at, days=days, subject=subject, parent_id=parent_id)
            if n:
                out.append(n)
    return out


def notices_for_draft(session: Session, *, requester_id: int | None = None, device_id: int | None = None,
                      make_model: str | None = None, category_id: int | None = None,
                      now: datetime | None = None) -> list[RepeatNotice]:
    """What intake should point out before the ticket is created (it would be the newest)."""
    now = now_utc(now)
    return _notices(session, requester_id=requester_id, device_id=device_id, make_model=make_model,
                    category_id=category_id, at=now, exclude=None, parent_id=None, until=now)


def notices_for_ticket(session: Session, ticket_id: int, *, now: datetime | None = None) -> list[RepeatNotice]:
    """Repeats around a ticket: N days before it, and any since (for an older ticket, later repeats count too)."""
    now = now_utc(now)
    t = session.get(Ticket, ticket_id)
    if t is None:
        return []
    days = window_days(session)
    until = min(now, t.created_at + timedelta(days=days))
    return _notices(session, requester_id=t.requester_id, device_id=t.device_id, make_model=None,
                    category_id=t.category_id, at=t.created_at, exclude=t.id, parent_id=t.parent_id, until=until)


# --- the lead's list -------------------------------------------------------------------------------------


@dataclass
class RepeatGroup:
    kind: RepeatKind
    key: str  # requester id, device id, or "model|category id"
    label: str
    category: str | None
    count: int
    latest_at: datetime
    ticket_ids: list[int] = field(default_factory=list)  # newest first
    open_count: int = 0
    problem_id: int | None = None  # the parent they all share, if any

    @property
    def message(self) -> str:
        return f"{self.count} tickets in the window"


def list_repeat_issues(session: Session, *, now: datetime | None = None, days: int | None = None,
                       min_count: int = 2, limit: int = 50) -> list[RepeatGroup]:
    """Groups of repeats created within the window, the largest and most recent first."""
    now = now_utc(now)
    days = days or window_days(session)
    since = now - timedelta(days=days)
    base = [Ticket.created_at >= since, Ticket.created_at <= now, *NOT_A_REPEAT]
    n = func.count(Ticket.id)
    groups: list[RepeatGroup] = []
    for rid, name, email, count, latest in session.execute(
        select(Ticket.requester_id, Requester.name, Requester.email, n, func.max(Ticket.created_at))
        .join(Requester, Requester.id == Ticket.requester_id).where(*base)
        .group_by(Ticket.requester_id, Requester.name, Requester.email).having(n >= min_count)
        .order_by(n.desc(), func.max(Ticket.created_at).desc()).limit(limit)
    ):
        groups.append(RepeatGroup(RepeatKind.REQUESTER, str(rid), f"{name}" + (f" <{email}>" if email else ""),
                                  None, int(count), latest))
    for did, tag, model, dtype, count, latest in session.execute(
        select(Ticket.device_id, Device.asset_tag, Device.make_model, Device.device_type, n, func.max(Ticket.created_at))
        .join(Device, Device.id == Ticket.device_id).where(*base)
        .group_by(Ticket.device_id, Device.asset_tag, Device.make_model, Device.device_type).having(n >= min_count)
        .order_by(n.desc(), func.max(Ticket.created_at).desc()).limit(limit)
    ):
        label = " · ".join(x for x in (tag, model, dtype) if x) or f"device {did}"
        groups.append(RepeatGroup(RepeatKind.DEVICE, str(did), label, None, int(count), latest))
    model_key = Device.make_model
    for model, cid, cname, count, devices, latest in session.execute(
        select(model_key, Ticket.category_id, Category.name, n, func.count(func.distinct(Ticket.device_id)),
               func.max(Ticket.created_at))
        .join(Device, Device.id == Ticket.device_id).join(Category, Category.id == Ticket.category_id)
        .where(*base, Device.make_model.is_not(None))
        .group_by(model_key, Ticket.category_id, Category.name)
        .having(n >= min_count).having(func.count(func.distinct(Ticket.device_id)) >= 2)
        .order_by(n.desc(), func.max(Ticket.created_at).desc()).limit(limit)
    ):
        groups.append(RepeatGroup(RepeatKind.MODEL, f"{model}|{cid}", f"{model} ({devices} devices)", cname,
                                  int(count), latest))
    groups.sort(key=lambda g: (g.count, g.latest_at), reverse=True)
    groups = groups[:limit]
    _fill_all(session, groups, base)
    return groups


def _fill_all(session: Session, groups: list[RepeatGroup], base: list) -> None:
    """The tickets of every group: one query per kind of group, on the requester, device and model indexes."""
    cols = (Ticket.id, Ticket.is_open, Ticket.parent_id, Ticket.requester_id, Ticket.device_id, Ticket.category_id,
            Device.make_model)
    rows: dict[RepeatKind, Sequence[Row[*tuple[Any, ...]]]] = {}
    for kind, cond in (
        (RepeatKind.REQUESTER, Ticket.requester_id.in_([int(g.key) for g in groups if g.kind is RepeatKind.REQUESTER])),
        (RepeatKind.DEVICE, Ticket.device_id.in_([int(g.key) for g in groups if g.kind is RepeatKind.DEVICE])),
        (RepeatKind.MODEL, Ticket.device_id.in_(select(Device.id).where(Device.make_model.in_(
            [g.key.rsplit("|", 1)[0] for g in groups if g.kind is RepeatKind.MODEL])))),
    ):
        if not any(g.kind is kind for g in groups):
            continue
        rows[kind] = session.execute(
            select(*cols).outerjoin(Device, Device.id == Ticket.device_id).where(cond, *base)
            .order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(MAX_ROWS * 5)
        ).all()
    for g in groups:
        if g.kind is RepeatKind.REQUESTER:
            mine = [r for r in rows[g.kind] if r[3] == int(g.key)]
        elif g.kind is RepeatKind.DEVICE:
            mine = [r for r in rows[g.kind] if r[4] == int(g.key)]
        else:
            model, cid = g.key.rsplit("|", 1)
            mine = [r for r in rows[g.kind] if r[6] == model and r[5] == int(cid)]
        mine = mine[:50]
        g.ticket_ids = [r[0] for r in mine]
        g.open_count = sum(1 for r in mine if r[1])
        parents = {r[2] for r in mine}
        g.problem_id = parents.pop() if len(parents) == 1 and None not in parents else None


# --- acting on repeats ---------------------------------------------------------------------------------------


@dataclass
class ProblemResult:
    problem: Ticket
    linked: list[int] = field(default_factory=list)
    noted: list[int] = field(default_factory=list)  # closed repeats: a note points to the problem instead
    skipped: dict[int, str] = field(default_factory=dict)


def open_problem_ticket(session: Session, *, actor: int, ticket_ids: list[int], summary: str,
                        description: str = "", category_id: int | None = None,
                        priority: Priority | int | str = Priority.MEDIUM, now: datetime | None = None) -> ProblemResult:
    """Open a problem ticket for repeats and link them to it (a lead's action).

    The repeats become its children (``tickets.link``). A closed ticket cannot be linked (the transition
    table allows linking only before closure): it gets an internal note naming the problem instead, and
    the problem's description lists every repeat. A ticket already under another parent is left there.
    """
    now = now_utc(now)
    user = load_actor(session, actor)
    require_permission(user, Permission.CONFIGURE_REPEATS, "open a problem ticket for repeat issues")
    ids = list(dict.fromkeys(clean_id(i, "tickets") for i in ticket_ids or []))
    if len(ids) < 2:
        raise ValidationError({"tickets": "choose at least two repeat tickets"})
    rows = session.scalars(select(Ticket).where(Ticket.id.in_(ids)).order_by(Ticket.created_at.desc())).unique().all()
    if len(rows) != len(ids):
        missing = sorted(set(ids) - {t.id for t in rows})  # type: ignore[type-var]  # ticket_ids are ints: no None here
        raise ValidationError({"tickets": f"ticket(s) {missing} do not exist"})
    title = clean_line(summary, "summary")
    newest = rows[0]
    requester = next((t.requester_id for t in rows if t.requester_id is not None), None)
    if requester is None:
        raise ValidationError({"tickets": "none of these tickets has a requester to open the problem ticket for"})
    devices = {t.device_id for t in rows}
    prefix = get_settings().ticket_prefix
    listing = "\n".join(f"- {ticket_ref(t.id, prefix)}: {t.summary}" for t in rows)
    body = ((description or "").strip() + "\n\n" if (description or "").strip() else "") + \
        f"Problem ticket for {len(rows)} repeat tickets:\n{listing}"
    problem = tickets.create_ticket(session, actor=actor, now=now, draft=tickets.TicketDraft(
        summary=title or "", description=body, category=category_id or newest.category_id, priority=priority,
        channel=Channel.ON_BEHALF, requester_id=requester, device_id=devices.pop() if len(devices) == 1 else None,
    ))
    result = ProblemResult(problem=problem)
    for t in rows:
        if t.parent_id is not None and t.parent_id != problem.id:
            result.skipped[t.id] = f"already part of {ticket_ref(t.parent_id, prefix)}"
            continue
        if Status(t.status) is Status.CLOSED:
            tickets.internal_note(session, actor=actor, ticket_id=t.id, now=now,
                                  text=f"Repeat issue: see problem ticket {ticket_ref(problem.id, prefix)}.")
            result.noted.append(t.id)
            continue
        try:
            with session.begin_nested():
                tickets.link(session, actor=actor, ticket_id=t.id, parent_id=problem.id, now=now)
            result.linked.append(t.id)
        except HelpdeskError as exc:
            result.skipped[t.id] = str(exc)
    return result
