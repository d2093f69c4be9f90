"""Several app servers on one PostgreSQL: real `streamlit run server.py` processes on loopback.

The ``pair`` fixture creates a fresh database on the PostgreSQL of HELPDESK_TEST_POSTGRES_URL (a unique name,
dropped at the end), starts two app servers against it at the same moment (each with its in-process worker on,
sending to a real SMTP server on 127.0.0.1), waits for their ``/api/health``, and always stops them.
Without HELPDESK_TEST_POSTGRES_URL the tests skip with a reason; with HELPDESK_REQUIRE_POSTGRES=1 they fail.
Browser parts use Debian's Chromium as tests/e2e does (HELPDESK_REQUIRE_E2E=1 makes a missing one fail).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

from tests.e2e.conftest import CHROMIUM, LAUNCH_FLAGS, PASSWORD, _require_browser, free_port
from tests.integration.conftest import SmtpServer

ROOT = Path(__file__).resolve().parents[2]
ALERT_TOKEN = "multi-alert-token-0123456789abcdef"
COOKIE_KEY = "multi-cookie-key-" + "k" * 40
SERVER_SECRET = "multi-server-secret-" + "s" * 40
#: Small pools, so the connection budget test means something: at most POOL + OVERFLOW connections per server.
POOL, OVERFLOW = 2, 3
#: Seconds an app server may take to answer /api/health after its start (two start at once on a busy machine).
START_SECONDS = 90


def pg_admin_url() -> str:
    """The PostgreSQL the tests may create databases on; skip (or fail under HELPDESK_REQUIRE_POSTGRES=1)."""
    url = os.environ.get("HELPDESK_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("HELPDESK_REQUIRE_POSTGRES") == "1":
            pytest.fail("HELPDESK_REQUIRE_POSTGRES=1 but HELPDESK_TEST_POSTGRES_URL is not set")
        pytest.skip("several app servers need PostgreSQL: set HELPDESK_TEST_POSTGRES_URL (see README)")
    return url


@dataclass
class Database:
    """A database of its own on a PostgreSQL server, created now and dropped by :meth:`drop`."""

    admin_url: str
    name: str = field(default_factory=lambda: f"helpdesk_multi_{os.getpid()}_{uuid.uuid4().hex[:8]}")

    def __post_init__(self) -> None:
        admin = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{self.name}"'))
        finally:
            admin.dispose()

    @property
    def url(self) -> str:
        return make_url(self.admin_url).set(database=self.name).render_as_string(hide_password=False)

    def url_for(self, application_name: str) -> str:
        """The database URL with an application_name, so pg_stat_activity tells whose connection it is."""
        return make_url(self.url).update_query_dict({"application_name": application_name}) \
            .render_as_string(hide_password=False)

    def drop(self) -> None:
        admin = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        finally:
            admin.dispose()


def http_get(url: str, timeout: float = 10) -> tuple[int, dict]:
    """GET a JSON route; (status, body) for 2xx and HTTP errors alike."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def http_post(url: str, body: bytes, headers: dict[str, str], timeout: float = 30) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


class AppServer:
    """One `streamlit run server.py` (the way run.sh serves) on a free 127.0.0.1 port; :meth:`stop` always ends it."""

    def __init__(self, name: str, database_url: str, folder: Path, *, port: int | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.name = name
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = folder / f"server-{name}.log"
        full_env = dict(os.environ)
        full_env.update({
            "HELPDESK_DATABASE_URL": database_url,
            "HELPDESK_WORKER": "on",
            "HELPDESK_WORKER_INTERVAL": "1",
            "HELPDESK_QUEUE_REFRESH_SECONDS": "2",
            "HELPDESK_COOKIE_KEY": COOKIE_KEY,
            "HELPDESK_SERVER_SECRET": SERVER_SECRET,
            "HELPDESK_ALERT_TOKEN": ALERT_TOKEN,
            "HELPDESK_DB_POOL_SIZE": str(POOL),
            "HELPDESK_DB_MAX_OVERFLOW": str(OVERFLOW),
            **(env or {}),
        })
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "server.py"), "--server.port", str(self.port),
             "--server.address", "127.0.0.1", "--server.headless", "true", "--server.fileWatcherType", "none",
             "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=full_env, stdout=self._log, stderr=subprocess.STDOUT,
        )

    def health(self, timeout: float = 5) -> tuple[int, dict]:
        return http_get(self.url + "/api/health", timeout=timeout)

    def wait_healthy(self, seconds: float = START_SECONDS) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if self.health(timeout=3)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"app server {self.name} did not become healthy; see {self.log_path}:\n"
                           + self.log_path.read_text()[-3000:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


@dataclass
class Pair:
    db: Database
    a: AppServer
    b: AppServer
    smtp: SmtpServer
    engine: Engine  # the test's own engine on the shared database

    @property
    def servers(self) -> tuple[AppServer, AppServer]:
        return self.a, self.b


def seed_staff(engine: Engine) -> None:
    """A lead (lena) and a technician (tom), both with :data:`PASSWORD`."""
    from lib.db import transaction
    from lib.users import count_users, create_user

    with transaction(engine) as s:
        if count_users(s) == 0:
            lead = create_user(s, actor=None, username="lena", name="Lena Lead", email="lena@example.com",
                               password=PASSWORD, role="lead", first_run=True)
            create_user(s, actor=lead.id, username="tom", name="Tom Tech", email="tom@example.com",
                        password=PASSWORD, role="technician")


def start_servers(servers: list[AppServer]) -> None:
    """Wait for every server; on a failure stop them all and raise."""
    try:
        for server in servers:
            server.wait_healthy()
    except BaseException:
        for server in servers:
            server.stop()
        raise


@pytest.fixture(scope="session")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """Two app servers (A and B), both with the worker on, on one fresh database, started at the same moment on an
    empty database (each migrates under the advisory lock), and a recording SMTP server both send to."""
    from lib.db import make_engine

    db = Database(pg_admin_url())
    folder = tmp_path_factory.mktemp("multi")
    smtp = SmtpServer(port=free_port())
    servers: list[AppServer] = []
    engine: Engine | None = None
    try:
        smtp.start()
        port_a = free_port()
        mail_env = {"HELPDESK_SMTP_HOST": "127.0.0.1", "HELPDESK_SMTP_PORT": str(smtp.port),
                    "HELPDESK_SMTP_FROM": "helpdesk@desk.example", "HELPDESK_SMTP_BATCH": "3",
                    "HELPDESK_PUBLIC_URL": f"http://127.0.0.1:{port_a}",
                    "HELPDESK_STAFF_DIGEST_HOUR": "0"}  # the daily digest is due at any hour of the test
        servers.append(AppServer("a", db.url_for("helpdesk-a"), folder, port=port_a, env=mail_env))
        servers.append(AppServer("b", db.url_for("helpdesk-b"), folder, env=mail_env))
        start_servers(servers)
        engine = make_engine(db.url_for("helpdesk-test"))
        seed_staff(engine)
        yield Pair(db, servers[0], servers[1], smtp, engine)
    finally:
        for server in servers:
            server.stop()
        if engine is not None:
            engine.dispose()
        smtp.stop()
        db.drop()


@pytest.fixture(scope="session")
def browser_type_launch_args() -> dict:
    _require_browser()
    return {"executable_path": CHROMIUM, "args": LAUNCH_FLAGS, "headless": True}


@pytest.fixture(autouse=True)
def clock() -> Iterator[None]:
    """The app servers run on the machine's clock, so what a test writes directly does too."""
    from lib import clock as product_clock

    with product_clock.using(product_clock.system_now):
        yield


def wait_until(predicate, seconds: float = 30, what: str = "the expected state"):
    """Poll ``predicate`` until it returns something truthy (returned) or fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        got = predicate()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:g} s waiting for {what}")
        time.sleep(0.1)


# --- a private PostgreSQL cluster (the restart test stops and starts it; never the machine's shared one) --------


def _pg_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        reason = "a private PostgreSQL cluster needs initdb under /usr/lib/postgresql/*/bin (apt-get install postgresql)"
        if os.environ.get("HELPDESK_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"HELPDESK_REQUIRE_POSTGRES=1 but {reason}")
        pytest.skip(reason)
    return found[-1].parent


class PrivateCluster:
    """initdb into a folder of its own, served on a free 127.0.0.1 port (trust auth, no fsync), stopped and removed
    by :meth:`destroy`. initdb and postgres refuse to run as root: as root they run as the ``postgres`` account,
    in a folder it owns (pytest's tmp_path is root's, mode 0700)."""

    def __init__(self) -> None:
        self.bin = _pg_bin()
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="helpdesk-pg-"))
        self.data = self.folder / "data"
        self.log = self.folder / "postgres.log"
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.folder, pw.pw_uid, pw.pw_gid)
        try:
            self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
            self.start()
        except BaseException:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise

    def _run(self, tool: str, *args: str) -> None:
        cmd = [str(self.bin / tool), *args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed: {done.stdout}\n{done.stderr}\n"
                               + (self.log.read_text()[-2000:] if self.log.exists() else ""))

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "30", "-o",
                  f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder} -c fsync=off", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop")

    def destroy(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self.stop()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture
def private_cluster() -> Iterator[PrivateCluster]:
    pg_admin_url()  # the PostgreSQL tests run (or skip, or fail) together
    cluster = PrivateCluster()
    try:
        yield cluster
    finally:
        cluster.destroy()


# --- signed-in browsers without a login form per test ----------------------------------------------------------


@pytest.fixture(scope="session")
def staff_cookies(browser, pair: Pair) -> dict[str, str]:
    """The sign-in cookie of tom (signed in through A's login form) and of lena (through B's): tests open pages
    with them in fresh browser contexts, on either server, instead of filling the login form each time."""
    from tests.e2e.conftest import login

    cookies: dict[str, str] = {}
    for user, server in (("tom", pair.a), ("lena", pair.b)):
        ctx = browser.new_context()
        page = ctx.new_page()
        login(page, server.url, user)
        page.get_by_role("heading", name="Queue").wait_for()
        [cookie] = [c for c in ctx.cookies() if c["name"] == "helpdesk_session"]
        cookies[user] = cookie["value"]
        ctx.close()
    return cookies


def signed_in(browser, cookies: dict[str, str], user: str, server: AppServer, path: str = "/"):
    """A page of a new browser context holding only ``user``'s sign-in cookie, opened at ``path`` on ``server``."""
    from tests.e2e.conftest import wait_idle

    ctx = browser.new_context(viewport={"width": 1300, "height": 900})
    ctx.add_cookies([{"name": "helpdesk_session", "value": cookies[user], "url": server.url}])
    page = ctx.new_page()
    page.goto(server.url + path)
    wait_idle(page)
    return page
