"""Every setting of the help desk, in one typed object.

Each setting has an environment variable ``HELPDESK_<NAME>`` and a key ``<name>`` (lower case) under
``[helpdesk]`` in ``.streamlit/secrets.toml``. One rule for every key: the environment first, then
secrets.toml, then the default. Values are checked when they are read, and a bad one is refused with a
message naming the setting and the form it expects. ``docs/configuration.md`` is generated from
:data:`Settings` (``python -m lib.config``; a test keeps it in step).
Nothing here imports streamlit or another lib module, so the CLI, the worker and the tests read the same values.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import secrets
import sys
import tomllib
import types
import typing
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB_PATH = ROOT / "data" / "helpdesk.sqlite3"
SECRETS_FILE = ROOT / ".streamlit" / "secrets.toml"
# A cookie key generated on first run lives here: outside git (see .gitignore), never in code.
GENERATED_SECRETS_FILE = ROOT / "data" / "generated_secrets.toml"
CONFIG_DOC = ROOT / "docs" / "configuration.md"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _read_toml(path: Path) -> dict:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except (FileNotFoundError, tomllib.TOMLDecodeError):
        return {}
    section = data.get("helpdesk", {})
    return section if isinstance(section, dict) else {}


def _s(default: Any, group: str, doc: str, shown: str | None = None) -> Any:
    """A setting: its default, its group in the documentation, what it means (and the default as shown)."""
    meta = {"group": group, "doc": doc, "shown": shown}
    if isinstance(default, dict | list):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


CORE, LOGIN, MAIL_OUT, MAIL_IN, ALERTS, WORKER = (
    "Core", "Login", "Mail out (SMTP)", "Mail in (IMAP)", "Monitoring alerts", "Worker and database")


@dataclass(frozen=True)
class Settings:
    """All settings. Build it with :func:`load_settings`; read it with :func:`get_settings`."""

    database_url: str = _s(f"sqlite:///{DEFAULT_DB_PATH}", CORE,
                           "the database, e.g. `postgresql+psycopg://user@host/db`",
                           shown="`sqlite:///data/helpdesk.sqlite3`")
    public_url: str | None = _s(None, CORE,
                                "the address people open the app at, e.g. `https://desk.example.com`; the links in "
                                "requesters' mail (confirm the fix) are built on it. Unset: the outbox is held (nothing "
                                "is sent, nothing is lost) and leads see a banner")
    timezone: str = _s("Europe/London", CORE, "times shown, business calendar, days and weeks of the metrics")
    ticket_prefix: str = _s("HD", CORE, "ticket numbers read `<prefix>-000123` everywhere: pages, mail, exports")
    desk_signature: str = _s("Your IT help desk", CORE, "how mail to requesters is signed (`{desk}` in templates)")
    queue_refresh_seconds: int = _s(30, CORE, "live refresh of the queue (0 turns it off)")
    notifications_refresh_seconds: int = _s(10, CORE, "the sidebar's count of unread notifications refreshes this "
                                                      "often on every page, without a reload (0 turns it off)")
    ticket_live_seconds: float = _s(3.0, CORE, "an open ticket page checks for others' changes and who else is on "
                                               "it this often (0 turns it off; docs/workspace.md)")
    presence_stale_seconds: int = _s(20, CORE, "a ticket page not heard from for this long no longer shows its "
                                               "person as viewing or writing (docs/workspace.md)")
    reopen_window_days: int = _s(14, CORE, "a closed ticket can be reopened this long; later a new linked ticket")
    confirmation_wait_days: int = _s(5, CORE, "then the requester is reminded once, and \"no reply\" may close it")
    repeat_window_days: int = _s(30, CORE, "repeat issues are looked for over this many days (a lead can change "
                                           "it on Knowledge base; that choice wins)")
    attachment_max_bytes: int = _s(10 * 1024 * 1024, CORE, "per attachment; larger ones are refused",
                                   shown="`10485760` (10 MiB)")
    attachment_dir: str | None = _s(None, CORE, "a shared folder for attachment bytes instead of the database")

    cookie_key: str | None = _s(None, LOGIN, "signs the session cookie (≥ 32 bytes); unset: generated once into "
                                             "`data/generated_secrets.toml`")
    server_secret: str | None = _s(None, LOGIN, "signs the requesters' confirmation links; unset: generated once, "
                                                "same file")
    cookie_name: str = _s("helpdesk_session", LOGIN, "name of the session cookie (HttpOnly, SameSite=Strict)")
    session_idle_minutes: int = _s(480, LOGIN, "a session unused this long ends (sign in again)")
    session_lifetime_hours: int = _s(168, LOGIN, "a session ends this long after sign-in, however busy")
    login_max_failures: int = _s(5, LOGIN, "wrong passwords in a row before the account is locked")
    login_lockout_minutes: int = _s(15, LOGIN, "how long the lock lasts")

    smtp_host: str | None = _s(None, MAIL_OUT, "SMTP server for outgoing mail; unset: mail waits in the outbox")
    smtp_port: int | None = _s(None, MAIL_OUT, "port", shown="25; 587 with STARTTLS; 465 with `smtp_ssl`")
    smtp_starttls: bool = _s(False, MAIL_OUT, "upgrade the connection with STARTTLS")
    smtp_ssl: bool = _s(False, MAIL_OUT, "implicit TLS from the first byte (port 465)")
    smtp_user: str | None = _s(None, MAIL_OUT, "SMTP AUTH user, when the server needs it")
    smtp_password: str | None = _s(None, MAIL_OUT, "SMTP AUTH password")
    smtp_from: str | None = _s(None, MAIL_OUT, "envelope sender and From address", shown="`helpdesk@<mail_domain>`")
    smtp_from_name: str | None = _s(None, MAIL_OUT, "display name in From, e.g. `IT help desk`")
    smtp_timeout: float = _s(30.0, MAIL_OUT, "seconds per SMTP operation")
    smtp_batch: int = _s(100, MAIL_OUT, "mails a worker claims per cycle")
    smtp_max_attempts: int = _s(10, MAIL_OUT, "temporary refusals (4xx) of one mail before it is marked failed")
    smtp_retry_base_seconds: float = _s(60.0, MAIL_OUT, "first retry delay; doubled per attempt")
    smtp_retry_max_seconds: float = _s(3600.0, MAIL_OUT, "the delay never grows beyond this")
    smtp_claim_seconds: float = _s(300.0, MAIL_OUT, "a crashed worker's claim on a mail expires after this")
    mail_domain: str = _s("helpdesk.invalid", MAIL_OUT,
                          "right-hand side of our Message-IDs (`<hd-123-…@domain>`); set it to your domain")

    imap_host: str | None = _s(None, MAIL_IN, "mailbox to poll; unset: no mail intake by IMAP")
    imap_port: int | None = _s(None, MAIL_IN, "port", shown="993 with TLS, else 143")
    imap_tls: bool = _s(True, MAIL_IN, "implicit TLS (IMAPS); `no` for plain IMAP")
    imap_starttls: bool = _s(False, MAIL_IN, "with `imap_tls = no`: upgrade with STARTTLS")
    imap_user: str | None = _s(None, MAIL_IN, "required with `imap_host`")
    imap_password: str | None = _s(None, MAIL_IN, "required with `imap_host`")
    imap_folder: str = _s("INBOX", MAIL_IN, "folder to read")
    imap_processed_folder: str | None = _s(None, MAIL_IN, "move processed mail there (created if missing); unset: "
                                                          "flag it `\\Seen` and leave it")
    imap_batch: int = _s(200, MAIL_IN, "messages per poll")
    imap_timeout: float = _s(60.0, MAIL_IN, "seconds per IMAP operation")
    email_category: str = _s("Other", MAIL_IN, "category of tickets opened by mail")
    email_priority: str = _s("Medium", MAIL_IN, "priority of tickets opened by mail")
    email_own_addresses: tuple[str, ...] = _s((), MAIL_IN, "comma-separated addresses of the desk itself, besides "
                                                           "`smtp_from` and `imap_user` (mail from them is a loop)",
                                              shown="—")
    spam_mail: str = _s("quarantine", MAIL_IN, "spam (`X-Spam-Flag`, `X-Spam-Status: Yes`), bulk or list mail and "
                                               "automatic mail that answers no ticket: `quarantine` keeps it for the "
                                               "lead, `ticket` opens a ticket; either way nothing is mailed back")
    mail_raw_retention_days: int = _s(180, MAIL_IN, "the raw message of every ingested mail is kept this many days "
                                                    "(0: forever); the worker removes older ones")

    webhook_timeout: float = _s(10.0, MAIL_OUT, "seconds the outbound webhook (set by a lead on Admin) may take to "
                                                "answer a POST")
    webhook_max_attempts: int = _s(8, MAIL_OUT, "tries of one webhook delivery (timeouts, 5xx, 408, 425, 429) before "
                                                "it is marked failed")
    webhook_retry_base_seconds: float = _s(30.0, MAIL_OUT, "first webhook retry delay; doubled per attempt")
    webhook_retry_max_seconds: float = _s(3600.0, MAIL_OUT, "the webhook retry delay never grows beyond this")
    staff_mail_default: str = _s("digest", MAIL_OUT, "how staff hear of their notifications by mail until they "
                                                     "choose on My account: `each` (a mail per notification), "
                                                     "`digest` (one mail a day of the unread ones) or `none`")
    staff_digest_hour: int = _s(8, MAIL_OUT, "the hour (0-23, desk time: `timezone`) from which the worker sends "
                                             "each person's daily digest of unread notifications")

    alert_token: str | None = _s(None, ALERTS, "the webhook's bearer token; unset: the webhook is off")
    alert_severity_map: dict[str, str] = _s({}, ALERTS, "entries merged over the built-in table (docs/alerts.md): "
                                                        "`warning=high, sev1=critical`, JSON, or a TOML table",
                                            shown="the table in docs/alerts.md")
    alert_default_priority: str = _s("high", ALERTS, "low, medium, high or critical")
    alert_severity_labels: tuple[str, ...] = _s(("severity", "priority", "level"), ALERTS,
                                                "labels read for the severity, in order (comma-separated)")
    alert_category_labels: tuple[str, ...] = _s(("category", "team", "service"), ALERTS,
                                                "labels read for the category, in order (comma-separated)")
    alert_default_category: str = _s("Networking", ALERTS, "must be an active category; else Other is used")
    alert_auto_resolve: bool = _s(False, ALERTS, "a recovered alert resolves its ticket (docs/alerts.md)")

    worker: bool = _s(True, WORKER, "run the background worker inside each app server; `off` to run it as its own "
                                    "process (`python -m lib.cli worker`)", shown="`on`")
    worker_interval: float = _s(60.0, WORKER, "seconds between worker cycles")
    import_inline_max_rows: int = _s(5000, WORKER, "an import (or dry run) started on the Admin page with more rows "
                                                   "than this runs in the background worker, with a progress bar; "
                                                   "smaller ones run at once in the page (0: always the worker)")
    import_worker_rows_per_cycle: int = _s(50_000, WORKER, "rows of an Admin import the worker writes per cycle "
                                                           "before it lets its other steps (mail, SLA) run; the "
                                                           "import resumes from its checkpoint in the next cycle")
    slow_page_ms: float = _s(1000.0, WORKER, "a page run on the app server that takes longer than this many ms is "
                                            "logged with its page, its time and the statements it sent to the "
                                            "database (stderr, logger `helpdesk.pages`); 0 logs every run")
    db_pool_size: int = _s(10, WORKER, "PostgreSQL: connections each process keeps open")
    db_max_overflow: int = _s(20, WORKER, "PostgreSQL: extra connections a process may open at a peak")
    db_behind_pgbouncer: bool = _s(False, WORKER, "PostgreSQL reached through PgBouncer in transaction pooling: "
                                                  "no prepared statements, no `options` startup parameter "
                                                  "(docs/deploy.md)")

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


_HINTS = typing.get_type_hints(Settings)
FIELDS: tuple[dataclasses.Field, ...] = tuple(dataclasses.fields(Settings))


def env_name(name: str) -> str:
    return f"HELPDESK_{name.upper()}"


def _form(hint: Any) -> str:
    """What a setting of this type looks like, for error messages and the documentation."""
    base = _base(hint)
    return {int: "a whole number", float: "a number", bool: "yes or no", str: "text",
            tuple: "a comma-separated list", dict: "`key=value` pairs, a JSON object or a TOML table"}[base]


def _base(hint: Any) -> type:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return typing.get_origin(hint) or hint


def _optional(hint: Any) -> bool:
    return type(None) in typing.get_args(hint)


def _parse(name: str, hint: Any, value: Any) -> Any:
    """One value from the environment (text) or secrets.toml (TOML types), as the setting's type."""
    base = _base(hint)
    where = f"setting {name} ({env_name(name)})"
    try:
        if base is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE or text in _FALSE:
                return text in _TRUE
            raise ValueError
        if base is int:
            if isinstance(value, bool):
                raise ValueError
            return int(value)
        if base is float:
            return float(value)
        if base is tuple:
            items = value.split(",") if isinstance(value, str) else value
            if not isinstance(items, list | tuple):
                raise ValueError
            return tuple(str(item).strip() for item in items if str(item).strip())
        if base is dict:
            if isinstance(value, str):
                text = value.strip()
                if text.startswith("{"):
                    value = json.loads(text)
                else:
                    pairs = [part.split("=", 1) for part in text.split(",") if part.strip()]
                    if any(len(pair) != 2 for pair in pairs):
                        raise ValueError
                    value = {k.strip(): v.strip() for k, v in pairs}
            if not isinstance(value, dict):
                raise ValueError
            return {str(k).strip(): str(v).strip() for k, v in value.items()}
        text = str(value).strip()
        if not text and not _optional(hint):
            raise ValueError
        return text or None
    except (TypeError, ValueError, json.JSONDecodeError):
        raise ValueError(f"{where}: {value!r} is not {_form(hint)}") from None


def _check(s: Settings) -> None:
    """Rules beyond the type, checked at start-up with the setting named."""
    try:
        ZoneInfo(s.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"setting timezone ({env_name('timezone')}): {s.timezone!r} is not a time zone such as "
                         "Europe/London") from None
    if not s.ticket_prefix.replace("_", "").isalnum():
        raise ValueError(f"setting ticket_prefix ({env_name('ticket_prefix')}): {s.ticket_prefix!r} must be letters "
                         "and digits, e.g. IT")
    if s.public_url is not None and not s.public_url.startswith(("http://", "https://")):
        raise ValueError(f"setting public_url ({env_name('public_url')}): {s.public_url!r} is not an address such "
                         "as https://desk.example.com")
    for name in ("queue_refresh_seconds", "reopen_window_days", "confirmation_wait_days", "attachment_max_bytes",
                 "ticket_live_seconds", "presence_stale_seconds",
                 "login_max_failures", "login_lockout_minutes", "session_idle_minutes", "smtp_batch", "smtp_max_attempts", "imap_batch",
                 "db_pool_size", "db_max_overflow", "repeat_window_days", "session_lifetime_hours",
                 "import_inline_max_rows", "import_worker_rows_per_cycle"):
        if getattr(s, name) < 0:
            raise ValueError(f"setting {name} ({env_name(name)}): must not be negative")
    for name in ("webhook_timeout", "webhook_max_attempts", "webhook_retry_base_seconds", "webhook_retry_max_seconds"):
        if getattr(s, name) <= 0:
            raise ValueError(f"setting {name} ({env_name(name)}): must be more than 0")
    if s.spam_mail not in ("ticket", "quarantine"):
        raise ValueError(f"setting spam_mail ({env_name('spam_mail')}): {s.spam_mail!r} must be ticket or quarantine")
    if s.staff_mail_default not in ("each", "digest", "none"):
        raise ValueError(f"setting staff_mail_default ({env_name('staff_mail_default')}): "
                         f"{s.staff_mail_default!r} must be each, digest or none")
    if not 0 <= s.staff_digest_hour <= 23:
        raise ValueError(f"setting staff_digest_hour ({env_name('staff_digest_hour')}): must be an hour from 0 to 23")
    if s.mail_raw_retention_days < 0:
        raise ValueError(f"setting mail_raw_retention_days ({env_name('mail_raw_retention_days')}): must not be "
                         "negative (0 keeps raw mail forever)")


def load_settings(env: dict[str, str] | None = None, toml: dict | None = None) -> Settings:
    """Read every setting now (no cache): the environment first, then secrets.toml, then the default.

    An empty environment variable counts as unset. Raises ValueError naming the setting when a value is bad.
    """
    env = dict(os.environ) if env is None else env
    toml = _read_toml(SECRETS_FILE) if toml is None else toml
    values: dict[str, Any] = {}
    for f in FIELDS:
        raw = env.get(env_name(f.name))
        if raw in (None, ""):
            raw = toml.get(f.name)
        if raw is not None:
            values[f.name] = _parse(f.name, _HINTS[f.name], raw)
    settings = Settings(**values)
    _check(settings)
    return settings


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process (read once; tests call ``get_settings.cache_clear()`` after a change)."""
    return load_settings()


def get_secret(name: str, *, generate: bool = False, nbytes: int = 48) -> str | None:
    """A secret setting (``cookie_key``, ``server_secret``, ``alert_token``), or one generated once.

    With ``generate=True`` a missing secret is created once, stored in ``data/generated_secrets.toml``
    (git-ignored, mode 0600) and returned the same ever after. Read at each call, so a changed environment
    takes effect at once.
    """
    value = getattr(load_settings(), name) if name in _HINTS else os.environ.get(env_name(name))
    value = value or _read_toml(GENERATED_SECRETS_FILE).get(name)
    if value or not generate:
        return str(value) if value else None
    GENERATED_SECRETS_FILE.parent.mkdir(parents=True, exist_ok=True)
    lock_path = GENERATED_SECRETS_FILE.with_suffix(".lock")
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two app servers starting at once agree on one key
        existing = _read_toml(GENERATED_SECRETS_FILE)
        if not existing.get(name):
            existing[name] = secrets.token_urlsafe(nbytes)
            lines = ["[helpdesk]"] + [f'{k} = "{v}"' for k, v in existing.items()]
            tmp = GENERATED_SECRETS_FILE.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write("\n".join(lines) + "\n")
            os.replace(tmp, GENERATED_SECRETS_FILE)
        return str(existing[name])


# --- the documentation -------------------------------------------------------------------------------------


def _shown_default(f: dataclasses.Field) -> str:
    if f.metadata.get("shown"):
        return str(f.metadata["shown"])
    default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    if default is None or default == () or default == {}:
        return "—"
    if isinstance(default, bool):
        return "`yes`" if default else "`no`"
    if isinstance(default, tuple):
        return "`" + ", ".join(default) + "`"
    return f"`{default}`"


def markdown() -> str:
    """docs/configuration.md: every setting, one table per group."""
    out = ["# Configuration", "",
           "<!-- generated by `python -m lib.config` from lib/config.py: edit there, then regenerate -->", "",
           "Every setting is an environment variable `HELPDESK_<NAME>` or a key `<name>` under `[helpdesk]` in",
           "`.streamlit/secrets.toml` (git-ignored). One rule for every key: the environment first, then",
           "secrets.toml, then the default; an empty variable counts as unset. A bad value stops the app, the CLI",
           "and the worker at start with a message naming the setting and the form it expects.",
           "Yes/no settings take `yes`/`no`, `true`/`false`, `on`/`off` or `1`/`0`; lists are comma-separated.",
           ""]
    group = None
    for f in FIELDS:
        if f.metadata["group"] != group:
            group = f.metadata["group"]
            out += ["", f"## {group}", "", "| setting | default | meaning |", "| --- | --- | --- |"]
        out.append(f"| `{env_name(f.name)}` / `{f.name}` | {_shown_default(f)} | {f.metadata['doc']} |")
    out += ["", "Several app servers on one PostgreSQL: give them the same `HELPDESK_DATABASE_URL`, "
            "`HELPDESK_COOKIE_KEY` and `HELPDESK_SERVER_SECRET`. Each process opens at most "
            "`db_pool_size + db_max_overflow` connections (one engine per process: pages, HTTP routes and worker "
            "share it), so keep `servers × (db_pool_size + db_max_overflow) + separate workers × "
            "(db_pool_size + db_max_overflow)` below PostgreSQL's `max_connections` minus its reserved ones "
            "(docs/deploy.md).", ""]
    return "\n".join(out)


if __name__ == "__main__":  # python -m lib.config: regenerate docs/configuration.md
    CONFIG_DOC.write_text(markdown(), encoding="utf-8")
    sys.stdout.write(f"wrote {CONFIG_DOC.relative_to(ROOT)}\n")
