"""One app server against two behind nginx (not a test): N simulated technicians for a fixed time.

    .venv/bin/python bench/bench_two_servers.py [--technicians 4] [--seconds 60] [--postgres-url URL]

Each technician is a Chromium page of its own (Debian's Chromium, Playwright), signed in once, then in a loop:
load the queue (the page time measured: from navigation to the script run finished and the table drawn), and
every third round open its own ticket, change the summary and save (the save time measured). The same database
(a fresh one on the PostgreSQL of --postgres-url or HELPDESK_TEST_POSTGRES_URL, dropped at the end, 300 tickets)
is served first by one server, then by two, both times through nginx with deploy/nginx/helpdesk.conf, each server
with its worker on. Printed side by side: page loads and saves per minute, p95 page and save times, errors, and the
machine's load average before and after each run. Every number depends on the machine: a 2-core box shared with
other work says little about a production server, but the comparison between the columns holds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("HELPDESK_SERVER_SECRET", "bench-server-secret-" + "s" * 40)

from tests.e2e.conftest import CHROMIUM, LAUNCH_FLAGS, PASSWORD  # noqa: E402
from tests.multi.conftest import AppServer, Database, free_port  # noqa: E402

IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
#: The servers run with the default pool and a production-like worker and queue refresh.
SERVER_ENV = {"HELPDESK_QUEUE_REFRESH_SECONDS": "30", "HELPDESK_WORKER_INTERVAL": "10",
              "HELPDESK_DB_POOL_SIZE": "10", "HELPDESK_DB_MAX_OVERFLOW": "20"}


@dataclass
class Result:
    label: str
    seconds: float = 0.0
    pages_ms: list[float] = field(default_factory=list)
    saves_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    load_before: float = 0.0
    load_after: float = 0.0


def p95(samples: list[float]) -> float:
    if len(samples) < 2:
        return samples[0] if samples else float("nan")
    return statistics.quantiles(samples, n=20)[-1]


def seed(url: str, technicians: int) -> list[int]:
    """Technicians tech1..N (PASSWORD), one ticket each, and 300 others in the queue; returns each one's ticket."""
    from lib import tickets
    from lib.db import make_engine, transaction
    from lib.directory import RequesterInput
    from lib.tickets import TicketDraft
    from lib.users import create_user

    engine = make_engine(url)
    own: list[int] = []
    with transaction(engine) as s:
        lead = create_user(s, actor=None, username="lena", name="Lena Lead", email="lena@example.com",
                           password=PASSWORD, role="lead", first_run=True)
        techs = [create_user(s, actor=lead.id, username=f"tech{i}", name=f"Tech {i}", email=f"tech{i}@example.com",
                             password=PASSWORD, role="technician") for i in range(1, technicians + 1)]
        for i in range(300):
            tickets.create_ticket(s, actor=lead.id, draft=TicketDraft(
                summary=f"Background request {i}", category="Hardware", priority="Medium", channel="phone",
                requester=RequesterInput(name=f"User {i}", email=f"user{i}@example.com")))
        for tech in techs:
            t = tickets.create_ticket(s, actor=tech.id, draft=TicketDraft(
                summary=f"{tech.name}'s ticket", category="Software", priority="High", channel="phone",
                requester=RequesterInput(name="Pat Doe", email="pat@example.com")))
            tickets.take(s, actor=tech.id, ticket_id=t.id)
            own.append(t.id)
    engine.dispose()
    return own


def nginx_config(folder: Path, ports: list[int]) -> tuple[Path, str]:
    """deploy/nginx/helpdesk.conf with these app servers, on a free loopback https port; (nginx.conf, base url)."""
    import subprocess

    from tests.multi.test_nginx import site_config

    cert, key = folder / "cert.pem", folder / "key.pem"
    if not cert.exists():
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                        "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    https_port = free_port()
    site = site_config(ports[0], ports[-1], free_port(), https_port, cert, key)
    if len(ports) == 1:  # one server: drop the second upstream line
        site = re.sub(rf"\n\s*server 127\.0\.0\.1:{ports[0]} [^\n]*", "", site, count=1)
    run = folder / f"nginx-{https_port}"
    run.mkdir()
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (run / sub).mkdir()
    (run / "helpdesk.conf").write_text(site)
    user = "user root root;\n" if os.geteuid() == 0 else ""
    conf = run / "nginx.conf"
    conf.write_text(f"""{user}daemon off;
worker_processes 1;
pid {run}/nginx.pid;
error_log {run}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {run}/body; proxy_temp_path {run}/proxy; fastcgi_temp_path {run}/fastcgi;
    uwsgi_temp_path {run}/uwsgi; scgi_temp_path {run}/scgi;
    include {run}/helpdesk.conf;
}}
""")
    return conf, f"https://127.0.0.1:{https_port}"


async def idle(page) -> None:
    await page.wait_for_selector(IDLE, timeout=60_000)
    await page.wait_for_timeout(100)
    await page.wait_for_selector(IDLE, timeout=60_000)


async def technician(browser, base: str, n: int, ticket_id: int, deadline: float, result: Result) -> None:
    ctx = await browser.new_context(viewport={"width": 1300, "height": 900}, ignore_https_errors=True)
    page = await ctx.new_page()
    try:
        await page.goto(base + "/")
        await idle(page)
        await page.get_by_role("textbox", name="Username").fill(f"tech{n}")
        await page.get_by_role("textbox", name="Password").fill(PASSWORD)
        await page.get_by_role("button", name="Log in").click()
        await page.get_by_role("heading", name="Queue").wait_for(timeout=60_000)
        await idle(page)
    except Exception as exc:  # noqa: BLE001 - a failed sign-in is one error of the run
        result.errors.append(f"tech{n} sign-in: {type(exc).__name__}: {str(exc)[:120]}")
        await ctx.close()
        return
    rounds = 0
    while time.monotonic() < deadline:
        rounds += 1
        try:
            t0 = time.perf_counter()
            await page.goto(base + "/")
            await page.get_by_role("heading", name="Queue").wait_for(timeout=60_000)
            await idle(page)
            result.pages_ms.append((time.perf_counter() - t0) * 1000)
            if rounds % 3 == 0:
                await page.goto(f"{base}/ticket?id={ticket_id}")
                await idle(page)
                await page.get_by_test_id("stButtonGroup").locator("button").filter(
                    has=page.get_by_text("Details", exact=True)).first.click()
                box = page.get_by_role("textbox", name="Summary")
                await box.wait_for(timeout=60_000)
                await idle(page)
                await box.fill(f"Tech {n}'s ticket, round {rounds}")
                t0 = time.perf_counter()
                await page.get_by_role("button", name="Save changes").click()
                await idle(page)
                if await page.get_by_text("was changed after you loaded it").count():
                    raise RuntimeError("the save was refused as stale")
                result.saves_ms.append((time.perf_counter() - t0) * 1000)
        except Exception as exc:  # noqa: BLE001 - counted, and the technician goes on
            result.errors.append(f"tech{n} round {rounds}: {type(exc).__name__}: {str(exc)[:120]}")
    await ctx.close()


async def run_load(base: str, technicians: int, own: list[int], seconds: float, result: Result) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_FLAGS, headless=True)
        result.load_before = os.getloadavg()[0]
        t0 = time.monotonic()
        deadline = t0 + seconds
        await asyncio.gather(*(technician(browser, base, i + 1, own[i], deadline, result)
                               for i in range(technicians)))
        result.seconds = time.monotonic() - t0
        result.load_after = os.getloadavg()[0]
        await browser.close()


def scenario(label: str, servers: list[AppServer], folder: Path, technicians: int, own: list[int],
             seconds: float) -> Result:
    import subprocess

    conf, base = nginx_config(folder, [s.port for s in servers])
    proxy = subprocess.Popen(["nginx", "-p", str(conf.parent), "-c", str(conf), "-e", str(conf.parent / "error.log")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    result = Result(label)
    try:
        time.sleep(0.5)  # nginx binds at once; a short pause before the browsers arrive
        asyncio.run(run_load(base, technicians, own, seconds, result))
    finally:
        proxy.terminate()
        proxy.wait(10)
    return result


def table(results: list[Result], technicians: int) -> str:
    rows = [
        ("technicians", [str(technicians) for _ in results]),
        ("run (s)", [f"{r.seconds:.0f}" for r in results]),
        ("queue loads / min", [f"{len(r.pages_ms) * 60 / max(r.seconds, 1):.1f}" for r in results]),
        ("saves / min", [f"{len(r.saves_ms) * 60 / max(r.seconds, 1):.1f}" for r in results]),
        ("p95 queue load (ms)", [f"{p95(r.pages_ms):.0f}" for r in results]),
        ("median queue load (ms)", [f"{statistics.median(r.pages_ms):.0f}" if r.pages_ms else "-" for r in results]),
        ("p95 save (ms)", [f"{p95(r.saves_ms):.0f}" for r in results]),
        ("errors", [str(len(r.errors)) for r in results]),
        ("load avg 1 min before/after", [f"{r.load_before:.1f} / {r.load_after:.1f}" for r in results]),
    ]
    width = max(len(name) for name, _ in rows)
    head = " " * width + "".join(f"  {r.label:>22}" for r in results)
    lines = [head] + [name.ljust(width) + "".join(f"  {v:>22}" for v in values) for name, values in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--technicians", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--postgres-url", default=os.environ.get("HELPDESK_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    if not args.postgres_url:
        parser.error("give --postgres-url or set HELPDESK_TEST_POSTGRES_URL (a server where databases may be created)")
    folder = Path(tempfile.mkdtemp(prefix="bench-two-servers-"))
    db = Database(args.postgres_url)
    servers: list[AppServer] = []
    try:
        a = AppServer("a", db.url_for("helpdesk-a"), folder, env=SERVER_ENV)
        servers.append(a)
        a.wait_healthy()
        own = seed(db.url, args.technicians)
        print(f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f} at start; "
              f"{args.technicians} technicians for {args.seconds:g} s per scenario", flush=True)
        one = scenario("one server", [a], folder, args.technicians, own, args.seconds)
        b = AppServer("b", db.url_for("helpdesk-b"), folder, env=SERVER_ENV)
        servers.append(b)
        b.wait_healthy()
        two = scenario("two servers", [a, b], folder, args.technicians, own, args.seconds)
        print(table([one, two], args.technicians))
        for r in (one, two):
            for err in r.errors[:5]:
                print(f"  {r.label}: {err}")
    finally:
        for server in servers:
            server.stop()
        db.drop()
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
