"""Page speed (not a test): AppTest reruns of the queue and ticket pages, and real-browser timings.

    .venv/bin/python bench/bench_pages.py --db bench/results/queue_1000000.sqlite3 [--runs 15] [--browser]

The database comes from bench/bench_queue.py (seed-demo). Measures the median rerun of the same AppTest
instance, logged in as the lead, for: an empty page (the floor), the queue, ticket, metrics, weekly report,
workload board and knowledge base pages; with --browser,
the time from opening a ticket link in a new tab to its content shown, and from a click on a queue view
to the updated table (Debian's Chromium).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import DEMO_PASSWORD, median_ms  # noqa: E402

EMPTY_PAGE = "import streamlit as st\nst.write('')\n"


def rerun_ms(at, runs: int) -> float:  # type: ignore[no-untyped-def]
    ms = median_ms(at.run, runs)
    assert not at.exception, at.exception
    return ms


def apptest(db: Path, runs: int) -> dict[str, float]:
    os.environ["HELPDESK_DATABASE_URL"] = f"sqlite:///{db}"
    os.environ["HELPDESK_QUEUE_REFRESH_SECONDS"] = "0"
    from sqlalchemy import select
    from streamlit.testing.v1 import AppTest

    from lib.db import make_engine, read_session
    from lib.models import Ticket

    with read_session(make_engine(f"sqlite:///{db}")) as s:
        tid = s.scalar(select(Ticket.id).where(Ticket.is_open.is_(True)).order_by(Ticket.id.desc()).limit(1))

    def logged_in(path: str, query: dict | None = None):  # type: ignore[no-untyped-def]
        at = AppTest.from_file(path, default_timeout=60)
        at.session_state["authentication_status"] = True
        at.session_state["username"] = "lead"
        at.session_state["name"] = "Lead"
        at.session_state["roles"] = ["lead"]
        for k, v in (query or {}).items():
            at.query_params[k] = v
        return at

    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as fh:
        fh.write(EMPTY_PAGE)
    return {
        "empty page (floor)": rerun_ms(logged_in(fh.name), runs),
        "queue page": rerun_ms(logged_in(str(ROOT / "pages" / "queue.py")), runs),
        "ticket page": rerun_ms(logged_in(str(ROOT / "pages" / "ticket.py"), {"id": str(tid)}), runs),
        # the default 12 weeks, rerun with the app's cache warm (the cold figures are in bench_metrics.py)
        "metrics page": rerun_ms(logged_in(str(ROOT / "pages" / "metrics.py")), runs),
        "weekly report page": rerun_ms(logged_in(str(ROOT / "pages" / "report.py")), runs),
        "workload board": rerun_ms(logged_in(str(ROOT / "pages" / "board.py")), runs),
        "knowledge base page": rerun_ms(logged_in(str(ROOT / "pages" / "kb.py")), runs),
    }


def browser(db: Path, runs: int) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    from tests.e2e.conftest import LAUNCH_FLAGS, AppServer, login, wait_idle

    os.environ["HELPDESK_DATABASE_URL"] = f"sqlite:///{db}"
    folder = Path(tempfile.mkdtemp())
    server = AppServer(folder, extra_env={"HELPDESK_DATABASE_URL": f"sqlite:///{db}"})
    out: dict[str, list[float]] = {"open ticket in a new tab → content shown": [], "click a view → table updated": []}
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path="/usr/bin/chromium", args=LAUNCH_FLAGS)
            ctx = b.new_context(viewport={"width": 1400, "height": 1000})
            page = ctx.new_page()
            login(page, server.url, "lead", DEMO_PASSWORD)
            from sqlalchemy import select

            from lib.db import make_engine, read_session
            from lib.models import Ticket

            with read_session(make_engine(f"sqlite:///{db}")) as s:
                ids = list(s.scalars(select(Ticket.id).where(Ticket.is_open.is_(True)).limit(runs)))
            for tid in ids:
                tab = ctx.new_page()
                t0 = time.perf_counter()
                tab.goto(f"{server.url}/ticket?id={tid}")
                tab.get_by_role("heading", name=f"HD-{tid:06d}").wait_for()
                out["open ticket in a new tab → content shown"].append((time.perf_counter() - t0) * 1000)
                tab.close()
            page.goto(server.url + "/")
            wait_idle(page)
            for i in range(runs):
                view = "Unassigned" if i % 2 == 0 else "All open"
                t0 = time.perf_counter()
                page.get_by_text(view, exact=True).click()
                wait_idle(page, timeout=60_000)
                out["click a view → table updated"].append((time.perf_counter() - t0) * 1000)
            b.close()
    finally:
        server.stop()
    return {k: statistics.median(v) for k, v in out.items() if v}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", type=Path, required=True)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--browser", action="store_true")
    args = ap.parse_args()
    results = apptest(args.db, args.runs)
    if args.browser:
        results |= browser(args.db, max(5, args.runs // 2))
    print("\nmedian ms | value")
    print("--- | ---:")
    for k, v in results.items():
        print(f"{k} | {v:.0f}")


if __name__ == "__main__":
    main()
