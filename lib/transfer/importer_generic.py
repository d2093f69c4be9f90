"""The generic CSV layout: one row per ticket (the columns are documented in docs/cli.md).

A row's ticket is found again by ``external_id`` (source ``csv``). A new one is created with its
history as events: ``created`` at ``created_at``, the assignee, then the status it is in (``resolved``
at ``resolved_at``, ``closed`` at ``closed_at`` ...). A known one whose values differ is updated, each
change an event at import time (status changes at their own time where the row gives one); one whose
values are the same is left alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lib import clock
from lib.directory import RequesterInput, clean_email, find_or_create_requester
from lib.errors import ValidationError
from lib.models import Category, Requester, Ticket, TicketEvent, User, ticket_ref
from lib.ticket_core import clean_line, clean_text
from lib.transfer.import_rows import IGNORED, Item, count_rows, data_rows, norm, one_of, parse_iso_time, refuse
from lib.workflow import OPEN_STATUSES, Channel, ClosureReason, EventKind, Priority, Status

SOURCE = "csv"
ACTOR = "import"
COLUMNS = ("external_id", "created_at", "summary", "description", "category", "priority", "status", "channel",
           "requester_name", "requester_email", "requester_phone", "assignee", "resolved_at", "closed_at",
           "closure_reason", "resolution_notes", "root_cause")
REQUIRED = ("external_id", "created_at", "summary", "category", "priority")
#: What each column becomes (the import preview shows it; docs/cli.md has the values each one takes).
BECOMES = {
    "external_id": "external reference (source csv): finds the ticket again", "created_at": "created time (UTC)",
    "summary": "summary", "description": "description", "category": "category (by name)",
    "priority": "priority", "status": "status (history: resolved, closed events)", "channel": "channel",
    "requester_name": "requester's name", "requester_email": "requester's e-mail (finds the contact)",
    "requester_phone": "requester's phone", "assignee": "assignee (staff username or name)",
    "resolved_at": "resolved time", "closed_at": "closed time", "closure_reason": "closure reason",
    "resolution_notes": "resolution notes", "root_cause": "root cause",
}
DONE = (Status.RESOLVED, Status.AWAITING_CONFIRMATION, Status.CLOSED)
_STATUSES = {**{norm(s.value): s.value for s in Status}, **{norm(s.label): s.value for s in Status}}
_CHANNELS = {**{norm(c.value): c.value for c in Channel}, **{norm(c.label): c.value for c in Channel}}
_REASONS = {**{norm(r.value): r.value for r in ClosureReason}, **{norm(r.label): r.value for r in ClosureReason}}
_PRIORITIES = {**{norm(p.label): int(p) for p in Priority}, **{str(int(p)): int(p) for p in Priority}}


@dataclass
class Row:
    external_id: str
    created_at: datetime
    summary: str
    description: str
    category: Category
    priority: int
    status: str
    channel: str
    requester: RequesterInput | None
    assignee: User | None
    resolved_at: datetime | None
    closed_at: datetime | None
    closure_reason: str | None
    resolution_notes: str | None
    root_cause: str | None


class GenericLayout:
    batch = 500

    def check_header(self, header: list[str]) -> None:
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise ValidationError({"header": f"missing column(s) {', '.join(missing)}; the generic layout is: "
                                             f"{','.join(COLUMNS)}"})

    def count_rows(self, path: Path) -> int:
        return count_rows(path)

    def columns(self, header: list[str]) -> list[tuple[str, str]]:
        return [(name, BECOMES.get(name, IGNORED)) for name in header]

    def items(self, path: Path) -> Iterator[Item]:
        for n, values in data_rows(path):
            yield Item(where=f"row {n}", rows=[(n, values)], key=(values.get("external_id") or "").strip())

    def handle(self, session: Session, item: Item) -> str:
        row = parse(session, item)
        ticket = session.scalar(select(Ticket).where(Ticket.external_source == SOURCE,
                                                     Ticket.external_ref == row.external_id))
        if ticket is None:
            create(session, row)
            return "created"
        return update(session, ticket, row, item.where)


LAYOUT = GenericLayout()


def _text(problems: list[str], fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except ValidationError as exc:
        problems.extend(f"{k} {v}" if not v.startswith(k) else v for k, v in exc.fields.items())
        return None


def parse(session: Session, item: Item) -> Row:
    """Check every cell of the row; refuse it with all its problems at once."""
    n, v = item.rows[0]
    if "__width__" in v:
        raise refuse(item.where, [v["__width__"]])
    problems: list[str] = []
    now = clock.now()

    def cell(name: str) -> str:
        return v.get(name) or ""

    external_id = _text(problems, clean_line, cell("external_id"), "external_id", max_len=255)
    created = parse_iso_time(cell("created_at"), "created_at", problems, now=now)
    if created is None and not cell("created_at").strip():
        problems.append("created_at is required")
    summary = _text(problems, clean_line, cell("summary"), "summary")
    description = _text(problems, clean_text, cell("description"), "description") or ""
    category = None
    if cell("category").strip():
        category = session.scalar(select(Category).where(func.lower(Category.name) == cell("category").strip().lower()))
        if category is None:
            names = list(session.scalars(select(Category.name).where(Category.active.is_(True)).order_by(Category.name)
                                         .limit(12)))
            problems.append(f"category {cell('category').strip()!r} is not a known category (e.g. {', '.join(names)})")
    else:
        problems.append("category is required")
    priority = one_of(cell("priority"), "priority", _PRIORITIES, [p.label for p in Priority], problems)
    if priority is None and not cell("priority").strip():
        problems.append("priority is required")
    status = one_of(cell("status"), "status", _STATUSES, [s.value for s in Status], problems)
    channel = one_of(cell("channel"), "channel", _CHANNELS, [c.value for c in Channel], problems) or Channel.IMPORT.value
    reason = one_of(cell("closure_reason"), "closure_reason", _REASONS, [r.value for r in ClosureReason], problems)
    resolved = parse_iso_time(cell("resolved_at"), "resolved_at", problems, now=now)
    closed = parse_iso_time(cell("closed_at"), "closed_at", problems, now=now)
    requester = None
    name = _text(problems, clean_line, cell("requester_name"), "requester_name", required=False, max_len=120)
    email = _text(problems, clean_email, cell("requester_email"), "requester_email")
    phone = _text(problems, clean_line, cell("requester_phone"), "requester_phone", required=False, max_len=40)
    if name or email or phone:
        requester = RequesterInput(name=name, email=email, phone=phone)
    assignee = None
    if cell("assignee").strip():
        wanted = cell("assignee").strip().lower()
        assignee = session.scalar(select(User).where(func.lower(User.username) == wanted)) or session.scalar(
            select(User).where(func.lower(User.name) == wanted).limit(1))
        if assignee is None:
            problems.append(f"assignee {cell('assignee').strip()!r} is not a staff username or name")
    notes = _text(problems, clean_text, cell("resolution_notes"), "resolution_notes")
    cause = _text(problems, clean_text, cell("root_cause"), "root_cause")
    if status is None and not cell("status").strip():
        status = Status.CLOSED.value if closed else Status.RESOLVED.value if resolved else Status.NEW.value
    if status is not None:
        problems += _consistency(Status(status), created, resolved, closed, reason)
    if status == Status.CLOSED.value and reason is None and not cell("closure_reason").strip():
        reason = ClosureReason.CONFIRMED.value
    if problems:
        raise refuse(item.where, problems)
    return Row(external_id=external_id, created_at=created, summary=summary, description=description,  # type: ignore[arg-type]  # each None added a problem
               category=category, priority=priority, status=status, channel=channel, requester=requester,  # type: ignore[arg-type]  # each None added a problem
               assignee=assignee, resolved_at=resolved, closed_at=closed, closure_reason=reason,
               resolution_notes=notes, root_cause=cause)


def _consistency(status: Status, created: datetime | None, resolved: datetime | None, closed: datetime | None,
                 reason: str | None) -> list[str]:
    problems = []
    if status is Status.CLOSED and closed is None:
        problems.append("closed_at is required for a closed ticket")
    if status is not Status.CLOSED and closed is not None:
        problems.append(f"closed_at is given but the status is {status.value}")
    if status in (Status.RESOLVED, Status.AWAITING_CONFIRMATION) and resolved is None:
        problems.append(f"resolved_at is required for status {status.value}")
    if status in OPEN_STATUSES and resolved is not None:
        problems.append(f"resolved_at is given but the status is {status.value}")
    if status is not Status.CLOSED and reason is not None:
        problems.append(f"closure_reason is given but the status is {status.value}")
    for name, moment in (("resolved_at", resolved), ("closed_at", closed)):
        if moment is not None and created is not None and moment < created:
            problems.append(f"{name} is earlier than created_at")
    if resolved is not None and closed is not None and closed < resolved:
        problems.append("closed_at is earlier than resolved_at")
    return problems


# --- writing ------------------------------------------------------------------------------------------


def _requester(session: Session, data: RequesterInput | None) -> Requester | None:
    if data is None:
        return None
    if data.email:
        return find_or_create_requester(session, data)
    # no e-mail: the same name (and phone, when given) among the contacts without one
    stmt = select(Requester).where(Requester.email.is_(None), Requester.name == (data.name or data.phone))
    if data.phone:
        stmt = stmt.where(Requester.phone == data.phone)
    found = session.scalar(stmt.order_by(Requester.id).limit(1))
    if found is None:
        found = Requester(name=data.name or data.phone, phone=data.phone)
        session.add(found)
        session.flush()
    return found


def _event(session: Session, ticket: Ticket, kind: EventKind, at: datetime, *, frm: str | None = None,
           to: str | None = None, fld: str | None = None, old: object = None, new: object = None,
           body: str | None = None, public: bool = False, meta: dict | None = None) -> None:
    ticket.version += 1
    session.add(TicketEvent(ticket_id=ticket.id, kind=kind.value, actor_id=None, actor_label=ACTOR, from_status=frm,
                            to_status=to, field=fld, old_value=None if old is None else str(old),
                            new_value=None if new is None else str(new), body=body, public=public,
                            meta={**(meta or {}), "source": SOURCE, "v": ticket.version}, occurred_at=at,
                            recorded_at=clock.now()))


def status_path(cur: str, target: str, resolved: datetime | None, closed: datetime | None,
                now: datetime) -> list[tuple[EventKind, str, str, datetime]]:
    """The status events that take a ticket from ``cur`` to ``target`` (reopening first if it must)."""
    S = Status
    done = {s.value for s in DONE}
    is_open = {s.value for s in OPEN_STATUSES}
    out: list[tuple[EventKind, str, str, datetime]] = []
    if cur == target:
        return out
    if cur in done and (target in is_open or cur == S.CLOSED.value):
        to = target if target in is_open else S.IN_PROGRESS.value
        out.append((EventKind.REOPENED, cur, to, now))
        cur = to
        if cur == target:
            return out
    if target in is_open:
        return out + [(EventKind.STATUS_CHANGED, cur, target, now)]
    if cur in is_open:
        if target == S.CLOSED.value and resolved is None:
            return out + [(EventKind.CLOSED, cur, target, closed or now)]
        out.append((EventKind.RESOLVED, cur, S.RESOLVED.value, resolved or now))
        cur = S.RESOLVED.value
    if target == S.AWAITING_CONFIRMATION.value and cur == S.RESOLVED.value:
        out.append((EventKind.STATUS_CHANGED, cur, target, resolved or now))
    elif target == S.RESOLVED.value and cur == S.AWAITING_CONFIRMATION.value:
        out.append((EventKind.STATUS_CHANGED, cur, target, now))
    elif target == S.CLOSED.value:
        out.append((EventKind.CLOSED, cur, target, closed or now))
    return out


def _apply_status(session: Session, ticket: Ticket, row: Row, now: datetime) -> None:
    for kind, frm, to, at in status_path(ticket.status, row.status, row.resolved_at, row.closed_at, now):
        meta: dict[str, object] | None = {"reason": row.closure_reason} if kind is EventKind.CLOSED else None
        if kind is EventKind.REOPENED:
            ticket.reopen_count += 1
            meta = {"reopen_count": ticket.reopen_count}
        _event(session, ticket, kind, at, frm=frm, to=to, meta=meta,
               public=kind in (EventKind.RESOLVED, EventKind.CLOSED, EventKind.REOPENED))
        ticket.status = to
    ticket.is_open = Status(ticket.status) in OPEN_STATUSES
    finished = Status(ticket.status) in DONE
    ticket.resolved_at = row.resolved_at if finished else None
    ticket.closed_at = row.closed_at if ticket.status == Status.CLOSED.value else None
    ticket.closure_reason = row.closure_reason if ticket.status == Status.CLOSED.value else None


def create(session: Session, row: Row) -> Ticket:
    requester = _requester(session, row.requester)
    ticket = Ticket(external_source=SOURCE, external_ref=row.external_id, summary=row.summary,
                    description=row.description, channel=row.channel, requester_id=requester.id if requester else None,
                    category_id=row.category.id, priority=row.priority, status=Status.NEW.value, is_open=True,
                    assignee_id=row.assignee.id if row.assignee else None, resolution_notes=row.resolution_notes,
                    root_cause=row.root_cause, created_at=row.created_at, updated_at=row.created_at, version=0,
                    reopen_count=0)
    session.add(ticket)
    session.flush()
    _event(session, ticket, EventKind.CREATED, row.created_at, to=Status.NEW.value, body=row.description or None,
           public=True, meta={"channel": row.channel, "priority": row.priority, "category": row.category.name})
    if row.assignee is not None:
        _event(session, ticket, EventKind.ASSIGNED, row.created_at, fld="assignee", new=row.assignee.name)
    _apply_status(session, ticket, row, now=row.created_at)
    ticket.updated_at = max([row.created_at] + [t for t in (row.resolved_at, row.closed_at) if t])
    return ticket


def update(session: Session, ticket: Ticket, row: Row, where: str) -> str:
    if ticket.created_at != row.created_at:
        raise refuse(where, [f"created_at {row.created_at.isoformat()} differs from the imported ticket's "
                             f"{ticket.created_at.isoformat()}; a ticket's creation time cannot change"])
    now = clock.now()
    requester = _requester(session, row.requester)
    names = {"category": lambda c: session.get(Category, c).name if c else None,  # type: ignore[union-attr]  # c is an existing category id
             "priority": lambda p: Priority(p).label, "assignee": lambda u: session.get(User, u).name if u else None}  # type: ignore[union-attr]  # u is an existing user id
    changes: list[tuple[str, str, object]] = [(attr, label, new) for attr, label, new in (
        ("summary", "summary", row.summary), ("description", "description", row.description),
        ("channel", "channel", row.channel), ("category_id", "category", row.category.id),
        ("priority", "priority", row.priority), ("requester_id", "requester_id", requester.id if requester else None),
        ("assignee_id", "assignee", row.assignee.id if row.assignee else None),
        ("resolution_notes", "resolution_notes", row.resolution_notes), ("root_cause", "root_cause", row.root_cause),
    ) if getattr(ticket, attr) != new]
    status_same = (ticket.status == row.status and ticket.resolved_at == _when(row, "resolved")
                   and ticket.closed_at == _when(row, "closed") and ticket.closure_reason == row.closure_reason)
    if not changes and status_same:
        return "unchanged"
    touched = session.scalar(select(TicketEvent.id).where(
        TicketEvent.ticket_id == ticket.id,
        (TicketEvent.actor_id.is_not(None)) | (TicketEvent.actor_label != ACTOR)).limit(1))
    if touched is not None:
        raise refuse(where, [f"{ticket_ref(ticket.id)} has been worked on in the desk since it was imported; "
                             "the row's changes are not applied (edit the ticket there)"])
    for attr, label, new in changes:
        old = getattr(ticket, attr)
        show = names.get(label, lambda x: x)
        kind = EventKind.ASSIGNED if label == "assignee" else EventKind.FIELD_CHANGED
        _event(session, ticket, kind, now, fld=label, old=_short(show(old)), new=_short(show(new)))
        setattr(ticket, attr, new)
    if not status_same:
        before = (ticket.status, ticket.resolved_at, ticket.closed_at, ticket.closure_reason)
        _apply_status(session, ticket, row, now)
        if ticket.status == before[0]:  # same status, corrected times or reason
            for label, old, new in (("resolved_at", before[1], ticket.resolved_at),
                                    ("closed_at", before[2], ticket.closed_at),
                                    ("closure_reason", before[3], ticket.closure_reason)):
                if old != new:
                    _event(session, ticket, EventKind.FIELD_CHANGED, now, fld=label, old=_iso(old), new=_iso(new))
    ticket.updated_at = now
    return "updated"


def _when(row: Row, which: str) -> datetime | None:
    finished = Status(row.status) in DONE
    if which == "resolved":
        return row.resolved_at if finished else None
    return row.closed_at if row.status == Status.CLOSED.value else None


def _iso(value: object) -> object:
    return value.isoformat() if isinstance(value, datetime) else value


def _short(value: object, n: int = 80) -> str | None:
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text if len(text) <= n else text[: n - 1] + "…"


__all__ = ["LAYOUT", "COLUMNS", "status_path"]
