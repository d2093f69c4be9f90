"""Search, suggestions and repeat-issue benchmarks (not a test): medians over several runs.

    .venv/bin/python bench/bench_search.py --tickets 100000 --articles 2000 [--postgres URL] [--runs 15]
    .venv/bin/python bench/bench_search.py --tickets 1000000 --articles 10000 --postgres URL   # quiet machine

Databases are seeded once per size with `seed-demo` tickets plus generated KB articles written from the
same vocabulary (so the common words - printer, Outlook, VPN - are as common as on a real desk), and kept
under bench/results/ (git-ignored; the SQLite file is bench_queue.py's) for re-runs. Target: search and suggestions <= 50 ms median.
"""

from __future__ import annotations

import argparse
import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, insert, select  # noqa: E402

from bench.common import database_for, median_ms, seeded  # noqa: E402
from lib import followups, repeats, search  # noqa: E402
from lib.db import read_session, transaction  # noqa: E402
from lib.models import Category, FollowUp, KbArticle, Ticket, User  # noqa: E402
from lib.seed.data import ACTIONS, APPS, DEVICE_MODELS, RESOLUTIONS, ROOT_CAUSES, SITES, SUMMARIES  # noqa: E402

TARGET_MS = 50.0


def article_rows(n: int, categories: dict[str, int], author: int, start: int) -> list[dict]:
    rng = random.Random(11 + start)
    models = [m for choices in DEVICE_MODELS.values() for m, _ in choices]
    steps = [s for group in ACTIONS.values() for s in group]
    now = datetime.now(UTC)
    rows = []
    for i in range(n):
        cat = rng.choice(list(SUMMARIES))
        title = rng.choice(SUMMARIES[cat]).format(app=rng.choice(APPS), model=rng.choice(models),
                                                  site=rng.choice(SITES))
        body = "\n".join(f"{k}. {rng.choice(steps)}" for k in range(1, rng.randint(3, 7)))
        rows.append({
            "title": f"{title} ({start + i})", "symptoms": f"Users report: {title.lower()}.",
            "cause": rng.choice(ROOT_CAUSES), "resolution_steps": body + "\n\n" + rng.choice(RESOLUTIONS),
            "category_id": categories.get(cat), "tags": ", ".join({cat.lower(), rng.choice(APPS).lower()}),
            "status": "published" if rng.random() < 0.85 else "draft", "author_id": author,
            "created_at": now, "updated_at": now, "version": 1,
        })
    return rows


def prepare(url: str, tickets: int, articles: int):  # type: ignore[no-untyped-def]
    engine = seeded(url, tickets)
    with read_session(engine) as s:
        have_kb = s.scalar(select(func.count()).select_from(KbArticle)) or 0
    if have_kb < articles:
        print(f"  writing {articles - have_kb:,} articles ...", flush=True)
        with transaction(engine) as s:
            cats = {c.name: c.id for c in s.scalars(select(Category))}
            author = s.scalar(select(User.id).order_by(User.id).limit(1))
        for start in range(have_kb, articles, 1000):
            with transaction(engine) as s:
                s.execute(insert(KbArticle), article_rows(min(1000, articles - start), cats, author, start))
        if engine.dialect.name == "postgresql":  # what autovacuum does soon after: search reads the statistics
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE kb_articles")
    with transaction(engine) as s:  # some follow-ups due for one technician
        if not s.scalar(select(func.count()).select_from(FollowUp)):
            me = s.scalar(select(User.id).where(User.username == "tech1"))
            ids = list(s.scalars(select(Ticket.id).order_by(Ticket.id.desc()).limit(2000)))
            now = datetime.now(UTC)
            s.execute(insert(FollowUp), [{"ticket_id": t, "due_at": now - timedelta(days=i % 30), "owner_id": me,
                                          "note": "check", "source": "manual", "created_at": now}
                                         for i, t in enumerate(ids)])
    return engine


def measure(engine, runs: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    out: dict[str, float] = {}
    with read_session(engine) as s:
        printing = s.scalar(select(Category.id).where(Category.name == "Printing"))
        me = s.scalar(select(User.id).where(User.username == "tech1")) or 1
        busy_device = s.execute(select(Ticket.device_id, func.count()).where(Ticket.device_id.is_not(None))
                                .group_by(Ticket.device_id).order_by(func.count().desc()).limit(1)).first()
        device_ticket = s.scalar(select(Ticket.id).where(Ticket.device_id == busy_device[0])
                                 .order_by(Ticket.id.desc()).limit(1)) if busy_device else None

        def run(label: str, fn) -> None:  # type: ignore[no-untyped-def]
            out[label] = median_ms(fn, runs)

        run("search 'printer jam' (articles + tickets)", lambda: search.search(s, "printer jam"))
        run("search 'vpn' (articles + tickets)", lambda: search.search(s, "vpn"))
        run("search 'outlook crashes' (tickets)", lambda: search.search(s, "outlook crashes", kinds=("tickets",)))
        run("search '\"tray 2\"' phrase", lambda: search.search(s, '"tray 2"'))
        run("search 'printer' in Printing", lambda: search.search(s, "printer", category_id=printing))
        run("search rare word 'fortigate'", lambda: search.search(s, "fortigate"))
        run("search 'the of' (message only)", lambda: search.search(s, "the of"))
        run("suggest: printer jams on tray 2", lambda: search.suggest(
            s, summary="Printer HP LaserJet M404 jams on tray 2", category_id=printing))
        run("suggest: Outlook slow after update", lambda: search.suggest(
            s, summary="Outlook very slow since the last update"))
        run("suggest: long intake sentence", lambda: search.suggest(
            s, summary="User in the North Office cannot print to the Canon printer from Excel, job stuck in queue"))
        if device_ticket:
            run("repeat notices (busiest device)", lambda: repeats.notices_for_ticket(s, device_ticket))
        run("repeat issues list (lead)", lambda: repeats.list_repeat_issues(s))
        run("follow-ups due (owner)", lambda: followups.list_due(s, owner_id=me))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tickets", type=int, default=100_000)
    p.add_argument("--articles", type=int, default=2_000)
    p.add_argument("--postgres", help="PostgreSQL URL of a scratch database (it is filled, not emptied)")
    p.add_argument("--runs", type=int, default=15)
    p.add_argument("--no-sqlite", action="store_true")
    args = p.parse_args()
    columns: dict[str, dict[str, float]] = {}
    engines = [] if args.no_sqlite else [("sqlite", database_for(None, args.tickets))]
    if args.postgres:
        engines.append(("postgresql", args.postgres))
    for name, url in engines:
        print(f"{name}: {args.tickets:,} tickets, {args.articles:,} articles", flush=True)
        engine = prepare(url, args.tickets, args.articles)
        columns[name] = measure(engine, args.runs)
        engine.dispose()
    labels = list(next(iter(columns.values())))
    width = max(len(label) for label in labels)
    print()
    print(f"Medians of {args.runs} runs, ms ({args.tickets:,} tickets, {args.articles:,} articles; "
          f"target <= {TARGET_MS:g} ms for search and suggestions)")
    print(f"{'operation':<{width}}  " + "  ".join(f"{n:>10}" for n in columns))
    for label in labels:
        cells = []
        for n in columns:
            v = columns[n].get(label)
            mark = " !" if v is not None and v > TARGET_MS and ("search" in label or "suggest" in label) else "  "
            cells.append(f"{v:>8.1f}{mark}" if v is not None else f"{'-':>10}")
        print(f"{label:<{width}}  " + "  ".join(cells))


if __name__ == "__main__":
    main()
