"""The lead's board from a kept snapshot of the open tickets, brought up to date by what changed.

:func:`lib.board.load_board` counts every open ticket in SQL on each read: at a million tickets that is 40,000
open rows and 110-160 ms, and the board's cache is keyed on the database's change marker, which a working desk
moves every few seconds. The board's numbers depend on each open ticket's holder, priority, status, SLA times
and acknowledgement clock, and on the time. This module keeps those few columns of every open ticket in the app
server's memory (numpy arrays) and, on each read:

* when nothing was written since the last read (the change marker did not move), uses them as they are;
* otherwise reads again only the tickets named by events it has not seen yet, and patches the arrays (every write
  appends an event: lib.queries.change_marker relies on the same). It looks at the events from :data:`WINDOW` ids
  before the newest one it has seen and remembers which of those it saw: a PostgreSQL transaction that took a
  lower id and committed later is caught that way;
* counts for ``now`` with array operations: breached, at risk, waiting for an acknowledgement and past its
  target, per holder and priority, and picks the flagged tickets; their details (the first 100) are read by id.

The numbers equal :func:`lib.board.load_board`'s exactly (tests/data/test_board_snapshot.py compares them after
each kind of write, on both engines). A snapshot older than :data:`REBUILD_SECONDS` is read again in full in a
background thread (readers go on with the patched one), which bounds what a write without an event (none is
known) could leave behind. The first read of a process builds it: about 1 s at a million tickets.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import BigInteger, Select, and_, cast, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from lib import acknowledge
from lib.board import FLAG_LIMIT, FLAG_PRIORITIES, Board, assemble, flags_of
from lib.db import read_session
from lib.desk_settings import get_weights
from lib.models import Ticket, TicketEvent
from lib.queries import change_marker, marker_top
from lib.ticket_core import now_utc
from lib.workflow import RUNNING_STATUSES, Priority, Status

log = logging.getLogger("helpdesk.board")

#: Event ids before the newest one seen whose tickets are read again at each update (see the module's notes).
WINDOW = 1000
#: A snapshot is read again in full (in the background) after this long: a safety net, not a need.
REBUILD_SECONDS = 600.0
#: Above this many changed tickets an update reads everything again (cheaper than a long IN list).
MAX_PATCH = 5000

_NEVER = np.iinfo(np.int64).max
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NO_ONE = -1
_STATUS_CODE = {s.value: i for i, s in enumerate(Status)}
_RUNNING = np.array([_STATUS_CODE[s.value] for s in RUNNING_STATUSES])
_ASSIGNED = _STATUS_CODE[Status.ASSIGNED.value]
_FLAG_PRIOS = np.array([int(p) for p in FLAG_PRIORITIES])

_TIMES = (Ticket.created_at, Ticket.response_due_at, Ticket.response_risk_at, Ticket.resolution_due_at,
          Ticket.resolution_risk_at)
_FIELDS = ("assignee", "priority", "status", "created", "pending", "resp_due", "resp_risk", "res_due", "res_risk",
           "res_breached", "ack_due")
_DTYPES = {"pending": np.bool_, "res_breached": np.bool_, "priority": np.int16, "status": np.int8}


def _us(value: datetime | None) -> int:
    if value is None:
        return _NEVER
    return (value - _EPOCH) // timedelta(microseconds=1)


def _at(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=int(us))


@dataclass
class Snapshot:
    """The open tickets' board columns, one array per column, plus where each ticket id sits."""

    ids: np.ndarray
    cols: dict[str, np.ndarray]
    live: np.ndarray
    where: dict[int, int] = field(default_factory=dict)
    marker: int = 0
    top: int = 0
    built: float = 0.0
    #: The ids of the newest events (within :data:`WINDOW` of ``top``) whose tickets are in the arrays.
    seen: set[int] = field(default_factory=set)

    @classmethod
    def empty(cls) -> Snapshot:
        return cls(ids=np.zeros(0, np.int64), cols={f: np.zeros(0, _DTYPES.get(f, np.int64)) for f in _FIELDS},
                   live=np.zeros(0, np.bool_))

    def put(self, rows: Sequence[tuple], gone: Iterable[int]) -> None:
        """Set the rows (id first, then :data:`_FIELDS`) and drop the ``gone`` ids (closed or deleted)."""
        for tid in gone:
            at = self.where.pop(tid, None)
            if at is not None:
                self.live[at] = False
        fresh = []
        for row in rows:
            at = self.where.get(row[0])
            if at is None:
                fresh.append(row)
                continue
            for name, value in zip(_FIELDS, row[1:], strict=True):
                self.cols[name][at] = value
            self.live[at] = True
        if fresh:
            start = len(self.ids)
            self.ids = np.concatenate([self.ids, np.array([r[0] for r in fresh], np.int64)])
            for i, name in enumerate(_FIELDS, start=1):
                added: np.ndarray = np.array([r[i] for r in fresh], _DTYPES.get(name, np.int64))
                self.cols[name] = np.concatenate([self.cols[name], added])
            self.live = np.concatenate([self.live, np.ones(len(fresh), np.bool_)])
            for k, row in enumerate(fresh):
                self.where[row[0]] = start + k
        if len(self.live) > 1000 and (~self.live).sum() > len(self.live) // 4:
            self._compact()

    def _compact(self) -> None:
        keep = self.live
        self.ids = self.ids[keep]
        self.cols = {k: v[keep] for k, v in self.cols.items()}
        self.live = np.ones(len(self.ids), np.bool_)
        self.where = {int(t): i for i, t in enumerate(self.ids)}


_lock = threading.Lock()
_kept: dict[str, Snapshot] = {}


def clear() -> None:
    """Forget every kept snapshot (tests; a restore of the database)."""
    with _lock:
        _kept.clear()


def _epoch_us(dialect: str, column: Any) -> ColumnElement[int]:
    """``column`` as epoch microseconds, computed by the database (:data:`_NEVER` for NULL): 40,000 rows of five
    times made into Python datetimes took 1.2 s. SQLite stores ``YYYY-MM-DD HH:MM:SS.ffffff`` (lib.models)."""
    if dialect == "sqlite":
        us = (cast(func.strftime("%s", column), BigInteger) * 1_000_000
              + cast(func.substr(column, 21, 6), BigInteger))
    else:
        us = cast(func.extract("epoch", column) * 1_000_000, BigInteger)
    return func.coalesce(us, _NEVER)


@functools.cache
def _columns(dialect: str) -> Select:
    """The board columns' SELECT, built once per engine kind: building its five time expressions took 1 ms, on
    every page run after a write (the assignment suggestions patch the snapshot)."""
    return select(Ticket.id, Ticket.is_open, Ticket.assignee_id, Ticket.priority, Ticket.status,
                  and_(Ticket.acknowledged_at.is_(None), Ticket.first_response_at.is_(None)),
                  Ticket.resolution_breached_at.is_not(None), *(_epoch_us(dialect, c) for c in _TIMES))


def _read(session: Session, ticket_ids: list[int] | None) -> tuple[list[tuple], list[int]]:
    """The board columns of the open tickets (all, or those of ``ticket_ids``), and those ids no longer open."""
    stmt = _columns(session.get_bind().dialect.name)
    stmt = stmt.where(Ticket.is_open.is_(True)) if ticket_ids is None else stmt.where(Ticket.id.in_(ticket_ids))
    rows, gone = [], []
    seen: set[int] = set()
    for (tid, is_open, assignee, prio, status, pending, res_breached, created, resp_due, resp_risk, res_due,
         res_risk) in session.execute(stmt):
        seen.add(tid)
        if not is_open:
            gone.append(tid)
            continue
        rows.append([tid, _NO_ONE if assignee is None else assignee, prio, _STATUS_CODE[status], created,
                     bool(pending), resp_due, resp_risk, res_due, res_risk, bool(res_breached), _NEVER])
    if ticket_ids is not None:
        gone.extend(t for t in ticket_ids if t not in seen)  # deleted
    waiting = [r[0] for r in rows if r[3] == _ASSIGNED and r[1] != _NO_ONE]
    if waiting:
        clocks = acknowledge.unacknowledged(session, ticket_ids=waiting if ticket_ids is not None else None)
        due = {c.ticket_id: c.due_at for c in clocks}
        for r in rows:
            if r[0] in due:
                r[-1] = _us(due[r[0]])
    return [tuple(r) for r in rows], gone


def _build(session: Session, marker: int, top: int) -> Snapshot:
    snap = Snapshot.empty()
    snap.seen = set(session.scalars(select(TicketEvent.id).where(TicketEvent.id > top - WINDOW)))
    rows, _ = _read(session, None)
    snap.put(rows, ())
    snap.marker, snap.top, snap.built = marker, top, time.monotonic()
    return snap


def current(session: Session, *, marker: int | None = None) -> Snapshot:
    """This database's snapshot, brought up to date: built on first use; after :data:`REBUILD_SECONDS` built again
    in a background thread while this one goes on being patched, so no reader waits for the full read.
    ``marker``: the change marker when the caller has just read it (lib.queries.change_marker)."""
    key = str(session.get_bind().engine.url)
    marker = change_marker(session) if marker is None else marker
    with _lock:
        snap = _kept.get(key)
        if snap is not None and time.monotonic() - snap.built >= REBUILD_SECONDS:
            _rebuild_later(session.get_bind().engine, key)
        if snap is not None and snap.marker == marker:
            return snap
    top = marker_top(marker)  # the newest event id, as the marker counted it
    with _lock:
        snap = _kept.get(key)
        if snap is not None and top < snap.top:
            snap = None  # the database was replaced: its events start lower
        elif snap is not None and snap.marker != marker:
            # A primary-key range (asked for DISTINCT ticket ids, SQLite walks a ticket_id index over every event
            # instead: 590 ms at 1M tickets); only the tickets of events not seen before are read again. SQLite
            # commits one writer at a time, so its ids become visible in order: only the ids past the newest seen
            # can be new there. On PostgreSQL a lower id can commit late: the last WINDOW ids are looked at.
            since = snap.top if session.get_bind().dialect.name == "sqlite" else snap.top - WINDOW
            recent = session.execute(select(TicketEvent.id, TicketEvent.ticket_id)
                                     .where(TicketEvent.id > since)).all()
            changed = list(dict.fromkeys(tid for eid, tid in recent if eid not in snap.seen))
            if len(changed) > MAX_PATCH:
                snap = None
            else:
                rows, gone = _read(session, changed)
                snap.put(rows, gone)
                snap.marker, snap.top = marker, max(top, snap.top)
                snap.seen = {eid for eid in (*snap.seen, *(e for e, _ in recent)) if eid > snap.top - WINDOW}
        if snap is None:
            snap = _build(session, marker, top)
        _kept[key] = snap
        return snap


_rebuilding: set[str] = set()


def _rebuild_later(engine: Engine, key: str) -> None:
    """Build this database's snapshot afresh in a thread and put it in place of the patched one (``_lock`` held)."""
    if key in _rebuilding:
        return
    _rebuilding.add(key)

    def run() -> None:
        try:
            with read_session(engine) as s:
                marker = change_marker(s)
                top = s.scalar(select(func.max(TicketEvent.id))) or 0
                fresh = _build(s, marker, top)
            with _lock:
                _kept[key] = fresh  # the next read patches it with whatever was written meanwhile
        except Exception:  # noqa: BLE001 - the patched snapshot stays in use; the next read tries again
            log.exception("rebuilding the board's snapshot failed")
        finally:
            with _lock:
                _rebuilding.discard(key)

    threading.Thread(target=run, name="board-snapshot", daemon=True).start()


def open_counts(session: Session, user_ids: Iterable[int] | None = None, *, exclude_ticket: int | None = None,
                marker: int | None = None) -> dict[int, dict[Priority, int]]:
    """:func:`lib.assignment.open_counts_by_assignee` (open tickets per person and priority), counted from the kept
    snapshot: the assignment suggestions after a write, without a GROUP BY over every open ticket."""
    snap = current(session, marker=marker)
    with _lock:
        keep = snap.live & (snap.cols["assignee"] != _NO_ONE)
        if exclude_ticket is not None:
            keep &= snap.ids != exclude_ticket
        assignee, prio = snap.cols["assignee"][keep], snap.cols["priority"][keep]
    if user_ids is not None:
        ids = np.fromiter(user_ids, np.int64)
        if not len(ids):
            return {}
        inside = np.isin(assignee, ids)
        assignee, prio = assignee[inside], prio[inside]
    out: dict[int, dict[Priority, int]] = {}
    keys, n = np.unique(assignee.astype(np.int64) * 16 + prio, return_counts=True)
    for k, count in zip(keys.tolist(), n.tolist(), strict=True):
        uid, p = divmod(k, 16)
        out.setdefault(uid, {})[Priority(p)] = count
    return out


def load_board(session: Session, *, now: datetime | None = None, weights: dict[Priority, int] | None = None,
               marker: int | None = None) -> Board:
    """:func:`lib.board.load_board`'s board, counted from the kept snapshot (``marker``: as for :func:`current`)."""
    now = now_utc(now)
    weights = weights if weights is not None else get_weights(session)
    snap = current(session, marker=marker)
    with _lock:  # another session may patch the arrays meanwhile: count on one consistent copy
        live = snap.live.copy()
        ids = snap.ids[live]
        c = {k: v[live] for k, v in snap.cols.items()}
    t = _us(now)
    pending = c["pending"]
    breached = c["res_breached"] | (c["res_due"] <= t) | (pending & (c["resp_due"] <= t))
    running = np.isin(c["status"], _RUNNING)
    at_risk = ~breached & running & ((c["res_risk"] <= t) | (pending & (c["resp_risk"] <= t)))
    waiting = (c["status"] == _ASSIGNED) & (c["assignee"] != _NO_ONE)
    late = waiting & (c["ack_due"] <= t)

    groups = []
    if len(ids):
        key = c["assignee"].astype(np.int64) * 16 + c["priority"]
        uniq, inv = np.unique(key, return_inverse=True)
        n = np.bincount(inv)
        n_breached = np.bincount(inv, weights=breached)
        n_risk = np.bincount(inv, weights=at_risk)
        n_waiting = np.bincount(inv, weights=waiting)
        oldest = np.full(len(uniq), _NEVER, np.int64)
        np.minimum.at(oldest, inv, c["created"])
        for g, k in enumerate(uniq.tolist()):
            assignee, prio = divmod(k, 16)
            groups.append((None if assignee == _NO_ONE else assignee, prio, int(n[g]), int(n_breached[g]),
                           int(n_risk[g]), int(n_waiting[g]), _at(oldest[g])))
    late_per: dict[int, int] = {}
    for uid, count in zip(*np.unique(c["assignee"][late], return_counts=True), strict=True):
        late_per[int(uid)] = int(count)

    flagged = np.isin(c["priority"], _FLAG_PRIOS) & (breached | at_risk | late)
    total = int(flagged.sum())
    flags = []
    if total:
        rank = np.where(breached, 0, np.where(at_risk, 1, 2))[flagged]
        res_due = c["res_due"][flagged]
        order = np.lexsort((ids[flagged], c["created"][flagged], res_due, res_due == _NEVER,
                            -c["priority"][flagged].astype(np.int64), rank))
        first = ids[flagged][order[:FLAG_LIMIT]].tolist()
        flags = flags_of(session, Ticket.id.in_(first), now=now, limit=FLAG_LIMIT)
    flagged_late = late & np.isin(c["priority"], _FLAG_PRIOS)
    totals = (int(waiting.sum()), int(late.sum()), int(flagged_late.sum()))
    return assemble(session, now=now, weights=weights, groups=groups, late=late_per, flags=flags,
                    flags_total=total, totals=totals)


__all__ = ["REBUILD_SECONDS", "WINDOW", "clear", "current", "load_board"]
