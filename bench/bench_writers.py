"""Concurrent writers: N technicians working tickets at once, on SQLite and PostgreSQL.

Each writer is one thread with its own account doing a technician's day, one transaction per step, through the
services and ``lib.db.run_transaction`` as the pages do: create a ticket, take it, acknowledge, document an
action, add a note (now and then on a colleague's ticket), change the priority, resolve. Reported per engine:
operations, errors that reached the writer, retries (deadlocks, serialisation failures, a busy SQLite file),
throughput and latency percentiles of one write as the writer waits for it (retries included).

    .venv/bin/python bench/bench_writers.py --writers 20 --ops 5000 \\
        --postgres postgresql+psycopg://postgres@127.0.0.1:5432/postgres

The soak test (tests/soak/test_writer_soak.py) runs the same harness, bounded, and checks 0 errors and a
consistent database afterwards.
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import Engine, make_url  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from lib import tickets  # noqa: E402
from lib.db import make_engine, run_transaction, transaction, upgrade_schema  # noqa: E402
from lib.directory import RequesterInput  # noqa: E402
from lib.models import Ticket, User  # noqa: E402
from lib.tickets import TicketDraft  # noqa: E402
from lib.workflow import Role  # noqa: E402

CATEGORIES = ("Hardware", "Software", "Networking", "Printing", "Account Issues")
PRIORITIES = ("Low", "Medium", "High", "Critical")
STEPS = ("create", "take", "acknowledge", "action", "note", "priority", "resolve")


@dataclass
class Outcome:
    latencies_ms: list[float] = field(default_factory=list)
    by_step: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    retries: int = 0
    seconds: float = 0.0

    def summary(self) -> dict[str, float]:
        lat = sorted(self.latencies_ms) or [0.0]

        def pct(p: float) -> float:
            return lat[min(len(lat) - 1, int(round(p / 100 * (len(lat) - 1))))]

        return {"ops": len(self.latencies_ms), "errors": len(self.errors), "retries": self.retries,
                "ops_per_s": len(self.latencies_ms) / self.seconds if self.seconds else 0.0,
                "p50_ms": statistics.median(lat), "p95_ms": pct(95), "p99_ms": pct(99), "max_ms": lat[-1]}


class _RetryCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0
        self.lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        if "retrying" in record.getMessage():
            with self.lock:
                self.count += 1


def make_writers(engine: Engine, count: int, password_hash: str) -> list[int]:
    """``count`` technician accounts (the hash is given: bcrypt per account would dominate a small run)."""
    ids = []
    with transaction(engine) as s:
        for i in range(count):
            user = User(username=f"writer{i:02d}", name=f"Writer {i}", email=f"writer{i}@desk.example",
                        role=int(Role.TECHNICIAN), password_hash=password_hash, capacity=10_000, active=True)
            s.add(user)
            s.flush()
            ids.append(user.id)
    return ids


def run_writers(engine: Engine, writer_ids: list[int], ops_per_writer: int, *, seed: int = 7,
                time_limit_s: float = 600.0) -> Outcome:
    """Every writer does ``ops_per_writer`` steps (or stops at the time limit); returns what they saw."""
    outcome = Outcome()
    lock = threading.Lock()
    shared: list[int] = []  # tickets anyone may add a note to
    retries = _RetryCounter()
    logging.getLogger("lib.db").addHandler(retries)
    start = threading.Barrier(len(writer_ids))
    deadline = time.monotonic() + time_limit_s

    def writer(index: int, actor: int) -> None:
        rng = random.Random(seed * 1000 + index)
        current: int | None = None
        step = 0
        start.wait()
        for n in range(ops_per_writer):
            if time.monotonic() > deadline:
                break
            name = STEPS[step]
            fn = _step(name, actor, current, rng, shared, lock, n)
            t0 = time.perf_counter()
            try:
                result = run_transaction(engine, fn, what=f"writer {index} {name}")
            except Exception as exc:  # noqa: BLE001 - every error the writer sees is the result
                with lock:
                    outcome.errors.append(f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
                step, current = 0, None
                continue
            elapsed = (time.perf_counter() - t0) * 1000
            with lock:
                outcome.latencies_ms.append(elapsed)
                outcome.by_step[name] += 1
            if name == "create":
                current = result
                with lock:
                    shared.append(result)
            step = (step + 1) % len(STEPS)

    threads = [threading.Thread(target=writer, args=(i, uid), name=f"writer-{i}") for i, uid in enumerate(writer_ids)]
    t0 = time.perf_counter()
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(time_limit_s + 120)
    finally:
        logging.getLogger("lib.db").removeHandler(retries)
    outcome.seconds = time.perf_counter() - t0
    outcome.retries = retries.count
    return outcome


def _step(name: str, actor: int, current: int | None, rng: random.Random, shared: list[int],
          lock: threading.Lock, n: int) -> Callable[[Session], int]:
    def create(s: Session) -> int:
        who = rng.randrange(200)
        draft = TicketDraft(summary=f"Writer step {n}: {rng.choice(CATEGORIES).lower()} trouble", channel="phone",
                            category=rng.choice(CATEGORIES), priority=rng.choice(PRIORITIES),
                            requester=RequesterInput(name=f"Requester {who}", email=f"user{who}@example.com"))
        return tickets.create_ticket(s, actor=actor, draft=draft).id

    def on_current(fn: Callable[[Session, int, int], object]) -> Callable[[Session], int]:
        def run(s: Session) -> int:
            assert current is not None
            ticket = s.get(Ticket, current)
            assert ticket is not None
            fn(s, current, ticket.version)
            return current
        return run

    if name == "create":
        return create
    if name == "take":
        return on_current(lambda s, tid, v: tickets.take(s, actor=actor, ticket_id=tid))
    if name == "acknowledge":
        return on_current(lambda s, tid, v: tickets.acknowledge(s, actor=actor, ticket_id=tid, expected_version=v))
    if name == "action":
        return on_current(lambda s, tid, v: tickets.log_action(s, actor=actor, ticket_id=tid, kind="diagnosis",
                                                               text="Checked the event log", minutes=5))
    if name == "note":
        with lock:
            other = rng.choice(shared) if shared and rng.random() < 0.3 else current

        def note(s: Session) -> int:
            assert other is not None
            tickets.internal_note(s, actor=actor, ticket_id=other, text="Seen this before on floor 3")
            return other
        return note
    if name == "priority":
        new = rng.choice(PRIORITIES)
        return on_current(lambda s, tid, v: tickets.update_fields(s, actor=actor, ticket_id=tid, expected_version=v,
                                                                  changes={"priority": new}))
    return on_current(lambda s, tid, v: tickets.resolve(s, actor=actor, ticket_id=tid, expected_version=v,
                                                        resolution_notes="Replaced the driver", root_cause="Driver"))


# --- command line -----------------------------------------------------------------------------------------


def _fresh_postgres(base_url: str, name: str) -> str:
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(base_url).set(database=name).render_as_string(hide_password=False)


def bench_engine(url: str, writers: int, ops: int) -> dict[str, float]:
    import bcrypt

    engine = make_engine(url, pool_size=writers, max_overflow=writers) if url.startswith("postgresql") \
        else make_engine(url)
    upgrade_schema(engine)
    ids = make_writers(engine, writers, bcrypt.hashpw(b"bench password", bcrypt.gensalt(4)).decode())
    outcome = run_writers(engine, ids, ops)
    engine.dispose()
    for line in outcome.errors[:5]:
        print("  error:", line)
    return outcome.summary()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--writers", type=int, default=20)
    parser.add_argument("--ops", type=int, default=500, help="steps per writer")
    parser.add_argument("--postgres", help="a PostgreSQL URL (its server gets a fresh helpdesk_bench_writers)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        rows.append(("SQLite", bench_engine(f"sqlite:///{folder}/writers.sqlite3", args.writers, args.ops)))
    if args.postgres:
        rows.append(("PostgreSQL", bench_engine(_fresh_postgres(args.postgres, "helpdesk_bench_writers"),
                                                args.writers, args.ops)))
    keys = ["ops", "errors", "retries", "ops_per_s", "p50_ms", "p95_ms", "p99_ms", "max_ms"]
    print(f"{args.writers} writers x {args.ops} steps")
    print("| engine | " + " | ".join(keys) + " |")
    print("|---|" + "---:|" * len(keys))
    for name, summary in rows:
        print(f"| {name} | " + " | ".join(f"{summary[k]:.1f}" if isinstance(summary[k], float) else str(summary[k])
                                         for k in keys) + " |")


if __name__ == "__main__":
    main()
