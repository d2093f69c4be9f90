"""Storage and range reads under :mod:`lib.metrics.measures` (no streamlit, no pandas).

``ticket_metrics`` holds one narrow row per ticket (see :class:`lib.models.TicketMetric`): priority,
category, assignee, channel, the open flag, every milestone as epoch microseconds (UTC) and the SLA flags
as 0/1. Triggers on ``tickets`` keep it in step inside the writing transaction, whoever writes (the
services, the importers, seed-demo's bulk inserts and ``COPY``); :func:`rebuild` refills it from
``tickets`` (``python -m lib.cli rebuild-rollups``) and :func:`check` compares the two.

Reads never group a whole table. A period's counts come from index-only range reads: every index of
``ticket_metrics`` starts with (priority, category, time), so "priority IN (...) AND category IN (...)
AND time in [lo, hi)" walks exactly the period's entries, already grouped. SQLite runs one such read per
period (it has no hash aggregation, and sorting rows for a GROUP BY costs more than reading them);
PostgreSQL runs one read over the whole range and buckets with ``width_bucket``. Raw values (the
distribution chart, repeat issues) come back as one comma-separated string per column (``group_concat`` /
``string_agg``), parsed by numpy, which is several times cheaper than fetching one row object each. The
statistics of a duration (:func:`duration_stats`) need only its count, its sum and the two values each
percentile falls between: PostgreSQL sorts the values and sends just those; SQLite sends the values (it has
no percentile function, and its sort costs several times the fetch).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any

import numpy as np
from sqlalchemy import Row, bindparam, text
from sqlalchemy.orm import Session

from lib import clock
from lib.metrics import closed_cache
from lib.models import BACKLOG_EVENT_PREDICATE, UTCDateTime
from lib.workflow import OPEN_STATUSES, Priority

TABLE = "ticket_metrics"
#: ticket_metrics column -> the tickets column it comes from (times are converted to epoch microseconds).
SOURCES: dict[str, str] = {
    "ticket_id": "id",
    "priority": "priority",
    "category_id": "category_id",
    "assignee_id": "assignee_id",
    "channel": "channel",
    "is_open": "is_open",
    "created_us": "created_at",
    "acknowledged_us": "acknowledged_at",
    "first_response_us": "first_response_at",
    "responded_us": "",  # the first of acknowledged_at and first_response_at
    "resolved_us": "resolved_at",
    "closed_us": "closed_at",
    "closure_reason": "closure_reason",
    "reopen_count": "reopen_count",
    "escalation_level": "escalation_level",
    # A policy always gives a response due time; the resolution due time can be unknown while paused.
    "sla_target": "response_due_at",
    "response_breached": "response_breached_at",
    "resolution_breached": "resolution_breached_at",
    "satisfaction": "satisfaction",
    "requester_id": "requester_id",
    "device_id": "device_id",
    "is_duplicate": "duplicate_of_id",
    "response_tally": "",
    "resolution_tally": "",
    "closure_tally_a": "",
    "closure_tally_b": "",
    "first_contact": "",
}
#: Packed counters: SUM(column) over rows = c0 + c1 * 2**21 + c2 * 2**42, where c0..c2 count the rows whose
#: condition holds (so up to 2,097,151 tickets per priority, category and period).
TALLY_BITS = 21
TALLIES: dict[str, tuple[str, str, str]] = {
    "response_tally": ("a response target applies", "... and its breach was recorded", ""),
    "resolution_tally": ("a resolution target applies", "... and its breach was recorded", "reopened at least once"),
    "closure_tally_a": ("closed as confirmed", "closed as no reply", "closed as duplicate"),
    "closure_tally_b": ("closed as cancelled", "closed as not applicable", "carries a satisfaction rating"),
}


def untally(total: int) -> tuple[int, int, int]:
    """The three counts of a summed tally column."""
    total = int(total or 0)
    mask = (1 << TALLY_BITS) - 1
    return total & mask, (total >> TALLY_BITS) & mask, total >> (2 * TALLY_BITS)


def _packed(*conditions: str) -> str:
    return " + ".join(f"(CASE WHEN {c} THEN {1 << (TALLY_BITS * i)} ELSE 0 END)"
                      for i, c in enumerate(conditions) if c)
#: The tickets columns whose change rewrites the ticket's row.
WATCHED = tuple(sorted({c for c in SOURCES.values() if c and c != "id"} | {"reopen_count", "escalation_level",
                                                                          "satisfaction", "closure_reason"}))
OPEN_VALUES = tuple(s.value for s in OPEN_STATUSES)


#: The index each range read walks (SQLite is told with INDEXED BY; PostgreSQL's planner chooses).
INDEX_FOR = {"created_us": "ix_ticket_metrics_created", "acknowledged_us": "ix_ticket_metrics_acknowledged",
             "first_response_us": "ix_ticket_metrics_first_response", "responded_us": "ix_ticket_metrics_responded",
             "resolved_us": "ix_ticket_metrics_resolved", "closed_us": "ix_ticket_metrics_closed",
             "open": "ix_ticket_metrics_open"}


def table_for(dialect: str, key: str, alias: str = "") -> str:
    """``ticket_metrics`` with the index hint SQLite needs to read ``key``'s index only."""
    name = f"{TABLE} {alias}".rstrip()
    return f"{name} INDEXED BY {INDEX_FOR[key]}" if dialect == "sqlite" else name


def _us(dialect: str, col: str) -> str:
    """A stored UTC time as epoch microseconds (NULL stays NULL)."""
    if dialect == "postgresql":
        return f"(EXTRACT(EPOCH FROM {col}) * 1000000)::bigint"
    # SQLite keeps 'YYYY-MM-DD HH:MM:SS.ffffff' (lib.models.UTCDateTime); whole seconds plus the fraction.
    return (f"(CASE WHEN {col} IS NULL THEN NULL ELSE CAST(strftime('%s', substr({col}, 1, 19)) AS INTEGER) * 1000000"
            f" + CAST(substr({col} || '000000', 21, 6) AS INTEGER) END)")


def _flag(col: str) -> str:
    return f"(CASE WHEN {col} IS NULL THEN 0 ELSE 1 END)"


def source_exprs(dialect: str, row: str) -> dict[str, str]:
    """SQL for each ticket_metrics column from a tickets row called ``row`` (``NEW``, ``t``, ...)."""
    out: dict[str, str] = {}
    for name, src in SOURCES.items():
        col = f"{row}.{src}"
        if name == "is_open":
            out[name] = f"(CASE WHEN {col} THEN 1 ELSE 0 END)"
        elif name == "response_tally":
            out[name] = _packed(f"{row}.response_due_at IS NOT NULL",
                                f"{row}.response_due_at IS NOT NULL AND {row}.response_breached_at IS NOT NULL")
        elif name == "resolution_tally":
            out[name] = _packed(f"{row}.response_due_at IS NOT NULL",
                                f"{row}.response_due_at IS NOT NULL AND {row}.resolution_breached_at IS NOT NULL",
                                f"{row}.reopen_count > 0")
        elif name == "closure_tally_a":
            out[name] = _packed(*(f"{row}.closure_reason = '{r}'" for r in ("confirmed", "no_reply", "duplicate")))
        elif name == "closure_tally_b":
            out[name] = _packed(f"{row}.closure_reason = 'cancelled'", f"{row}.closure_reason = 'not_applicable'",
                                f"{row}.satisfaction IS NOT NULL")
        elif name == "first_contact":
            # the resolution was the first public message, with no escalation and no reopening
            out[name] = (f"(CASE WHEN {row}.reopen_count = 0 AND {row}.escalation_level = 0 AND {row}.resolved_at IS NOT "
                         f"NULL AND {row}.first_response_at = {row}.resolved_at THEN 1 ELSE 0 END)")
        elif name == "responded_us":
            ack, first = _us(dialect, f"{row}.acknowledged_at"), _us(dialect, f"{row}.first_response_at")
            out[name] = (f"(CASE WHEN {row}.acknowledged_at IS NULL THEN {first} WHEN {row}.first_response_at IS NULL "
                         f"THEN {ack} WHEN {row}.acknowledged_at <= {row}.first_response_at THEN {ack} ELSE {first} END)")
        elif name.endswith("_us"):
            out[name] = _us(dialect, col)
        elif name.endswith(("_target", "_breached")) or name == "is_duplicate":
            out[name] = _flag(col)
        else:
            out[name] = col
    return out


def _select_list(dialect: str, row: str) -> str:
    return ", ".join(source_exprs(dialect, row).values())


COLUMNS = ", ".join(SOURCES)


def create_ddl(dialect: str) -> list[str]:
    """Triggers (and PostgreSQL's trigger functions) that keep ticket_metrics in step with tickets."""
    if dialect == "postgresql":
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in SOURCES if c != "ticket_id")
        return [
            f"""CREATE OR REPLACE FUNCTION ticket_metrics_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    DELETE FROM {TABLE} WHERE ticket_id = OLD.id;
    RETURN NULL;
  END IF;
  INSERT INTO {TABLE} ({COLUMNS}) SELECT {_select_list(dialect, 'NEW')}
  ON CONFLICT (ticket_id) DO UPDATE SET {updates};
  RETURN NULL;
END $$""",
            # A bulk insert (COPY in seed-demo, a batch of imports) copies its rows in one statement.
            f"""CREATE OR REPLACE FUNCTION ticket_metrics_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO {TABLE} ({COLUMNS}) SELECT {_select_list(dialect, 'n')} FROM new_tickets n
  ON CONFLICT (ticket_id) DO UPDATE SET {updates};
  RETURN NULL;
END $$""",
            "CREATE TRIGGER ticket_metrics_insert AFTER INSERT ON tickets REFERENCING NEW TABLE AS new_tickets "
            "FOR EACH STATEMENT EXECUTE FUNCTION ticket_metrics_insert()",
            f"CREATE TRIGGER ticket_metrics_update AFTER UPDATE OF {', '.join(WATCHED)} ON tickets FOR EACH ROW "
            f"WHEN ({' OR '.join(f'OLD.{c} IS DISTINCT FROM NEW.{c}' for c in WATCHED)}) "
            "EXECUTE FUNCTION ticket_metrics_row()",
            "CREATE TRIGGER ticket_metrics_delete AFTER DELETE ON tickets FOR EACH ROW EXECUTE FUNCTION ticket_metrics_row()",
        ]
    # An upsert, not INSERT OR REPLACE: a replaced row would leave metric_days without its delete trigger.
    sets = ", ".join(f"{c} = excluded.{c}" for c in SOURCES if c != "ticket_id")
    upsert = (f"INSERT INTO {TABLE} ({COLUMNS}) VALUES ({_select_list(dialect, 'NEW')}) "
              f"ON CONFLICT (ticket_id) DO UPDATE SET {sets};")
    changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in WATCHED)
    return [
        f"CREATE TRIGGER ticket_metrics_insert AFTER INSERT ON tickets BEGIN {upsert} END",
        f"CREATE TRIGGER ticket_metrics_update AFTER UPDATE OF {', '.join(WATCHED)} ON tickets WHEN {changed} "
        f"BEGIN {upsert} END",
        f"CREATE TRIGGER ticket_metrics_delete AFTER DELETE ON tickets BEGIN "
        f"DELETE FROM {TABLE} WHERE ticket_id = OLD.id; END",
    ]


def drop_ddl(dialect: str) -> list[str]:
    pg = dialect == "postgresql"
    out = [f"DROP TRIGGER IF EXISTS ticket_metrics_{k}" + (" ON tickets" if pg else "")
           for k in ("insert", "update", "delete")]
    out += [f"DROP TRIGGER IF EXISTS metric_days_{k}" + (f" ON {TABLE}" if pg else "")
            for k in ("insert", "update", "delete")]
    if pg:
        out += ["DROP FUNCTION IF EXISTS ticket_metrics_row()", "DROP FUNCTION IF EXISTS ticket_metrics_insert()",
                "DROP FUNCTION IF EXISTS metric_days_row()", "DROP FUNCTION IF EXISTS metric_days_insert()"]
    return out


# --- metric_days: per UTC day, priority and category, the counts of each milestone --------------------------

DAYS = "metric_days"
DAY_US = 86_400_000_000
#: milestone -> (its time column in ticket_metrics, {metric_days column: value per ticket, {r} = the row})
MILESTONES: dict[str, tuple[str, dict[str, str]]] = {
    "created": ("created_us", {"created": "1"}),
    "resolved": ("resolved_us", {"resolved": "1", "resolution_tally": "{r}.resolution_tally",
                                 "first_contact": "{r}.first_contact"}),
    "closed": ("closed_us", {"closed": "1", "closure_tally_a": "{r}.closure_tally_a",
                             "closure_tally_b": "{r}.closure_tally_b",
                             "satisfaction_sum": "COALESCE({r}.satisfaction, 0)"}),
    "responded": ("responded_us", {"response_tally": "{r}.response_tally"}),
}
DAY_COLUMNS = tuple(c for _, cols in MILESTONES.values() for c in cols)
#: the ticket_metrics columns a day row depends on
DAY_SOURCES = ("priority", "category_id", "created_us", "resolved_us", "closed_us", "responded_us", "resolution_tally",
               "first_contact", "closure_tally_a", "closure_tally_b", "satisfaction", "response_tally")


def _day_upserts(dialect: str, row: str, sign: str) -> list[str]:
    """One upsert per milestone adding (sign "+") or taking away (sign "-") the row's contribution."""
    out = []
    table = DAYS if dialect == "sqlite" else f"{DAYS} AS d"
    prefix = "" if dialect == "sqlite" else "d."
    for time_col, cols in MILESTONES.values():
        names = ", ".join(cols)
        values = ", ".join(f"{sign}({v.format(r=row)})" for v in cols.values())
        sets = ", ".join(f"{c} = {prefix}{c} + excluded.{c}" for c in cols)
        out.append(f"INSERT INTO {table} (day, priority, category_id, {names}) SELECT {row}.{time_col} / {DAY_US}, "
                   f"{row}.priority, {row}.category_id, {values} WHERE {row}.{time_col} IS NOT NULL "
                   f"ON CONFLICT (day, priority, category_id) DO UPDATE SET {sets};")
    return out


def _day_bulk_inserts(source: str) -> list[str]:
    """PostgreSQL: add a whole statement's new rows, grouped per day, priority and category."""
    out = []
    for time_col, cols in MILESTONES.values():
        names = ", ".join(cols)
        sums = ", ".join(f"sum({v.format(r='s')})" if v != "1" else "count(*)" for v in cols.values())
        sets = ", ".join(f"{c} = d.{c} + EXCLUDED.{c}" for c in cols)
        out.append(f"INSERT INTO {DAYS} AS d (day, priority, category_id, {names}) SELECT s.{time_col} / {DAY_US}, "
                   f"s.priority, s.category_id, {sums} FROM {source} s WHERE s.{time_col} IS NOT NULL GROUP BY 1, 2, 3 "
                   f"ON CONFLICT (day, priority, category_id) DO UPDATE SET {sets};")
    return out


#: PostgreSQL: the advisory lock one fold (or rebuild) of metric_day_deltas into metric_days holds.
ROLLUP_LOCK_ID = 727_274_002
#: PostgreSQL: what the triggers append to, one row per milestone a ticket change moves (folded by fold_days).
DELTAS = "metric_day_deltas"


def _day_deltas(row: str, sign: str) -> list[str]:
    """PostgreSQL: one INSERT per milestone appending the row's contribution (sign "-" takes it away)."""
    out = []
    for time_col, cols in MILESTONES.values():
        names = ", ".join(cols)
        values = ", ".join(f"{sign}({v.format(r=row)})" for v in cols.values())
        out.append(f"INSERT INTO {DELTAS} (day, priority, category_id, {names}) SELECT {row}.{time_col} / {DAY_US}, "
                   f"{row}.priority, {row}.category_id, {values} WHERE {row}.{time_col} IS NOT NULL;")
    return out


def days_ddl(dialect: str) -> list[str]:
    """Triggers on ticket_metrics that keep the day counts in step (in the same transaction). An update fires
    them only when a value a day row depends on changed: most writes (a status, a note) change none.

    PostgreSQL: the triggers only append to ``metric_day_deltas`` (no row is updated, so concurrent writers
    never wait for each other there and cannot deadlock); reads add the deltas to ``metric_days``, and
    :func:`fold_days` (the worker, every cycle) moves them into it. Upserting metric_days rows from the writing
    transactions deadlocked (two writers touching two day rows in opposite orders), and serialising them on one
    lock made every create, acknowledgement and resolution on the desk queue behind each other's commits.

    SQLite: the triggers upsert metric_days directly (its writers run one at a time anyway)."""
    watched = ", ".join(DAY_SOURCES)
    distinct = "IS DISTINCT FROM" if dialect == "postgresql" else "IS NOT"
    changed = " OR ".join(f"OLD.{c} {distinct} NEW.{c}" for c in DAY_SOURCES)
    if dialect == "postgresql":
        sub_old, add_new = "\n    ".join(_day_deltas("OLD", "-")), "\n    ".join(_day_deltas("NEW", ""))
        return [
            f"""CREATE OR REPLACE FUNCTION metric_days_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    {sub_old}
  END IF;
  IF TG_OP IN ('UPDATE', 'INSERT') THEN
    {add_new}
  END IF;
  RETURN NULL;
END $$""",
            f"CREATE TRIGGER metric_days_insert AFTER INSERT ON {TABLE} FOR EACH ROW EXECUTE FUNCTION metric_days_row()",
            f"CREATE TRIGGER metric_days_update AFTER UPDATE OF {watched} ON {TABLE} FOR EACH ROW "
            f"WHEN ({changed}) EXECUTE FUNCTION metric_days_row()",
            f"CREATE TRIGGER metric_days_delete AFTER DELETE ON {TABLE} FOR EACH ROW EXECUTE FUNCTION metric_days_row()",
        ]
    add_new, sub_old = " ".join(_day_upserts(dialect, "NEW", "")), " ".join(_day_upserts(dialect, "OLD", "-"))
    return [
        f"CREATE TRIGGER metric_days_insert AFTER INSERT ON {TABLE} BEGIN {add_new} END",
        f"CREATE TRIGGER metric_days_update AFTER UPDATE OF {watched} ON {TABLE} WHEN {changed} "
        f"BEGIN {sub_old} {add_new} END",
        f"CREATE TRIGGER metric_days_delete AFTER DELETE ON {TABLE} BEGIN {sub_old} END",
    ]


def fold_days(session: Session) -> int:
    """PostgreSQL: move the appended deltas into metric_days (one folder at a time); returns the rows folded.
    Deltas committed while it runs stay for the next fold; readers see the same sums before and after."""
    if session.get_bind().dialect.name != "postgresql":
        return 0
    session.execute(text(f"SELECT pg_advisory_xact_lock({ROLLUP_LOCK_ID})"))
    sums = ", ".join(f"sum({c})" for c in DAY_COLUMNS)
    sets = ", ".join(f"{c} = d.{c} + EXCLUDED.{c}" for c in DAY_COLUMNS)
    moved = session.execute(text(
        f"WITH moved AS (DELETE FROM {DELTAS} RETURNING *), "
        f"folded AS (INSERT INTO {DAYS} AS d (day, priority, category_id, {', '.join(DAY_COLUMNS)}) "
        f"SELECT day, priority, category_id, {sums} FROM moved GROUP BY 1, 2, 3 "
        f"ON CONFLICT (day, priority, category_id) DO UPDATE SET {sets} RETURNING 1) "
        f"SELECT (SELECT count(*) FROM moved), (SELECT count(*) FROM folded)")).one()
    return int(moved[0])


def days_source(dialect: str) -> str:
    """What day counts are read from: metric_days, plus (PostgreSQL) the deltas not folded yet."""
    if dialect != "postgresql":
        return DAYS
    cols = ", ".join(("day", "priority", "category_id", *DAY_COLUMNS))
    return f"(SELECT {cols} FROM {DAYS} UNION ALL SELECT {cols} FROM {DELTAS}) AS {DAYS}"


def _days_from_facts(session: Session) -> None:
    for statement in _day_bulk_inserts(TABLE):
        session.execute(text(statement))


def rebuild(session: Session) -> int:
    """Refill ticket_metrics from tickets, and metric_days from ticket_metrics (in the caller's transaction);
    return the number of tickets.

    The triggers are dropped for the refill and created again before the transaction ends, so the rows are
    copied in bulk rather than one trigger call each; writers wait for the transaction (the trigger DDL locks
    ``tickets`` on PostgreSQL, and SQLite's write transactions are exclusive), so none is missed."""
    dialect = session.get_bind().dialect.name
    for statement in drop_ddl(dialect) + closed_cache.drop_ddl(dialect):
        session.execute(text(statement))
    session.execute(text(f"DELETE FROM {TABLE}"))
    session.execute(text(f"INSERT INTO {TABLE} ({COLUMNS}) SELECT {_select_list(dialect, 't')} FROM tickets t"))
    if dialect == "postgresql":
        session.execute(text(f"SELECT pg_advisory_xact_lock({ROLLUP_LOCK_ID})"))
        session.execute(text(f"DELETE FROM {DELTAS}"))
    session.execute(text(f"DELETE FROM {DAYS}"))
    _days_from_facts(session)
    for statement in create_ddl(dialect) + days_ddl(dialect):
        session.execute(text(statement))
    if closed_cache.installed(session):
        for statement in closed_cache.ddl(dialect):
            session.execute(text(statement))
        closed_cache.count_change(session)  # every kept closed day is recounted
    return int(session.execute(text(f"SELECT count(*) FROM {TABLE}")).scalar() or 0)


def drop_ticket_triggers(session: Session) -> None:
    """Stop keeping ticket_metrics in step with tickets (a bulk load on an empty database); :func:`rebuild`
    fills the tables and creates the triggers again."""
    dialect = session.get_bind().dialect.name
    for statement in drop_ddl(dialect)[:3] + closed_cache.drop_ddl(dialect):
        session.execute(text(statement))


def check_days(session: Session, *, limit: int = 20) -> list[tuple[int, int, int]]:
    """(day, priority, category) rows of metric_days that differ from a recount of ticket_metrics."""
    expected: dict[tuple[int, int, int], dict[str, int]] = {}
    for time_col, cols in MILESTONES.values():
        sums = ", ".join(f"sum({v.format(r='s')})" if v != "1" else "count(*)" for v in cols.values())
        for day, prio, cat, *values in session.execute(text(
                f"SELECT s.{time_col} / {DAY_US}, s.priority, s.category_id, {sums} FROM {TABLE} s "
                f"WHERE s.{time_col} IS NOT NULL GROUP BY 1, 2, 3")):
            row = expected.setdefault((int(day), int(prio), int(cat)), {})
            row.update({c: int(v) for c, v in zip(cols, values, strict=True)})
    wrong = []
    source = days_source(session.get_bind().dialect.name)
    stored = session.execute(text(f"SELECT day, priority, category_id, {', '.join(f'sum({c})' for c in DAY_COLUMNS)} "
                                  f"FROM {source} GROUP BY 1, 2, 3"))
    seen = set()
    for day, prio, cat, *values in stored:
        key = (int(day), int(prio), int(cat))
        seen.add(key)
        want = expected.get(key, {})
        if any(int(v) != want.get(c, 0) for c, v in zip(DAY_COLUMNS, values, strict=True)):
            wrong.append(key)
    wrong += [k for k in expected if k not in seen and any(expected[k].values())]
    return sorted(wrong)[:limit]


def check(session: Session, *, limit: int = 20) -> list[int]:
    """Ids of tickets whose ticket_metrics row is missing or differs from what tickets says (empty: in step)."""
    dialect = session.get_bind().dialect.name
    exprs = source_exprs(dialect, "t")
    same = " AND ".join(
        f"(m.{c} = {e} OR (m.{c} IS NULL AND {e} IS NULL))" for c, e in exprs.items() if c != "ticket_id")
    rows = session.execute(text(
        f"SELECT t.id FROM tickets t LEFT JOIN {TABLE} m ON m.ticket_id = t.id WHERE m.ticket_id IS NULL OR NOT ({same}) "
        f"UNION SELECT m.ticket_id FROM {TABLE} m LEFT JOIN tickets t ON t.id = m.ticket_id WHERE t.id IS NULL "
        f"ORDER BY 1 LIMIT {int(limit)}")).scalars()
    return [int(r) for r in rows]


# --- range reads -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """Which tickets count: by their current priority, category, assignee and channel (empty = all)."""

    priorities: tuple[int, ...] = ()
    category_ids: tuple[int, ...] = ()
    assignee_ids: tuple[int, ...] = ()
    channels: tuple[str, ...] = ()
    #: every category id (the probe list when no category is chosen); filled by the caller
    all_category_ids: tuple[int, ...] = field(default=(), compare=False)

    def probe_priorities(self) -> tuple[int, ...]:
        return tuple(sorted(self.priorities)) or tuple(int(p) for p in Priority)

    def probe_categories(self) -> tuple[int, ...]:
        return tuple(sorted(self.category_ids)) or self.all_category_ids or (-1,)

    @property
    def narrows_people(self) -> bool:
        return bool(self.assignee_ids or self.channels)


def sql_ints(values: Iterable[int]) -> str:
    return ", ".join(str(int(v)) for v in values)


def sql_strs(values: Iterable[str]) -> str:
    return ", ".join("'" + str(v).replace("'", "''") + "'" for v in values)


def probe_sql(scope: Scope, alias: str = "") -> str:
    """The WHERE terms of a scope on ticket_metrics (values are whole numbers or quoted channel names)."""
    a = f"{alias}." if alias else ""
    terms = [f"{a}priority IN ({sql_ints(scope.probe_priorities())})",
             f"{a}category_id IN ({sql_ints(scope.probe_categories())})"]
    if scope.assignee_ids:
        terms.append(f"{a}assignee_id IN ({sql_ints(scope.assignee_ids)})")
    if scope.channels:
        terms.append(f"{a}channel IN ({sql_strs(scope.channels)})")
    return " AND ".join(terms)


def period_sums(session: Session, time_col: str, bounds: Sequence[int], scope: Scope, aggs: Sequence[str], *,
                where: str = "") -> dict[tuple[int, int, int], tuple[int, ...]]:
    """``{(period index, priority, category id): (agg1, agg2, ...)}`` over ticket_metrics rows whose
    ``time_col`` (epoch microseconds) falls in ``[bounds[k], bounds[k+1])``; only non-empty groups."""
    if len(bounds) < 2:
        return {}
    extra = f" AND {where}" if where else ""
    agg_sql = ", ".join(aggs)
    dialect = session.get_bind().dialect.name
    base = f"FROM {table_for(dialect, time_col)} WHERE {probe_sql(scope)}{extra}"
    out: dict[tuple[int, int, int], tuple[int, ...]] = {}
    if dialect == "postgresql":
        sql = (f"SELECT width_bucket({time_col}, CAST(:bounds AS bigint[])) - 1 AS k, priority, category_id, {agg_sql} "
               f"{base} AND {time_col} >= :lo AND {time_col} < :hi GROUP BY 1, 2, 3")
        params = {"bounds": [int(b) for b in bounds], "lo": int(bounds[0]), "hi": int(bounds[-1])}
        rows = session.execute(text(sql), params)
    else:
        parts, params = [], {}
        for k in range(len(bounds) - 1):
            parts.append(f"SELECT {k} AS k, priority, category_id, {agg_sql} {base} AND {time_col} >= :lo{k} "
                         f"AND {time_col} < :hi{k} GROUP BY priority, category_id")
            params[f"lo{k}"], params[f"hi{k}"] = int(bounds[k]), int(bounds[k + 1])
        rows = session.execute(text(" UNION ALL ".join(parts)), params)
    for k, prio, cat, *values in rows:
        out[(int(k), int(prio), int(cat))] = tuple(int(v or 0) for v in values)
    return out


def _concat(dialect: str, expr: str) -> str:
    if dialect == "postgresql":
        return f"string_agg(CAST({expr} AS text), ',')"
    return f"group_concat({expr})"


def _parse(value: str | None) -> np.ndarray:
    if not value:
        return np.zeros(0, dtype=np.int64)
    return np.fromstring(value, dtype=np.int64, sep=",")


def columns_in_range(session: Session, time_col: str, lo: int, hi: int, scope: Scope, exprs: Sequence[str], *,
                     where: str = "") -> list[np.ndarray]:
    """The values of ``exprs`` (integer SQL expressions, never NULL) for every ticket_metrics row whose
    ``time_col`` is in ``[lo, hi)``, as aligned int64 arrays."""
    dialect = session.get_bind().dialect.name
    extra = f" AND {where}" if where else ""
    sql = (f"SELECT {', '.join(_concat(dialect, e) for e in exprs)} FROM {table_for(dialect, time_col)} "
           f"WHERE {probe_sql(scope)}{extra} "
           f"AND {time_col} >= :lo AND {time_col} < :hi")
    row = session.execute(text(sql), {"lo": int(lo), "hi": int(hi)}).one()
    arrays = [_parse(v) for v in row]
    if len({len(a) for a in arrays}) > 1:  # pragma: no cover - both engines aggregate one row stream
        raise RuntimeError("misaligned columns from the database")
    return arrays


# --- duration statistics -----------------------------------------------------------------------------------

#: The quantiles the metrics give of a duration: the median and the 90th percentile.
QUANTILES = (0.5, 0.9)


def quantile_ranks(n: int, q: float) -> tuple[int, int, float]:
    """Where quantile ``q`` of ``n`` sorted values lies, found as numpy's default (linear) method finds it: the
    ranks (0-based, ascending) of the two values it falls between and the weight of the upper one.

    The virtual index ``(n - 1) * q`` is a float64 product, as in numpy (and in the SQL of :func:`duration_stats`,
    which must name the same ranks); at or beyond the last rank (``n = 1``) both ranks are the last."""
    if n < 1:
        raise ValueError("no values")
    virtual = (n - 1) * q
    below = math.floor(virtual)
    if virtual >= n - 1:
        return n - 1, n - 1, 0.0
    return below, below + 1, virtual - below


def _rank_set(n: int, quantiles: Sequence[float]) -> list[int]:
    return sorted({r for q in quantiles for r in quantile_ranks(n, q)[:2]})


@dataclass(frozen=True)
class DurationSummary:
    """What the statistics of a set of integer values (durations in microseconds) need: how many there are, their
    exact sum, and the values at the ranks :func:`quantile_ranks` names for each quantile asked for."""

    n: int
    total: int
    at_rank: Mapping[int, int] = field(default_factory=dict)

    def quantile(self, q: float, unit: int) -> float | None:
        """Quantile ``q`` of the values divided by ``unit``: bit for bit what ``np.percentile(values.astype(float64)
        / unit, 100 * q)`` gives (linear interpolation, with numpy's own float64 steps). None without values."""
        if self.n == 0:
            return None
        lo, hi, gamma = quantile_ranks(self.n, q)
        a, b = float(self.at_rank[lo]) / float(unit), float(self.at_rank[hi]) / float(unit)
        diff = b - a
        # numpy's _lerp: from the nearer end, so a weight of 1 gives b exactly
        return b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma

    def mean(self, unit: int) -> float | None:
        """The mean of the values divided by ``unit``: the exact quotient, rounded once to a float (numpy's mean of
        the float64 values sums them pairwise, so it can differ in the last digits)."""
        return None if self.n == 0 else float(Fraction(self.total, self.n * int(unit)))


def summarize(values: np.ndarray, quantiles: Sequence[float] = QUANTILES) -> DurationSummary:
    """The :class:`DurationSummary` of int64 values held in memory (the values are left as they are)."""
    n = int(values.size)
    if n == 0:
        return DurationSummary(0, 0)
    ranks = _rank_set(n, quantiles)
    part = np.partition(values, ranks)
    # summed in two halves so that no int64 sum can wrap around: exact for up to 2**31 values
    total = (int((values >> 32).sum()) << 32) + int((values & 0xFFFFFFFF).sum())
    return DurationSummary(n, total, {r: int(part[r]) for r in ranks})


def duration_stats(session: Session, time_col: str, lo: int, hi: int, scope: Scope, expr: str, *, where: str = "",
                   quantiles: Sequence[float] = QUANTILES) -> DurationSummary:
    """Count, exact sum and the values each quantile falls between, of ``expr`` (an integer SQL expression,
    never NULL) over the ticket_metrics rows whose ``time_col`` is in ``[lo, hi)`` (as :func:`columns_in_range`).

    PostgreSQL answers in one statement that sends back a few numbers: it sorts the values (``array_agg``
    with ORDER BY) and picks the ranks, computed in SQL with the same float64 product as
    :func:`quantile_ranks` (checked against it here); ``sum(bigint)`` is an exact numeric. SQLite has no
    percentile function, and its sort costs about a microsecond a row against a tenth of that to fetch the
    values as text, so there the values come back (:func:`columns_in_range`) and are summarised in numpy.
    Both give the same summary, so the same statistics to the last bit."""
    dialect = session.get_bind().dialect.name
    if dialect != "postgresql":
        (values,) = columns_in_range(session, time_col, lo, hi, scope, [expr], where=where)
        return summarize(values, quantiles)
    extra = f" AND {where}" if where else ""
    ranks = [f"CAST(floor(CAST(n - 1 AS float8) * CAST({float(q)!r} AS float8)) AS integer)" for q in quantiles]
    picks = ", ".join(f"k{i}, a[k{i} + 1], a[least(k{i} + 2, n)]" for i in range(len(quantiles)))
    sql = (f"SELECT n, total, {picks} FROM (SELECT CAST(n AS integer) AS n, total, a, "
           + ", ".join(f"{r} AS k{i}" for i, r in enumerate(ranks))
           + f" FROM (SELECT count(*) AS n, sum(d) AS total, array_agg(d ORDER BY d) AS a "
           f"FROM (SELECT {expr} AS d FROM {table_for(dialect, time_col)} WHERE {probe_sql(scope)}{extra} "
           f"AND {time_col} >= :lo AND {time_col} < :hi) AS v) AS c) AS r")
    n, total, *picked = session.execute(text(sql), {"lo": int(lo), "hi": int(hi)}).one()
    n = int(n)
    if n == 0:
        return DurationSummary(0, 0)
    at_rank: dict[int, int] = {}
    for i, q in enumerate(quantiles):
        k, low, high = picked[3 * i: 3 * i + 3]
        below, above, _ = quantile_ranks(n, q)
        if int(k) != below:  # pragma: no cover - both take the same float64 product
            raise RuntimeError(f"the database put quantile {q} of {n} values at rank {k}, not {below}")
        at_rank[below], at_rank[above] = int(low), int(high)
    return DurationSummary(n, int(total), at_rank)


# --- the backlog, from status events ----------------------------------------------------------------------

_DELTA = f"(CASE WHEN e.to_status IN ({sql_strs(OPEN_VALUES)}) THEN 1 ELSE -1 END)"


def backlog_deltas(session: Session, bounds: Sequence[datetime | None], scope: Scope, *, group: str | None = None
                   ) -> dict[tuple[int, int | None], int]:
    """Net change of open work per period ``{(k, group value): delta}``: for each status event in
    ``[bounds[k], bounds[k+1])`` that moves a ticket into open work +1, out of it -1. ``bounds`` may end
    with ``None`` for "and everything after". ``group`` is a ticket_metrics column (e.g. assignee_id)."""
    dialect = session.get_bind().dialect.name
    join = ""
    filtered = bool(scope.priorities or scope.category_ids or scope.assignee_ids or scope.channels or group)
    if filtered:
        join = f" JOIN {TABLE} m ON m.ticket_id = e.ticket_id AND {filter_sql(scope, 'm')}"
    gsel = f", m.{group}" if group else ", NULL"
    gby = f", m.{group}" if group else ""
    pred = BACKLOG_EVENT_PREDICATE.replace("to_status", "e.to_status").replace("from_status", "e.from_status")
    out: dict[tuple[int, int | None], int] = {}
    utc = UTCDateTime()
    n = len(bounds) - 1
    if n < 1:
        return out
    if dialect == "postgresql":
        finite = [b for b in bounds if b is not None]
        bucket = "width_bucket(e.occurred_at, CAST(:bounds AS timestamptz[])) - 1"
        until = " AND e.occurred_at < :hi" if bounds[-1] is not None else ""
        if filtered and _short(bounds):
            # A few days or weeks of events: PostgreSQL joined them to every ticket_metrics row with a hash of the
            # whole table (a million rows: 340 ms for the 10,000 status events of nine days, the weekly report's
            # open work per assignee). Taking the events first and looking their tickets up by key: 25-40 ms.
            # Over months the hash join is the faster one (a year: 1.1 s against 1.7 s), so it stays for those.
            sql = (f"WITH ev AS MATERIALIZED (SELECT e.ticket_id, {bucket} AS k, {_DELTA} AS d "
                   f"FROM ticket_events e WHERE {pred} AND e.occurred_at >= :lo{until}) "
                   f"SELECT ev.k{gsel}, sum(ev.d) FROM ev JOIN {TABLE} m ON m.ticket_id = ev.ticket_id "
                   f"AND m.ticket_id = ANY(ARRAY(SELECT ticket_id FROM ev)) AND {filter_sql(scope, 'm')} "
                   f"GROUP BY 1{gby}")
        else:
            sql = (f"SELECT {bucket} AS k{gsel}, sum({_DELTA}) "
                   f"FROM ticket_events e{join} WHERE {pred} AND e.occurred_at >= :lo{until} GROUP BY 1{gby}")
        params: dict = {"bounds": finite, "lo": bounds[0]}
        if bounds[-1] is not None:
            params["hi"] = bounds[-1]
        rows = session.execute(text(sql), params)
    else:
        parts, params = [], {}
        bind = []
        for k in range(n):
            hi = bounds[k + 1]
            parts.append(f"SELECT {k} AS k{gsel}, sum({_DELTA}) FROM ticket_events e INDEXED BY ix_events_backlog"
                         f"{join} WHERE {pred} "
                         f"AND e.occurred_at >= :lo{k}" + (f" AND e.occurred_at < :hi{k}" if hi is not None else "")
                         + (f" GROUP BY m.{group}" if group else ""))
            params[f"lo{k}"] = bounds[k]
            bind.append(bindparam(f"lo{k}", type_=utc))
            if hi is not None:
                params[f"hi{k}"] = hi
                bind.append(bindparam(f"hi{k}", type_=utc))
        rows = session.execute(text(" UNION ALL ".join(parts)).bindparams(*bind), params)
    for k, g, delta in rows:
        if delta is None:
            continue
        key = (int(k), None if g is None else int(g))
        out[key] = out.get(key, 0) + int(delta)
    return out


#: Event ranges up to this long are joined to their tickets by key on PostgreSQL (:func:`backlog_deltas`).
SHORT_RANGE = timedelta(days=31)


def _short(bounds: Sequence[datetime | None]) -> bool:
    """Whether ``bounds`` span at most :data:`SHORT_RANGE` (an open end counts up to the clock's now)."""
    lo, hi = bounds[0], bounds[-1]
    if lo is None or lo.year < 1000:
        return False
    return (hi or clock.now()) - lo <= SHORT_RANGE


def backlog_before(session: Session, moment: datetime, scope: Scope, *, group: str | None = None
                   ) -> dict[int | None, int]:
    """Open work just before ``moment``, by summing every earlier status event (the forward anchor)."""
    deltas = backlog_deltas(session, [datetime.min.replace(tzinfo=moment.tzinfo), moment], scope, group=group)
    return {g: v for (_, g), v in deltas.items()}


def open_now(session: Session, scope: Scope, *, group: str | None = None) -> dict[int | None, int]:
    """Open tickets now (status new, assigned, in progress or waiting), ``{group value: count}``."""
    gsel = f"{group}, " if group else "NULL, "
    gby = f" GROUP BY {group}" if group else ""
    table = table_for(session.get_bind().dialect.name, "open")
    rows = session.execute(text(f"SELECT {gsel}count(*) FROM {table} WHERE is_open = 1 AND {filter_sql(scope)}{gby}"))
    return {None if g is None else int(g): int(c) for g, c in rows}


def filter_sql(scope: Scope, alias: str = "") -> str:
    """Scope terms without the probe lists (for joins and the open-ticket index)."""
    a = f"{alias}." if alias else ""
    terms = ["1 = 1"]
    if scope.priorities:
        terms.append(f"{a}priority IN ({sql_ints(scope.priorities)})")
    if scope.category_ids:
        terms.append(f"{a}category_id IN ({sql_ints(scope.category_ids)})")
    if scope.assignee_ids:
        terms.append(f"{a}assignee_id IN ({sql_ints(scope.assignee_ids)})")
    if scope.channels:
        terms.append(f"{a}channel IN ({sql_strs(scope.channels)})")
    return " AND ".join(terms)


def time_span(session: Session) -> tuple[datetime | None, datetime | None]:
    """The first and last status event (index reads), to choose which end to count the backlog from."""
    pred = BACKLOG_EVENT_PREDICATE
    utc = UTCDateTime()
    lo = session.execute(text(f"SELECT min(occurred_at) FROM ticket_events WHERE {pred}")).scalar()
    hi = session.execute(text(f"SELECT max(occurred_at) FROM ticket_events WHERE {pred}")).scalar()
    conv = [utc.process_result_value(v, session.get_bind().dialect) if v is not None else None for v in (lo, hi)]
    return conv[0], conv[1]


def event_counts(session: Session, kind: str, bounds: Sequence[datetime], scope: Scope
                 ) -> dict[tuple[int, int, int], tuple[int, ...]]:
    """Events of ``kind`` per period ``[bounds[k], bounds[k+1])``, by the ticket's priority and category."""
    out: dict[tuple[int, int, int], tuple[int, ...]] = {}
    if len(bounds) < 2:
        return out
    where = probe_sql(scope, "m")
    # the kind as a literal: SQLite uses a partial index only when the query's terms match its WHERE
    base = f"FROM ticket_events e JOIN {TABLE} m ON m.ticket_id = e.ticket_id WHERE e.kind = {sql_strs([kind])} AND {where}"
    rows: Iterable[Row[*tuple[Any, ...]]]
    if session.get_bind().dialect.name == "postgresql":
        sql = (f"SELECT width_bucket(e.occurred_at, CAST(:bounds AS timestamptz[])) - 1 AS k, m.priority, "
               f"m.category_id, count(*) {base} AND e.occurred_at >= :lo AND e.occurred_at < :hi GROUP BY 1, 2, 3")
        # A few thousand events, each looked up by ticket: left to itself the planner merge-joins them with a
        # scan of all of ticket_metrics (247 ms against 70 ms for a year at 1M tickets).
        session.execute(text("SET LOCAL enable_mergejoin = off"))
        session.execute(text("SET LOCAL enable_hashjoin = off"))
        rows = session.execute(text(sql), {"bounds": list(bounds), "lo": bounds[0], "hi": bounds[-1]}).all()
        session.execute(text("SET LOCAL enable_mergejoin TO DEFAULT"))  # (an error rolls the SETs back anyway)
        session.execute(text("SET LOCAL enable_hashjoin TO DEFAULT"))
    else:
        utc = UTCDateTime()
        hint = "ix_events_reopened" if kind == "reopened" else "ix_events_kind_time"
        base = base.replace("ticket_events e", f"ticket_events e INDEXED BY {hint}", 1)
        parts, params, binds = [], {}, []
        for k in range(len(bounds) - 1):
            parts.append(f"SELECT {k} AS k, m.priority, m.category_id, count(*) {base} AND e.occurred_at >= :lo{k} "
                         f"AND e.occurred_at < :hi{k} GROUP BY m.priority, m.category_id")
            params[f"lo{k}"], params[f"hi{k}"] = bounds[k], bounds[k + 1]
            binds += [bindparam(f"lo{k}", type_=utc), bindparam(f"hi{k}", type_=utc)]
        rows = session.execute(text(" UNION ALL ".join(parts)).bindparams(*binds), params)
    for k, prio, cat, n in rows:
        out[(int(k), int(prio), int(cat))] = (int(n),)
    return out


# --- counts from metric_days -------------------------------------------------------------------------------

#: For each milestone, the raw aggregates that equal its metric_days columns (same order), for the slices.
RAW_AGGS: dict[str, tuple[str, ...]] = {
    name: tuple("count(*)" if v == "1" else f"sum({v.format(r=TABLE)})" for v in cols.values())
    for name, (_, cols) in MILESTONES.items()
}


def _bucket(expr: str, edges: Sequence[int], lo: int = 0, hi: int | None = None) -> str:
    """SQL giving k where edges[k] <= expr < edges[k + 1] (expr within [edges[0], edges[-1])): a balanced
    CASE, so a row makes log2(len(edges)) comparisons."""
    hi = len(edges) - 1 if hi is None else hi
    if hi - lo <= 1:
        return str(lo)
    mid = (lo + hi) // 2
    return f"(CASE WHEN {expr} < {int(edges[mid])} THEN {_bucket(expr, edges, lo, mid)} ELSE {_bucket(expr, edges, mid, hi)} END)"


def day_sums(session: Session, milestone: str, day_edges: Sequence[int], scope: Scope
             ) -> dict[tuple[int, int, int], tuple[int, ...]]:
    """metric_days summed per period ``{(k, priority, category id): values}``, where period k is the UTC days
    ``day_edges[k] <= day < day_edges[k + 1]``."""
    cols = ", ".join(f"sum({c})" for c in MILESTONES[milestone][1])
    if day_edges[-1] <= day_edges[0]:
        return {}
    if session.get_bind().dialect.name == "postgresql":
        k = "width_bucket(day, CAST(:edges AS integer[])) - 1"
        params: dict = {"edges": [int(d) for d in day_edges]}
    else:
        k, params = _bucket("day", day_edges), {}
    rows = session.execute(text(
        f"SELECT {k}, priority, category_id, {cols} FROM {days_source(session.get_bind().dialect.name)} "
        f"WHERE day >= {int(day_edges[0])} "
        f"AND day < {int(day_edges[-1])} AND {probe_sql(scope)} GROUP BY 1, 2, 3"), params)
    return {(int(k_), int(p), int(c)): tuple(int(v or 0) for v in values) for k_, p, c, *values in rows}


def interval_sums(session: Session, time_col: str, intervals: Sequence[tuple[int, int]], scope: Scope,
                  aggs: Sequence[str]) -> dict[tuple[int, int, int], tuple[int, ...]]:
    """Like :func:`period_sums` for separate ``[lo, hi)`` intervals (the slices at the edges of periods)."""
    out: dict[tuple[int, int, int], tuple[int, ...]] = {}
    if not intervals:
        return out
    dialect = session.get_bind().dialect.name
    agg_sql = ", ".join(aggs)
    if dialect == "postgresql":
        values_sql = ", ".join(f"({i}, {int(lo)}, {int(hi)})" for i, (lo, hi) in enumerate(intervals))
        sql = (f"SELECT s.i, m.priority, m.category_id, {agg_sql.replace(TABLE + '.', 'm.')} "
               f"FROM (VALUES {values_sql}) AS s(i, lo, hi) JOIN {TABLE} m ON {probe_sql(scope, 'm')} "
               f"AND m.{time_col} >= s.lo AND m.{time_col} < s.hi GROUP BY 1, 2, 3")
        rows = session.execute(text(sql))
    else:
        base = f"FROM {table_for(dialect, time_col)} WHERE {probe_sql(scope)}"
        parts = [f"SELECT {i} AS k, priority, category_id, {agg_sql} {base} AND {time_col} >= {int(lo)} "
                 f"AND {time_col} < {int(hi)} GROUP BY priority, category_id" for i, (lo, hi) in enumerate(intervals)]
        rows = session.execute(text(" UNION ALL ".join(parts)))
    for i, prio, cat, *values in rows:
        out[(int(i), int(prio), int(cat))] = tuple(int(v or 0) for v in values)
    return out


def nearest_midnight(moment_us: int) -> int:
    """The UTC midnight nearest to a moment (epoch microseconds)."""
    return (moment_us + DAY_US // 2) // DAY_US * DAY_US


def rollup_sums(session: Session, milestone: str, bounds: Sequence[int], scope: Scope
                ) -> dict[tuple[int, int, int], tuple[int, ...]]:
    """What :func:`period_sums` gives with the milestone's raw aggregates, read from metric_days.

    A local period [b0, b1) is the UTC days [A0, A1) between the UTC midnights nearest to its bounds, minus
    the slice [A0, b0) and plus the slice [A1, b1) (a slice with A after b counts negatively): at most
    half a day of raw rows at each bound (none where the desk's day starts at UTC midnight)."""
    time_col = MILESTONES[milestone][0]
    anchors = [nearest_midnight(b) for b in bounds]
    n = len(bounds) - 1
    out: dict[tuple[int, int, int], list[int]] = {}

    def add(key: tuple[int, int, int], values: Sequence[int], sign: int) -> None:
        acc = out.setdefault(key, [0] * len(values))
        for i, v in enumerate(values):
            acc[i] += sign * v

    for key, values in day_sums(session, milestone, [a // DAY_US for a in anchors], scope).items():
        add(key, values, 1)
    slices, where = [], []
    for j, (a, b) in enumerate(zip(anchors, bounds, strict=True)):
        if a != b:
            slices.append((min(a, b), max(a, b)))
            where.append((j, 1 if a < b else -1))
    for (i, prio, cat), values in interval_sums(session, time_col, slices, scope, RAW_AGGS[milestone]).items():
        j, sign = where[i]  # the signed slice [A_j, b_j): taken from period j, given to period j - 1
        if j < n:
            add((j, prio, cat), values, -sign)
        if j > 0:
            add((j - 1, prio, cat), values, sign)
    return {k: tuple(v) for k, v in out.items() if any(v)}
