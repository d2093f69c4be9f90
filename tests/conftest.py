"""Shared fixtures: a fresh migrated database per test on SQLite and PostgreSQL, staff accounts, paths.

PostgreSQL tests read HELPDESK_TEST_POSTGRES_URL (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test).
Each test session creates its own database beside it (dropped at the end), so runs never collide.
Without the URL those tests skip with a reason; with HELPDESK_REQUIRE_POSTGRES=1 (set by .ci/run) they fail.
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Never write secrets into the working tree from tests.
os.environ.setdefault("HELPDESK_SERVER_SECRET", "test-server-secret-" + "x" * 40)
os.environ.setdefault("HELPDESK_COOKIE_KEY", "test-cookie-key-" + "y" * 40)

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import Engine, make_url  # noqa: E402

import lib.mail_in  # noqa: E402,F401  (its table is part of the schema)
from lib.db import make_engine, transaction, upgrade_schema  # noqa: E402
from lib.models import Base, User  # noqa: E402
from lib.workflow import Role  # noqa: E402

SHARED = ROOT.parent / "shared"
TESTDATA = SHARED / "testdata"
# bcrypt with few rounds: fast tests; the hash format is the same as production's.
FAST_HASHES: dict[str, str] = {}
_SNAPSHOTS: dict[int, dict[str, list[dict]]] = {}


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
    """Empty every table and restore the seeded reference data (DELETE is far cheaper than TRUNCATE here)."""
    tables = [t for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        for table in tables:
            conn.execute(table.delete())
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
