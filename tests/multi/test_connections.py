"""The connection budget of several app servers, and what changes behind PgBouncer (docs/deploy.md).

Each process holds one engine, whose pool is at most ``db_pool_size + db_max_overflow`` connections, shared by
its pages, HTTP routes and worker; so ``servers x (pool + overflow) + separate workers x (pool + overflow)``
must stay within ``max_connections - superuser_reserved_connections``.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Connection, text

from lib.config import get_settings
from lib.db import make_engine
from tests.e2e.conftest import pick
from tests.multi.conftest import ALERT_TOKEN, OVERFLOW, POOL, ROOT, Pair, http_get, http_post, pg_admin_url, signed_in

_ADVISORY_MIGRATION_LOCK = 727_274_001  # lib.db._ADVISORY_LOCK_ID


class Sampler:
    """Counts the app servers' connections to the test database in pg_stat_activity, every 20 ms, keeping the
    highest count seen per application_name (each server names its connections helpdesk-a / helpdesk-b)."""

    def __init__(self, pair: Pair) -> None:
        self.pair = pair
        self.peak: Counter[str] = Counter()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with self.pair.engine.connect() as conn:
            while not self.stop.is_set():
                rows = conn.execute(text(
                    "SELECT application_name, count(*) FROM pg_stat_activity WHERE datname = :db "
                    "AND pid <> pg_backend_pid() GROUP BY application_name"), {"db": self.pair.db.name}).all()
                conn.rollback()
                for name, n in rows:
                    self.peak[name] = max(self.peak[name], n)
                self.stop.wait(0.02)

    def __enter__(self) -> Sampler:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


def test_both_servers_serving_and_both_workers_running_stay_within_the_connection_budget(browser, pair: Pair,
                                                                                         staff_cookies) -> None:
    budget = POOL + OVERFLOW  # HELPDESK_DB_POOL_SIZE + HELPDESK_DB_MAX_OVERFLOW, read from the environment
    with pair.engine.connect() as conn:
        max_connections = int(conn.execute(text("SHOW max_connections")).scalar_one())
        reserved = int(conn.execute(text("SHOW superuser_reserved_connections")).scalar_one())
    assert 2 * budget <= max_connections - reserved  # the documented formula holds for this test's two servers

    alert = json.dumps({"version": "4", "receiver": "helpdesk", "status": "firing", "alerts": [
        {"status": "firing", "labels": {"alertname": "FanFail", "instance": "rack-9", "severity": "warning"},
         "annotations": {"summary": "FanFail on rack-9"}}]}).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {ALERT_TOKEN}"}
    statuses: list[int] = []
    lock = threading.Lock()

    def hammer(url: str) -> None:
        for i in range(6):
            status = http_get(url + "/api/health")[0] if i % 2 else http_post(url + "/api/alerts", alert, headers)[0]
            with lock:
                statuses.append(status)

    with Sampler(pair) as sampler:
        pages = [signed_in(browser, staff_cookies, "tom", pair.a), signed_in(browser, staff_cookies, "lena", pair.b)]
        threads = [threading.Thread(target=hammer, args=(s.url,)) for s in pair.servers for _ in range(8)]
        for thread in threads:
            thread.start()
        for page in pages:
            pick(page, "All open")
        for thread in threads:
            thread.join(60)
        for page in pages:
            page.context.close()
    assert statuses and set(statuses) == {200}, Counter(statuses)
    for name in ("helpdesk-a", "helpdesk-b"):
        assert 1 <= sampler.peak[name] <= budget, (name, dict(sampler.peak))
    servers_total = sampler.peak["helpdesk-a"] + sampler.peak["helpdesk-b"]
    assert servers_total <= 2 * budget <= max_connections - reserved


def test_schema_upgrades_leave_no_advisory_lock_behind(pair: Pair) -> None:
    """The migration lock is transaction-level (it also holds behind PgBouncer in transaction pooling): once the
    servers have migrated, nobody holds it."""
    with pair.engine.connect() as conn:
        held = conn.execute(text(
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
            "WHERE l.locktype = 'advisory' AND d.datname = :db AND l.classid = 0 AND l.objid = :key"),
            {"db": pair.db.name, "key": _ADVISORY_MIGRATION_LOCK}).scalar_one()
    assert held == 0


def _raw(conn: Connection) -> Any:
    """The psycopg connection under a SQLAlchemy one."""
    raw = conn.connection.dbapi_connection
    assert raw is not None
    return raw


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_behind_pgbouncer_the_driver_prepares_nothing_and_sends_no_options(monkeypatch, fresh_settings) -> None:
    url = pg_admin_url()
    monkeypatch.delenv("HELPDESK_DB_BEHIND_PGBOUNCER", raising=False)
    direct = make_engine(url)
    with direct.connect() as conn:
        assert _raw(conn).prepare_threshold == 5  # psycopg's default
        assert conn.execute(text("SELECT setting, source FROM pg_settings WHERE name = 'jit'")).one() == (
            "off", "client")  # the startup option
    direct.dispose()

    monkeypatch.setenv("HELPDESK_DB_BEHIND_PGBOUNCER", "yes")
    get_settings.cache_clear()
    assert get_settings().db_behind_pgbouncer is True
    pooled = make_engine(url)
    with pooled.connect() as conn:
        assert _raw(conn).prepare_threshold is None  # no server-side prepared statements
        for _ in range(8):  # past psycopg's threshold of 5: still nothing prepared
            conn.execute(text("SELECT 1"))
        assert conn.execute(text("SELECT count(*) FROM pg_prepared_statements")).scalar_one() == 0
        # No startup option: jit is whatever the database says (set it off there, docs/deploy.md).
        assert conn.execute(text("SELECT source FROM pg_settings WHERE name = 'jit'")).scalar_one() != "client"
    pooled.dispose()


def test_nothing_in_the_app_holds_session_state_that_transaction_pooling_would_break() -> None:
    """What docs/deploy.md promises for PgBouncer in transaction pooling: advisory locks are transaction-level
    (``pg_advisory_xact_lock``, ``pg_try_advisory_xact_lock``), settings are ``SET LOCAL``, no LISTEN, no
    session-level prepared statements of our own."""
    session_level = re.compile(r"pg_(try_)?advisory_lock\(|pg_advisory_unlock|[\"']\s*(LISTEN|PREPARE)\s|"
                               r"[\"']\s*SET\s+(SESSION\s+)?(?!LOCAL\b)\w+", re.IGNORECASE)
    found = []
    for path in sorted((ROOT / "lib").rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if ("exec" in code or "text(" in code) and session_level.search(code):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, found
