"""ServiceNow incident log import benchmark: a generated log in the published shape, imported into a fresh SQLite
database, then imported again unchanged.

    .venv/bin/python bench/bench_import_servicenow.py                      # 120,000 event rows, 3 runs
    .venv/bin/python bench/bench_import_servicenow.py --rows 20000 --runs 1

* The log: N event rows, about 6 per incident (New, Active, sometimes Awaiting ..., Resolved, Closed; some
  reassigned, some reopened, some still open), written as ServiceNow publishes the UCI "incident management
  process enriched event log": its 36 columns, times day first without zero padding or seconds
  (``29/2/2016 01:23``), booleans ``true``/``false``, ``?`` for missing; sorted by incident number.
* Import: ``lib.transfer.importer.import_csv`` into a fresh migrated SQLite file (copied from a template migrated
  once); re-import: the same file again into that database (every incident unchanged). Medians of the runs.
* Memory: the peak of Python allocations (tracemalloc) during one more import and re-import, which are not
  timed (tracing slows them), beside the size of the file; and the process's peak RSS. The file is streamed:
  what is held grows with the number of incidents (a number -> last row map), not with the file.
* Rows per CPU second are printed beside the wall-clock rates: on a shared machine (load average printed) the
  two differ, and the CPU figure is the one to compare between runs.

Prints a table; never fails on time (targets: >= 3,000 event rows/s for the import, >= 10,000 rows/s for an
unchanged re-import, memory bounded).
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lib.db import make_engine, upgrade_schema  # noqa: E402
from lib.transfer.importer import ImportReport, import_csv  # noqa: E402

HEADER = ("number,incident_state,active,reassignment_count,reopen_count,sys_mod_count,made_sla,caller_id,opened_by,"
          "opened_at,sys_created_by,sys_created_at,sys_updated_by,sys_updated_at,contact_type,location,category,"
          "subcategory,u_symptom,cmdb_ci,impact,urgency,priority,assignment_group,assigned_to,knowledge,"
          "u_priority_confirmation,notify,problem_id,rfc,vendor,caused_by,closed_code,resolved_by,resolved_at,"
          "closed_at").split(",")
PRIORITY = {(1, 1): "1 - Critical", (1, 2): "2 - High", (2, 1): "2 - High", (2, 2): "3 - Moderate",
            (1, 3): "3 - Moderate", (3, 1): "3 - Moderate", (2, 3): "4 - Low", (3, 2): "4 - Low", (3, 3): "4 - Low"}
LEVEL = {1: "1 - High", 2: "2 - Medium", 3: "3 - Low"}
CONTACTS = ["Phone"] * 90 + ["Self service"] * 5 + ["Email"] * 3 + ["Walk in", "IVR"]
TARGET_IMPORT, TARGET_REIMPORT = 3_000, 10_000


def published(at: datetime) -> str:
    """ServiceNow's own spelling: ``29/2/2016 01:23``."""
    return f"{at.day}/{at.month}/{at.year} {at.hour:02d}:{at.minute:02d}"


def states(rng: random.Random, n: int) -> list[str]:
    """The incident_state of each of an incident's ``n`` rows, in time order."""
    if n == 1:
        return ["New"]
    still_open = rng.random() < 0.08
    tail = [] if still_open else ["Resolved", "Closed"]
    if not still_open and n >= 6 and rng.random() < 0.1:
        tail = ["Resolved", "Active", "Resolved", "Closed"]  # reopened
    middle = n - 1 - len(tail)
    if middle < 0:
        return ["New", "Resolved", "Closed"][:n]
    body = ["Active"] * middle
    if middle >= 2 and rng.random() < 0.3:
        body[-1] = rng.choice(["Awaiting User Info", "Awaiting Vendor", "Awaiting Problem", "Awaiting Evidence"])
    return ["New", *body, *tail]


def generate(path: Path, rows: int, seed: int = 7) -> int:
    """Write a published-shape log of ``rows`` event rows; return the number of incidents."""
    rng = random.Random(seed)
    callers = max(1, rows // 30)
    start = datetime(2016, 2, 29)
    written = incidents = 0
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(HEADER)
        while written < rows:
            incidents += 1
            n = min(rows - written, max(1, round(rng.gauss(6, 2))))
            opened = start + timedelta(minutes=rng.randrange(0, 365 * 24 * 60))
            impact, urgency = rng.randint(1, 3), rng.randint(1, 3)
            resolver = f"Resolver {rng.randrange(1, 240)}"
            fixed = {
                "number": f"INC{incidents:07d}", "caller_id": f"Caller {rng.randrange(1, callers + 1)}",
                "opened_by": f"Opened by  {rng.randrange(1, 200)}", "opened_at": published(opened),
                "sys_created_by": f"Created by {rng.randrange(1, 200)}" if rng.random() < 0.7 else "?",
                "sys_created_at": published(opened) if rng.random() < 0.7 else "?",
                "contact_type": rng.choice(CONTACTS), "location": f"Location {rng.randrange(1, 200)}",
                "category": f"Category {rng.randrange(1, 60)}", "subcategory": f"Subcategory {rng.randrange(1, 250)}",
                "u_symptom": f"Symptom {rng.randrange(1, 500)}", "cmdb_ci": "?", "impact": LEVEL[impact],
                "urgency": LEVEL[urgency], "priority": PRIORITY[(impact, urgency)],
                "assignment_group": f"Group {rng.randrange(1, 80)}", "notify": "Do Not Notify", "problem_id": "?",
                "rfc": "?", "vendor": "?", "caused_by": "?", "closed_code": f"code {rng.randrange(1, 17)}",
                "resolved_by": f"Resolved by {rng.randrange(1, 200)}", "u_priority_confirmation": "false",
                "made_sla": "true" if rng.random() < 0.93 else "false",
            }
            at, assignee, reassigned, reopens, resolved_at = opened, "?", 0, 0, "?"
            sequence = states(rng, n)
            lines = []
            for mod, state in enumerate(sequence):
                at += timedelta(minutes=rng.randrange(1, 600 if state != "Closed" else 7200))
                if state == "Active" and (assignee == "?" or rng.random() < 0.15):
                    reassigned += assignee != "?"
                    assignee = resolver if assignee == "?" else f"Resolver {rng.randrange(1, 240)}"
                if state == "Active" and mod and sequence[mod - 1] == "Resolved":
                    reopens += 1
                if state == "Resolved":
                    resolved_at = published(at)
                if mod == 3 and rng.random() < 0.1:
                    fixed["category"] = f"Category {rng.randrange(1, 60)}"
                lines.append({**fixed, "incident_state": state, "active": "false" if state == "Closed" else "true",
                              "reassignment_count": reassigned, "reopen_count": reopens, "sys_mod_count": mod,
                              "sys_updated_by": f"Updated by {rng.randrange(1, 900)}", "sys_updated_at": published(at),
                              "assigned_to": assignee, "knowledge": "true" if rng.random() < 0.99 else "false",
                              "resolved_at": resolved_at, "closed_at": "?"})
            closed_at = published(at) if sequence[-1] == "Closed" else "?"
            for line in lines:  # like the real log, every row carries the incident's final resolved/closed times
                line["resolved_at"], line["closed_at"] = resolved_at, closed_at
                out.writerow([line[h] for h in HEADER])
            written += n
    return incidents


def timed(engine, path: Path) -> tuple[ImportReport, float, float]:  # type: ignore[no-untyped-def]
    """The report, the wall time and the CPU time of this process (the two differ on a busy machine)."""
    t0, c0 = time.perf_counter(), time.process_time()
    report = import_csv(engine, path, layout="servicenow")
    return report, time.perf_counter() - t0, time.process_time() - c0


def check(report: ImportReport, rows: int, what: str, **expect: int) -> None:
    got = {k: getattr(report, k) for k in expect}
    if report.refused or report.rows != rows or got != expect:
        raise SystemExit(f"{what}: {report.summary()}; first refusals: {report.refused[:3]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=120_000, help="event rows in the log (default 120,000)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs (default 3)")
    parser.add_argument("--no-trace", action="store_true", help="skip the traced (memory) run")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="hd-bench-sn-") as tmp:
        folder = Path(tmp)
        log = folder / "incident_event_log.csv"
        t0 = time.perf_counter()
        incidents = generate(log, args.rows)
        size_mb = log.stat().st_size / 1024**2
        print(f"generated {args.rows:,} event rows for {incidents:,} incidents ({size_mb:.1f} MB) "
              f"in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        template = folder / "template.sqlite3"
        engine = make_engine(f"sqlite:///{template}")
        upgrade_schema(engine)
        with engine.connect() as conn:  # everything into the main file, so a copy of it is the whole database
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        engine.dispose()

        def fresh(name: str):  # type: ignore[no-untyped-def]
            path = folder / f"{name}.sqlite3"
            shutil.copyfile(template, path)
            return make_engine(f"sqlite:///{path}")

        imports, reimports, import_cpu, reimport_cpu = [], [], [], []
        for run in range(args.runs):
            engine = fresh(f"run{run}")
            first, took, cpu = timed(engine, log)
            check(first, args.rows, "import", created=incidents)
            again, took_again, cpu_again = timed(engine, log)
            check(again, args.rows, "re-import", unchanged=incidents)
            engine.dispose()
            imports.append(args.rows / took)
            reimports.append(args.rows / took_again)
            import_cpu.append(args.rows / cpu)
            reimport_cpu.append(args.rows / cpu_again)
            print(f"  run {run + 1}/{args.runs}: import {took:.1f} s ({imports[-1]:,.0f} rows/s), "
                  f"re-import {took_again:.1f} s ({reimports[-1]:,.0f} rows/s)", file=sys.stderr, flush=True)

        traced: list[tuple[str, float]] = []
        if not args.no_trace:
            engine = fresh("traced")
            for what in ("import", "re-import"):
                tracemalloc.start()
                import_csv(engine, log, layout="servicenow")
                traced.append((f"peak Python memory, {what} (MB)", tracemalloc.get_traced_memory()[1] / 1024**2))
                tracemalloc.stop()
            engine.dispose()

    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    load = os.getloadavg()[0]
    print(f"\nServiceNow log import on SQLite: {args.rows:,} event rows, {incidents:,} incidents, {size_mb:.1f} MB "
          f"file, {os.cpu_count()} CPUs (load average {load:.1f} at the end), {args.runs} run(s)")
    print(f"{'measure':<36} {'median':>10} {'min':>10} {'max':>10}  target")
    for name, values, target in (("import (event rows/s)", imports, TARGET_IMPORT),
                                 ("unchanged re-import (rows/s)", reimports, TARGET_REIMPORT),
                                 ("import (rows per CPU second)", import_cpu, None),
                                 ("re-import (rows per CPU second)", reimport_cpu, None)):
        verdict = "" if target is None else (
            f">= {target:,} ({'meets' if statistics.median(values) >= target else 'below'})")
        print(f"{name:<36} {statistics.median(values):>10,.0f} {min(values):>10,.0f} {max(values):>10,.0f}  {verdict}")
    for name, value in traced:
        print(f"{name:<36} {value:>10.1f} {'':>10} {'':>10}  bounded (streamed; the file is {size_mb:.1f} MB)")
    print(f"{'peak RSS of the process (MB)':<36} {rss_mb:>10.1f}")


if __name__ == "__main__":
    main()
