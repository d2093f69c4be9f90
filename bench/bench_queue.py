"""Queue and write benchmarks (not a test): medians over several runs, at several database sizes.

    .venv/bin/python bench/bench_queue.py --sizes 10000 100000 1000000 [--postgres URL] [--runs 15]
    .venv/bin/python bench/bench_queue.py --sizes 100000 --only search --pg-host 127.0.0.1 --pg-port 5432 \
        --pg-user postgres --database 'bench_{size}' --sqlite-dir /tmp/bench

``--database`` names the PostgreSQL database (``{size}`` is replaced; default ``helpdesk_bench_{size}``) and,
with ``--sqlite-dir``, the SQLite file there. ``--only search`` measures the word-search rows alone (no writes).

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

from sqlalchemy import func, select, text  # noqa: E402

from bench.common import database_for, median_ms, seeded  # noqa: E402
from lib import queries, tickets  # noqa: E402
from lib.db import read_session, transaction  # noqa: E402
from lib.directory import RequesterInput  # noqa: E402
from lib.models import Ticket, User  # noqa: E402
from lib.queries import QueueFilter, QueueView  # noqa: E402
from lib.tickets import TicketDraft  # noqa: E402
from lib.workflow import Priority, Status  # noqa: E402


def _search_samples(s) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Search texts taken from the data itself: two words of a summary in reverse order, a requester's e-mail."""
    from lib.models import Requester

    top = s.scalar(select(func.max(Ticket.id))) or 1
    summary = s.scalar(select(Ticket.summary).where(Ticket.id >= top // 2).order_by(Ticket.id).limit(1))
    words = [w for w in (summary or "printer jams").lower().split() if len(w) > 3][:2] or ["printer"]
    email = s.scalar(select(Requester.email).where(Requester.email.is_not(None)).order_by(Requester.id).limit(1))
    return {"words": " ".join(reversed(words)), "email": email or "ann@example.com", "number": f"HD-{top // 3:06d}"}


def measure_search(engine, runs: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """The queue's word search (lib.queries.text_conditions): one page of 50 and the total, as the page asks."""
    out: dict[str, float] = {}
    now = datetime.now(UTC)
    with read_session(engine) as s:
        sample = _search_samples(s)
        print(f"  search samples: {sample}", flush=True)

        def q(view: QueueView, text_: str) -> None:
            queries.list_queue(s, QueueFilter(view=view, text=text_, now=now), page_size=50)

        out[f"word search, all tickets: '{sample['words']}'"] = median_ms(lambda: q(QueueView.ALL, sample["words"]), runs)
        out[f"word search, open tickets: '{sample['words']}'"] = median_ms(
            lambda: q(QueueView.ALL_OPEN, sample["words"]), runs)
        out["word search, all tickets: requester e-mail"] = median_ms(lambda: q(QueueView.ALL, sample["email"]), runs)
        out["word search, all tickets: prefix 'print'"] = median_ms(lambda: q(QueueView.ALL, "print"), runs)
        out["word search, all tickets: no match"] = median_ms(lambda: q(QueueView.ALL, "zzqx nomatchword"), runs)
        out["ticket number jump"] = median_ms(lambda: q(QueueView.ALL, sample["number"]), runs)
    return out


def _set_index(engine, want: str) -> None:  # type: ignore[no-untyped-def]
    from lib import queue_index

    have = queue_index.installed(engine, refresh=True)
    if want == "with" and not have:
        with engine.begin() as conn:
            queue_index.install(conn)
    elif want == "without" and have:
        with engine.begin() as conn:
            queue_index.uninstall(conn)
    if engine.dialect.name == "postgresql" and want != "as-is":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE tickets"))
            conn.execute(text("ANALYZE requesters"))
    print(f"  word-search index: {'yes' if queue_index.installed(engine, refresh=True) else 'no'}", flush=True)


def explain(engine) -> None:  # type: ignore[no-untyped-def]
    """The plans of the word search's two statements (the page of ids and the total)."""
    with read_session(engine) as s:
        sample = _search_samples(s)
        f = QueueFilter(view=QueueView.ALL, text=sample["words"], now=datetime.now(UTC))
        conds = queries._where(f, f.now, s)  # type: ignore[arg-type]
        page = select(Ticket.id).where(*conds).order_by(*queries._order(queries.Sort.PRIORITY, f.view)).limit(50)
        total = select(func.count()).select_from(Ticket).where(*conds)
        for stmt in (page, total):
            compiled = stmt.compile(engine, compile_kwargs={"literal_binds": True})
            prefix = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN (ANALYZE, COSTS OFF) "
            print("  " + "\n  ".join(str(r[-1]) for r in s.execute(text(prefix + str(compiled)))), flush=True)


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
    ap.add_argument("--pg-host", help="PostgreSQL host (instead of --postgres)")
    ap.add_argument("--pg-port", type=int, default=5432)
    ap.add_argument("--pg-user", default="postgres")
    ap.add_argument("--database", default="helpdesk_bench_{size}",
                    help="PostgreSQL database name ({size} is replaced); also the SQLite file name with --sqlite-dir")
    ap.add_argument("--sqlite-dir", help="folder of the SQLite files (default: bench/results, queue_<size>.sqlite3)")
    ap.add_argument("--engines", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"])
    ap.add_argument("--only", choices=["all", "search"], default="all")
    ap.add_argument("--search-index", choices=["as-is", "with", "without"], default="as-is",
                    help="add (with) or drop (without) the word-search index of migration 0016 before measuring")
    ap.add_argument("--explain", action="store_true", help="print the plan of the word search")
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    postgres = args.postgres
    if postgres is None and args.pg_host:
        postgres = f"postgresql+psycopg://{args.pg_user}@{args.pg_host}:{args.pg_port}/postgres"
    table: dict[str, dict[str, float]] = {}
    for size in args.sizes:
        name = args.database.format(size=size)
        targets = []
        if "sqlite" in args.engines:
            if args.sqlite_dir:
                Path(args.sqlite_dir).mkdir(parents=True, exist_ok=True)
                targets.append(("sqlite", f"sqlite:///{Path(args.sqlite_dir) / (name + '.sqlite3')}"))
            else:
                targets.append(("sqlite", database_for(None, size)))
        if postgres and "postgresql" in args.engines:
            targets.append(("postgresql", database_for(postgres, size, name=name)))
        for engine_name, url in targets:
            print(f"{engine_name} {size:,} tickets", flush=True)
            engine = seeded(url, size)
            _set_index(engine, args.search_index)
            if args.explain:
                explain(engine)
            row = measure_search(engine, args.runs)
            if args.only == "all":
                row = {**measure(engine, args.runs), **row}
            table[f"{engine_name} {size:,}"] = row
            engine.dispose()
    if not table:
        raise SystemExit("nothing to measure: give --postgres or --pg-host for PostgreSQL")
    cols = list(table)
    rows = list(dict.fromkeys(r for v in table.values() for r in v))
    print("\nmedian ms | " + " | ".join(cols))
    print("--- | " + " | ".join("---:" for _ in cols))
    for r in rows:
        print(f"{r} | " + " | ".join(f"{table[c][r]:.1f}" if r in table[c] else "" for c in cols))


if __name__ == "__main__":
    main()
