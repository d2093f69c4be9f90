"""What the metrics read about closed days, kept between page runs until something changes those days.

A working desk writes all the time, but nearly every write concerns now: a note, a reply, a new ticket, a
resolution. The counts, times and backlog of days gone by change only when a write reaches back: a priority,
category, assignee or channel changed on an older ticket, a reopening (it clears an old resolution), a breach
recorded on an older ticket, a backdated import, a deletion. Triggers count exactly those writes
(:func:`ddl`); every range read of :mod:`lib.metrics.measures` is split at an *edge* (:func:`edge_us`, a UTC
midnight at least 36 hours back): the part before it is kept here, process-wide, under the database's
identity and that count (:func:`version`), and only the part after it is read again.

The two clocks: a write counts as reaching back when it touches a time more than 30 hours before the
database's clock (:data:`WRITE_MARGIN_US`); a reader's edge lies at least 36 hours before the app's clock
(:data:`READ_LAG_US`). Every write that can change the kept part is counted, with 6 hours to spare for clocks
that disagree (an app server's against the database server's).

Storage per engine:

* SQLite: one row ``metric_past (id, token, version)``; the triggers add 1 to ``version`` (writers run one
  at a time there, so the row is never contended).
* PostgreSQL: the triggers append one row per transaction to ``metric_past_log`` (a per-transaction setting
  remembers that it was done), so writers never wait for each other on a shared row; the version is the
  log's row count with its highest id (a row commits with its transaction, so the count moves exactly when a
  reaching-back change becomes visible).

The version is read before any kept part is used in a transaction: whatever is read after it is at least as
new, so a part is never kept under a version older than its data.
"""

from __future__ import annotations

import sys
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import text
from sqlalchemy.orm import Session

from lib import clock
from lib.models import BACKLOG_EVENT_PREDICATE

PAST = "metric_past"
PAST_LOG = "metric_past_log"
DAY_US = 86_400_000_000
HOUR_US = 3_600_000_000
#: a write reaching further back than this before the database's clock is counted
WRITE_MARGIN_US = 30 * HOUR_US
#: the kept part ends at the UTC midnight at least this long before the reader's clock
READ_LAG_US = 36 * HOUR_US
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: ticket_metrics times; every other column except is_open (a property of now) is what a time is counted by
TIMES = ("created_us", "acknowledged_us", "first_response_us", "responded_us", "resolved_us", "closed_us")
DIMENSIONS = ("priority", "category_id", "assignee_id", "channel", "closure_reason", "reopen_count",
              "escalation_level", "sla_target", "response_breached", "resolution_breached", "satisfaction",
              "requester_id", "device_id", "is_duplicate", "response_tally", "resolution_tally", "closure_tally_a",
              "closure_tally_b", "first_contact")

#: keep at most this many parts, and at most this many bytes of them (a 52-week part of four duration columns is a
#: few MB): the least recently used go first
MAX_ENTRIES = 400
MAX_BYTES = 256 * 1024 * 1024
_lock = threading.Lock()
_parts: OrderedDict[Hashable, Any] = OrderedDict()
_sizes: dict[Hashable, int] = {}
_held = 0  # bytes of the kept parts (as :func:`size` counts them)
#: enabled unless a test or a benchmark measures the reads without it
enabled = True


# --- the triggers ---------------------------------------------------------------------------------------------


def _threshold(dialect: str) -> str:
    if dialect == "postgresql":
        now = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS bigint)"
    else:
        now = "(CAST(strftime('%s', 'now') AS INTEGER) * 1000000)"
    return f"({now} - {WRITE_MARGIN_US})"


def _reaches_back(dialect: str, op: str) -> str:
    """The condition (on OLD and NEW of a ticket_metrics row) under which a change reaches back."""
    th = _threshold(dialect)
    distinct = "IS DISTINCT FROM" if dialect == "postgresql" else "IS NOT"
    if op == "INSERT":
        return " OR ".join(f"NEW.{t} < {th}" for t in TIMES)
    if op == "DELETE":
        return " OR ".join(f"OLD.{t} < {th}" for t in TIMES)
    dims = " OR ".join(f"OLD.{d} {distinct} NEW.{d}" for d in DIMENSIONS)
    old_times = " OR ".join(f"OLD.{t} < {th}" for t in TIMES)
    moved = " OR ".join(f"(OLD.{t} {distinct} NEW.{t} AND (OLD.{t} < {th} OR NEW.{t} < {th}))" for t in TIMES)
    return f"(({dims}) AND ({old_times})) OR {moved}"


def _event_counts(row: str) -> str:
    """The status and reopen events the backlog and the reopen counts read."""
    pred = BACKLOG_EVENT_PREDICATE.replace("to_status", f"{row}.to_status").replace("from_status", f"{row}.from_status")
    return f"(({pred}) OR {row}.kind = 'reopened')"


def ddl(dialect: str) -> list[str]:
    """Triggers counting the writes that reach back (on ticket_metrics and ticket_events)."""
    if dialect == "postgresql":
        bump = (f"IF current_setting('helpdesk.past_counted', true) IS DISTINCT FROM '1' THEN "
                f"PERFORM set_config('helpdesk.past_counted', '1', true); INSERT INTO {PAST_LOG} DEFAULT VALUES; "
                f"END IF;")
        th = _threshold(dialect)
        return [
            f"CREATE OR REPLACE FUNCTION metric_past_count() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            f"BEGIN\n  {bump}\n  RETURN NULL;\nEND $$",
            "CREATE OR REPLACE FUNCTION metric_past_inserted() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            "BEGIN\n  IF EXISTS (SELECT 1 FROM new_rows n WHERE "
            + " OR ".join(f"n.{t} < {th}" for t in TIMES)
            + f") THEN\n    {bump}\n  END IF;\n  RETURN NULL;\nEND $$",
            f"CREATE OR REPLACE FUNCTION metric_past_events() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            f"BEGIN\n  IF EXISTS (SELECT 1 FROM new_rows n WHERE n.occurred_at < clock_timestamp() - interval "
            f"'{WRITE_MARGIN_US // HOUR_US} hours' AND {_event_counts('n')}) THEN\n    {bump}\n  END IF;\n"
            f"  RETURN NULL;\nEND $$",
            "CREATE TRIGGER metric_past_insert AFTER INSERT ON ticket_metrics REFERENCING NEW TABLE AS new_rows "
            "FOR EACH STATEMENT EXECUTE FUNCTION metric_past_inserted()",
            f"CREATE TRIGGER metric_past_update AFTER UPDATE ON ticket_metrics FOR EACH ROW "
            f"WHEN ({_reaches_back(dialect, 'UPDATE')}) EXECUTE FUNCTION metric_past_count()",
            f"CREATE TRIGGER metric_past_delete AFTER DELETE ON ticket_metrics FOR EACH ROW "
            f"WHEN ({_reaches_back(dialect, 'DELETE')}) EXECUTE FUNCTION metric_past_count()",
            "CREATE TRIGGER metric_past_events AFTER INSERT ON ticket_events REFERENCING NEW TABLE AS new_rows "
            "FOR EACH STATEMENT EXECUTE FUNCTION metric_past_events()",
        ]
    bump = f"BEGIN UPDATE {PAST} SET version = version + 1; END"
    return [
        f"CREATE TRIGGER metric_past_insert AFTER INSERT ON ticket_metrics WHEN {_reaches_back(dialect, 'INSERT')} {bump}",
        f"CREATE TRIGGER metric_past_update AFTER UPDATE ON ticket_metrics WHEN {_reaches_back(dialect, 'UPDATE')} {bump}",
        f"CREATE TRIGGER metric_past_delete AFTER DELETE ON ticket_metrics WHEN {_reaches_back(dialect, 'DELETE')} {bump}",
        # occurred_at is stored as 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC), which compares as text
        f"CREATE TRIGGER metric_past_events AFTER INSERT ON ticket_events WHEN NEW.occurred_at < "
        f"datetime('now', '-{WRITE_MARGIN_US // HOUR_US} hours') AND {_event_counts('NEW')} {bump}",
    ]


def drop_ddl(dialect: str) -> list[str]:
    pg = dialect == "postgresql"
    out = [f"DROP TRIGGER IF EXISTS metric_past_{k}" + (" ON ticket_metrics" if pg else "")
           for k in ("insert", "update", "delete")]
    out.append("DROP TRIGGER IF EXISTS metric_past_events" + (" ON ticket_events" if pg else ""))
    if pg:
        out += ["DROP FUNCTION IF EXISTS metric_past_count()", "DROP FUNCTION IF EXISTS metric_past_inserted()",
                "DROP FUNCTION IF EXISTS metric_past_events()"]
    return out


def new_token() -> str:
    return uuid.uuid4().hex


def installed(session: Session) -> bool:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return bool(session.execute(text("SELECT to_regclass(:t) IS NOT NULL"), {"t": PAST}).scalar())
    return session.execute(text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :t"),
                           {"t": PAST}).first() is not None


def count_change(session: Session) -> None:
    """Count a change that reaches back which the triggers did not see (a rebuild of the metrics tables)."""
    if not installed(session):
        return
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"INSERT INTO {PAST_LOG} DEFAULT VALUES"))
    else:
        session.execute(text(f"UPDATE {PAST} SET version = version + 1"))


#: PostgreSQL: the log is compacted once it holds more rows than this (lib.worker's rollups step).
COMPACT_ABOVE = 1000


def compact(session: Session, *, above: int = COMPACT_ABOVE) -> int:
    """PostgreSQL: delete every row of ``metric_past_log`` but the newest once it holds more than ``above``; the
    rows deleted. The version (count, newest id) stays unique: the newest id only grows, and at a given newest id
    the count only falls, so no later version can equal an earlier one. It moves, so the kept parts are read again
    once. SQLite keeps a single counter: nothing to do."""
    if session.get_bind().dialect.name != "postgresql" or not installed(session):
        return 0
    n = session.execute(text(f"SELECT count(*) FROM {PAST_LOG}")).scalar() or 0
    if n <= above:
        return 0
    result = session.execute(text(f"DELETE FROM {PAST_LOG} WHERE id < (SELECT max(id) FROM {PAST_LOG})"))
    return int(getattr(result, "rowcount", 0) or 0)


# --- the version and the edge ---------------------------------------------------------------------------------


def version(session: Session) -> tuple | None:
    """The database's identity and how many reaching-back changes it has seen (read once per transaction);
    None where the cache is off."""
    if not enabled:
        return None
    tx = session.get_transaction()
    held = session.info.get("metric_past_version")
    if held is not None and held[0] is tx:
        return held[1]
    if session.get_bind().dialect.name == "postgresql":
        token, n, top = session.execute(text(
            f"SELECT (SELECT token FROM {PAST} WHERE id = 1), count(*), max(id) FROM {PAST_LOG}")).one()
        value: tuple | None = (token, int(n), int(top or 0))
    else:
        row = session.execute(text(f"SELECT token, version FROM {PAST} WHERE id = 1")).first()
        value = None if row is None else (row[0], int(row[1]))
    if value is not None and value[0] is None:
        value = None
    if value is not None:  # a copied database file keeps the token: its path tells it apart
        bind = session.get_bind()
        value = (str(bind.engine.url), *value)
    session.info["metric_past_version"] = (session.get_transaction(), value)
    return value


def edge_us(now: datetime | None = None) -> int:
    """Where the kept part ends: the UTC midnight at or before ``now`` minus :data:`READ_LAG_US`."""
    moment = (now or clock.now()).astimezone(UTC)
    us = (moment - EPOCH) // timedelta(microseconds=1) - READ_LAG_US
    return us // DAY_US * DAY_US


def _as(bound: Any, us: int) -> Any:
    """``us`` in the type of ``bound`` (epoch microseconds or an aware datetime)."""
    return EPOCH + timedelta(microseconds=us) if isinstance(bound, datetime) else us


def size(value: Any) -> int:
    """About how many bytes ``value`` holds: arrays and frames by their buffers, containers by their items."""
    if isinstance(value, np.ndarray):
        return int(value.nbytes) + 112
    if isinstance(value, pd.DataFrame | pd.Series):
        return int(value.memory_usage(index=True, deep=False).sum() if isinstance(value, pd.DataFrame)
                   else value.memory_usage(index=True, deep=False))
    if isinstance(value, dict):
        return sys.getsizeof(value) + sum(size(k) + size(v) for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return sys.getsizeof(value) + sum(size(v) for v in value)
    return sys.getsizeof(value)


def _kept(key: Hashable, compute: Callable[[], Any]) -> Any:
    global _held
    with _lock:
        if key in _parts:
            _parts.move_to_end(key)
            return _parts[key]
    value = compute()
    n = size(value)
    with _lock:
        if key in _parts:
            _held -= _sizes.get(key, 0)
        _parts[key] = value
        _sizes[key] = n
        _held += n
        _parts.move_to_end(key)
        while len(_parts) > 1 and (len(_parts) > MAX_ENTRIES or _held > MAX_BYTES):
            old, _ = _parts.popitem(last=False)
            _held -= _sizes.pop(old, 0)
    return value


def clear() -> None:
    global _held
    with _lock:
        _parts.clear()
        _sizes.clear()
        _held = 0


def held_bytes() -> int:
    """Bytes of the kept parts, as :func:`size` counts them."""
    return _held


def entries() -> int:
    return len(_parts)


# --- split reads ------------------------------------------------------------------------------------------------


def _add(a: Any, b: Any) -> Any:
    if a is None:
        return b
    if isinstance(a, tuple):
        return tuple(x + y for x, y in zip(a, b, strict=True))
    return a + b


def sums(session: Session, key: Hashable, bounds: Sequence[Any], read: Callable[[list[Any]], dict]) -> dict:
    """``read(bounds)`` (a dict keyed by ``(period index, ...)`` whose values add up: ints or tuples of ints)
    with the periods, or parts of a period, before the edge kept. ``bounds`` are epoch microseconds or aware
    datetimes; the last may be None ("and everything after")."""
    v = version(session)
    n = len(bounds) - 1
    if v is None or n < 1 or bounds[0] is None:
        return read(list(bounds))
    e = _as(bounds[0], edge_us())
    if not bounds[0] < e:
        return read(list(bounds))
    i = max(j for j in range(n + 1) if bounds[j] is not None and bounds[j] <= e)
    if i == n:  # all of it is before the edge
        return _kept((v, e, key, tuple(bounds)), lambda: read(list(bounds)))
    closed = list(bounds[:i + 1]) + ([e] if bounds[i] < e else [])
    kept = _kept((v, e, key, tuple(closed)), lambda: read(closed)) if len(closed) > 1 else {}
    out = dict(kept)
    for (k, *rest), value in read([e, *bounds[i + 1:]]).items():
        at = (k + i, *rest)
        out[at] = _add(out.get(at), value)
    return {k: value for k, value in out.items() if not isinstance(value, tuple) or any(value)}


def values(session: Session, key: Hashable, lo: int, hi: int, read: Callable[[int, int], list[np.ndarray]]
           ) -> list[np.ndarray]:
    """``read(lo, hi)`` (aligned value arrays of the rows with a time in ``[lo, hi)``) with the rows before the
    edge kept: those arrays, then the newer rows'."""
    v = version(session)
    e = edge_us()
    if v is None or lo >= e or hi <= lo:
        return read(lo, hi)
    if hi <= e:
        return list(_kept((v, e, key, lo, hi), lambda: _frozen(read(lo, hi))))
    kept = _kept((v, e, key, lo, e), lambda: _frozen(read(lo, e)))
    fresh = read(e, hi)
    return [np.concatenate([a, b]) for a, b in zip(kept, fresh, strict=True)]


def _frozen(arrays: list[np.ndarray]) -> tuple[np.ndarray, ...]:
    for a in arrays:
        a.setflags(write=False)
    return tuple(arrays)


def applies(session: Session, lo: int) -> bool:
    """Whether reads from ``lo`` have a part before the edge to keep."""
    return version(session) is not None and lo < edge_us()
