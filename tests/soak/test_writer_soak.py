"""Soak: 20 technicians writing at once on each engine → no error reaches anyone, no deadlock is left unretried,
and the metrics tables agree with the tickets afterwards.

The harness is bench/bench_writers.py's (there it runs 20 × 5,000 steps and reports throughput and latency);
here it is bounded in steps and time. The figures are printed, never asserted: the machine is shared.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bench.bench_writers import make_writers, run_writers
from lib.db import read_session
from lib.metrics import metrics_store
from lib.models import Ticket
from tests.conftest import fast_hash

pytestmark = pytest.mark.slow

WRITERS = 20
STEPS = 28  # four times through a ticket's life per writer
TIME_LIMIT_S = 300  # the bound that stops a hung run, not a speed target


def test_twenty_writers_at_once(engine) -> None:
    writers = make_writers(engine, WRITERS, fast_hash("writer password"))
    outcome = run_writers(engine, writers, STEPS, time_limit_s=TIME_LIMIT_S)
    summary = outcome.summary()
    print(f"\n{engine.dialect.name}: " + ", ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}"
                                                for k, v in summary.items()))
    assert outcome.errors == []
    assert summary["ops"] == WRITERS * STEPS
    with read_session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Ticket)) == WRITERS * STEPS // 7
        assert metrics_store.check(s) == []
        assert metrics_store.check_days(s) == []
