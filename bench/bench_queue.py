"""Queue and write benchmarks (not a test): medians over several runs, at several database sizes.

    .venv/bin/python bench/bench_queue.py --sizes 10000 100000 1000000 [--postgres URL] [--runs 15]

Databases are seeded once per size with `seed-demo` (kept under bench/results/ for re-runs; git-ignored).
Measures, on each engine and size: the default queue (first 50 + total), a filtered query, a text search,
per-status open counts, the at-risk view, creating a ticket, and a status change. The page rerun timings
(AppTest) are in bench/bench_pages.py.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import select, text  # noqa: E402

from bench.common import database_for, median_ms, seeded  # noqa: E402
from lib import queries, tickets  # noqa: E402
from lib.db import read_session, transaction  # noqa: E402
from lib.directory import RequesterInput  # noqa: E402
from lib.models import Ticket, User  # noqa: E402
from lib.queries import QueueFilter, QueueView  # noqa: E402
from lib.tickets import TicketDraft  # noqa: E402
from lib.workflow import Priority, Status  # noqa: E402


def measure(engine, runs: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    out: dict[str, float] = {}
    now = datetime.now(UTC)
    with read_session(engine) as s:
        me = s.scalar(select(User.id).where(User.username == "tech1")) or 1
        cat = s.scalar(select(Ticket.category_id).limit(1))

        def q(f: QueueFilter) -> None:
            queries.list_queue(s, f, page_size=50)

        out["default queue (50 + total)"] = median_ms(lambda: q(QueueFilter(view=QueueView.ALL_OPEN, now=now)), runs)
    with engine.connect() as conn:  # baseline: the same two statements written by hand, no ORM, no joins
        first = text("SELECT id, summary, status, priority, created_at FROM tickets WHERE is_open = :t "
                     "ORDER BY priority DESC, created_at, id LIMIT 50")
        total = text("SELECT count(*) FROM tickets WHERE is_open = :t")

        def baseline() -> None:
            conn.execute(first, {"t": True}).all()
            conn.execute(total, {"t": True}).scalar()

        out["baseline: hand-written SQL (50 + total)"] = median_ms(baseline, runs)
    out["default queue ÷ baseline"] = out["default queue (50 + total)"] / out["baseline: hand-written SQL (50 + total)"]
    with read_session(engine) as s:
        out["filtered (High+Critical, category)"] = median_ms(lambda: q(QueueFilter(
            view=QueueView.ALL_OPEN, priorities=[Priority.HIGH, Priority.CRITICAL], category_ids=[cat], now=now)), runs)
        out["my open tickets"] = median_ms(lambda: q(QueueFilter(view=QueueView.MY_OPEN, me=me, now=now)), runs)
        out["text search in open tickets"] = median_ms(lambda: q(QueueFilter(
            view=QueueView.ALL_OPEN, text="printer", now=now)), runs)
        out["breaching or at risk"] = median_ms(lambda: q(QueueFilter(view=QueueView.AT_RISK, now=now)), runs)
        out["open counts per status"] = median_ms(lambda: queries.open_counts(s), runs)
        out["change marker"] = median_ms(lambda: queries.change_marker(s), runs)
    with read_session(engine) as s:
        lead = s.scalar(select(User.id).where(User.username == "lead"))
    created: list[int] = []

    def create() -> None:
        with transaction(engine) as s:
            t = tickets.create_ticket(s, actor=lead, draft=TicketDraft(
                summary="Bench ticket", category="Other", priority="Low", channel="phone",
                requester=RequesterInput(name="Bench", email="bench@example.com")))
            created.append(t.id)

    out["create ticket (commit)"] = median_ms(create, runs)
    ids = iter(list(created))

    def change() -> None:
        tid = next(ids)
        with transaction(engine) as s:
            t = s.get(Ticket, tid)
            tickets.assign(s, actor=lead, ticket_id=tid, assignee_id=lead, expected_version=t.version)

    out["status change: assign (commit)"] = median_ms(change, min(runs, len(created) - 2))
    with transaction(engine) as s:  # leave the data set as it was, apart from these closed bench tickets
        for tid in created:
            t = s.get(Ticket, tid)
            if t is not None and t.status != Status.CLOSED.value:
                tickets.close(s, actor=lead, ticket_id=tid, expected_version=t.version, reason="cancelled",
                              note="benchmark ticket")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--postgres", help="also run on this PostgreSQL URL (one database per size is created)")
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    table: dict[str, dict[str, float]] = {}
    for size in args.sizes:
        targets = [("sqlite", database_for(None, size))]
        if args.postgres:
            targets.append(("postgresql", database_for(args.postgres, size)))
        for engine_name, url in targets:
            print(f"{engine_name} {size:,} tickets", flush=True)
            engine = seeded(url, size)
            table[f"{engine_name} {size:,}"] = measure(engine, args.runs)
            engine.dispose()
    cols = list(table)
    rows = list(next(iter(table.values())))
    print("\nmedian ms | " + " | ".join(cols))
    print("--- | " + " | ".join("---:" for _ in cols))
    for r in rows:
        print(f"{r} | " + " | ".join(f"{table[c][r]:.1f}" for c in cols))


if __name__ == "__main__":
    main()
