"""The ServiceNow incident event log (the UCI "incident management process enriched event log" layout).

Each row is the state of an incident at ``sys_updated_at``; an incident has several rows. They are
replayed in time order (``sys_updated_at``, then ``sys_mod_count``, then file order) and each row becomes
part of the ticket's history with its own time: a state change is a status event (``acknowledged``,
``resolved``, ``closed``, ``reopened`` or ``status_changed``), a new ``assigned_to`` an ``assigned``
event, a new priority or category a ``field_changed`` event, and a row that changes none of these an
internal note listing what did change. The ticket's own columns (status, acknowledged/resolved/closed
times, reopen count, closure reason) are derived from that same replay, so they agree with the timeline.
The mapping of states, priorities and channels, and the choices made, are in docs/cli.md.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from lib import clock
from lib.errors import ValidationError
from lib.importer import Item, Refused, count_rows, data_rows
from lib.models import Category, Requester, Ticket, TicketEvent, User, ticket_ref
from lib.workflow import OPEN_STATUSES, Channel, ClosureReason, EventKind, Priority, Role, Status

SOURCE = "servicenow"
MISSING = "?"
S = Status
STATES = {
    "New": S.NEW, "Active": S.IN_PROGRESS, "Awaiting User Info": S.WAITING_USER, "Awaiting Evidence": S.WAITING_USER,
    "Awaiting Vendor": S.WAITING_VENDOR, "Awaiting Problem": S.WAITING_VENDOR, "Resolved": S.RESOLVED,
    "Closed": S.CLOSED,
}
PRIORITIES = {"1 - Critical": Priority.CRITICAL, "2 - High": Priority.HIGH, "3 - Moderate": Priority.MEDIUM,
              "4 - Low": Priority.LOW}
CHANNELS = {"phone": Channel.PHONE, "ivr": Channel.PHONE, "email": Channel.EMAIL, "e-mail": Channel.EMAIL,
            "walk-in": Channel.WALK_IN, "walk in": Channel.WALK_IN, "direct opening": Channel.ON_BEHALF}
REQUIRED = ("number", "incident_state", "sys_mod_count", "sys_updated_at", "opened_at", "priority", "caller_id",
            "category", "assigned_to", "contact_type")
#: Columns kept only as text (the internal note of a row lists the ones that changed).
OTHER = ("caller_id", "contact_type", "impact", "urgency", "assignment_group", "subcategory", "u_symptom", "location",
         "cmdb_ci", "problem_id", "rfc", "vendor", "caused_by", "closed_code", "resolved_by", "made_sla", "knowledge",
         "u_priority_confirmation", "notify", "reassignment_count", "reopen_count")
FALLBACK_CATEGORY = "Other"
DONE = (S.RESOLVED.value, S.CLOSED.value)
IS_OPEN = frozenset(s.value for s in OPEN_STATUSES)


def parse_time(text: str) -> datetime:
    """``DD-MM-YYYY HH:MM``, taken as UTC."""
    return datetime.strptime(text.strip(), "%d-%m-%Y %H:%M").replace(tzinfo=UTC)


@dataclass
class SnRow:
    n: int
    mod: int
    at: datetime
    opened: datetime
    state: str
    priority: int
    category: str | None
    assignee: str | None
    channel: str
    updated_by: str | None
    opened_by: str | None
    values: dict[str, str]
    hash: str

    def get(self, name: str) -> str | None:
        value = " ".join((self.values.get(name) or "").split())
        return None if value in ("", MISSING) else value


def _row(n: int, values: dict[str, str], problems: list[str]) -> SnRow | None:
    before = len(problems)

    def need(name: str) -> str:
        value = (values.get(name) or "").strip()
        if value in ("", MISSING):
            problems.append(f"row {n}: {name} is missing")
        return value

    state_text, prio_text = need("incident_state"), need("priority")
    state = STATES.get(state_text)
    if state is None and state_text not in ("", MISSING):
        problems.append(f"row {n}: incident_state {state_text!r} is not one of {', '.join(STATES)}")
    prio = PRIORITIES.get(prio_text)
    if prio is None and prio_text not in ("", MISSING):
        problems.append(f"row {n}: priority {prio_text!r} is not one of {', '.join(PRIORITIES)}")
    mod_text = need("sys_mod_count")
    mod = int(mod_text) if mod_text.isdigit() else None
    if mod is None and mod_text not in ("", MISSING):
        problems.append(f"row {n}: sys_mod_count {mod_text!r} is not a whole number")
    times = {}
    for name in ("sys_updated_at", "opened_at"):
        text = need(name)
        if text and text != MISSING:
            try:
                times[name] = parse_time(text)
            except ValueError:
                problems.append(f"row {n}: {name} {text!r} is not a time like 29-02-2016 01:16")
    if len(problems) > before:
        return None
    row = SnRow(n=n, mod=mod, at=times["sys_updated_at"], opened=times["opened_at"], state=state.value,  # type: ignore[union-attr,arg-type]  # each None added a problem
                priority=int(prio), category=None, assignee=None, channel=Channel.IMPORT.value,  # type: ignore[arg-type]  # each None added a problem
                updated_by=None, opened_by=None, values=values,
                hash=hashlib.sha1("\x1f".join(f"{k}={v}" for k, v in sorted(values.items())).encode()).hexdigest()[:20])
    row.category, row.assignee = row.get("category"), row.get("assigned_to")
    row.updated_by, row.opened_by = row.get("sys_updated_by"), row.get("opened_by")
    contact = (row.get("contact_type") or "").lower()
    row.channel = CHANNELS.get(contact, Channel.IMPORT).value
    return row


class ServiceNowLayout:
    batch = 100

    def __init__(self) -> None:
        self.ids: dict[tuple[str, str], int] = {}  # (kind, name) -> id, checked against the session on use
        self.pending: list[dict] = []  # the events of the incident being imported

    def check_header(self, header: list[str]) -> None:
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise ValidationError({"header": f"missing ServiceNow column(s): {', '.join(missing)}"})

    def count_rows(self, path: Path) -> int:
        return count_rows(path)

    def items(self, path: Path) -> Iterator[Item]:
        groups: dict[str, list[tuple[int, dict[str, str]]]] = {}
        for n, values in data_rows(path):
            number = (values.get("number") or "").strip()
            if "__width__" in values or number in ("", MISSING):
                problem = values.get("__width__") or "number is missing"
                yield Item(where=f"row {n}", rows=[(n, values)], key=f"?{n}:{problem}")
                continue
            groups.setdefault(number, []).append((n, values))
        for number, rows in groups.items():
            yield Item(where=f"{number} (rows {', '.join(str(n) for n, _ in rows[:3])}{', ...' if len(rows) > 3 else ''})",
                       rows=rows, key=number)

    def handle(self, session: Session, item: Item) -> str:
        if item.key.startswith("?"):
            raise Refused(f"{item.where}: {item.key.split(':', 1)[1]}")
        problems: list[str] = []
        rows = [r for n, v in item.rows if (r := _row(n, v, problems)) is not None]
        seen: dict[str, int] = {}
        for r in rows:  # identical rows stay distinct rows of the history
            seen[r.hash] = seen.get(r.hash, 0) + 1
            if seen[r.hash] > 1:
                r.hash = f"{r.hash}-{seen[r.hash]}"
        if problems:
            raise Refused(f"{item.key}: " + "; ".join(problems) + f" (none of its {len(item.rows)} rows imported)")
        rows.sort(key=lambda r: (r.at, r.mod, r.n))
        self.pending = []
        ticket = session.scalar(select(Ticket).where(Ticket.external_source == SOURCE, Ticket.external_ref == item.key))
        if ticket is None:
            self._create(session, item.key, rows)
            outcome = "created"
        else:
            outcome = self._update(session, ticket, item.key, rows)
        self._write_events(session)
        return outcome

    # -- lookups (placeholders created on first use) ------------------------------------------------------

    def _cached(self, session: Session, model, kind: str, name: str):
        known = self.ids.get((kind, name))
        if known is not None:
            with session.no_autoflush:  # pending events need not be written for a lookup
                obj = session.get(model, known)
            if obj is not None:
                return obj
            del self.ids[(kind, name)]  # made in a savepoint that was rolled back
        return None

    def category(self, session: Session, name: str | None) -> Category:
        name = name or FALLBACK_CATEGORY
        cat = self._cached(session, Category, "category", name)
        if cat is None:
            with session.no_autoflush:
                cat = session.scalar(select(Category).where(func.lower(Category.name) == name.lower()))
            if cat is None:
                cat = Category(name=name[:80], active=True, description="Created by the ServiceNow import")
                session.add(cat)
                session.flush()
            self.ids[("category", name)] = cat.id
        return cat

    def resolver(self, session: Session, name: str | None) -> User | None:
        if not name:
            return None
        user = self._cached(session, User, "user", name)
        if user is None:
            username = ("servicenow-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-"))[:64]
            with session.no_autoflush:
                user = session.scalar(select(User).where(User.username == username))
            if user is None:
                user = User(username=username, name=name[:120], email=None, password_hash="!no-login: imported",
                            role=int(Role.TECHNICIAN), active=False, capacity=0)
                session.add(user)
                session.flush()
            self.ids[("user", name)] = user.id
        return user

    def caller(self, session: Session, name: str | None) -> Requester | None:
        if not name:
            return None
        req = self._cached(session, Requester, "caller", name)
        if req is None:
            with session.no_autoflush:
                req = session.scalar(select(Requester).where(Requester.name == name[:120], Requester.email.is_(None))
                                     .order_by(Requester.id).limit(1))
            if req is None:
                req = Requester(name=name[:120], email=None)
                session.add(req)
                session.flush()
            self.ids[("caller", name)] = req.id
        return req

    # -- writing --------------------------------------------------------------------------------------------

    def _create(self, session: Session, number: str, rows: list[SnRow]) -> None:
        last = rows[-1]
        created = min(last.opened, rows[0].at)
        first = rows[0]
        ticket = Ticket(external_source=SOURCE, external_ref=number, summary=_summary(number, last),
                        description=_description(number, last), channel=first.channel, category_id=0,
                        priority=first.priority, status=S.NEW.value, is_open=True, created_at=created,
                        updated_at=created, version=0, reopen_count=0, device_details=last.get("cmdb_ci"))
        ticket.category_id = self.category(session, first.category).id
        caller = self.caller(session, last.get("caller_id"))
        ticket.requester_id = caller.id if caller else None
        session.add(ticket)
        session.flush()
        meta = {"source": SOURCE, "number": number, "opened_at": last.opened.isoformat(),
                "rows": len(rows), "channel": first.channel, "priority": first.priority}
        for name in ("made_sla", "closed_code", "resolved_by", "resolved_at", "closed_at", "reopen_count"):
            if last.get(name) is not None:
                meta[name] = last.get(name)
        self._add(session, ticket, created, EventKind.CREATED, last.opened_by, to=S.NEW.value, public=True,
                  body=ticket.description, meta=meta)
        self._replay(session, ticket, rows, write=None)

    def _update(self, session: Session, ticket: Ticket, number: str, rows: list[SnRow]) -> str:
        imported = set()
        others = False
        for meta, actor_id, label in session.execute(select(TicketEvent.meta, TicketEvent.actor_id,
                                                            TicketEvent.actor_label)
                                                     .where(TicketEvent.ticket_id == ticket.id)):
            if meta and meta.get("source") == SOURCE:
                if meta.get("row_hash"):
                    imported.add(meta["row_hash"])
            elif actor_id is not None or label not in (None, "system"):
                others = True
        in_file = {r.hash for r in rows}
        if in_file == imported:
            return "unchanged"
        if not imported <= in_file:
            raise Refused(f"{number}: its rows in this file differ from the ones imported before (changed or "
                          f"removed); {ticket_ref(ticket.id)} was not changed")
        if others:
            raise Refused(f"{number}: {ticket_ref(ticket.id)} has been worked on in the desk since it was imported; "
                          "its new ServiceNow rows were not added")
        self._replay(session, ticket, rows, write=in_file - imported)
        return "updated"

    def _replay(self, session: Session, t: Ticket, rows: list[SnRow], *, write: set[str] | None) -> None:
        """Replay the rows in order; write the events of all rows (``write=None``) or of the given ones."""
        first = rows[0]
        status, assignee, prio, cat = S.NEW.value, None, first.priority, first.category
        resolved = closed = ack = closure = None
        reopens, vendor = 0, False
        prev_values = first.values
        for r in rows:
            out = write is None or r.hash in write
            meta = {"source": SOURCE, "row": r.n, "sys_mod_count": r.mod, "row_hash": r.hash}
            wrote = False
            if r.assignee != assignee:
                user = self.resolver(session, r.assignee)
                if out:
                    self._add(session, t, r.at, EventKind.ASSIGNED, r.updated_by, fld="assignee", old=assignee,
                              new=user.name if user else None, meta=meta)
                assignee, wrote = r.assignee, True
            for fld, old, new, show in (("priority", prio, r.priority, lambda p: Priority(p).label),
                                        ("category", cat, r.category, lambda c: c)):
                if old != new:
                    if out:
                        self._add(session, t, r.at, EventKind.FIELD_CHANGED, r.updated_by, fld=fld,
                                  old=None if old is None else show(old), new=None if new is None else show(new),
                                  meta=meta)
                    wrote = True
            prio, cat = r.priority, r.category
            if r.state != status:
                extra: dict[str, object]
                kind, extra = EventKind.STATUS_CHANGED, {}
                if r.state == S.CLOSED.value:
                    kind, closed, closure = EventKind.CLOSED, r.at, ClosureReason.CONFIRMED.value
                    extra = {"reason": closure, "closed_code": r.get("closed_code")}
                elif status in DONE and r.state in IS_OPEN:
                    reopens += 1
                    kind, resolved, closed, closure = EventKind.REOPENED, None, None, None
                    extra = {"reopen_count": reopens}
                elif r.state == S.RESOLVED.value:
                    if status != S.CLOSED.value:
                        kind = EventKind.RESOLVED
                        resolved = r.at
                    closed = closure = None
                elif status == S.NEW.value and r.state == S.IN_PROGRESS.value:
                    kind = EventKind.ACKNOWLEDGED
                if ack is None and status == S.NEW.value and r.state != S.CLOSED.value:
                    ack = r.at
                vendor = vendor or r.state == S.WAITING_VENDOR.value
                if out:
                    self._add(session, t, r.at, kind, r.updated_by, frm=status, to=r.state, meta={**meta, **extra},
                              public=kind in (EventKind.RESOLVED, EventKind.CLOSED, EventKind.REOPENED),
                              body=_changes(prev_values, r.values))
                status, wrote = r.state, True
            if not wrote and out:
                self._add(session, t, r.at, EventKind.INTERNAL_NOTE, r.updated_by, meta=meta,
                          body=_changes(prev_values, r.values) or f"ServiceNow update {r.mod} with no change")
            prev_values = r.values
        last = rows[-1]
        user = self.resolver(session, assignee)
        t.status, t.is_open = status, status in IS_OPEN
        t.assignee_id = user.id if user else None
        t.priority, t.category_id = prio, self.category(session, cat).id
        t.acknowledged_at, t.resolved_at, t.closed_at, t.closure_reason = ack, resolved, closed, closure
        t.reopen_count = reopens
        t.closure_note = f"Closed in ServiceNow ({last.get('closed_code')})" if closure and last.get("closed_code") else None
        t.resolution_notes = f"Resolved in ServiceNow by {last.get('resolved_by')}" if last.get("resolved_by") else None
        t.escalation_level = 2 if vendor else 0
        t.vendor_name = last.get("vendor")
        t.updated_at = max(t.updated_at, last.at)
        t.summary, t.description = _summary(t.external_ref or "", last), _description(t.external_ref or "", last)

    def _add(self, session: Session, t: Ticket, at: datetime, kind: EventKind, actor: str | None, *,
             frm: str | None = None, to: str | None = None, fld: str | None = None, old: object = None,
             new: object = None, body: str | None = None, public: bool = False, meta: dict | None = None) -> None:
        t.version += 1
        self.pending.append(dict(
            ticket_id=t.id, kind=kind.value, actor_id=None, actor_label=actor or "ServiceNow", from_status=frm,
            to_status=to, field=fld, old_value=None if old is None else str(old),
            new_value=None if new is None else str(new), body=body, public=public,
            meta={**(meta or {}), "v": t.version}, minutes=None, occurred_at=at, recorded_at=clock.now()))

    def _write_events(self, session: Session) -> None:
        """All the events of an incident in one bulk INSERT (much cheaper than one ORM object each)."""
        if self.pending:
            session.execute(insert(TicketEvent), self.pending)
        self.pending = []


def _changes(before: dict[str, str], after: dict[str, str]) -> str | None:
    parts = [f"{name}: {before.get(name) or '?'} → {after.get(name) or '?'}"
             for name in OTHER if (before.get(name) or "") != (after.get(name) or "")]
    return "; ".join(parts) or None


def _summary(number: str, r: SnRow) -> str:
    what = r.get("u_symptom") or r.get("subcategory") or "incident"
    return f"{number}: {what} ({r.get('category') or 'no category'}, {r.get('subcategory') or 'no subcategory'})"[:200]


def _description(number: str, r: SnRow) -> str:
    lines = [f"Imported from the ServiceNow incident log ({number})."]
    for name in ("caller_id", "location", "impact", "urgency", "assignment_group", "subcategory", "u_symptom",
                 "cmdb_ci", "problem_id", "rfc", "vendor", "caused_by", "made_sla", "closed_code", "resolved_by"):
        if r.get(name) is not None:
            lines.append(f"{name}: {r.get(name)}")
    return "\n".join(lines)


LAYOUT = ServiceNowLayout()
