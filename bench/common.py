"""What the benchmarks share: medians of timed runs, and one seeded database per size.

The SQLite file ``bench/results/queue_<size>.sqlite3`` and the PostgreSQL database ``helpdesk_bench_<size>``
are seeded once with ``seed-demo`` (seed 7; 5 years from 100,000 tickets, else 1; data ending at ``BENCH_NOW``)
and kept for re-runs (git-ignored), so every benchmark of a size measures the same data on both engines.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, func, select, text  # noqa: E402
from sqlalchemy.engine import Engine, make_url  # noqa: E402

from lib.db import make_engine, read_session, upgrade_schema  # noqa: E402
from lib.models import Ticket  # noqa: E402
from lib.seed.demo import seed_demo  # noqa: E402

RESULTS = ROOT / "bench" / "results"
DEMO_PASSWORD = "bench password 123"
# The moment the benchmark data ends at: the same seed and moment give the same tickets on either engine.
BENCH_NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def machine_reference(runs: int = 5) -> float:
    """The median ms of a fixed pure-Python loop: this machine's speed, for comparing figures across machines."""
    times = []
    for _ in range(runs):
        t0, total = time.perf_counter(), 0
        for i in range(5_000_000):
            total += i
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def median_ms(fn: Callable[[], object], runs: int) -> float:
    """Median wall time of ``runs`` calls, in ms, after one call that warms the caches."""
    fn()
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def database_for(postgres_url: str | None, size: int, *, name: str | None = None) -> str:
    """The shared database of ``size`` tickets: the SQLite file, or a database on ``postgres_url``'s server
    (created when missing)."""
    if postgres_url is None:
        RESULTS.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{RESULTS / f'queue_{size}.sqlite3'}"
    name = name or f"helpdesk_bench_{size}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).scalar():
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(postgres_url).set(database=name).render_as_string(hide_password=False)


def seeded(url: str, size: int, *, log: Callable[[str], None] = print) -> Engine:
    """An engine on ``url`` with the schema up to date and at least ``size`` tickets (seeded when fewer)."""
    engine = make_engine(url)
    upgrade_schema(engine)
    with read_session(engine) as s:
        have = s.scalar(select(func.count()).select_from(Ticket)) or 0
    if have < size:
        log(f"  seeding {size - have:,} tickets into {engine.url.render_as_string()} ...")
        t0 = time.perf_counter()
        seed_demo(engine, tickets=size - have, years=5 if size >= 100_000 else 1, seed=7, demo_password=DEMO_PASSWORD,
                  now=BENCH_NOW)
        log(f"  seeded in {time.perf_counter() - t0:.0f} s")
    return engine
