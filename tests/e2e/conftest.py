"""Real-browser tests: the app server (`streamlit run server.py`) on 127.0.0.1 and Debian's Chromium.

Without Chromium the tests skip with a reason; with HELPDESK_REQUIRE_E2E=1 (set by .ci/run) they fail.
Screenshots go to test-artifacts/screenshots/ (git-ignored).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = os.environ.get("HELPDESK_CHROMIUM", "/usr/bin/chromium")
LAUNCH_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PASSWORD = "correct horse battery"

pytestmark = pytest.mark.e2e


def _require_browser() -> None:
    if not Path(CHROMIUM).exists():
        if os.environ.get("HELPDESK_REQUIRE_E2E") == "1":
            pytest.fail(f"HELPDESK_REQUIRE_E2E=1 but Chromium is not at {CHROMIUM}")
        pytest.skip(f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium)")


@pytest.fixture(scope="session")
def browser_type_launch_args() -> dict:
    _require_browser()
    return {"executable_path": CHROMIUM, "args": LAUNCH_FLAGS, "headless": True}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppServer:
    def __init__(self, folder: Path, extra_env: dict[str, str] | None = None, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = folder / "e2e.sqlite3"
        env = dict(os.environ)
        env.update({
            "HELPDESK_DATABASE_URL": f"sqlite:///{self.db}",
            "HELPDESK_WORKER": "off",
            "HELPDESK_QUEUE_REFRESH_SECONDS": "5",
            **(extra_env or {}),
        })
        self.log = (folder / "server.log").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "server.py"), "--server.port", str(self.port),
             "--server.address", "127.0.0.1", "--server.headless", "true"],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/api/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
            if self.proc.poll() is not None:
                break
        self.stop()
        raise RuntimeError(f"app server did not start; see {folder / 'server.log'}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


@pytest.fixture(scope="module")
def app_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    _require_browser()
    server = AppServer(tmp_path_factory.mktemp("e2e"))
    yield server
    server.stop()


def wait_idle(page, timeout: float = 30_000) -> None:  # type: ignore[no-untyped-def]
    """Wait until the script run finished and no stale elements of the previous run remain."""
    idle = '[data-testid="stApp"][data-test-script-state="notRunning"]'
    page.wait_for_selector(idle, timeout=timeout)
    page.wait_for_timeout(400)
    page.wait_for_selector(idle, timeout=timeout)
    page.wait_for_function("() => document.querySelectorAll('[data-stale=\"true\"]').length === 0",
                           timeout=timeout)


def shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def settle(page) -> None:  # type: ignore[no-untyped-def]
    """Let the browser lay out and paint what the last input or resize changed: two animation frames (a state of
    the page, not a guessed delay). Events an input triggers are dispatched before the input call returns."""
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r())))")


def full_shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    """The whole page: Streamlit scrolls inside its main area, so grow the window to its height first."""
    size = page.viewport_size
    height = page.evaluate("Math.max(...[...document.querySelectorAll("
                           "'[data-testid=stMain], [data-testid=stMainBlockContainer]')].map(e => e.scrollHeight), 0)")
    page.set_viewport_size({"width": size["width"], "height": min(max(height + 80, size["height"]), 9000)})
    settle(page)
    shot(page, name)
    page.set_viewport_size(size)
    settle(page)


def log_ticket(page, *, name: str, email: str, summary: str, description: str, category: str,  # type: ignore[no-untyped-def]
               channel: str | None = None) -> None:
    """On the intake page: a ticket for a new contact, created; waits for "Ticket HD-… created"."""
    if channel is not None:
        page.get_by_text(channel).click()
        wait_idle(page)
    page.get_by_text("New contact").click()
    wait_idle(page)
    page.get_by_role("textbox", name="Name", exact=True).fill(name)
    page.get_by_role("textbox", name="E-mail", exact=True).fill(email)
    page.get_by_role("textbox", name="Summary").fill(summary)
    page.get_by_role("textbox", name="Description").fill(description)
    page.get_by_role("textbox", name="Description").press("Tab")
    wait_idle(page)
    choose(page, "Category", category)
    page.get_by_role("button", name="Create ticket").click()
    wait_idle(page)
    page.get_by_text(re.compile(r"Ticket HD-\d+ created")).wait_for()


LOGIN_REFUSED = re.compile("incorrect|locked|Login failed")


def login(page, base: str, username: str, password: str = PASSWORD, path: str = "/") -> None:  # type: ignore[no-untyped-def]
    """Sign in through the form. A correct password sends the browser through /auth/session (which sets the
    cookie) back to ``path``: wait for that new document, signed in; a refused one shows its message."""
    from playwright.sync_api import Error as PlaywrightError

    page.goto(base + path)
    wait_idle(page)
    page.get_by_role("textbox", name="Username").fill(username)
    page.get_by_role("textbox", name="Password").fill(password)
    page.evaluate("window.__beforeLogin = true")
    page.get_by_role("button", name="Log in").click()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if page.evaluate("window.__beforeLogin === undefined"):
                break  # the document after the hand-over
            if page.get_by_test_id("stAlert").filter(has_text=LOGIN_REFUSED).count():
                break
        except PlaywrightError:
            pass  # the page is navigating
        page.wait_for_timeout(50)
    else:
        raise AssertionError("login: neither a new signed-in page nor a refusal within 30 s")
    wait_idle(page)


def seed_accounts(db: Path) -> Engine:
    """Create lead + technician directly in the database (for tests that do not test the setup flow);
    returns an engine on that database for the test's own data."""
    os.environ.setdefault("HELPDESK_SERVER_SECRET", "e2e-secret-" + "z" * 40)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from lib.db import make_engine, transaction, upgrade_schema
    from lib.users import count_users, create_user

    engine = make_engine(f"sqlite:///{db}")
    upgrade_schema(engine)
    with transaction(engine) as s:
        if count_users(s) == 0:
            lead = create_user(s, actor=None, username="lena", name="Lena Lead", email="lena@example.com",
                               password=PASSWORD, role="lead", first_run=True)
            create_user(s, actor=lead.id, username="tom", name="Tom Tech", email="tom@example.com",
                        password=PASSWORD, role="technician")
    return engine


__all__ = ["AppServer", "login", "pick", "seed_accounts", "shot", "wait_idle", "shutil"]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # type: ignore[no-untyped-def]
    """On failure, save a screenshot of every open page for the post-mortem."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        contexts = []
        if item.funcargs.get("context") is not None:
            contexts.append(item.funcargs["context"])
        if item.funcargs.get("browser") is not None:
            contexts.extend(item.funcargs["browser"].contexts)
        pages = [pg for ctx in contexts for pg in ctx.pages]
        for i, pg in enumerate(pages):
            try:
                shot(pg, f"FAILED_{item.name}_{i}")
            except Exception:  # noqa: BLE001 - best effort
                pass


def open_from_grid(page, context, text: str):  # type: ignore[no-untyped-def]
    """Click a link cell of st.dataframe and return the new tab it opens.

    The grid is drawn on a canvas; its accessible table tells the row, and we click the canvas there.
    """
    grid = page.get_by_test_id("stDataFrame").first
    cell = grid.locator('td[role="gridcell"]', has_text=text).first
    cell.wait_for(state="attached")
    row = int(cell.locator("xpath=..").get_attribute("aria-rowindex") or "2")
    col = int(cell.get_attribute("aria-colindex") or "2")
    box = grid.bounding_box()
    assert box is not None
    header = 35
    row_h = 35
    # Column widths: the selection column is narrow; the ticket column is the first data column.
    x = box["x"] + (30 if col >= 2 else 0) + 45
    y = box["y"] + header + (row - 2) * row_h + row_h / 2
    page.mouse.move(x, y)
    settle(page)
    with context.expect_page(timeout=10_000) as new_tab:
        page.mouse.click(x, y)
    tab = new_tab.value
    tab.set_viewport_size({"width": 1400, "height": 1000})
    wait_idle(tab)
    return tab


def pick(page, text: str) -> None:  # type: ignore[no-untyped-def]
    """Choose an option of st.pills / st.segmented_control with one click, then wait until it shows as chosen
    and the run it started has finished. One click must be enough: a lost click fails the test."""
    wait_idle(page)
    label = page.get_by_text(text, exact=True)
    groups = page.get_by_test_id("stButtonGroup")
    groups.locator("button").filter(has=label).first.click()
    chosen = 'button[aria-checked="true"], button[aria-pressed="true"]'  # radio (required=True) or toggle
    groups.locator(chosen).filter(has=label).first.wait_for(timeout=30_000)
    wait_idle(page)


def choose(page, label: str, option: str) -> None:  # type: ignore[no-untyped-def]
    """Pick an option of a st.selectbox by its label."""
    for _ in range(3):
        page.get_by_test_id("stSelectbox").filter(has_text=label).first.click()
        opt = page.get_by_role("option", name=option)
        try:
            opt.first.wait_for(timeout=5000)
        except Exception:  # noqa: BLE001 - the dropdown closed during a rerun: try again
            wait_idle(page)
            continue
        opt.first.click()
        wait_idle(page)
        return
    raise AssertionError(f"could not choose {option!r} in {label!r}")


@pytest.fixture(autouse=True)
def clock() -> Iterator[None]:
    """The app server under test runs on the machine's clock, so what a browser test writes directly does too."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from lib import clock as product_clock

    with product_clock.using(product_clock.system_now):
        yield
