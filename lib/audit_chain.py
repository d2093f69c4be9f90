"""The audit trail is append-only in the database and tamper-evident: triggers, the per-ticket hash chain, and
``python -m lib.cli verify-audit``.

**Append-only.** Triggers refuse UPDATE and DELETE on ``ticket_events`` and ``audit_log``, whoever writes
(SQLite: ``BEFORE`` triggers with ``RAISE(ABORT, ...)``; PostgreSQL: trigger functions that raise, and
TRUNCATE is refused too). Migration 0008 creates them from :func:`trigger_ddl`. One UPDATE is let through:
giving an event that has no chain hash yet its hash, every other column unchanged (sealing, below).
A migration that rebuilds one of these tables (e.g. an Alembic batch operation on SQLite) drops its
triggers with it: it must run :func:`trigger_ddl` again, and ``verify-audit`` fails while they are missing.

**Bypass, for maintenance only.** :func:`maintenance` drops the triggers inside the caller's transaction and
creates them again before it ends. DDL is transactional on both engines, so no other session sees the tables
unguarded, and an error restores the triggers with the rollback. Nothing in the product calls it:
``restore`` replaces the whole database (SQLite: a page copy; PostgreSQL: ``pg_restore --clean`` drops and
recreates each table with its triggers), seed-demo and the importers only insert, and there is no redaction
or retention job. It is the documented way for an administrator to correct a row, and what the tests use
to play a tamperer. The test suite's reset between PostgreSQL tests (tests/conftest.py ``reset_postgres``)
deletes these two tables' rows under ``SET LOCAL session_replication_role = replica``, which skips ordinary
triggers until it is set back and needs a superuser (who could drop the triggers anyway).

**Tamper-evident.** Each event stores ``chain_hash = sha256(previous chain hash of the same ticket + "\\n" +
canonical form of this event's fields)``; a ticket's first event chains from ``""``. The canonical form
(:func:`link`) is a JSON array of every column but ``id`` and ``chain_hash`` (:data:`CHAIN_FIELDS`), with times
as integer microseconds since the epoch (UTC) and ``meta`` as sorted compact JSON, so both engines and every
writer give the same bytes. Hashes are computed where events are inserted: :func:`before_insert` for every
event added through the ORM (``lib.ticket_core.add_event``, the generic importer), :func:`link_rows` for bulk
inserts through Core (the ServiceNow importer), and ``lib.seed.rows`` for seed-demo. Before reading the
previous hash, the ticket row is locked (PostgreSQL ``FOR NO KEY UPDATE``, which a service's
``FOR UPDATE`` already covers; SQLite's ``BEGIN IMMEDIATE`` write lock serialises every writer), so two
writers adding events to one ticket take turns, and ids grow in chain order.

Events written before migration 0008 have no hash. The first new event of such a ticket seals its history
first (:func:`seal_ticket`); ``verify-audit --seal`` seals every ticket at once (:func:`seal`). Only a run of
unhashed events at the start of a chain is ever sealed: an event without a hash after one with a hash is
reported as broken.

**Limits.** The hash has no secret key: someone who can drop the triggers and has read this can recompute the
chain of a ticket they changed, and removing a ticket's newest events leaves a valid, shorter chain. Keeping a
copy of each run's output (or a backup) elsewhere is what detects those.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import groupby
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]  # CPython's C encoder
from operator import itemgetter
from typing import Any

from sqlalchemy import bindparam, inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Mapper, Session, object_session

from lib import clock

EVENTS = "ticket_events"
AUDIT = "audit_log"
#: The columns of ``ticket_events`` the hash covers, in the order of the canonical form: all but ``id`` and
#: ``chain_hash``. A new column of the table must be added here (with a new :data:`FORMAT`) and to the
#: triggers' list of columns sealing may not change.
CHAIN_FIELDS = ("ticket_id", "kind", "actor_id", "actor_label", "from_status", "to_status", "field", "old_value",
                "new_value", "body", "public", "minutes", "meta", "occurred_at", "recorded_at")
FORMAT = 1
#: The fields of one event in canonical form: the values of :data:`CHAIN_FIELDS`, ``meta`` as canonical JSON
#: text, the two times as microseconds.
Fields = tuple[Any, ...]
Progress = Callable[[int, int], None] | None
#: An event read back with :data:`_COLUMNS`: id, the chain fields as stored, chain_hash.
EventRow = Sequence[Any]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_NAIVE = datetime(1970, 1, 1)
_US = timedelta(microseconds=1)
_LINK = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"))
_META = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), sort_keys=True)


# --- the canonical form and the link -------------------------------------------------------------------


def _compact_json() -> Callable[[object], str]:
    """``_LINK.encode``, with CPython's C encoder made once rather than on every call (a third faster: it runs
    for each of millions of seeded or verified events)."""
    if c_make_encoder is None:
        return _LINK.encode

    def refuse(value: object) -> object:
        raise TypeError(f"{type(value).__name__} is not part of an event's canonical form")

    encode = c_make_encoder(None, refuse, encode_basestring_ascii, None, ":", ",", False, False, True)
    return lambda value: "".join(encode(value, 0))


_encode_link = _compact_json()


def link(prev: str, fields: Fields) -> str:
    """The chain hash of an event: sha256 over the previous hash of its ticket and its canonical fields."""
    payload = _encode_link((FORMAT, *fields))
    return hashlib.sha256(f"{prev}\n{payload}".encode("ascii")).hexdigest()


def micros(value: datetime | str) -> int:
    """A stored time as integer microseconds since the epoch: an aware datetime, or the text SQLite keeps
    (naive UTC, as :class:`lib.models.UTCDateTime` writes it)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        return (value - _EPOCH_NAIVE) // _US
    return (value - _EPOCH) // _US


def seconds_micros(t: int | float) -> int:
    """Epoch seconds as the microseconds of the time stored for them (lib.seed.rows.TimeText)."""
    if t.__class__ is int:
        return t * 1_000_000
    if float(t).is_integer():
        return int(t) * 1_000_000
    return micros(datetime.fromtimestamp(t, UTC))


def canonical_meta(value: object) -> str | None:
    """``meta`` as the database will give it back (JSON), in canonical form; None for no meta."""
    if value is None:
        return None
    return _META.encode(json.loads(json.dumps(value)))


_META_TEXT: dict[str, str | None] = {}


def canonical_meta_text(stored: str | None) -> str | None:
    """``meta`` as stored (JSON text) in canonical form. Most repeat (``{"v": 3}``), so they are remembered."""
    if stored is None:
        return None
    try:
        return _META_TEXT[stored]
    except KeyError:
        pass
    parsed = json.loads(stored)
    out = None if parsed is None else _META.encode(parsed)
    if len(_META_TEXT) < 100_000:
        _META_TEXT[stored] = out
    return out


def _text(value: object) -> object:
    return value if value is None or isinstance(value, str) else str(value)


def fields_of(get: Callable[[str], Any]) -> Fields:
    """The canonical fields of an event about to be inserted, read with ``get(column name)`` (Python values)."""
    minutes = get("minutes")
    return (get("ticket_id"), _text(get("kind")), get("actor_id"), _text(get("actor_label")),
            _text(get("from_status")), _text(get("to_status")), _text(get("field")), _text(get("old_value")),
            _text(get("new_value")), _text(get("body")), bool(get("public")),
            None if minutes is None else int(minutes), canonical_meta(get("meta")),
            micros(get("occurred_at")), micros(get("recorded_at")))


def stored_fields(row: EventRow) -> Fields:
    """The canonical fields of an event read back with :data:`_COLUMNS` (values as the driver gives them)."""
    return (row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8], row[9], row[10], bool(row[11]),
            row[12], canonical_meta_text(row[13]), micros(row[14]), micros(row[15]))


# --- where events are inserted ---------------------------------------------------------------------------

_COLUMNS = ("id, ticket_id, kind, actor_id, actor_label, from_status, to_status, field, old_value, new_value, body, "
            "public, minutes, CAST(meta AS TEXT) AS meta, occurred_at, recorded_at, chain_hash")
_LOCK_TICKET = text("SELECT id FROM tickets WHERE id = :t FOR NO KEY UPDATE")
_TAIL = text(f"SELECT chain_hash FROM {EVENTS} WHERE ticket_id = :t ORDER BY id DESC LIMIT 1")
_ROWS_OF_TICKET = text(f"SELECT {_COLUMNS} FROM {EVENTS} WHERE ticket_id = :t ORDER BY id")
_SET_HASH = text(f"UPDATE {EVENTS} SET chain_hash = :h WHERE id = :id AND chain_hash IS NULL")
_TAILS_KEY = "audit_chain_tails"


def tail(conn: Connection, ticket_id: int) -> str:
    """The chain hash a new event of ``ticket_id`` links to, with the ticket locked (PostgreSQL) for the rest
    of the transaction; a history written before chain hashes is sealed first."""
    if conn.dialect.name == "postgresql":
        conn.execute(_LOCK_TICKET, {"t": ticket_id})
    row = conn.execute(_TAIL, {"t": ticket_id}).first()
    if row is None:
        return ""
    if row[0] is None:
        return seal_ticket(conn, ticket_id)
    return str(row[0])


def before_insert(_mapper: Mapper[Any], connection: Connection, target: Any) -> None:
    """ORM hook on ``TicketEvent`` (registered in lib.models): set the event's ``chain_hash`` just before its
    INSERT. Column defaults are filled in here, so the hash covers the values stored."""
    if target.occurred_at is None:
        target.occurred_at = clock.now()
    if target.recorded_at is None:
        target.recorded_at = clock.now()
    if target.public is None:
        target.public = False
    session = object_session(target)
    tails: dict[int, Any] = session.info.setdefault(_TAILS_KEY, {}) if session is not None else {}
    # Events of one flush are all hooked before any of them is inserted: the previous one of the same ticket
    # in this flush (still pending) is the link; otherwise the database has it.
    last = tails.get(target.ticket_id)
    if last is not None and last is not target and inspect(last).pending and last.chain_hash is not None:
        prev = last.chain_hash
    else:
        prev = tail(connection, target.ticket_id)
    target.chain_hash = link(prev, fields_of(target.__getattribute__))
    tails[target.ticket_id] = target


def link_rows(conn: Connection, ticket_id: int, rows: Sequence[dict[str, Any]], *, new_ticket: bool) -> None:
    """Set ``chain_hash`` on the value dicts of a bulk INSERT of one ticket's events (in insertion order), in
    the inserting transaction; ``new_ticket``: the ticket was created in it (nothing to link to)."""
    prev = "" if new_ticket else tail(conn, ticket_id)
    for row in rows:
        prev = row["chain_hash"] = link(prev, fields_of(row.__getitem__))


# --- sealing events written before chain hashes --------------------------------------------------------


def _seal(rows: Sequence[EventRow]) -> tuple[list[dict[str, Any]], str]:
    """One ticket's rows in id order -> the hashes to set (the run of unhashed events at the start) and the
    hash a new event links to."""
    prev, leading, out = "", True, []
    for r in rows:
        if r[16] is not None:
            leading, prev = False, r[16]
        elif leading:
            prev = link(prev, stored_fields(r))
            out.append({"id": r[0], "h": prev})
        else:
            prev = ""  # left as it is: verify reports it
    return out, prev


def seal_ticket(conn: Connection, ticket_id: int) -> str:
    """Hash the events of ``ticket_id`` written before chain hashes; return the hash a new event links to.
    The caller holds the ticket (see :func:`tail`)."""
    updates, prev = _seal(conn.execute(_ROWS_OF_TICKET, {"t": ticket_id}).all())
    if updates:
        conn.execute(_SET_HASH, updates)
    return prev


def seal(engine: Engine, *, begin: Callable[[Engine], AbstractContextManager[Session]], progress: Progress = None,
         batch: int = 2000) -> int:
    """Hash every event written before chain hashes (a one-time step after migration 0008; new events of such
    tickets seal their history themselves). ``begin(engine)`` opens a write transaction (lib.db.transaction).
    Returns how many events were sealed."""
    with engine.connect() as conn:
        todo = list(conn.execute(text(f"SELECT DISTINCT ticket_id FROM {EVENTS} WHERE chain_hash IS NULL "
                                      "ORDER BY ticket_id")).scalars())
    lock = text("SELECT id FROM tickets WHERE id IN :ids ORDER BY id FOR NO KEY UPDATE").bindparams(
        bindparam("ids", expanding=True))
    rows_of = text(f"SELECT {_COLUMNS} FROM {EVENTS} WHERE ticket_id IN :ids ORDER BY ticket_id, id").bindparams(
        bindparam("ids", expanding=True))
    sealed = 0
    for start in range(0, len(todo), batch):
        ids = todo[start:start + batch]
        with begin(engine) as s:
            conn = s.connection()
            if conn.dialect.name == "postgresql":
                conn.execute(lock, {"ids": ids})
            updates: list[dict[str, Any]] = []
            for _, group in groupby(conn.execute(rows_of, {"ids": ids}), key=itemgetter(1)):
                updates += _seal(list(group))[0]
            if updates:
                conn.execute(_SET_HASH, updates)
            sealed += len(updates)
        if progress:
            progress(min(start + batch, len(todo)), len(todo))
    return sealed


# --- verification ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Broken:
    """The first broken link of a ticket's chain."""

    ticket_id: int
    event_id: int
    problem: str


@dataclass
class Report:
    tickets: int = 0
    events: int = 0
    unsealed: int = 0  # events written before chain hashes, not sealed yet (nothing to check them against)
    broken: list[Broken] = field(default_factory=list)
    missing_triggers: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.broken and not self.missing_triggers


def _short(h: str) -> str:
    return h[:12] + "…"


def check_ticket(rows: Sequence[EventRow]) -> tuple[Broken | None, int]:
    """Walk one ticket's chain (rows in id order): its first broken link, if any, and how many events at its
    start are not sealed yet."""
    prev, sealed_before, unsealed = "", False, 0
    for i, r in enumerate(rows):
        stored = r[16]
        if stored is None:
            if sealed_before:
                return Broken(r[1], r[0], "it has no chain hash although the event before it has one: "
                                          "its hash was removed"), unsealed
            unsealed += 1
            continue
        expected = link(prev, stored_fields(r))
        if expected != stored:
            if i and rows[i - 1][16] is None:
                what = "the events before it have no chain hash: theirs were removed"
            else:
                nxt = rows[i + 1] if i + 1 < len(rows) else None
                if nxt is None or nxt[16] is None or link(stored, stored_fields(nxt)) == nxt[16]:
                    what = ("its fields differ from the ones hashed when it was written (the event was changed), "
                            "or an event before it was removed")
                else:
                    what = ("its chain hash no longer matches it nor the event after it: the hash was changed, "
                            "or several events were")
            return Broken(r[1], r[0], f"{what} (stored {_short(stored)}, recomputed {_short(expected)})"), unsealed
        sealed_before, prev = True, stored
    return None, unsealed


def verify(engine: Engine, *, ticket_id: int | None = None, progress: Progress = None,
           batch: int = 5000) -> Report:
    """Walk every ticket's chain (or one ticket's), streamed by ranges of ticket ids in (ticket, id) order, one
    short read per range; also check that the append-only triggers are in place."""
    report = Report()
    rows_in = text(f"SELECT {_COLUMNS} FROM {EVENTS} WHERE ticket_id >= :lo AND ticket_id < :hi "
                   "ORDER BY ticket_id, id")
    next_ticket = text(f"SELECT min(ticket_id) FROM {EVENTS} WHERE ticket_id >= :lo")
    with engine.connect() as conn:
        report.missing_triggers = missing_triggers(conn)
        if ticket_id is not None:
            lo: int | None = ticket_id
            total, last = 1, ticket_id
        else:
            lo = conn.execute(next_ticket, {"lo": 0}).scalar()
            total = int(conn.execute(text("SELECT count(*) FROM tickets")).scalar() or 0)
            last = conn.execute(text(f"SELECT max(ticket_id) FROM {EVENTS}")).scalar() or 0
        conn.rollback()
        while lo is not None and lo <= last:
            hi = lo + batch if ticket_id is None else lo + 1
            for _, group in groupby(conn.execute(rows_in, {"lo": lo, "hi": hi}), key=itemgetter(1)):
                rows = list(group)
                broken, unsealed = check_ticket(rows)
                report.tickets += 1
                report.events += len(rows)
                report.unsealed += unsealed
                if broken is not None:
                    report.broken.append(broken)
            lo = conn.execute(next_ticket, {"lo": hi}).scalar() if ticket_id is None else None
            conn.rollback()
            if progress:
                progress(report.tickets, max(total, report.tickets))
    return report


# --- the triggers ----------------------------------------------------------------------------------------

_TRIGGERS = {
    EVENTS: ("append_only_update", "append_only_delete"),
    AUDIT: ("append_only_update", "append_only_delete"),
}
_PG_TRUNCATE = "append_only_truncate"


def trigger_names(dialect: str) -> list[tuple[str, str]]:
    """(table, trigger) of every append-only trigger on ``dialect``."""
    out = [(table, f"{table}_{name}") for table, names in _TRIGGERS.items() for name in names]
    if dialect == "postgresql":
        out += [(table, f"{table}_{_PG_TRUNCATE}") for table in _TRIGGERS]
    return out


def _unchanged(dialect: str) -> str:
    """SQL: no column but chain_hash differs between OLD and NEW."""
    columns = ("id", *CHAIN_FIELDS)
    if dialect == "postgresql":
        return " AND ".join(f"NEW.{c}::text IS NOT DISTINCT FROM OLD.{c}::text" if c == "meta"
                            else f"NEW.{c} IS NOT DISTINCT FROM OLD.{c}" for c in columns)
    return " AND ".join(f"NEW.{c} IS OLD.{c}" for c in columns)


def function_ddl() -> list[str]:
    """PostgreSQL: the trigger functions (created once, by the migration)."""
    return [
        f"""CREATE OR REPLACE FUNCTION {EVENTS}_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' THEN
    IF OLD.chain_hash IS NULL AND NEW.chain_hash IS NOT NULL AND {_unchanged("postgresql")} THEN
      RETURN NEW;  -- sealing: an event written before chain hashes gets its hash, nothing else changes
    END IF;
  END IF;
  RAISE EXCEPTION '{EVENTS} is append-only: % refused', TG_OP;
END $$""",
        """CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP;
END $$""",
    ]


def trigger_ddl(dialect: str) -> list[str]:
    """The statements that create the append-only triggers (PostgreSQL: the functions must exist)."""
    if dialect == "postgresql":
        out = []
        for table, name in trigger_names(dialect):
            function = f"{EVENTS}_refuse_change" if table == EVENTS and "truncate" not in name else "audit_refuse_change"
            timing, level = ("BEFORE TRUNCATE", "STATEMENT") if "truncate" in name else (
                "BEFORE UPDATE" if name.endswith("update") else "BEFORE DELETE", "ROW")
            out.append(f"CREATE TRIGGER {name} {timing} ON {table} FOR EACH {level} EXECUTE FUNCTION {function}()")
        return out
    seal_ok = f"OLD.chain_hash IS NULL AND NEW.chain_hash IS NOT NULL AND {_unchanged('sqlite')}"
    out = []
    for table, name in trigger_names(dialect):
        op = "UPDATE" if name.endswith("update") else "DELETE"
        when = f" WHEN NOT ({seal_ok})" if table == EVENTS and op == "UPDATE" else ""
        out.append(f"CREATE TRIGGER {name} BEFORE {op} ON {table} FOR EACH ROW{when} "
                   f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {op} refused'); END")
    return out


def drop_trigger_ddl(dialect: str) -> list[str]:
    on = dialect == "postgresql"
    return [f"DROP TRIGGER IF EXISTS {name}" + (f" ON {table}" if on else "") for table, name in trigger_names(dialect)]


def drop_function_ddl() -> list[str]:
    return [f"DROP FUNCTION IF EXISTS {EVENTS}_refuse_change()", "DROP FUNCTION IF EXISTS audit_refuse_change()"]


def missing_triggers(conn: Connection) -> list[str]:
    """The append-only triggers that are not in place (PostgreSQL: missing or disabled)."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        present = set(conn.execute(text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgenabled <> 'D' "
                                        "AND tgrelid IN (CAST(:a AS regclass), CAST(:b AS regclass))"),
                                   {"a": EVENTS, "b": AUDIT}).scalars())
    else:
        present = set(conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger' "
                                        "AND tbl_name IN (:a, :b)"), {"a": EVENTS, "b": AUDIT}).scalars())
    return [name for _, name in trigger_names(dialect) if name not in present]


@contextmanager
def maintenance(conn: Connection) -> Iterator[None]:
    """Lift the append-only triggers for the rest of the block, in the caller's transaction (see the module's
    notes: for an administrator's correction, never for the product's own paths)."""
    dialect = conn.dialect.name
    for statement in drop_trigger_ddl(dialect):
        conn.execute(text(statement))
    try:
        yield
    except BaseException:
        # A failed statement leaves a SQLite transaction usable: it must not be committed unguarded. (PostgreSQL
        # refuses anything but a rollback now, and the rollback restores the triggers.)
        if dialect != "postgresql":
            _create_triggers(conn)
        raise
    _create_triggers(conn)


def _create_triggers(conn: Connection) -> None:
    for statement in trigger_ddl(conn.dialect.name):
        conn.execute(text(statement))
