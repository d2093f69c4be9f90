"""Engine, sessions and schema upgrades.

* SQLite: WAL, foreign keys, a busy timeout; write transactions start with ``BEGIN IMMEDIATE``
  (a deferred transaction that later needs the write lock fails with "database is locked").
* PostgreSQL: services lock the ticket row (``SELECT ... FOR UPDATE``) before changing it.
* ``upgrade_schema`` runs the Alembic migrations under a lock, so several app servers starting at
  once do not race (a transaction-level advisory lock on PostgreSQL, a file lock beside the SQLite file).
"""

from __future__ import annotations

import fcntl
import logging
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from lib.config import ROOT, get_settings

log = logging.getLogger(__name__)
T = TypeVar("T")

MIGRATIONS_DIR = ROOT / "migrations"
_WRITE_OPTION = "helpdesk_write"
#: How long a SQLite writer waits for the one write lock before "database is locked".
SQLITE_BUSY_SECONDS = 30
_ADVISORY_LOCK_ID = 727_274_001


_shared: dict[str, Engine] = {}
_shared_lock = threading.Lock()


def get_engine(url: str | None = None) -> Engine:
    """The engine of this process for the configured database: one per process, shared by the pages, the HTTP
    routes and the worker, with its schema upgraded once. Its pool is ``db_pool_size`` + ``db_max_overflow``
    connections on PostgreSQL (docs/configuration.md has the connection budget of several servers)."""
    url = url or get_settings().database_url
    with _shared_lock:
        engine = _shared.get(url)
        if engine is None:
            engine = make_engine(url)
            upgrade_schema(engine)
            _shared[url] = engine
        return engine


def shared_engines() -> int:
    """How many engines this process holds through :func:`get_engine` (one per database)."""
    with _shared_lock:
        return len(_shared)


def make_engine(url: str | None = None, **kwargs: Any) -> Engine:
    """A new engine (and pool). The app uses :func:`get_engine`; the CLI, tests and tools make their own."""
    settings = get_settings()
    url = url or settings.database_url
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            # A file's pool hands out the connection used last (as PostgreSQL's, below): its pages are cached.
            kwargs.setdefault("pool_use_lifo", True)
            Path(database).parent.mkdir(parents=True, exist_ok=True)
            # Password hashes and requesters' details: readable by this account only (new or existing file).
            from lib.filemodes import secure_sqlite_file

            secure_sqlite_file(database, create=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            **kwargs,
        )
        _configure_sqlite(engine)
        return engine
    # The connection used last is handed out next: the one whose statements PostgreSQL has prepared (psycopg
    # prepares a statement on its fifth run on a connection); a first-in, first-out pool spread a server's page
    # runs over every connection it had opened.
    kwargs.setdefault("pool_use_lifo", True)
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", settings.db_pool_size)
    kwargs.setdefault("max_overflow", settings.db_max_overflow)
    # JIT compilation pays off for long analytic queries, not for a help desk's short ones: a board query whose
    # estimate crosses jit_above_cost spent 400 of its 480 ms compiling (bench/bench_at_risk.py, 1M tickets).
    connect_args = dict(kwargs.pop("connect_args", None) or {})
    if settings.db_behind_pgbouncer:
        # PgBouncer in transaction pooling hands each transaction any server connection: a statement psycopg
        # prepared on one is unknown on the next, and PgBouncer refuses an `options` startup parameter it does not
        # track (set `jit = off` on the database instead: docs/deploy.md).
        connect_args.setdefault("prepare_threshold", None)
    else:
        connect_args["options"] = f"{connect_args.get('options', '')} -c jit=off".strip()
    return create_engine(url, connect_args=connect_args, **kwargs)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        # Let SQLAlchemy's "begin" event below issue BEGIN itself.
        dbapi_connection.isolation_level = None
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_SECONDS * 1000}")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:
        write = conn.get_execution_options().get(_WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def is_sqlite(bind: Engine | Session) -> bool:
    engine = bind.get_bind() if isinstance(bind, Session) else bind
    return engine.dialect.name == "sqlite"


_sqlite_writers: dict[str, threading.RLock] = {}


def _writer_lock(engine: Engine) -> threading.RLock | None:
    """SQLite: one lock per database file that this process's write transactions queue on. SQLite lets one
    writer in at a time; without the queue, waiting writers poll the file lock with growing sleeps (up to
    100 ms each), so some wait seconds while others go ahead. Other processes (the CLI) still meet the file
    lock and its busy timeout."""
    if engine.dialect.name != "sqlite":
        return None
    key = str(engine.url.database or "")
    if key in ("", ":memory:"):
        return None
    with _shared_lock:
        return _sqlite_writers.setdefault(key, threading.RLock())


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """A write transaction: commit on success, roll back on error. Services never commit themselves."""
    queue = _writer_lock(engine)
    if queue is not None and not queue.acquire(timeout=SQLITE_BUSY_SECONDS):
        raise OperationalError("BEGIN IMMEDIATE", None, sqlite3.OperationalError("database is locked"))
    try:
        with Session(bind=engine.execution_options(**{_WRITE_OPTION: True}), expire_on_commit=False) as session:
            with session.begin():
                yield session
    finally:
        if queue is not None:
            queue.release()


#: A write that meets a deadlock, a serialisation failure or a busy SQLite file is run again this many times in
#: all (backing off about 0.05, 0.1, 0.2, 0.4 s with jitter) before the error reaches the caller.
WRITE_ATTEMPTS = 5
_RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization_failure, deadlock_detected


def retryable(exc: BaseException) -> bool:
    """True for a failure that a fresh attempt of the whole transaction can get past."""
    if not isinstance(exc, DBAPIError):
        return False
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    if code in _RETRYABLE_SQLSTATES:
        return True
    return isinstance(exc, OperationalError) and "database is locked" in str(exc.orig)


def run_transaction(engine: Engine, fn: Callable[[Session], T], *, attempts: int = WRITE_ATTEMPTS,
                    what: str = "write") -> T:
    """``fn`` in a write transaction, run again (bounded, logged) when the database reports a deadlock, a
    serialisation failure or a locked SQLite file; every other error goes straight to the caller. ``fn`` must
    be safe to run again: it sees a fresh session each time and nothing of a failed attempt was committed."""
    for attempt in range(1, attempts + 1):
        try:
            with transaction(engine) as session:
                return fn(session)
        except DBAPIError as exc:
            if attempt == attempts or not retryable(exc):
                raise
            log.warning("%s: %s on attempt %d of %d, retrying", what, type(exc.orig).__name__, attempt, attempts)
            time.sleep(0.05 * 2 ** (attempt - 1) * (0.5 + random.random()))
    raise AssertionError("unreachable")


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    """A read-only unit of work (rolled back at the end)."""
    with Session(bind=engine, expire_on_commit=False) as session:
        try:
            yield session
        finally:
            session.rollback()


# --- schema ------------------------------------------------------------------------------------

_upgrade_guard = threading.Lock()


def _alembic_config(connection: object):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


def _sqlite_lock_path(engine: Engine) -> Path | None:
    database = engine.url.database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).with_name(Path(database).name + ".migrate.lock")


def upgrade_schema(engine: Engine) -> bool:
    """Create or upgrade the schema to the newest migration, then seed reference data.

    Returns True when anything was migrated. Safe to call from many processes at once.
    """
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    with _upgrade_guard:
        head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
        with engine.connect() as conn:  # cheap check first: nothing to do, no lock taken
            current = MigrationContext.configure(conn).get_current_revision()
            conn.rollback()
        if current == head:
            return False
        if engine.dialect.name == "postgresql":
            # A transaction-level lock, in the one transaction the migrations run in (PostgreSQL's DDL is
            # transactional): the commit or the rollback lets it go, so it also holds behind PgBouncer in
            # transaction pooling, where a session-level lock could outlive us on a pooled server connection.
            with engine.connect() as conn:
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_ADVISORY_LOCK_ID})")
                command.upgrade(_alembic_config(conn), "head")
                conn.commit()
        else:
            lock_path = _sqlite_lock_path(engine)
            lock_file = lock_path.open("w") if lock_path else None
            try:
                if lock_file:
                    fcntl.flock(lock_file, fcntl.LOCK_EX)
                with engine.connect() as conn:
                    command.upgrade(_alembic_config(conn), "head")
                    conn.commit()
            finally:
                if lock_file:
                    lock_file.close()
        return True
