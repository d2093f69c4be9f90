"""Pages as the app server runs them (not a test): a real `streamlit run server.py` and Chromium, cached and
right after a write.

    .venv/bin/python bench/bench_server_pages.py --database-url sqlite:///bench/results/queue_1000000.sqlite3
    .venv/bin/python bench/bench_server_pages.py \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/helpdesk_bench_1000000 --port 8611

The database must hold the seeded benchmark data (bench/common.py: ``seed-demo`` with the lead's password
``bench password 123``). The server compiles each page once, as in production (AppTest, used by
bench_pages.py, compiles the page on every rerun). For each page, signed in as the lead, ``--runs`` times:

* **cached**: the page opened again in the same tab (a new session: the server's caches are warm);
* **after a write**: an internal note is written on another ticket first, so every read keyed on the
  database's change marker (lib.queries.change_marker) misses, then the page is opened;
* each as **server run** (the app server's own time for the page run, from its log: ``HELPDESK_SLOW_PAGE_MS=0``
  makes it log every run, lib/page_timer.py), as **shown** (from the navigation until the page's content is shown and the run has finished: what the
  user waits for, the document's start-up included) and as **run, as the browser sees it** (from the moment
  the browser marks the app's script as running until it marks it finished: the server's run of the page,
  compiled once, plus the transfer and the browser's own drawing of what arrives, since the browser notes the
  end only when its main thread is free), and after a write the **statements sent** (what the server's run sent
  to the database, from the same log line) and the run's **CPU time**: its own thread's, and the whole server
  process's during the run (the event loop sending its elements to the browser included). The CPU times leave
  out what the run waited for (the database, or a core taken by the browser on this same 2-core machine), so
  they move less with the load than the server run's wall time;
* another signed-in tab stays open on "My account" throughout (Streamlit empties its cache of compiled page
  scripts whenever no session is connected: a lone tab would make every load compile its page again, which no
  desk in use sees);
* for the ticket page also **a link in a new tab → content shown** (the caches warm);
* **sign-in**: from the click on "Log in" (a new browser context) to a technician's queue shown;
* for the Metrics page also **new tab → first chart** (a new tab opened on the page until the first Plotly
  chart is drawn), **the open section's charts** (until both charts of the section it opens on are drawn), and
  **a section's tab clicked → its charts** (the tab of another section clicked until its two charts are drawn);
* **the floor**: a new tab on a bare Streamlit page with a title and one small chart drawn by Streamlit's own
  Plotly chart (bench/floor_chart_app.py, served by a second `streamlit run` beside the app's), right after each of
  the Metrics page's new tabs (so both see the same load), until the title is shown and until the chart is drawn,
  and the Metrics page's first chart ÷ the floor's chart per pair: what any Streamlit page with Streamlit's Plotly
  chart costs this machine's browser. The app's chart pages draw with plotly.js's smaller cartesian bundle instead
  (lib/ui/plotly_chart.py), so they come close to it with a whole page;
* **machine reference**: a fixed pure-Python loop (5 million additions), timed before the pages, so that figures
  taken on different machines can be compared.

Medians in ms; the load average before and after is
printed with them (the machine is shared: compare figures of one run).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import DEMO_PASSWORD, machine_reference  # noqa: E402

IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
# Records, in every document, when the app's script run starts and ends (performance.now() ms): the end minus the
# start is the server's run of the page as the browser sees it (without the document's own start-up).
RUN_CLOCK = """
window.__run = {};
new MutationObserver(() => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app) return;
  const state = app.getAttribute('data-test-script-state');
  if (state === 'running' && window.__run.start === undefined) window.__run.start = performance.now();
  if (state === 'notRunning' && window.__run.start !== undefined && window.__run.end === undefined)
    window.__run.end = performance.now();
}).observe(document, {subtree: true, childList: true, attributes: true});
"""


def _write_note(url: str, ticket_id: int, lead_id: int, n: int) -> None:
    from lib import tickets
    from lib.db import make_engine, transaction

    engine = make_engine(url)
    try:
        with transaction(engine) as s:
            tickets.internal_note(s, actor=lead_id, ticket_id=ticket_id, text=f"bench write {n}")
    finally:
        engine.dispose()


def _ids(url: str) -> tuple[int, int, int]:
    """An open ticket to show, another to write on, and the lead's id."""
    from sqlalchemy import select

    from lib.db import make_engine, read_session
    from lib.models import Ticket, User

    engine = make_engine(url)
    with read_session(engine) as s:
        shown, other = list(s.scalars(select(Ticket.id).where(Ticket.is_open.is_(True))
                                      .order_by(Ticket.id.desc()).limit(2)))
        lead = s.scalar(select(User.id).where(User.username == "lead"))
    engine.dispose()
    if lead is None:
        raise SystemExit("no 'lead' account: seed the database with seed-demo (bench/common.py)")
    return shown, other, lead


class ServerRuns:
    """The page runs the app server logged (lib/page_timer.py), read as they come."""

    def __init__(self, log: Path) -> None:
        self.log, self.offset = log, 0
        self.queries = 0
        self.cpu: tuple[float, float] | None = None

    def skip(self) -> None:
        """Forget what was logged so far."""
        self.offset = self.log.stat().st_size

    def last(self, page: str, timeout: float = 10.0) -> float:
        """The ms of the newest run of ``page`` logged since the last call (waiting for its line); the statements
        that run sent are kept in ``self.queries``, its CPU ms (its own thread's, the server process's) in
        ``self.cpu``."""
        from lib.page_timer import cpu, parse, queries

        deadline = time.monotonic() + timeout
        found: float | None = None
        while True:
            with self.log.open("rb") as fh:
                fh.seek(self.offset)
                chunk = fh.read()
            # only whole lines: a line still being written is read next time
            whole = chunk[: chunk.rfind(b"\n") + 1]
            self.offset += len(whole)
            for line in whole.decode(errors="replace").splitlines():
                run = parse(line)
                if run is not None and run[0] == page:
                    found, self.queries, self.cpu = run[1], queries(line) or 0, cpu(line)
            if found is not None:
                return found
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server logged no run of {page!r} within {timeout:.0f} s")
            time.sleep(0.05)


def _until(page, ready: Callable) -> float:  # type: ignore[no-untyped-def]
    """Wait until the page's content is shown (``ready(page)``) and the script run has finished; the run's ms."""
    ready(page)
    page.wait_for_selector(IDLE, timeout=120_000)
    page.wait_for_function("() => window.__run && window.__run.end !== undefined", timeout=120_000)
    return float(page.evaluate("window.__run.end - window.__run.start"))


class Floor:
    """bench/floor_chart_app.py served by a `streamlit run` of its own (stopped by :meth:`close`), opened in new tabs
    of its own browser context: :meth:`one` gives one new tab's ms until the title is shown and until the chart is
    drawn. The benchmark alternates it with the Metrics page's new tabs, so both see the same machine load."""

    def __init__(self, browser) -> None:  # type: ignore[no-untyped-def]
        import socket
        import subprocess
        import urllib.request

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "bench" / "floor_chart_app.py"), "--server.port",
             str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
             "--browser.gatherUsageStats", "false"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{port}/"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(self.base + "_stcore/health", timeout=2):
                        break
                except OSError:
                    if time.monotonic() > deadline or self.proc.poll() is not None:
                        raise RuntimeError("the floor page's server did not start") from None
                    time.sleep(0.2)
            self.ctx = browser.new_context(viewport={"width": 1440, "height": 900})
            keeper = self.ctx.new_page()  # as for the app: a session stays connected, so the page stays compiled
            keeper.goto(self.base)
            keeper.locator(".js-plotly-plot .main-svg").first.wait_for(timeout=120_000)
        except BaseException:
            self.proc.terminate()
            raise

    def one(self) -> tuple[float, float]:
        fresh = self.ctx.new_page()
        t0 = time.perf_counter()
        fresh.goto(self.base)
        fresh.get_by_role("heading", name="One chart").wait_for(timeout=120_000)
        titled = (time.perf_counter() - t0) * 1000
        fresh.locator(".js-plotly-plot .main-svg").first.wait_for(timeout=120_000)
        charted = (time.perf_counter() - t0) * 1000
        fresh.close()
        return titled, charted

    def close(self) -> None:
        try:
            self.ctx.close()
        finally:
            self.proc.terminate()
            self.proc.wait(timeout=30)


def measure(url: str, runs: int, port: int | None, pages: list[str], sign_in: bool = True
            ) -> dict[str, dict[str, float]]:
    from playwright.sync_api import sync_playwright

    from tests.e2e.conftest import CHROMIUM, LAUNCH_FLAGS, AppServer, login, wait_idle

    shown, other, lead = _ids(url)
    ready: dict[str, tuple[str, Callable]] = {
        "queue": ("/",  # the default page lives at the root ("/queue" is not a page address)
                   lambda p: p.get_by_text("ticket(s) · page").first.wait_for(timeout=120_000)),
        "ticket": (f"/ticket?id={shown}",
                   lambda p: p.get_by_role("heading", name=f"HD-{shown:06d}").first.wait_for(
                       timeout=120_000)),
        "metrics": ("/metrics", lambda p: p.locator(".js-plotly-plot .main-svg").first.wait_for(timeout=120_000)),
        "board": ("/board", lambda p: p.get_by_role("heading", name="Workload board").first.wait_for(
            timeout=120_000)),
        "report": ("/report", lambda p: p.locator(".js-plotly-plot .main-svg").first.wait_for(timeout=120_000)),
    }
    out: dict[str, dict[str, list[float]]] = {}
    folder = Path(tempfile.mkdtemp(prefix="bench-pages-"))
    server = AppServer(folder, extra_env={"HELPDESK_DATABASE_URL": url, "HELPDESK_QUEUE_REFRESH_SECONDS": "0",
                                          "HELPDESK_SLOW_PAGE_MS": "0"}, port=port)
    runs_log = ServerRuns(folder / "server.log")
    # The page's name in the server's log: the default page by its title (app.py).
    logged = {"queue": "queue", "ticket": "ticket", "metrics": "metrics", "board": "board", "report": "report"}
    writes = 0
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_FLAGS)
            ctx = browser.new_context(viewport={"width": 1440, "height": 900})
            ctx.add_init_script(RUN_CLOCK)
            tab = ctx.new_page()
            login(tab, server.url, "lead", DEMO_PASSWORD)
            # Another signed-in tab stays open, as on any working desk: Streamlit empties its cache of compiled page
            # scripts whenever no session is connected, which a lone tab going from page to page would cause on
            # every load (and the page would be compiled again each time), never a desk in use.
            keeper = ctx.new_page()
            keeper.goto(server.url + "/account")
            _until(keeper, lambda p: p.get_by_role("heading", name="My account").first.wait_for(timeout=120_000))
            for name in pages:
                path, is_ready = ready[name]
                row = out.setdefault(name, {"cached: server run": [], "cached: shown": [],
                                            "cached: run (browser's view)": [], "after a write: server run": [],
                                            "after a write: shown": [], "after a write: run (browser's view)": [],
                                            "after a write: statements sent": [],
                                            "after a write: server run's own CPU": [],
                                            "after a write: server process CPU during the run": []})
                tab.goto(server.url + path)  # once to warm the caches
                _until(tab, is_ready)
                for _ in range(runs):
                    runs_log.skip()
                    t0 = time.perf_counter()
                    tab.goto(server.url + path)
                    row["cached: run (browser's view)"].append(_until(tab, is_ready))
                    row["cached: shown"].append((time.perf_counter() - t0) * 1000)
                    row["cached: server run"].append(runs_log.last(logged[name]))
                    writes += 1
                    _write_note(url, other, lead, writes)
                    runs_log.skip()
                    t0 = time.perf_counter()
                    tab.goto(server.url + path)
                    row["after a write: run (browser's view)"].append(_until(tab, is_ready))
                    row["after a write: shown"].append((time.perf_counter() - t0) * 1000)
                    row["after a write: server run"].append(runs_log.last(logged[name]))
                    row["after a write: statements sent"].append(runs_log.queries)
                    if runs_log.cpu is not None:
                        row["after a write: server run's own CPU"].append(runs_log.cpu[0])
                        row["after a write: server process CPU during the run"].append(runs_log.cpu[1])
                if name == "metrics":
                    first, every, switched, titled, charted, ratio = [], [], [], [], [], []
                    floor = Floor(browser)
                    both = ("() => [...document.querySelectorAll('.js-plotly-plot')].filter(e => "
                            "e.querySelector('.main-svg') && e.querySelector('.gtitle') && "
                            "e.querySelector('.gtitle').textContent.startsWith(%r)).length >= 1 && "
                            "[...document.querySelectorAll('.js-plotly-plot .main-svg')].length >= 2")
                    for _ in range(runs):
                        writes += 1
                        _write_note(url, other, lead, writes)
                        fresh = ctx.new_page()
                        t0 = time.perf_counter()
                        fresh.goto(server.url + path)
                        fresh.locator(".js-plotly-plot .main-svg").first.wait_for(timeout=120_000)
                        first.append((time.perf_counter() - t0) * 1000)
                        fresh.wait_for_function(both % "Created per", timeout=120_000)
                        every.append((time.perf_counter() - t0) * 1000)
                        wait_idle(fresh, timeout=120_000)
                        t0 = time.perf_counter()
                        fresh.get_by_role("tab", name="Team").click()
                        fresh.wait_for_function(both % "Workload", timeout=120_000)
                        switched.append((time.perf_counter() - t0) * 1000)
                        fresh.close()
                        floor_title, floor_chart = floor.one()  # right after, under the same load
                        titled.append(floor_title)
                        charted.append(floor_chart)
                        ratio.append(first[-1] / floor_chart)
                    floor.close()
                    row["new tab → first chart (after a write)"] = first
                    row["new tab → the open section's 2 charts (after a write)"] = every
                    row["tab “Team” clicked → its 2 charts"] = switched
                    out["floor"] = {"bare Streamlit page (a title, one Plotly chart): new tab → title shown": titled,
                                    "bare Streamlit page: new tab → the chart drawn": charted,
                                    "Metrics' first chart ÷ the floor's chart, per pair": ratio}
                if name == "ticket":
                    shown_in_tab = []
                    for _ in range(runs):
                        fresh = ctx.new_page()
                        t0 = time.perf_counter()
                        fresh.goto(server.url + path)
                        is_ready(fresh)
                        shown_in_tab.append((time.perf_counter() - t0) * 1000)
                        fresh.close()
                    row["link in a new tab → content shown"] = shown_in_tab
            if sign_in:
                signed = []
                for _ in range(runs):
                    other_ctx = browser.new_context(viewport={"width": 1440, "height": 900})
                    page = other_ctx.new_page()
                    page.goto(server.url + "/")
                    wait_idle(page)
                    page.get_by_role("textbox", name="Username").fill("tech1")
                    page.get_by_role("textbox", name="Password").fill(DEMO_PASSWORD)
                    t0 = time.perf_counter()
                    page.get_by_role("button", name="Log in").click()
                    ready["queue"][1](page)
                    signed.append((time.perf_counter() - t0) * 1000)
                    other_ctx.close()
                out["sign-in"] = {"Log in clicked → a technician's queue shown": signed}
            browser.close()
    finally:
        server.stop()
    return {page: {k: statistics.median(v) for k, v in row.items() if v} for page, row in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", required=True, help="the seeded benchmark database (bench/common.py)")
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--port", type=int, default=None, help="the app server's port (default: a free one)")
    ap.add_argument("--pages", nargs="+", default=["queue", "ticket", "metrics", "board", "report"],
                    choices=["queue", "ticket", "metrics", "board", "report"])
    ap.add_argument("--no-sign-in", action="store_true", help="leave out the sign-in figure")
    args = ap.parse_args()
    reference = machine_reference()
    before = os.getloadavg()
    results = measure(args.database_url, args.runs, args.port, args.pages, sign_in=not args.no_sign_in)
    after = os.getloadavg()
    print(f"\n{args.database_url} · medians of {args.runs} · load average before {before[0]:.2f}, "
          f"after {after[0]:.2f} · machine reference (5M-step Python loop) {reference:.0f} ms")
    print("page | measure | median ms")
    print("--- | --- | ---:")
    for page, row in results.items():
        for k, v in row.items():
            print(f"{page} | {k} | {v:.2f}×" if "÷" in k else f"{page} | {k} | {v:.0f}")


if __name__ == "__main__":
    main()
