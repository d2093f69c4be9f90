"""Real mail servers on 127.0.0.1 for the integration tests: aiosmtpd (SMTP) and dovecot (IMAP).

Both are started by fixtures and stop themselves. Dovecot runs from a private config in a temporary
folder (``dovecot -F -c CONF``); when it is not installed the IMAP tests skip with a reason, unless
HELPDESK_REQUIRE_IMAP=1 (set by CI), which makes them fail instead.
"""

from __future__ import annotations

import email
import imaplib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage, Message
from email.utils import make_msgid
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from lib.mail.settings import ImapConfig, SmtpConfig


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_mail(*, sender: str = "Ann Smith <ann@example.com>", subject: str = "Printer on floor 3 is jammed",
              body: str = "The printer shows error E5 since this morning.", message_id: str | None = None,
              in_reply_to: str | None = None, headers: dict[str, str] | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "helpdesk@desk.example"
    msg["Subject"] = subject
    msg["Message-ID"] = message_id or make_msgid(domain="example.com")
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = in_reply_to
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    return msg.as_bytes()


@pytest.fixture
def mail_factory():
    return make_mail


# --- SMTP ----------------------------------------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: Message


class RecordingHandler:
    """Accepts and records every message; ``reply`` set to e.g. "451 4.3.0 Try later" refuses them instead."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.reply: str | None = None
        self.refused = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        with self.lock:
            if self.reply is not None:
                self.refused += 1
                return self.reply
            raw = envelope.original_content or envelope.content
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                          email.message_from_bytes(raw)))
        return "250 OK"


@dataclass
class SmtpServer:
    port: int
    handler: RecordingHandler = field(default_factory=RecordingHandler)
    controller: Controller | None = None

    def start(self) -> None:
        """Start (again) on the same port; a stopped Controller cannot restart, so this makes a new one."""
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def message_ids(self) -> list[str]:
        return [r.message["Message-ID"] for r in self.received]

    def config(self, **overrides: object) -> SmtpConfig:
        values: dict[str, object] = {"host": "127.0.0.1", "port": self.port, "from_address": "helpdesk@desk.example",
                                     "from_name": "IT help desk", "timeout": 10.0}
        values.update(overrides)
        return SmtpConfig(**values)  # type: ignore[arg-type]


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer(port=free_port())
    server.start()
    yield server
    server.stop()


# --- IMAP (dovecot) ----------------------------------------------------------------------------------


def _dovecot_binary() -> str | None:
    found = shutil.which("dovecot") or ("/usr/sbin/dovecot" if os.path.exists("/usr/sbin/dovecot") else None)
    if found is None:
        reason = "dovecot is not installed (apt-get install dovecot-imapd)"
        if os.environ.get("HELPDESK_REQUIRE_IMAP") == "1":
            pytest.fail(f"HELPDESK_REQUIRE_IMAP=1 but {reason}")
        pytest.skip(reason)
    return found


@dataclass
class ImapServer:
    port: int
    user: str
    password: str
    base: Path

    def config(self, **overrides: object) -> ImapConfig:
        values: dict[str, object] = {"host": "127.0.0.1", "port": self.port, "tls": False, "user": self.user,
                                     "password": self.password, "timeout": 10.0}
        values.update(overrides)
        return ImapConfig(**values)  # type: ignore[arg-type]

    def connect(self) -> imaplib.IMAP4:
        conn = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        conn.login(self.user, self.password)
        return conn

    def append(self, raw: bytes, folder: str = "INBOX") -> None:
        conn = self.connect()
        try:
            typ, data = conn.append(folder, None, None, raw)
            assert typ == "OK", data
        finally:
            conn.logout()

    def uids(self, criterion: str = "ALL", folder: str = "INBOX") -> list[bytes]:
        conn = self.connect()
        try:
            typ, _ = conn.select(folder)
            assert typ == "OK"
            typ, data = conn.uid("SEARCH", None, criterion)
            assert typ == "OK"
            return data[0].split()
        finally:
            conn.logout()


def _write_dovecot_config(base: Path, port: int, users: dict[str, str]) -> Path:
    is_root = os.geteuid() == 0
    mail_user = pwd.getpwnam("nobody") if is_root else pwd.getpwuid(os.geteuid())
    (base / "run").mkdir(mode=0o755)
    (base / "state").mkdir(mode=0o755)
    mail = base / "mail"
    mail.mkdir(mode=0o755)
    if is_root:  # mail access as root is refused: mail is read and written as nobody
        os.chown(mail, mail_user.pw_uid, mail_user.pw_gid)
    passwd = base / "users"
    passwd.write_text("".join(f"{name}:{{PLAIN}}{password}::::::\n" for name, password in users.items()))
    passwd.chmod(0o644)
    lines = [
        "protocols = imap",
        "listen = 127.0.0.1",
        f"base_dir = {base}/run",
        f"state_dir = {base}/state",
        f"log_path = {base}/dovecot.log",
        "ssl = no",
        "disable_plaintext_auth = no",
        "auth_mechanisms = plain login",
        "auth_failure_delay = 0",
        f"mail_location = maildir:{mail}/%u",
        f"mail_uid = {mail_user.pw_uid}",
        f"mail_gid = {mail_user.pw_gid}",
        "passdb {",
        "  driver = passwd-file",
        f"  args = scheme=PLAIN username_format=%u {passwd}",
        "}",
        "userdb {",
        "  driver = static",
        f"  args = uid={mail_user.pw_uid} gid={mail_user.pw_gid} home={mail}/%u",
        "}",
        "service imap-login {",
        "  inet_listener imap {",
        "    address = 127.0.0.1",
        f"    port = {port}",
        "  }",
        "  inet_listener imaps {",
        "    port = 0",
        "  }",
        "}",
        "service anvil {",
        "  unix_listener anvil-auth-penalty {",
        "    mode = 0",
        "  }",
        "}",
    ]
    if not is_root:
        name = pwd.getpwuid(os.geteuid()).pw_name
        lines += [f"default_login_user = {name}", f"default_internal_user = {name}"]
    conf = base / "dovecot.conf"
    conf.write_text("\n".join(lines) + "\n")
    return conf


@dataclass
class Dovecot:
    port: int
    users: list[tuple[str, str]]
    base: Path
    next_user: int = 0


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """One dovecot for the test session; each test gets a mailbox user of its own (see imap_server)."""
    binary = _dovecot_binary()
    base = Path(tempfile.mkdtemp(prefix="hd-dovecot-"))
    base.chmod(0o755)  # pytest's 0700 tmp_path would make authentication fail
    port = free_port()
    users = {f"desk{n}": f"secret-{n}" for n in range(500)}
    conf = _write_dovecot_config(base, port, users)
    output = (base / "stdout.log").open("wb")
    proc = subprocess.Popen([binary, "-F", "-c", str(conf)], stdout=output, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log = (base / "dovecot.log").read_text() if (base / "dovecot.log").exists() else ""
                    pytest.fail(f"dovecot did not start (exit {proc.poll()}): {log[-2000:]}")
                time.sleep(0.02)
        yield Dovecot(port=port, users=list(users.items()), base=base)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        output.close()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def imap_server(dovecot: Dovecot) -> ImapServer:
    """A fresh, empty mailbox on the session's dovecot."""
    user, password = dovecot.users[dovecot.next_user]
    dovecot.next_user += 1
    return ImapServer(port=dovecot.port, user=user, password=password, base=dovecot.base)
