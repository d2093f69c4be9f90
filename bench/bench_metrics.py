"""Metrics benchmark: the metrics page for 12 weeks and for a year, the weekly report CLI, and the naive approach.

    .venv/bin/python bench/bench_metrics.py --tickets 100000            # SQLite file, seeded once and reused
    .venv/bin/python bench/bench_metrics.py --tickets 1000000 --runs 5  # the real run: on a quiet machine
    .venv/bin/python bench/bench_metrics.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench

* The database is seeded with ``seed-demo`` (N tickets over 5 years, seed 1) unless it already holds N
  tickets; the SQLite file is kept (default: the system temp folder) so later runs reuse it.
* **Metrics page, cold**: each run is a new process that opens the database and makes the calls the Metrics
  page makes (lib/ui/metrics_view.load_metrics: KPIs, flow, backlog, durations, resolution by priority, SLA,
  closures, rates, workload, repeat issues; and the ageing chart) in one read session. Timed from opening
  the engine to the last result; interpreter start-up and imports are not included (the app has them loaded).
  The OS file cache is not dropped (that needs the whole machine). "After a write" repeats the calls in the
  same process with a new session (what the page costs when a write has moved the change marker and Streamlit's
  cache misses), then builds the page's 8 figures from that data (lib.metrics.charts).
* **Report CLI**: ``python -m lib.cli report --week <last full week> --format json|html`` as cron runs it,
  wall time including interpreter start-up. Beside it, in the same runs, **its start-up alone**: a new
  interpreter importing what the report command imports (``lib.cli``, ``lib.metrics.weekly_report``,
  ``lib.metrics.charts``, ``plotly.io``) and nothing else, the part of every run no query can shorten.
* **Naive**: a new process loads every ticket (``SELECT * FROM tickets``) into pandas and computes the same
  12-week figures there (its backlog from the ticket columns only, ignoring reopenings: cheaper than the
  exact one, so the ratio is if anything understated).

Prints a table of medians with their targets (docs/performance.md); never fails on time. Load average before
and after is printed with it, and a machine reference (bench.common.machine_reference: a fixed pure-Python loop),
so that figures taken on different machines can be compared.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import machine_reference  # noqa: E402

PAGE_CALLS = ("kpis", "flow", "backlog", "durations", "resolution_by_priority", "sla_compliance",
              "closures_by_reason", "rates", "workload", "repeat_issues")


def _range(weeks: int, tz: str) -> tuple[date, date]:
    """The last ``weeks`` ISO weeks including this one, to today (the page's default, with 12): ``[start, end)``."""
    from zoneinfo import ZoneInfo

    today = datetime.now(ZoneInfo(tz)).date()
    monday = today - timedelta(days=today.weekday())
    return monday - timedelta(weeks=weeks - 1), today + timedelta(days=1)


# --- child processes --------------------------------------------------------------------------------------


def child_page(url: str, start: date, end: date) -> dict:
    """The page's reads in a new process (cold), then after a real write of each kind, with the closed days
    kept (lib/metrics/closed_cache.py) and, as the baseline in the same process, with every range read again;
    with the figures whose data changed rebuilt (what lib/ui/metrics_view does: a figure is keyed on a
    fingerprint of its data)."""
    from sqlalchemy import text
    from sqlalchemy.orm import configure_mappers

    import lib.assignment  # noqa: F401 - loaded in the app (the workload reads its weights)
    from lib import tickets
    from lib.db import make_engine, read_session, transaction
    from lib.directory import RequesterInput
    from lib.metrics import charts, closed_cache, measures
    from lib.tickets import TicketDraft
    from lib.ui.metrics_view import digest

    configure_mappers()  # done once when the app starts
    f = measures.MetricFilter(start=start, end=end)
    engine = make_engine(url)
    builders = {
        "flow_priority": ("flow", lambda d: charts.flow_by_priority(d["flow"], grain=f.grain)),
        "flow_category": ("flow", lambda d: charts.flow_by_category(d["flow"], grain=f.grain)),
        "backlog": ("backlog", lambda d: charts.backlog_line(d["backlog"], grain=f.grain)),
        "closures": ("closures_by_reason", lambda d: charts.closures_bar(d["closures_by_reason"])),
        "resolution": ("resolution_by_priority", lambda d: charts.resolution_box(d["resolution_by_priority"])),
        "sla": ("sla_compliance", lambda d: charts.sla_trend(d["sla_compliance"], grain=f.grain)),
        "workload": ("workload", lambda d: charts.workload_bars(d["workload"])),
        "ageing": ("ageing", lambda d: charts.ageing_bar(d["ageing"])),
    }

    def reads() -> tuple[float, dict]:
        t0 = time.perf_counter()
        data: dict = {}
        with read_session(engine) as s:
            for name in PAGE_CALLS:
                data[name] = getattr(measures, name)(s, f)
            data["ageing"] = measures.ageing(s)
        return time.perf_counter() - t0, data

    def figures(data: dict, before: dict | None) -> tuple[float, dict, int]:
        """Build the figures whose data's fingerprint changed since ``before`` (all when None)."""
        t0 = time.perf_counter()
        prints = {source: digest(data[source]) for source in {source for source, _ in builders.values()}}
        built = 0
        for source, build in builders.values():
            if before is None or before.get(source) != prints[source]:
                build(data)
                built += 1
        return time.perf_counter() - t0, prints, built

    with read_session(engine) as s:
        lead = s.execute(text("SELECT id FROM users WHERE username = 'lead'")).scalar()
        open_id = s.execute(text("SELECT max(ticket_id) FROM ticket_metrics WHERE is_open = 1")).scalar()

    def note() -> None:
        with transaction(engine) as s:
            tickets.internal_note(s, actor=lead, ticket_id=open_id, text="Checked again: still waiting on the part.")

    def new_ticket() -> None:
        with transaction(engine) as s:
            tickets.create_ticket(s, actor=lead, draft=TicketDraft(
                summary="Scanner on floor 3 shows an error", category="Hardware", priority="Medium",
                channel="phone", requester=RequesterInput(name="Ann Smith", email="ann@example.com")))

    out: dict = {}
    out["cold"], data = reads()
    figures(data, None)  # Plotly's first figure loads its templates: done once when the app server starts
    out["all_charts"], prints, _ = figures(data, None)
    for label, write in (("note", note), ("ticket", new_ticket)):
        write()
        out[label], data = reads()
        out[label + "_charts"], prints, out[label + "_built"] = figures(data, prints)
    closed_cache.enabled = False  # the baseline: every range read again, every figure built
    note()
    out["unkept"], data = reads()
    out["unkept_charts"], _, _ = figures(data, None)
    return out


def child_naive(url: str, start: date, end: date) -> dict:
    import numpy as np
    import pandas as pd
    from sqlalchemy import create_engine

    from lib.config import get_settings

    tz = get_settings().timezone
    t0 = time.perf_counter()
    engine = create_engine(url)
    with engine.connect() as conn:
        t = pd.read_sql("SELECT * FROM tickets", conn)
    loaded = time.perf_counter() - t0
    for col in ("created_at", "acknowledged_at", "first_response_at", "resolved_at", "closed_at", "response_due_at",
                "response_breached_at", "resolution_breached_at"):
        t[col] = pd.to_datetime(t[col], utc=True, format="mixed")
    lo = pd.Timestamp(start).tz_localize(tz)
    hi = pd.Timestamp(end).tz_localize(tz)

    def week(s: pd.Series) -> pd.Series:
        d = s.dt.tz_convert(tz).dt.tz_localize(None).dt.normalize()
        return d - pd.to_timedelta(d.dt.day_of_week, unit="D")

    def within(col: str) -> pd.DataFrame:
        return t[(t[col] >= lo) & (t[col] < hi)]

    figures = {}
    for col in ("created_at", "resolved_at", "closed_at"):
        part = within(col)
        figures[col] = part.groupby([week(part[col]), "priority", "category_id"]).size()
    ends = pd.date_range(lo + pd.Timedelta(days=7), hi, freq="7D")
    figures["backlog"] = [int(((t["created_at"] < e) & ~((t["resolved_at"] < e) | (t["closed_at"] < e))).sum())
                          for e in ends]
    for end_col in ("acknowledged_at", "first_response_at", "resolved_at"):
        part = within(end_col)
        h = (part[end_col] - part["created_at"]).dt.total_seconds() / 3600
        figures[end_col + "_q"] = (h.median(), h.quantile(0.9), h.mean())
    res = within("resolved_at")
    figures["sla"] = res[res["response_due_at"].notna()].groupby(week(res["resolved_at"]))[
        "resolution_breached_at"].count()
    figures["reopen"] = float(np.mean(res["reopen_count"] > 0)) if len(res) else None
    figures["open"] = t[t["is_open"].astype(bool)].groupby(["assignee_id", "priority"]).size()
    return {"seconds": time.perf_counter() - t0, "load": loaded}


# --- the parent -------------------------------------------------------------------------------------------


def _spawn(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _wall(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
    return time.perf_counter() - t0


def _prepare(url: str, tickets: int) -> str:
    from sqlalchemy import text

    from lib.db import make_engine, upgrade_schema
    from lib.seed.demo import seed_demo

    engine = make_engine(url)
    upgrade_schema(engine)
    with engine.connect() as conn:
        have = conn.execute(text("SELECT count(*) FROM tickets")).scalar() or 0
    if have == 0:
        print(f"seeding {tickets:,} tickets over 5 years (once; later runs reuse the database) ...", flush=True)
        t0 = time.perf_counter()
        summary = seed_demo(engine, tickets=tickets, years=5, seed=1, demo_password="bench password 123")
        print(f"{summary} in {time.perf_counter() - t0:.0f} s", flush=True)
    elif abs(have - tickets) > tickets // 100:  # the other benchmarks add a few tickets to a shared database
        raise SystemExit(f"the database holds {have:,} tickets, not {tickets:,}: use another --database-url")
    if engine.dialect.name == "postgresql":  # what autovacuum does after a bulk load: index-only scans need it
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE ticket_metrics")
            conn.exec_driver_sql("VACUUM ANALYZE ticket_events")
    with engine.connect() as conn:
        events = conn.execute(text("SELECT max(id) FROM ticket_events")).scalar() or 0
    size = ""
    if engine.dialect.name == "sqlite":
        size = f", {Path(engine.url.database).stat().st_size / 1e9:.2f} GB"
    engine.dispose()
    return f"{tickets:,} tickets, about {events:,} events{size}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--database-url", help="default: a SQLite file in the temp folder, named after --tickets")
    parser.add_argument("--child", choices=["page", "naive"], help=argparse.SUPPRESS)
    parser.add_argument("--start", help=argparse.SUPPRESS)
    parser.add_argument("--end", help=argparse.SUPPRESS)
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{Path(tempfile.gettempdir()) / f'helpdesk-bench-metrics-{args.tickets}.sqlite3'}"
    if args.child:
        start, end = date.fromisoformat(args.start), date.fromisoformat(args.end)
        result = (child_page if args.child == "page" else child_naive)(url, start, end)
        print(json.dumps(result))
        return

    from lib.config import get_settings

    tz = get_settings().timezone
    data = _prepare(url, args.tickets)
    reference = machine_reference()
    load_before = os.getloadavg()[0]
    weeks12, year = _range(12, tz), _range(52, tz)
    report_week = (weeks12[1] - timedelta(days=8)).isocalendar()
    week = f"{report_week[0]}-W{report_week[1]:02d}"
    keys = ("cold", "note", "note_page", "note_built", "ticket", "ticket_page", "ticket_built", "unkept_page")
    rows: dict[str, list[float]] = {f"{k}{w}": [] for k in keys for w in ("_12", "_52")}
    rows.update({k: [] for k in ("cli_json", "cli_html", "cli_start", "naive", "naive_load")})
    start_only = [sys.executable, "-c", "import lib.cli, lib.metrics.weekly_report, lib.metrics.charts, plotly.io"]
    env_cli = [sys.executable, "-m", "lib.cli", "--database-url", url, "report", "--week", week]
    with tempfile.TemporaryDirectory() as folder:
        for i in range(args.runs):
            for w, (lo, hi) in (("_12", weeks12), ("_52", year)):
                r = _spawn("--child", "page", "--database-url", url, "--start", str(lo), "--end", str(hi))
                rows["cold" + w].append(r["cold"])
                for k in ("note", "ticket"):
                    rows[k + w].append(r[k])
                    rows[k + "_page" + w].append(r[k] + r[k + "_charts"])
                    rows[k + "_built" + w].append(r[k + "_built"])
                rows["unkept_page" + w].append(r["unkept"] + r["unkept_charts"])
            rows["cli_json"].append(_wall([*env_cli, "--format", "json", "--out", os.path.join(folder, "r.json")]))
            rows["cli_html"].append(_wall([*env_cli, "--format", "html", "--out", os.path.join(folder, "r.html")]))
            rows["cli_start"].append(_wall(start_only))
            if i < max(1, min(args.runs, 3)):  # the slow one: at most three runs
                r = _spawn("--child", "naive", "--database-url", url, "--start", str(weeks12[0]),
                           "--end", str(weeks12[1]))
                rows["naive"].append(r["seconds"])
                rows["naive_load"].append(r["load"])
            print(f"run {i + 1}/{args.runs} done", file=sys.stderr, flush=True)

    med = {k: statistics.median(v) for k, v in rows.items() if v}

    def ms(x: float) -> str:
        return f"{x * 1000:,.0f} ms"

    engine_name = url.split(":", 1)[0].split("+")[0]
    print(f"load average before {load_before:.2f}, after {os.getloadavg()[0]:.2f}")
    print(f"\n{engine_name}: {data}; ranges {weeks12[0]}..{weeks12[1]} and {year[0]}..{year[1]} ({tz}); "
          f"report week {week}; medians of {args.runs} runs ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC); "
          f"machine reference (5M-step Python loop) {reference:.0f} ms\n")
    table = []
    for w, weeks, target in (("_12", 12, "<= 150 ms"), ("_52", 52, "<= 400 ms")):
        table += [
            (f"metrics page, {weeks} weeks to date, cold (new process)", ms(med["cold" + w]), ""),
            ("  after a note: reads", ms(med["note" + w]), ""),
            (f"  after a note: reads + figures whose data changed ({med['note_built' + w]:.0f} of 8)",
             ms(med["note_page" + w]), target),
            ("  after a new ticket: reads", ms(med["ticket" + w]), ""),
            (f"  after a new ticket: reads + figures whose data changed ({med['ticket_built' + w]:.0f} of 8)",
             ms(med["ticket_page" + w]), target),
            ("  baseline in the same process: every range read again + 8 figures", ms(med["unkept_page" + w]), ""),
        ]
    table += [
        (f"report CLI {week} json (wall, with start-up)", ms(med["cli_json"]), "<= 2 s"),
        (f"report CLI {week} html (wall, with start-up)", ms(med["cli_html"]), "<= 2 s"),
        ("  of which start-up: a new interpreter importing what the report imports", ms(med["cli_start"]), ""),
        ("naive: every ticket into pandas, 12 weeks", ms(med["naive"]), f"(of which loading {ms(med['naive_load'])})"),
        ("ratio naive / page after a new ticket, 12 weeks", f"{med['naive'] / med['ticket_page_12']:.0f}x", ">= 100x"),
    ]
    width = max(len(r[0]) for r in table)
    print(f"{'measure':<{width}}  {'median':>10}  target")
    for name, value, target in table:
        print(f"{name:<{width}}  {value:>10}  {target}")


if __name__ == "__main__":
    main()
