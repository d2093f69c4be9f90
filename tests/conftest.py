"""Shared fixtures: a fresh migrated database per test on SQLite and PostgreSQL, staff accounts, paths.

PostgreSQL tests read HELPDESK_TEST_POSTGRES_URL (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test).
Each test session creates its own database beside it (dropped at the end), so runs never collide.
Without the URL those tests skip with a reason; with HELPDESK_REQUIRE_POSTGRES=1 (set by .ci/run) they fail.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# .ci/run runs the unit and data tests again under libfaketime with the monotonic clock left alone
# (FAKETIME_DONT_FAKE_MONOTONIC=1). There, libfaketime 0.9.10 fails every clock_nanosleep with EINVAL, so
# time.sleep raises (faking the monotonic clock as well makes every timed wait hang instead). A wait on a
# threading.Event sleeps the same time through a path that works: use it there, and only there.
if "faketime" in os.environ.get("LD_PRELOAD", ""):
    time.sleep = lambda seconds: threading.Event().wait(max(0.0, seconds))  # type: ignore[assignment]

# Never write secrets into the working tree from tests.
os.environ.setdefault("HELPDESK_SERVER_SECRET", "test-server-secret-" + "x" * 40)
os.environ.setdefault("HELPDESK_COOKIE_KEY", "test-cookie-key-" + "y" * 40)
os.environ.setdefault("HELPDESK_PUBLIC_URL", "https://desk.example.test")

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import Engine, make_url  # noqa: E402

from lib import clock as product_clock  # noqa: E402
from lib.db import make_engine, transaction, upgrade_schema  # noqa: E402
from lib.models import Base, User  # noqa: E402
from lib.workflow import Role  # noqa: E402

SHARED = ROOT.parent / "shared"
TESTDATA = SHARED / "testdata"
# bcrypt with few rounds: fast tests; the hash format is the same as production's.
FAST_HASHES: dict[str, str] = {}
_SNAPSHOTS: dict[int, dict[str, list[dict]]] = {}


class TestClock:
    """The product's clock in tests: it starts at a fixed instant and moves on with real elapsed time.

    Starting from a fixed instant takes today's date out of every result (weekday, holidays, SLA targets,
    report weeks); moving on keeps events in order and lets waits and retries work. ``set`` and
    ``advance`` move it; ``now()`` reads it (what services called without ``now=`` read).
    """

    __test__ = False  # a helper, not a test class
    START = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)  # a Tuesday, 10:00 in London (GMT): inside opening hours

    def __init__(self, start: datetime = START) -> None:
        self._lock = threading.Lock()
        self._base, self._t0 = start.astimezone(UTC), time.monotonic()

    def now(self) -> datetime:
        with self._lock:
            return self._base + timedelta(seconds=time.monotonic() - self._t0)

    __call__ = now

    def set(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("the clock takes timezone-aware datetimes")
        with self._lock:
            self._base, self._t0 = at.astimezone(UTC), time.monotonic()

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._base += delta


@pytest.fixture(autouse=True)
def clock() -> Iterator[TestClock]:
    """Every test reads the product's time from a :class:`TestClock`, never from the wall clock."""
    test_clock = TestClock()
    with product_clock.using(test_clock.now):
        yield test_clock


def new_ticket(engine: Engine, actor: int, *, priority: str, now: datetime, assignee: int | None = None,
               category: str = "Networking") -> int:
    """A phone ticket for Ann Smith ("<priority> trouble"), optionally assigned at creation; its id."""
    from lib import tickets
    from lib.directory import RequesterInput
    from lib.tickets import TicketDraft

    with transaction(engine) as s:
        return tickets.create_ticket(s, actor=actor, now=now, draft=TicketDraft(
            summary=f"{priority} trouble", category=category, priority=priority, channel="phone",
            requester=RequesterInput(name="Ann Smith", email="ann@example.com"), assignee_id=assignee)).id


def wait_for_lock_waiter(engine: Engine, timeout: float = 10.0) -> bool:
    """Wait until another session of this database waits on a lock (PostgreSQL); True once one does.

    A test that holds a transaction open "while the other one arrives" waits for that state instead of
    sleeping. SQLite cannot show a writer waiting in its busy handler, but it serialises writers, so there
    the outcome does not depend on when the other one arrives: return False at once.
    """
    if engine.dialect.name != "postgresql":
        return False
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()")).scalar_one()
            conn.rollback()
            if waiting:
                return True
            pause.wait(0.01)
    return False


def testdata_dir(sub: str = "") -> Path:
    path = TESTDATA / sub if sub else TESTDATA
    if not path.is_dir():
        pytest.skip(f"shared testdata folder not found: {path} (it sits beside the project in CI)")
    return path


def _pg_base_url() -> str | None:
    url = os.environ.get("HELPDESK_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("HELPDESK_REQUIRE_POSTGRES") == "1":
            pytest.fail("HELPDESK_REQUIRE_POSTGRES=1 but HELPDESK_TEST_POSTGRES_URL is not set")
        pytest.skip("PostgreSQL tests need HELPDESK_TEST_POSTGRES_URL (see README)")
    return url


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    base = _pg_base_url()
    assert base is not None
    name = f"helpdesk_t_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001
        if os.environ.get("HELPDESK_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL at {base} is not usable: {exc}")
        pytest.skip(f"PostgreSQL at {base} is not usable: {exc}")
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def pg_engine(pg_url: str) -> Iterator[Engine]:
    engine = make_engine(pg_url)
    upgrade_schema(engine)
    with engine.connect() as conn:
        snapshot = {t: [dict(r._mapping) for r in conn.execute(text(f"SELECT * FROM {t}"))]
                    for t in ("categories", "sla_targets")}
    _SNAPSHOTS[id(engine)] = snapshot
    yield engine
    engine.dispose()


def reset_postgres(engine: Engine) -> None:
    """Empty every table and restore the seeded reference data (DELETE is far cheaper than TRUNCATE here).
    The append-only tables are emptied under ``session_replication_role = replica``, which skips their triggers
    (lib/audit_chain.py); every other table's triggers run as usual (they empty metric_days)."""
    from lib import board_snapshot

    board_snapshot.clear()  # the board's kept snapshot is per database URL: this one is about to be replaced
    tables = [t for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        for table in tables:
            append_only = table.name in ("ticket_events", "audit_log")
            if append_only:
                conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
            conn.execute(table.delete())
            if append_only:
                conn.exec_driver_sql("SET LOCAL session_replication_role = origin")
        for table in tables:
            if "id" in table.c and table.c.id.autoincrement is not False and table.name != "sla_targets":
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), 1, false)"))
        for table, rows in _SNAPSHOTS[id(engine)].items():
            if rows:
                conn.execute(Base.metadata.tables[table].insert(), rows)
        conn.execute(text("SELECT setval(pg_get_serial_sequence('categories', 'id'), (SELECT max(id) FROM categories))"))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    upgrade_schema(engine)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


def fresh_sqlite(template: Path, folder: Path) -> Engine:
    path = folder / "helpdesk.sqlite3"
    shutil.copyfile(template, path)
    return make_engine(f"sqlite:///{path}")


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> Iterator[Engine]:
    """A fresh, migrated database with the seeded categories and SLA targets, on each engine."""
    if request.param == "sqlite":
        eng = fresh_sqlite(sqlite_template, tmp_path)
        yield eng
        eng.dispose()
    else:
        eng = request.getfixturevalue("pg_engine")
        reset_postgres(eng)
        yield eng


@pytest.fixture
def sqlite_engine(tmp_path: Path, sqlite_template: Path) -> Iterator[Engine]:
    eng = fresh_sqlite(sqlite_template, tmp_path)
    yield eng
    eng.dispose()


@dataclass(frozen=True)
class Staff:
    lead: int
    senior: int
    tech: int
    tech2: int
    password: str = "correct horse battery"


def fast_hash(password: str) -> str:
    if password not in FAST_HASHES:
        import bcrypt

        FAST_HASHES[password] = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    return FAST_HASHES[password]


def make_staff(engine: Engine, password: str = "correct horse battery") -> Staff:
    ids = {}
    with transaction(engine) as s:
        for username, name, role in (
            ("lead", "Lena Lead", Role.LEAD),
            ("senior", "Sam Senior", Role.SENIOR),
            ("tech", "Tom Tech", Role.TECHNICIAN),
            ("tech2", "Tara Tech", Role.TECHNICIAN),
        ):
            user = User(username=username, name=name, email=f"{username}@desk.example", role=int(role),
                        password_hash=fast_hash(password), capacity=10, active=True)
            s.add(user)
            s.flush()
            ids[username] = user.id
    return Staff(**ids, password=password)


@pytest.fixture
def staff(engine: Engine) -> Staff:
    return make_staff(engine)


def awaiting_confirmation(engine: Engine, staff: Staff, *, summary: str = "Wi-Fi drops in room 4",
                          requester: tuple[str, str] = ("Dee", "dee@example.com")) -> int:
    """A phone ticket for a requester with an e-mail address, worked, resolved and waiting for their word."""
    from lib import tickets
    from lib.directory import RequesterInput
    from lib.tickets import TicketDraft
    from lib.workflow import ActionKind

    with transaction(engine) as s:
        t = tickets.create_ticket(s, actor=staff.tech, draft=TicketDraft(
            summary=summary, category="Networking", priority="Medium", channel="phone",
            requester=RequesterInput(name=requester[0], email=requester[1])))
        t = tickets.take(s, actor=staff.tech, ticket_id=t.id)
        t = tickets.acknowledge(s, actor=staff.tech, ticket_id=t.id, expected_version=t.version)
        tickets.log_action(s, actor=staff.tech, ticket_id=t.id, kind=ActionKind.DIAGNOSIS, text="Found the cause")
        t = tickets.resolve(s, actor=staff.tech, ticket_id=t.id, expected_version=t.version,
                            resolution_notes="Moved the access point to channel 11", root_cause="Channel clash")
        t = tickets.request_confirmation(s, actor=staff.tech, ticket_id=t.id, expected_version=t.version)
        return t.id
