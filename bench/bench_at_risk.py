"""The queue's "Breaching or at risk" view and the lead's board at several database sizes (not a test).

    .venv/bin/python bench/bench_at_risk.py                          # SQLite, 10k and 100k tickets
    .venv/bin/python bench/bench_at_risk.py --tickets 1000000        # the quiet-machine run
    .venv/bin/python bench/bench_at_risk.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres

Each size gets its own database seeded with ``seed-demo``, the same ones bench_queue.py uses (SQLite files
bench/results/queue_<size>.sqlite3, PostgreSQL databases ``helpdesk_bench_<size>`` beside the URL's), kept
for re-runs: a database that already holds the tickets is reused. Measures, as medians of ``--runs`` after one warm-up:

* the view as the queue page asks for it: ``list_queue(view=AT_RISK)``, first 50 rows and the total;
* the first 50 rows alone, and the total alone (to see which half costs);
* the workload board counted in SQL (``lib.board.load_board``: what every read after a write cost before the
  kept snapshot) and one assignment suggestion (``lib.assignment.suggest``);
* the board from the kept snapshot of open tickets (``lib.board_snapshot``): its first read (the snapshot built),
  and right after a write, a new read session each time (the write itself not timed): after an internal note,
  and after a priority change on an open ticket (which moves the board's numbers).

It prints the query plans of the view's two statements, then a table. Never fails on time.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select, text  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

from bench.common import database_for, median_ms, seeded  # noqa: E402
from lib import assignment, board, board_snapshot, queries, tickets  # noqa: E402
from lib.db import read_session, transaction  # noqa: E402
from lib.models import Ticket, User  # noqa: E402
from lib.queries import QueueFilter, QueueView  # noqa: E402


def prepare(url: str, size: int) -> Engine:
    engine = seeded(url, size, log=lambda line: print(line, file=sys.stderr, flush=True))
    if engine.dialect.name == "postgresql":  # what autovacuum does soon after a bulk load
        with engine.connect() as conn:
            conn.execute(text("ANALYZE"))
            conn.commit()
    # SQLite: no ANALYZE. The app never runs it, and its statistics change the plans the other benchmarks
    # measure on the same database.
    return engine


def plans(engine: Engine, now: datetime) -> list[str]:
    """The plans of the statements ``list_queue`` runs for the view, as the database executes them."""
    from sqlalchemy import event

    seen: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        with read_session(engine) as s:
            queries.list_queue(s, QueueFilter(view=QueueView.AT_RISK, now=now), page_size=50)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    prefix = "EXPLAIN " if engine.dialect.name == "postgresql" else "EXPLAIN QUERY PLAN "
    out = []
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        for statement, params in seen:
            label = "total" if "count(" in statement.lower() else (
                "first 50 ids" if statement.lstrip().upper().startswith("SELECT TICKETS.ID \nFROM TICKETS") and
                "JOIN" not in statement.upper() else "display columns")
            cur.execute(prefix + statement, params)
            out += [f"{label}: {row[-1] if engine.dialect.name != 'postgresql' else row[0]}" for row in cur.fetchall()]
    finally:
        raw.close()
    return out


def measure(engine: Engine, runs: int) -> dict[str, float | int]:
    now = datetime.now(UTC)
    out: dict[str, float | int] = {}
    f = QueueFilter(view=QueueView.AT_RISK, now=now)
    with read_session(engine) as s:
        out["tickets"] = s.scalar(select(func.count()).select_from(Ticket)) or 0
        out["open"] = s.scalar(select(func.count()).select_from(Ticket).where(Ticket.is_open.is_(True))) or 0
        page = queries.list_queue(s, f, page_size=50)
        out["at risk"] = page.total
        out["page + total"] = median_ms(lambda: queries.list_queue(s, f, page_size=50), runs)
        out["page only"] = median_ms(lambda: queries.list_queue(s, f, page_size=50, with_total=False), runs)
        conds = queries._where(f, now)
        out["total only"] = median_ms(
            lambda: s.scalar(select(func.count()).select_from(Ticket).where(*conds)), runs)
        out["board"] = median_ms(lambda: board.load_board(s, now=now), runs)
        some = s.scalar(select(Ticket.id).where(Ticket.is_open.is_(True)).order_by(Ticket.id.desc()).limit(1))
        out["suggest"] = median_ms(lambda: assignment.suggest(s, some, now=now), runs) if some else float("nan")
        lead = s.scalar(select(User.id).where(User.username == "lead"))
    out.update(kept_board(engine, runs, now, some, lead))
    return out


def kept_board(engine: Engine, runs: int, now: datetime, ticket_id: int, lead: int) -> dict[str, float]:
    """The board from the kept snapshot: built, then right after each kind of write."""
    import time

    def read() -> float:
        t0 = time.perf_counter()
        with read_session(engine) as s:
            board_snapshot.load_board(s, now=now)
        return (time.perf_counter() - t0) * 1000

    board_snapshot.clear()
    out = {"kept: built": read()}
    after: dict[str, list[float]] = {"kept: after a note": [], "kept: after a priority change": []}
    for n in range(runs):
        with transaction(engine) as s:
            tickets.internal_note(s, actor=lead, ticket_id=ticket_id, text=f"bench note {n}")
        after["kept: after a note"].append(read())
        with transaction(engine) as s:
            t = s.get(Ticket, ticket_id)
            tickets.update_fields(s, actor=lead, ticket_id=ticket_id, expected_version=t.version,
                                  changes={"priority": "High" if t.priority != 3 else "Medium"})
        after["kept: after a priority change"].append(read())
    out.update({k: sorted(v)[len(v) // 2] for k, v in after.items()})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, nargs="+", default=[10_000, 100_000],
                        help="database sizes (default 10000 100000; the owner's run adds 1000000)")
    parser.add_argument("--database-url", help="a PostgreSQL server URL (default: SQLite files under bench/results/)")
    parser.add_argument("--runs", type=int, default=15, help="timed runs per measure (default 15)")
    parser.add_argument("--no-plans", action="store_true", help="do not print the query plans")
    args = parser.parse_args()

    results = []
    for size in args.tickets:
        print(f"{size:,} tickets", file=sys.stderr, flush=True)
        engine = prepare(database_for(args.database_url, size), size)
        if not args.no_plans:
            for line in plans(engine, datetime.now(UTC)):
                print(f"  plan {line}", file=sys.stderr)
        results.append(measure(engine, args.runs))
        engine.dispose()

    engine_name = (args.database_url or "sqlite").split(":")[0].split("+")[0]
    print(f"\n'Breaching or at risk' view and the workload board on {engine_name}, median of {args.runs} runs, "
          f"{os.cpu_count()} CPUs (ms)")
    print(f"load average {os.getloadavg()[0]:.2f}")
    cols = ["tickets", "open", "at risk", "page + total", "page only", "total only", "board", "suggest",
            "kept: built", "kept: after a note", "kept: after a priority change"]
    for c in cols:
        print(f"{c:>30}  " + "  ".join(f"{r[c]:>12,}" if isinstance(r[c], int) else f"{r[c]:>12.1f}" for r in results))
    if len(results) > 1:
        for c in ("board", "kept: after a note", "kept: after a priority change"):
            print(f"{c}: {results[-1]['tickets']:,} ÷ {results[0]['tickets']:,} tickets = "
                  f"{results[-1][c] / results[0][c]:.2f}×")


if __name__ == "__main__":
    main()
