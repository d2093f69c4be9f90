"""Event logs: one row per change of a case, the shape of process-mining data sets and of most tools' audit
exports (e.g. the BPI Challenge 2013 incident log: ``SR Number``, ``Change Date+Time``, ``Status``,
``Sub Status``, ``Involved ST``, ``Impact``, ``Product``...).

Which column is the case, the time, the status... and how the source's own states map to ours is a small TOML
mapping (:data:`DEFAULT_MAPPING_TOML`, written for the BPI 2013 layout; docs/cli.md has every key). Each row
becomes part of the ticket's history at its own time, replayed exactly as the ServiceNow log is
(:mod:`lib.transfer.importer_servicenow`, whose layout this one extends): a change of status is a status event
(reopening, resolution and closure included), a change of owner an assignment, of priority or category a
field change, and a row that changes none of these an internal note listing what did change. Owners become
inactive placeholder technicians (``eventlog-<name>``) unless an account has that username; categories are
created, mapped, or all "Other", as the mapping says. Re-importing the same log changes nothing; a longer
copy of it appends the new rows.
"""

from __future__ import annotations

import csv
import hashlib
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.orm import Session

from lib.errors import ValidationError
from lib.transfer.importer_servicenow import FIND_USER, MISSING, ServiceNowLayout, SnRow
from lib.workflow import Channel, ClosureReason, Priority, Status

DEFAULT_MAPPING_TOML = '''\
# Event-log import mapping: one row per change of a case (docs/cli.md, "Event logs").
# Written for the BPI Challenge 2013 incident log; copy it and change what differs in yours.

[file]
source = "eventlog"          # kept on each ticket with the case id: two logs with their own ids use two sources
delimiter = ","              # ";" for the BPI files as published

[columns]                    # which column holds what; only case, time and status are required
case = "SR Number"
time = "Change Date+Time"
status = "Status"
sub_status = "Sub Status"    # looked up as "Status/Sub Status" first, then "Status" alone
owner = "Involved ST"        # the assignee; "" = none
priority = "Impact"
category = "Product"
# summary = "..."            # a column with a one-line summary (else [summary] template)
# description = "..."
# requester = "..."          # a requester's name
# actor = "..."              # who made the change (the event's author)

[time]
format = "iso"               # ISO 8601 with or without an offset; or a strptime format like "%d/%m/%Y %H:%M"
timezone = "UTC"             # for times written without an offset

[status]                     # the source's "Status/Sub Status" (or "Status") -> ours:
"Queued/Awaiting Assignment" = "new"       # new, assigned, in_progress, waiting_user, waiting_vendor,
"Accepted/Assigned" = "assigned"           # resolved, closed, or closed:<reason> with a closure reason
"Accepted/In Progress" = "in_progress"     # (confirmed, no_reply, duplicate, cancelled, not_applicable)
"Accepted/Wait" = "waiting_user"
"Accepted/Wait - User" = "waiting_user"
"Accepted/Wait - Customer" = "waiting_user"
"Accepted/Wait - Implementation" = "waiting_vendor"
"Accepted/Wait - Vendor" = "waiting_vendor"
"Completed/Resolved" = "resolved"
"Completed/In Call" = "resolved"
"Completed/Closed" = "closed"
"Completed/Cancelled" = "closed:cancelled"
"Queued" = "new"
"Accepted" = "in_progress"
"Completed" = "resolved"
"Closed" = "closed"
"Unmatched" = "new"

[priority]                   # the source's values -> low, medium, high, critical
Low = "low"
Medium = "medium"
High = "high"
Major = "critical"

[defaults]
priority = "medium"          # when the priority cell is empty
channel = "import"           # email, phone, walk_in, on_behalf, alert or import

[category]
mode = "create"              # create: one category per value; map: through [category.map]; other: all "Other"
unmapped = "Other"           # with mode = "map": the category of values not in the map

[category.map]
# "PROD424" = "Network"

[summary]
template = "{case}: {category}"   # {case}, {status}, {sub_status}, {owner}, {priority}, {category}, or any column
'''

ROLES = ("case", "time", "status", "sub_status", "owner", "priority", "category", "summary", "description",
         "requester", "actor", "opened")
REQUIRED_ROLES = ("case", "time", "status")
OUR_STATUSES = tuple(s.value for s in Status if s != Status.AWAITING_CONFIRMATION)
CATEGORY_MODES = ("create", "map", "other")


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


@dataclass(frozen=True)
class EventLogMapping:
    source: str
    delimiter: str
    columns: dict[str, str]  # role -> column header
    time_format: str  # "iso" or a strptime format
    zone: ZoneInfo
    status: dict[str, tuple[str, str]]  # normalised "status/sub status" or "status" -> (our status, closure reason)
    status_keys: tuple[str, ...]  # as written, for messages
    priority: dict[str, int]  # normalised source value -> our priority
    default_priority: int
    channel: str
    category_mode: str
    category_map: dict[str, str]  # normalised source value -> category name
    category_unmapped: str
    summary_template: str

    def column(self, role: str) -> str | None:
        return self.columns.get(role) or None


def parse_mapping(mapping: str | Mapping[str, Any] | None) -> EventLogMapping:
    """The mapping from TOML text (or from its parsed form, e.g. with command-line overrides applied);
    None = :data:`DEFAULT_MAPPING_TOML`. A ValidationError lists every problem found."""
    if mapping is None or isinstance(mapping, str):
        try:
            data: Mapping[str, Any] = tomllib.loads(DEFAULT_MAPPING_TOML if mapping is None else mapping)
        except tomllib.TOMLDecodeError as exc:
            raise ValidationError({"mapping": f"the mapping is not valid TOML: {exc}"}) from None
    else:
        data = mapping
    problems: list[str] = []

    def table(name: str) -> Mapping[str, Any]:
        value = data.get(name, {})
        if not isinstance(value, Mapping):
            problems.append(f"[{name}] must be a table")
            return {}
        return value

    def text(tbl: str, key: str, default: str) -> str:
        value = table(tbl).get(key, default)
        if not isinstance(value, str):
            problems.append(f"{tbl}.{key} must be text, not {value!r}")
            return default
        return value

    unknown = set(data) - {"file", "columns", "time", "status", "priority", "defaults", "category", "summary"}
    if unknown:
        problems.append(f"unknown section(s) {', '.join(sorted(unknown))}")
    source, delimiter = text("file", "source", "eventlog").strip(), text("file", "delimiter", ",")
    if not source or len(source) > 40:
        problems.append("file.source must be 1 to 40 characters")
    if len(delimiter) != 1:
        problems.append(f"file.delimiter must be one character, not {delimiter!r}")
    columns: dict[str, str] = {}
    for role, header in table("columns").items():
        if role not in ROLES:
            problems.append(f"columns.{role} is not one of {', '.join(ROLES)}")
        elif not isinstance(header, str):
            problems.append(f"columns.{role} must be a column name")
        elif header.strip():
            columns[role] = header.strip()
    for role in REQUIRED_ROLES:
        if role not in columns:
            problems.append(f"columns.{role} is required (the column holding the {role.replace('_', ' ')})")
    time_format = text("time", "format", "iso")
    zone_name = text("time", "timezone", "UTC")
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(f"time.timezone {zone_name!r} is not a time zone (e.g. UTC, Europe/Amsterdam)")
        zone = ZoneInfo("UTC")
    status: dict[str, tuple[str, str]] = {}
    for key, value in table("status").items():
        ours, _, reason = str(value).strip().partition(":")
        if ours not in OUR_STATUSES:
            problems.append(f"status {key!r} = {value!r}: {ours!r} is not one of {', '.join(OUR_STATUSES)}")
        elif reason and (ours != "closed" or reason not in {r.value for r in ClosureReason}):
            problems.append(f"status {key!r} = {value!r}: only closed takes a reason, one of "
                            f"{', '.join(r.value for r in ClosureReason)}")
        else:
            status[_norm(key)] = (ours, reason or ClosureReason.CONFIRMED.value)
    if not status:
        problems.append("[status] maps no state: give at least one \"Source state\" = \"our status\"")
    priority: dict[str, int] = {}
    for key, value in table("priority").items():
        try:
            priority[_norm(key)] = int(Priority.parse(value))
        except (ValueError, KeyError):
            problems.append(f"priority {key!r} = {value!r} is not one of low, medium, high, critical")
    default_priority = int(Priority.MEDIUM)
    try:
        default_priority = int(Priority.parse(text("defaults", "priority", "medium")))
    except (ValueError, KeyError):
        problems.append("defaults.priority is not one of low, medium, high, critical")
    channel = text("defaults", "channel", Channel.IMPORT.value)
    if channel not in {c.value for c in Channel}:
        problems.append(f"defaults.channel {channel!r} is not one of {', '.join(c.value for c in Channel)}")
    mode = text("category", "mode", "create")
    if mode not in CATEGORY_MODES:
        problems.append(f"category.mode {mode!r} is not one of {', '.join(CATEGORY_MODES)}")
    cmap_table = table("category").get("map", {})
    cmap = {_norm(k): str(v).strip() for k, v in cmap_table.items()} if isinstance(cmap_table, Mapping) else {}
    template = text("summary", "template", "{case}: {category}")
    if problems:
        raise ValidationError({"mapping": "; ".join(problems)})
    return EventLogMapping(source=source, delimiter=delimiter, columns=columns, time_format=time_format, zone=zone,
                           status=status, status_keys=tuple(table("status")), priority=priority,
                           default_priority=default_priority, channel=channel, category_mode=mode,
                           category_map=cmap, category_unmapped=text("category", "unmapped", "Other").strip() or "Other",
                           summary_template=template)


class _Cells(dict):
    """format_map values: a name the row does not have is left as written."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


class EventLogLayout(ServiceNowLayout):
    """A one-row-per-change log read through an :class:`EventLogMapping`."""

    label = "Event log"
    user_prefix = "eventlog-"

    def __init__(self, mapping: EventLogMapping) -> None:
        self.mapping = mapping
        self.source = mapping.source
        self.key_column = mapping.columns["case"]
        self.delimiter = mapping.delimiter
        self.other_columns: tuple[str, ...] = ()  # set from the header
        self._time = lru_cache(maxsize=8192)(self._parse_time)

    # -- the file ---------------------------------------------------------------------------------------

    def check_header(self, header: list[str]) -> None:
        missing = [f"{role} ({col!r})" for role, col in self.mapping.columns.items() if col not in header]
        if missing:
            raise ValidationError({"header": f"the mapping names column(s) the file does not have: "
                                             f"{', '.join(missing)}; the file's columns are {', '.join(header)}"})
        used = set(self.mapping.columns.values())
        self.other_columns = tuple(h for h in header if h not in used)

    def columns(self, header: list[str]) -> list[tuple[str, str]]:
        """(file column, what it becomes) for each column of ``header``."""
        roles = {col: role for role, col in self.mapping.columns.items()}
        meaning = {"case": "the ticket (one per case id)", "time": "the time of the change",
                   "status": "the status (through [status])", "sub_status": "the status, with Status (through [status])",
                   "owner": "the assignee (placeholder technician)", "priority": "the priority (through [priority])",
                   "category": f"the category ({self.mapping.category_mode})", "summary": "the summary",
                   "description": "the description", "requester": "the requester", "actor": "who made the change",
                   "opened": "when the case was opened"}
        return [(h, meaning[roles[h]] if h in roles else "kept in the notes of the rows where it changes")
                for h in header]

    def rows(self, path: Path) -> Iterator[tuple[int, dict[str, str]]]:
        if self.delimiter == ",":
            yield from super().rows(path)
            return
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh, delimiter=self.delimiter)
            header = [h.strip() for h in next(reader)]
            width = len(header)
            for n, values in enumerate(reader, start=2):
                if not any(v.strip() for v in values):
                    continue
                if len(values) != width:
                    yield n, {"__width__": f"has {len(values)} cells where the header has {width}"}
                    continue
                yield n, dict(zip(header, values, strict=True))

    def count_rows(self, path: Path) -> int:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            return max(0, sum(1 for _ in csv.reader(fh, delimiter=self.delimiter)) - 1)

    # -- a row ------------------------------------------------------------------------------------------

    def _parse_time(self, text: str) -> datetime:
        m = self.mapping
        if m.time_format == "iso":
            moment = datetime.fromisoformat(text)
        else:
            moment = datetime.strptime(text, m.time_format)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=m.zone)
        return moment.astimezone(UTC)

    def _cell(self, values: dict[str, str], role: str) -> str | None:
        col = self.mapping.column(role)
        if col is None:
            return None
        value = " ".join((values.get(col) or "").split())
        return None if value in ("", MISSING) else value

    def parse_row(self, n: int, values: dict[str, str], problems: list[str]) -> SnRow | None:
        m, before = self.mapping, len(problems)
        at = opened = None
        for role in ("time", "opened"):
            text = self._cell(values, role)
            if text is None:
                if role == "time":
                    problems.append(f"row {n}: {m.columns['time']} is missing")
                continue
            try:
                moment = self._time(text)
            except ValueError:
                form = "an ISO 8601 time like 2012-04-05T09:15:00+02:00" if m.time_format == "iso" \
                    else f"a time in the form {m.time_format}"
                problems.append(f"row {n}: {m.columns[role]} {text!r} is not {form}")
                continue
            if role == "time":
                at = moment
            else:
                opened = moment
        state_text, sub = self._cell(values, "status"), self._cell(values, "sub_status")
        found = None
        if state_text is None:
            problems.append(f"row {n}: {m.columns['status']} is missing")
        else:
            if sub is not None:
                found = m.status.get(_norm(f"{state_text}/{sub}"))
            found = found or m.status.get(_norm(state_text))
            if found is None:
                shown = f"{state_text}/{sub}" if sub is not None else state_text
                problems.append(f"row {n}: status {shown!r} is not in the mapping's [status] "
                                f"(it maps {', '.join(repr(k) for k in m.status_keys[:12])}"
                                f"{', ...' if len(m.status_keys) > 12 else ''})")
        prio_text = self._cell(values, "priority")
        priority = m.default_priority
        if prio_text is not None:
            got = m.priority.get(_norm(prio_text))
            if got is None:
                try:
                    got = int(Priority.parse(prio_text))
                except (ValueError, KeyError):
                    problems.append(f"row {n}: priority {prio_text!r} is not in the mapping's [priority] "
                                    f"(it maps {', '.join(sorted(m.priority)) or 'nothing'})")
            priority = got or priority
        if len(problems) > before or at is None or found is None:
            return None
        category = self._cell(values, "category")
        if m.category_mode == "other":
            category = None
        elif m.category_mode == "map":
            category = m.category_map.get(_norm(category), m.category_unmapped) if category else m.category_unmapped
        owner = self._cell(values, "owner")
        row = SnRow(n=n, mod=0, at=at, opened=opened or at, state=found[0], priority=priority, category=category,
                    assignee=owner, channel=m.channel, updated_by=self._cell(values, "actor"), opened_by=None,
                    values=values, closure=found[1],
                    hash=hashlib.sha1("\x1f".join(map("=".join, sorted(values.items()))).encode()).hexdigest()[:20])
        row.other = tuple(map(values.get, self.other_columns))
        return row

    def no_change(self, r: SnRow) -> str:
        return f"Event log row {r.n}: no change to the mapped columns"

    def resolver(self, session: Session, run: Any, name: str) -> tuple[int, str]:
        """An account whose username is the owner's name, else an inactive placeholder technician."""
        got = run.ids.get(("user", name))
        if got is None and (found := session.execute(FIND_USER, {"username": name}).first()) is not None:
            run.ids[("user", name)] = got = (found[0], found[1])
        return got or super().resolver(session, run, name)

    # -- texts ------------------------------------------------------------------------------------------

    def summary(self, number: str, last: SnRow) -> str:
        given = self._cell(last.values, "summary")
        if given:
            return given[:200]
        cells = _Cells(last.values)
        for role in ROLES:
            cells[role] = self._cell(last.values, role) or ""
        cells["case"] = number
        cells["category"] = last.category or "Other"
        try:
            text = self.mapping.summary_template.format_map(cells)
        except (ValueError, IndexError, AttributeError):
            text = f"{number}: {cells['category']}"
        return " ".join(text.split())[:200] or number

    def description(self, number: str, last: SnRow) -> str:
        given = self._cell(last.values, "description")
        lines = [given] if given else []
        lines.append(f"Imported from an event log ({self.source}, case {number}).")
        for col in self.other_columns:
            value = " ".join((last.values.get(col) or "").split())
            if value and value != MISSING:
                lines.append(f"{col}: {value}")
        return "\n".join(lines)

    def created_meta(self, number: str, rows: list[SnRow]) -> dict[str, Any]:
        return {"source": self.source, "case": number, "rows": len(rows), "channel": rows[0].channel,
                "priority": rows[0].priority}

    def requester_name(self, last: SnRow) -> str | None:
        return self._cell(last.values, "requester")

    def device(self, last: SnRow) -> str | None:
        return None


def make_layout(mapping: str | Mapping[str, Any] | None = None) -> EventLogLayout:
    """The event-log layout for a mapping (TOML text, its parsed form, or None for the default)."""
    return EventLogLayout(parse_mapping(mapping))


def apply_overrides(base: str | None, columns: list[str], statuses: list[str]) -> dict[str, Any]:
    """The mapping ``base`` (TOML text; None = the default) with ``--column ROLE=COLUMN`` and
    ``--status "Source state=ours"`` from the command line applied on top."""
    try:
        data = tomllib.loads(DEFAULT_MAPPING_TOML if base is None else base)
    except tomllib.TOMLDecodeError as exc:
        raise ValidationError({"--mapping": f"the mapping is not valid TOML: {exc}"}) from None
    for option, pairs, section in (("--column", columns, "columns"), ("--status", statuses, "status")):
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep or not key.strip():
                raise ValidationError({option: f"{pair!r} is not NAME=VALUE"})
            data.setdefault(section, {})[key.strip()] = value.strip()
    return data
