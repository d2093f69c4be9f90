"""Rows for bulk inserts of tickets and events, and the writer that puts them in (SQLite or PostgreSQL).

Values go in as the database stores them, so no per-value type processing runs for millions of rows:
times as text (SQLite: ``YYYY-MM-DD HH:MM:SS.ffffff``, what :class:`lib.models.UTCDateTime` writes;
PostgreSQL: ``... +00`` for ``COPY``), JSON as text in the layout ``json.dumps`` gives.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import column, insert, select, table, text
from sqlalchemy.engine import Connection, Engine

from lib.audit_chain import canonical_meta_text, link, seconds_micros
from lib.db import transaction
from lib.models import Setting, Ticket, TicketEvent
from lib.seed.life import OPEN, Spec, TicketLife

#: The order of the values in a ticket row (every column of the table).
TICKET_COLUMNS = (
    "id", "external_source", "external_ref", "summary", "description", "channel", "requester_id", "device_id",
    "device_details", "category_id", "priority", "status", "is_open", "assignee_id", "created_by_id",
    "escalation_level", "vendor_name", "vendor_case_ref", "vendor_promised_at", "resolution_notes", "workaround",
    "root_cause", "root_cause_unknown_reason", "closure_reason", "closure_note", "confirmation_requested_at",
    "confirmed_at", "confirmation_via", "confirmed_by", "satisfaction", "parent_id", "duplicate_of_id",
    "is_major_incident", "occurrences", "created_at", "updated_at", "acknowledged_at", "first_response_at",
    "resolved_at", "closed_at", "reopen_count", "version", "sla_policy", "response_due_at", "response_risk_at",
    "resolution_due_at", "resolution_risk_at", "response_breached_at", "resolution_breached_at",
)
EVENT_COLUMNS = ("id", "ticket_id", "kind", "actor_id", "actor_label", "from_status", "to_status", "field",
                 "old_value", "new_value", "body", "public", "minutes", "meta", "occurred_at", "recorded_at",
                 "chain_hash")


def check_columns() -> None:
    """Refuse to run when the tables gained a column the rows do not fill (a migration this module missed)."""
    for cols, model in ((TICKET_COLUMNS, Ticket), (EVENT_COLUMNS, TicketEvent)):
        missing = {c.name for c in model.__table__.columns} - set(cols)
        if missing:
            raise RuntimeError(f"lib/seed/rows.py does not fill {model.__tablename__}.{', '.join(sorted(missing))}")


class TimeText:
    """Epoch seconds -> the text each engine stores."""

    def __init__(self, postgres: bool) -> None:
        self.suffix = "+00" if postgres else ".000000"
        self.postgres = postgres
        self.days: dict[int, str] = {}
        self.clock = [f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)]

    def __call__(self, t: int | float | None) -> str | None:
        if t is None:
            return None
        if t.__class__ is float and not t.is_integer():
            moment = datetime.fromtimestamp(t, UTC)
            return moment.isoformat(sep=" ") if self.postgres else moment.strftime("%Y-%m-%d %H:%M:%S.%f")
        d, sec = divmod(int(t), 86400)
        day = self.days.get(d)
        if day is None:
            day = self.days[d] = (datetime(1970, 1, 1) + timedelta(days=d)).strftime("%Y-%m-%d")
        return f"{day} {self.clock[sec]}{self.suffix}"


_STR_JSON: dict[str, str] = {}


def _json_value(v: object) -> str:
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v.__class__ is int:
        return str(v)
    if v.__class__ is str:
        out = _STR_JSON.get(v)
        if out is None:
            out = json.dumps(v)
            if len(_STR_JSON) < 100_000:
                _STR_JSON[v] = out
        return out
    return json.dumps(v)


_META_JSON: dict[tuple, str] = {}


def json_text(meta: dict | None) -> str | None:
    """``json.dumps(meta)`` for the flat dicts of event metadata, several times faster (most repeat)."""
    if meta is None:
        return None
    key = tuple(meta.items())
    try:
        out = _META_JSON.get(key)
    except TypeError:  # an unhashable value
        return json.dumps(meta)
    if out is None:
        out = "{" + ", ".join(f'"{k}": {_json_value(v)}' for k, v in meta.items()) + "}"
        if len(_META_JSON) < 200_000:
            _META_JSON[key] = out
    return out


def ticket_row(s: Spec, L: TicketLife, sla_cols: tuple, policy_json: str | None, f: TimeText) -> tuple:
    r_due, r_risk, z_due, z_risk, r_breach, z_breach = sla_cols
    assignee = L.assignee
    return (
        s.tid, None, None, s.summary, s.body, s.channel, s.requester[0] if s.requester else None, s.device_id,
        None, s.category_id, s.priority, L.status, L.status in OPEN, assignee.id if assignee else None,
        L.events[0][2], L.escalation, L.vendor, L.vendor_ref, f(L.vendor_promised), L.notes, L.workaround,
        L.root_cause, L.root_unknown, L.closure, L.closure_note, f(L.conf_requested), f(L.confirmed),
        L.conf_via, L.conf_by, L.satisfaction, s.parent_id, L.duplicate_of, False, 1, f(s.created), f(L.updated),
        f(L.acknowledged), f(L.first_response), f(L.resolved), f(L.closed), L.reopens, L.version, policy_json,
        f(r_due), f(r_risk), f(z_due), f(z_risk), f(r_breach), f(z_breach),
    )


def event_rows(first_id: int, tid: int, events: list[tuple], f: TimeText, out: list[tuple]) -> int:
    """Append the rows of one ticket's events to ``out``, each with its link of the ticket's hash chain (a new
    ticket: the chain starts here); return the next free event id."""
    eid = first_id
    days, clock, suffix, append = f.days, f.clock, f.suffix, out.append
    prev = ""
    for t, kind, actor, label, frm, to, fld, old, new, body, public, minutes, meta in events:
        if meta is None:
            meta_text = None
        elif len(meta) == 1 and "v" in meta:
            meta_text = f'{{"v": {meta["v"]}}}'
        else:
            meta_text = json_text(meta)
        when: str | None
        if t.__class__ is int and (day := days.get(t // 86400)) is not None:
            when = f"{day} {clock[t % 86400]}{suffix}"
        else:
            when = f(t)
        us = seconds_micros(t)
        prev = link(prev, (tid, kind, actor, label, frm, to, fld, old, new, body, public, minutes,
                           canonical_meta_text(meta_text), us, us))
        append((eid, tid, kind, actor, label, frm, to, fld, old, new, body, public, minutes, meta_text, when, when,
                prev))
        eid += 1
    return eid


def write_rows(conn: Connection, name: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
    """Insert ``rows`` in the caller's transaction: ``COPY`` on PostgreSQL; on SQLite the Core ``insert()``
    statement, executemany'd with plain tuples (a third of the time of one dict per row)."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        raw = conn.connection.dbapi_connection
        with raw.cursor() as cur, cur.copy(f"COPY {name} ({', '.join(columns)}) FROM STDIN") as copy:  # type: ignore[union-attr]  # an open connection's DBAPI connection
            for row in rows:
                copy.write_row(row)
        return
    stmt = insert(table(name, *(column(c) for c in columns))).compile(dialect=conn.dialect)
    conn.exec_driver_sql(str(stmt), rows)


# --- building indexes once at the end -----------------------------------------------------------------

INDEX_MEMO_KEY = "seed_deferred_indexes"


def defer_indexes(engine: Engine) -> list[str]:
    """On an empty ``tickets`` table, drop the secondary indexes of tickets and events and return the
    statements that recreate them: building an index once over sorted data is far cheaper than keeping
    it up to date row by row. The statements are also kept in the settings table until
    :func:`restore_indexes` has run, so an interrupted run is repaired by the next one."""
    restore_indexes(engine)
    with transaction(engine) as s:
        if s.scalar(select(Ticket.id).limit(1)) is not None:
            return []
        conn = s.connection()
        if conn.dialect.name == "postgresql":
            rows = conn.execute(text(
                "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename IN ('tickets', 'ticket_events') "
                "AND i.schemaname = current_schema() AND NOT EXISTS (SELECT 1 FROM pg_constraint c "
                "WHERE c.conname = i.indexname)")).all()
        else:
            rows = conn.execute(text(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
                "AND tbl_name IN ('tickets', 'ticket_events')")).all()
        statements = [sql for _, sql in rows]
        s.add(Setting(key=INDEX_MEMO_KEY, value={"create": statements}))
        s.flush()
        for name, _ in rows:
            conn.execute(text(f'DROP INDEX "{name}"'))
    return statements


def restore_indexes(engine: Engine) -> None:
    """Recreate indexes a seeding run dropped (idempotent; nothing to do in the usual case)."""
    with transaction(engine) as s:
        memo = s.get(Setting, INDEX_MEMO_KEY)
        if memo is None:
            return
        conn = s.connection()
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '256MB'")
        else:  # room to sort in memory, and helper threads for the sorter
            conn.exec_driver_sql("PRAGMA cache_size=-262144")
            conn.exec_driver_sql("PRAGMA threads=2")
        for sql in memo.value.get("create", []):
            conn.execute(text(re.sub(r"^CREATE (UNIQUE )?INDEX ", r"CREATE \1INDEX IF NOT EXISTS ", sql)))
        s.delete(memo)
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA cache_size=-2000")
            conn.exec_driver_sql("PRAGMA threads=0")
