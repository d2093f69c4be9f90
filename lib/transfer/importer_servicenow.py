"""The ServiceNow incident event log (the UCI "incident management process enriched event log" layout).

Each row is the state of an incident at ``sys_updated_at``; an incident has several rows. They are
replayed in time order (``sys_updated_at``, then ``sys_mod_count``, then file order) and each row becomes
part of the ticket's history with its own time: a state change is a status event (``acknowledged``,
``resolved``, ``closed``, ``reopened`` or ``status_changed``), a new ``assigned_to`` an ``assigned``
event, a new priority or category a ``field_changed`` event, and a row that changes none of these an
internal note listing what did change. The ticket's own columns (status, acknowledged/resolved/closed
times, reopen count, closure reason) are derived from that same replay, so they agree with the timeline.

Times are day-first (``29/2/2016 01:23`` as published, ``29-02-2016 01:23:45`` as re-saved), taken as UTC;
booleans ``true``/``TRUE``. Both spellings of a row are the same row: its fingerprint is taken over the
values in one spelling, so a re-saved copy of an imported log imports as unchanged.

The file is streamed: a first pass notes each incident's last row, and an incident is imported as soon as
its last row is read. Incidents are looked up a batch at a time (one query for the batch's tickets, one for
their imported rows), and each new ticket is written once, with the columns the replay derived.
The mapping of states, priorities and channels, and the choices made, are in docs/cli.md.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from operator import itemgetter
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from lib import audit_chain, clock
from lib.errors import ValidationError
from lib.models import Category, Requester, Ticket, TicketEvent, User, ticket_ref
from lib.transfer.import_rows import Item, Refused, count_rows, data_rows
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
TIMES = ("sys_updated_at", "opened_at")  # required: a row without them is refused
OPTIONAL_TIMES = ("sys_created_at", "resolved_at", "closed_at")  # kept as text; respelled when they are times
BOOLEANS = ("active", "made_sla", "knowledge", "u_priority_confirmation")
TIME_EXAMPLE = "29/2/2016 01:23"
#: Columns kept only as text (the internal note of a row lists the ones that changed).
OTHER = ("caller_id", "contact_type", "impact", "urgency", "assignment_group", "subcategory", "u_symptom", "location",
         "cmdb_ci", "problem_id", "rfc", "vendor", "caused_by", "closed_code", "resolved_by", "made_sla", "knowledge",
         "u_priority_confirmation", "notify", "reassignment_count", "reopen_count")
FALLBACK_CATEGORY = "Other"
NEW, ACTIVE, RESOLVED, CLOSED, AT_VENDOR = (s.value for s in (S.NEW, S.IN_PROGRESS, S.RESOLVED, S.CLOSED,
                                                                S.WAITING_VENDOR))
DONE = (RESOLVED, CLOSED)
IS_OPEN = frozenset(s.value for s in OPEN_STATUSES)
# Statements built once (no cache key to compute per use).
TICKETS, EVENTS = cast(Table, Ticket.__table__), cast(Table, TicketEvent.__table__)
FIND_CATEGORY = select(Category.id, Category.name).where(func.lower(Category.name) == bindparam("name"))
FIND_USER = select(User.id, User.name).where(User.username == bindparam("username"))
# by name alone: with "email IS NULL" in the query SQLite scans every contact without an e-mail
FIND_CALLER = select(Requester.id, Requester.email).where(Requester.name == bindparam("name")).order_by(Requester.id)
INSERT_PLACEHOLDER = {model: insert(cast(Table, model.__table__)).returning(model.id)
                      for model in (Category, User, Requester)}

# day/month/year with "/" or "-" (the same one twice), then hours:minutes[:seconds]; no zero padding needed
_DAY_FIRST = re.compile(r"(\d{1,2})([/-])(\d{1,2})\2(\d{4})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?")


@lru_cache(maxsize=8192)  # an incident's rows repeat its opened_at, and a busy minute its sys_updated_at
def day_first(text: str) -> tuple[datetime, str]:
    """A day-first time (``29/2/2016 01:23``, ``01-03-2016 09:05:07``) as ``(instant in UTC, canonical text)``;
    the canonical text is ``DD-MM-YYYY HH:MM``, with ``:SS`` when the seconds are not zero. ValueError otherwise."""
    m = _DAY_FIRST.fullmatch(text)
    try:
        if m is None:
            raise ValueError
        day, _, month, year, hour, minute, second = m.groups()
        d, mo, y, h, mi, s = int(day), int(month), int(year), int(hour), int(minute), int(second or 0)
        at = datetime(y, mo, d, h, mi, s, tzinfo=UTC)  # no 31/2, no 25:00
    except ValueError:
        raise ValueError(f"{text!r} is not a day-first date like {TIME_EXAMPLE}") from None
    return at, f"{d:02d}-{mo:02d}-{y:04d} {h:02d}:{mi:02d}" + (f":{s:02d}" if s else "")


def parse_time(text: str) -> datetime:
    """A day-first time, taken as UTC (see :func:`day_first`)."""
    return day_first(text.strip())[0]


@dataclass(slots=True)
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
    other: tuple[str | None, ...] = ()  # the OTHER columns, compared row to row
    closure: str = ClosureReason.CONFIRMED.value  # the closure reason when this row closes the ticket

    def get(self, name: str) -> str | None:
        value = " ".join((self.values.get(name) or "").split())
        return None if value in ("", MISSING) else value


def _respell(values: dict[str, str]) -> None:
    """Write optional times and booleans in one spelling (``DD-MM-YYYY HH:MM``, ``TRUE``/``FALSE``)."""
    for name in OPTIONAL_TIMES:
        text = (values.get(name) or "").strip()
        if text and text != MISSING:
            try:
                values[name] = day_first(text)[1]
            except ValueError:
                pass  # not checked: kept as written
    for name in BOOLEANS:
        flag = values.get(name)
        if flag and flag.lower() in ("true", "false"):
            values[name] = flag.upper()


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
    for name in TIMES:
        text = need(name)
        if text and text != MISSING:
            try:
                times[name], values[name] = day_first(text)
            except ValueError:
                problems.append(f"row {n}: {name} {text!r} is not a day-first date like {TIME_EXAMPLE}")
    if len(problems) > before:
        return None
    _respell(values)
    row = SnRow(n=n, mod=mod, at=times["sys_updated_at"], opened=times["opened_at"], state=state.value,  # type: ignore[union-attr,arg-type]  # each None added a problem
                priority=int(prio), category=None, assignee=None, channel=Channel.IMPORT.value,  # type: ignore[arg-type]  # each None added a problem
                updated_by=None, opened_by=None, values=values,
                hash=hashlib.sha1("\x1f".join(map("=".join, sorted(values.items()))).encode()).hexdigest()[:20])
    row.category, row.assignee = row.get("category"), row.get("assigned_to")
    row.updated_by, row.opened_by = row.get("sys_updated_by"), row.get("opened_by")
    contact = (row.get("contact_type") or "").lower()
    row.channel = CHANNELS.get(contact, Channel.IMPORT).value
    row.other = tuple(map(values.get, OTHER))
    return row


@dataclass(slots=True)
class _Known:
    """A ticket imported before: its id, the fingerprints of its imported rows, and whether the desk worked on it."""

    ticket_id: int
    hashes: set[str] = field(default_factory=set)
    others: bool = False


@dataclass
class _Run:
    """What one import of one file keeps from incident to incident."""

    ids: dict[tuple[str, str], tuple[int, str]] = field(default_factory=dict)  # (kind, name) -> (id, stored name)
    fresh: list[tuple[str, str]] = field(default_factory=list)  # ids made for the incident being written
    upcoming: dict[str, None] = field(default_factory=dict)  # incidents handed out and not yet handled
    session: Session | None = None  # the transaction `known` was read in
    known: dict[str, _Known] = field(default_factory=dict)
    checked: set[str] = field(default_factory=set)


@dataclass
class _Incident(Item):
    run: _Run = field(default_factory=_Run)

    def rolled_back(self) -> None:
        """The batch this incident was in was rolled back: forget the ids made in it and the history read."""
        self.run.ids.clear()
        self.run.fresh = []
        self.run.session = None
        self.run.upcoming[self.key] = None  # looked up again with the rest of the batch, in one query


def _history(session: Session, numbers: list[str], source: str = SOURCE) -> dict[str, _Known]:
    """The tickets of these incidents imported before, with their imported rows (two queries)."""
    found: dict[int, _Known] = {}
    by_number: dict[str, _Known] = {}
    for tid, number in session.execute(select(Ticket.id, Ticket.external_ref)
                                       .where(Ticket.external_source == source, Ticket.external_ref.in_(numbers))):
        found[tid] = by_number[str(number)] = _Known(tid)
    if found:
        for tid, event_source, row_hash, actor_id, label in session.execute(
                select(TicketEvent.ticket_id, TicketEvent.meta["source"].as_string(),
                       TicketEvent.meta["row_hash"].as_string(), TicketEvent.actor_id, TicketEvent.actor_label)
                .where(TicketEvent.ticket_id.in_(list(found)))):
            known = found[tid]
            if event_source == source:
                if row_hash:
                    known.hashes.add(row_hash)
            elif actor_id is not None or label not in (None, "system"):
                known.others = True
    return by_number


def _last_rows(path: Path, key_column: str = "number", delimiter: str = ",") -> dict[str, int]:
    """Incident number -> the row number of its last row (rows numbered as :func:`lib.transfer.import_rows.data_rows` does)."""
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        header = [h.strip() for h in next(reader)]
        col, width = header.index(key_column), len(header)
        return {values[col].strip(): n for n, values in enumerate(reader, start=2) if len(values) == width}


class ServiceNowLayout:
    """The ServiceNow incident log; :mod:`lib.transfer.importer_eventlog` reuses it for any one-row-per-change
    log, overriding what is ServiceNow's own (the columns, the row parser, the texts)."""

    batch = 100
    refuses_before_writing = True  # handle() raises Refused before any write: batches go without savepoints
    source = SOURCE  # Ticket.external_source and the events' meta["source"]
    label = "ServiceNow"  # the actor of events whose row names nobody
    key_column = "number"
    delimiter = ","
    user_prefix = "servicenow-"
    other_columns: tuple[str, ...] = OTHER

    def parse_row(self, n: int, values: dict[str, str], problems: list[str]) -> SnRow | None:
        return _row(n, values, problems)

    def rows(self, path: Path) -> Iterator[tuple[int, dict[str, str]]]:
        return data_rows(path)

    def summary(self, number: str, last: SnRow) -> str:
        return _summary(number, last)

    def description(self, number: str, last: SnRow) -> str:
        return _description(number, last)

    def created_meta(self, number: str, rows: list[SnRow]) -> dict[str, Any]:
        first, last = rows[0], rows[-1]
        meta: dict[str, Any] = {"source": self.source, "number": number, "opened_at": last.opened.isoformat(),
                                "rows": len(rows), "channel": first.channel, "priority": first.priority}
        for name in ("made_sla", "closed_code", "resolved_by", "resolved_at", "closed_at", "reopen_count"):
            if (value := last.get(name)) is not None:
                meta[name] = value
        return meta

    def requester_name(self, last: SnRow) -> str | None:
        return last.get("caller_id")

    def device(self, last: SnRow) -> str | None:
        return last.get("cmdb_ci")

    def changes(self, before: SnRow, after: SnRow) -> str | None:
        return _changes(before, after, self.other_columns)

    def no_change(self, r: SnRow) -> str:
        return f"ServiceNow update {r.mod} with no change"

    def check_header(self, header: list[str]) -> None:
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise ValidationError({"header": f"missing ServiceNow column(s): {', '.join(missing)}"})

    def count_rows(self, path: Path) -> int:
        return count_rows(path)

    def columns(self, header: list[str]) -> list[tuple[str, str]]:
        becomes = {
            "number": "external reference (source servicenow): one ticket per incident",
            "incident_state": "status (each change an event)", "sys_mod_count": "order of the rows",
            "sys_updated_at": "time of the row's event", "opened_at": "created time",
            "priority": "priority (each change an event)", "category": "category (created when new)",
            "assigned_to": "assignee (an inactive placeholder account when new)", "caller_id": "requester (by name)",
            "contact_type": "channel", "sys_updated_by": "who made the row's change", "opened_by": "who created it",
            "cmdb_ci": "device details", "vendor": "vendor name", "resolved_by": "resolution notes",
            "closed_code": "closure note",
        }
        kept = "kept as text in the description or the timeline's notes"
        only_hash = "only in the row's fingerprint (the same row imported again is unchanged)"
        return [(name, becomes.get(name) or (kept if name in OTHER or name in OPTIONAL_TIMES else only_hash))
                for name in header]

    def items(self, path: Path) -> Iterator[Item]:
        """Each incident as soon as its last row is read, in the order incidents first appear in the file."""
        run, last = _Run(), _last_rows(path, self.key_column, self.delimiter)
        groups: OrderedDict[str, list[tuple[int, dict[str, str]]]] = OrderedDict()
        complete: set[str] = set()

        def ready(number: str) -> _Incident:
            rows = groups.pop(number)
            complete.discard(number)
            run.upcoming[number] = None
            where = f"{number} (rows {', '.join(str(n) for n, _ in rows[:3])}{', ...' if len(rows) > 3 else ''})"
            return _Incident(where=where, rows=rows, key=number, run=run)

        for n, values in self.rows(path):
            number = (values.get(self.key_column) or "").strip()
            if "__width__" in values or number in ("", MISSING):
                problem = values.get("__width__") or f"{self.key_column} is missing"
                yield Item(where=f"row {n}", rows=[(n, values)], key=f"?{n}:{problem}")
                continue
            groups.setdefault(number, []).append((n, values))
            if last.get(number, n) <= n:
                complete.add(number)
                while groups and next(iter(groups)) in complete:
                    yield ready(next(iter(groups)))
        while groups:  # only when the file changed between the two passes
            yield ready(next(iter(groups)))

    def handle(self, session: Session, item: Item) -> str:
        if item.key.startswith("?"):
            raise Refused(f"{item.where}: {item.key.split(':', 1)[1]}")
        run = item.run if isinstance(item, _Incident) else _Run()
        known = self._known(session, run, item.key)
        problems: list[str] = []
        rows = [r for n, v in item.rows if (r := self.parse_row(n, v, problems)) is not None]
        seen: dict[str, int] = {}
        for r in rows:  # identical rows stay distinct rows of the history
            seen[r.hash] = seen.get(r.hash, 0) + 1
            if seen[r.hash] > 1:
                r.hash = f"{r.hash}-{seen[r.hash]}"
        if problems:
            raise Refused(f"{item.key}: " + "; ".join(problems) + f" (none of its {len(item.rows)} rows imported)")
        rows.sort(key=lambda r: (r.at, r.mod, r.n))
        if known is not None and known.hashes == {r.hash for r in rows}:
            return "unchanged"
        run.fresh = []
        try:
            if known is None:
                self._create(session, run, item.key, rows)
                return "created"
            return self._update(session, run, item.key, rows, known.ticket_id)
        except BaseException:
            for key in run.fresh:  # rolled back with the incident's savepoint
                run.ids.pop(key, None)
            raise

    def _known(self, session: Session, run: _Run, number: str) -> _Known | None:
        if run.session is not session or number not in run.checked:  # a new batch: read all of it at once
            numbers = [*run.upcoming, number] if number not in run.upcoming else list(run.upcoming)
            run.session, run.checked, run.known = session, set(numbers), _history(session, numbers, self.source)
        run.upcoming.pop(number, None)
        return run.known.get(number)

    # -- lookups (placeholders created on first use) ------------------------------------------------------

    def _remember(self, session: Session, run: _Run, key: tuple[str, str], found: Any, model: Any,
                  values: dict[str, Any]) -> tuple[int, str]:
        if found is None:
            found = (session.execute(INSERT_PLACEHOLDER[model], values).scalar_one(), values["name"])
            run.fresh.append(key)
        run.ids[key] = got = (found[0], found[1])
        return got

    def category(self, session: Session, run: _Run, name: str | None) -> int:
        name = name or FALLBACK_CATEGORY
        got = run.ids.get(("category", name))
        if got is None:
            found = session.execute(FIND_CATEGORY, {"name": name.lower()}).first()
            got = self._remember(session, run, ("category", name), found, Category,
                                 {"name": name[:80], "active": True,
                                  "description": f"Created by the {self.label} import"})
        return got[0]

    def resolver(self, session: Session, run: _Run, name: str) -> tuple[int, str]:
        got = run.ids.get(("user", name))
        if got is None:
            username = (self.user_prefix + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-"))[:64]
            found = session.execute(FIND_USER, {"username": username}).first()
            got = self._remember(session, run, ("user", name), found, User, {
                "username": username, "name": name[:120], "email": None, "password_hash": "!no-login: imported",
                "role": int(Role.TECHNICIAN), "active": False, "capacity": 0})
        return got

    def caller(self, session: Session, run: _Run, name: str | None) -> int | None:
        if not name:
            return None
        got = run.ids.get(("caller", name))
        if got is None:
            found = next(((rid, name[:120]) for rid, email in session.execute(FIND_CALLER, {"name": name[:120]})
                          if email is None), None)
            got = self._remember(session, run, ("caller", name), found, Requester, {"name": name[:120], "email": None})
        return got[0]

    # -- writing --------------------------------------------------------------------------------------------

    def _create(self, session: Session, run: _Run, number: str, rows: list[SnRow]) -> None:
        first, last = rows[0], rows[-1]
        created = min(last.opened, first.at)
        self.category(session, run, first.category)  # the category the history starts from exists too
        requester_id = self.caller(session, run, self.requester_name(last))
        users = {name: self.resolver(session, run, name) for name in dict.fromkeys(r.assignee for r in rows) if name}
        events, columns, cat = _replay(self, number, rows, write=None, users=users)
        events.insert(0, _event(created, EventKind.CREATED, last.opened_by or self.label, to=NEW, public=True,
                                body=columns["description"], meta=self.created_meta(number, rows)))
        columns.update(external_source=self.source, external_ref=number, channel=first.channel,
                       requester_id=requester_id, device_details=self.device(last), created_at=created,
                       updated_at=max(created, last.at),
                       version=len(events), category_id=self.category(session, run, cat))
        ticket_id = _insert(session, TICKETS, [columns], returning_id=True)
        _write_events(session, ticket_id, 0, events)

    def _update(self, session: Session, run: _Run, number: str, rows: list[SnRow], ticket_id: int) -> str:
        version, updated_at = session.execute(select(Ticket.version, Ticket.updated_at)
                                              .where(Ticket.id == ticket_id).with_for_update()).one()
        known = _history(session, [number], self.source).get(number) or _Known(ticket_id)  # again, now that the ticket is locked
        in_file = {r.hash for r in rows}
        if in_file == known.hashes:
            return "unchanged"
        if not known.hashes <= in_file:
            raise Refused(f"{number}: its rows in this file differ from the ones imported before (changed or "
                          f"removed); {ticket_ref(ticket_id)} was not changed")
        if known.others:
            raise Refused(f"{number}: {ticket_ref(ticket_id)} has been worked on in the desk since it was imported; "
                          f"its new {self.label} rows were not added")
        users = {name: self.resolver(session, run, name) for name in dict.fromkeys(r.assignee for r in rows) if name}
        events, columns, cat = _replay(self, number, rows, write=in_file - known.hashes, users=users)
        session.execute(update(Ticket).where(Ticket.id == ticket_id).values(
            version=version + len(events), updated_at=max(updated_at, rows[-1].at),
            category_id=self.category(session, run, cat), **columns))
        _write_events(session, ticket_id, version, events)
        return "updated"


def _replay(layout: ServiceNowLayout, number: str, rows: list[SnRow], *, write: set[str] | None,
            users: dict[str, tuple[int, str]]) -> tuple[list[dict[str, Any]], dict[str, Any], str | None]:
    """Replay the rows in order: the events of all rows (``write=None``) or of the given ones, the ticket's
    columns after the last row, and its category's name."""
    first = rows[0]
    status, assignee, prio, cat = NEW, None, first.priority, first.category
    resolved = closed = ack = closure = None
    reopens, vendor = 0, False
    prev = first
    events: list[dict[str, Any]] = []
    for r in rows:
        out = write is None or r.hash in write
        meta = {"source": layout.source, "row": r.n, "row_hash": r.hash}
        if layout.source == SOURCE:
            meta["sys_mod_count"] = r.mod
        actor = r.updated_by or layout.label
        wrote = False
        if r.assignee != assignee:
            if out:
                events.append(_event(r.at, EventKind.ASSIGNED, actor, fld="assignee", old=assignee,
                                     new=users[r.assignee][1] if r.assignee else None, meta=meta))
            assignee, wrote = r.assignee, True
        for fld, old, new, show in (("priority", prio, r.priority, lambda p: Priority(p).label),
                                    ("category", cat, r.category, lambda c: c)):
            if old != new:
                if out:
                    events.append(_event(r.at, EventKind.FIELD_CHANGED, actor, fld=fld,
                                         old=None if old is None else show(old),
                                         new=None if new is None else show(new), meta=meta))
                wrote = True
        prio, cat = r.priority, r.category
        if r.state != status:
            extra: dict[str, object]
            kind, extra = EventKind.STATUS_CHANGED, {}
            if r.state == CLOSED:
                kind, closed, closure = EventKind.CLOSED, r.at, r.closure
                extra = {"reason": closure, "closed_code": r.get("closed_code")}
            elif status in DONE and r.state in IS_OPEN:
                reopens += 1
                kind, resolved, closed, closure = EventKind.REOPENED, None, None, None
                extra = {"reopen_count": reopens}
            elif r.state == RESOLVED:
                if status != CLOSED:
                    kind = EventKind.RESOLVED
                    resolved = r.at
                closed = closure = None
            elif status == NEW and r.state == ACTIVE:
                kind = EventKind.ACKNOWLEDGED
            if ack is None and status == NEW and r.state != CLOSED:
                ack = r.at
            vendor = vendor or r.state == AT_VENDOR
            if out:
                events.append(_event(r.at, kind, actor, frm=status, to=r.state, meta={**meta, **extra},
                                     public=kind in (EventKind.RESOLVED, EventKind.CLOSED, EventKind.REOPENED),
                                     body=layout.changes(prev, r)))
            status, wrote = r.state, True
        if not wrote and out:
            events.append(_event(r.at, EventKind.INTERNAL_NOTE, actor, meta=meta,
                                 body=layout.changes(prev, r) or layout.no_change(r)))
        prev = r
    last = rows[-1]
    columns = dict(
        status=status, is_open=status in IS_OPEN, assignee_id=users[assignee][0] if assignee else None, priority=prio,
        acknowledged_at=ack, resolved_at=resolved, closed_at=closed, closure_reason=closure, reopen_count=reopens,
        closure_note=f"Closed in {layout.label} ({last.get('closed_code')})" if closure and last.get("closed_code")
        else None,
        resolution_notes=f"Resolved in {layout.label} by {last.get('resolved_by')}" if last.get("resolved_by") else None,
        escalation_level=2 if vendor else 0, vendor_name=last.get("vendor"),
        summary=layout.summary(number, last), description=layout.description(number, last))
    return events, columns, cat


def _event(at: datetime, kind: EventKind, actor: str, *, frm: str | None = None, to: str | None = None,
           fld: str | None = None, old: object = None, new: object = None, body: str | None = None,
           public: bool = False, meta: dict[str, Any]) -> dict[str, Any]:
    return dict(ticket_id=None, kind=kind.value, actor_id=None, actor_label=actor, from_status=frm,
                to_status=to, field=fld, old_value=None if old is None else str(old),
                new_value=None if new is None else str(new), body=body, public=public, meta=dict(meta),
                minutes=None, occurred_at=at, recorded_at=None)


def _write_events(session: Session, ticket_id: int, version: int, events: list[dict[str, Any]]) -> None:
    """All the events of an incident in one bulk INSERT, numbered on from the ticket's ``version``."""
    if not events:
        return
    now = clock.now()
    for v, event in enumerate(events, start=version + 1):
        event["ticket_id"], event["recorded_at"] = ticket_id, now
        event["meta"]["v"] = v
    conn = session.connection()
    audit_chain.link_rows(conn, ticket_id, events, new_ticket=version == 0)  # each event's chain_hash
    _insert(session, EVENTS, events)


def _insert(session: Session, table: Table, rows: list[dict[str, Any]], *, returning_id: bool = False) -> int:
    """INSERT ``rows`` (value dicts with the same keys) into ``table``; with ``returning_id``, one row and its new id.

    On SQLite through the driver (executemany), each value converted by its column type's own bind processor,
    so the stored values are the ones SQLAlchemy would store, without its per-row bookkeeping, which cost more
    than SQLite's own work here. Elsewhere, or for a table with a default computed in Python, through Core."""
    conn = session.connection()
    plan = _plan(table, tuple(rows[0]), conn.dialect) if conn.dialect.name == "sqlite" else None
    if plan is None:
        if returning_id:
            return int(conn.execute(insert(table).returning(table.c.id), rows[0]).scalar_one())
        conn.execute(insert(table), rows)
        return 0
    sql, values_of, processors = plan
    params = []
    for values in rows:
        row = list(values_of(values))
        for i, process in processors:
            row[i] = process(row[i])
        params.append(tuple(row))
    if returning_id:
        return int(conn.exec_driver_sql(sql, params[0]).lastrowid)
    conn.exec_driver_sql(sql, params)
    return 0


@lru_cache(maxsize=8)
def _plan(table: Table, keys: tuple[str, ...], dialect: Dialect) -> tuple[
        str, Callable[[dict[str, Any]], tuple[Any, ...]], tuple[tuple[int, Callable[[Any], Any]], ...]] | None:
    """For value dicts with ``keys``: ``INSERT INTO table (those columns and the ones left out that have a
    constant default)``, the values of a dict in that order, and the columns whose type converts the value
    (position, bind processor). None when a column left out has a default computed in Python."""
    left_out = [c for c in table.columns if c.key not in keys and c.default is not None]
    if any(not getattr(c.default, "is_scalar", False) for c in left_out):
        return None
    cols = [table.c[k] for k in keys] + left_out
    constants = tuple(getattr(c.default, "arg", None) for c in left_out)
    get = itemgetter(*keys) if len(keys) > 1 else (lambda values: (values[keys[0]],))
    quote = dialect.identifier_preparer.quote
    sql = (f"INSERT INTO {quote(table.name)} ({', '.join(quote(c.name) for c in cols)}) "
           f"VALUES ({', '.join('?' for _ in cols)})")
    processors = ((i, c.type.dialect_impl(dialect).bind_processor(dialect)) for i, c in enumerate(cols))
    return (sql, lambda values: (*get(values), *constants),
            tuple((i, p) for i, p in processors if p is not None))


def _changes(before: SnRow, after: SnRow, columns: tuple[str, ...] = OTHER) -> str | None:
    if before.other == after.other:
        return None
    parts = [f"{name}: {old or '?'} → {new or '?'}"
             for name, old, new in zip(columns, before.other, after.other, strict=True) if (old or "") != (new or "")]
    return "; ".join(parts) or None


def _summary(number: str, r: SnRow) -> str:
    what = r.get("u_symptom") or r.get("subcategory") or "incident"
    return f"{number}: {what} ({r.get('category') or 'no category'}, {r.get('subcategory') or 'no subcategory'})"[:200]


def _description(number: str, r: SnRow) -> str:
    lines = [f"Imported from the ServiceNow incident log ({number})."]
    for name in ("caller_id", "location", "impact", "urgency", "assignment_group", "subcategory", "u_symptom",
                 "cmdb_ci", "problem_id", "rfc", "vendor", "caused_by", "made_sla", "closed_code", "resolved_by"):
        if (value := r.get(name)) is not None:
            lines.append(f"{name}: {value}")
    return "\n".join(lines)


LAYOUT = ServiceNowLayout()
