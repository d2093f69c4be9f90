"""Mail settings: SMTP out, IMAP in, and what a new e-mail ticket gets by default.

Each value comes from the environment (``HELPDESK_SMTP_HOST`` ...) or from ``.streamlit/secrets.toml``
under ``[helpdesk]`` (``smtp_host = "..."``); the environment wins, as for every other setting. No host
configured means the route is off: the worker then leaves the outbox pending and skips IMAP.
See docs/email.md for the full list.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from lib.config import get_settings
from lib.notify import mail_domain

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _raw(name: str, env: dict[str, str] | None = None) -> object:
    env = os.environ if env is None else env
    value = env.get(f"HELPDESK_{name.upper()}")
    if value not in (None, ""):
        return value
    return get_settings().extra.get(name)


def _str(name: str, default: str | None = None, env: dict[str, str] | None = None) -> str | None:
    value = _raw(name, env)
    return default if value is None or str(value) == "" else str(value)


def _int(name: str, default: int, env: dict[str, str] | None = None) -> int:
    value = _raw(name, env)
    if value is None or value == "":
        return default
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise ValueError(f"setting {name} (HELPDESK_{name.upper()}): {value!r} is not a whole number") from None


def _float(name: str, default: float, env: dict[str, str] | None = None) -> float:
    value = _raw(name, env)
    if value is None or value == "":
        return default
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"setting {name} (HELPDESK_{name.upper()}): {value!r} is not a number") from None


def _bool(name: str, default: bool, env: dict[str, str] | None = None) -> bool:
    value = _raw(name, env)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"setting {name} (HELPDESK_{name.upper()}): {value!r} is not yes/no")


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int = 25
    starttls: bool = False
    ssl: bool = False  # implicit TLS (usually port 465)
    user: str | None = None
    password: str | None = None
    from_address: str = "helpdesk@helpdesk.invalid"
    from_name: str | None = None
    timeout: float = 30.0
    batch: int = 100  # mails claimed per cycle
    max_attempts: int = 10  # per-message temporary refusals (4xx) before the mail is marked failed
    retry_base_seconds: float = 60.0  # first retry delay; doubled per attempt
    retry_max_seconds: float = 3600.0  # the delay never grows beyond this
    claim_seconds: float = 300.0  # a claimed row is another worker's after this (crashed worker)

    @classmethod
    def from_settings(cls, env: dict[str, str] | None = None) -> SmtpConfig | None:
        """The configured SMTP server, or None when no ``smtp_host`` is set."""
        host = _str("smtp_host", env=env)
        if not host:
            return None
        starttls = _bool("smtp_starttls", False, env)
        ssl = _bool("smtp_ssl", False, env)
        default_port = 465 if ssl else (587 if starttls else 25)
        return cls(
            host=host,
            port=_int("smtp_port", default_port, env),
            starttls=starttls,
            ssl=ssl,
            user=_str("smtp_user", env=env),
            password=_str("smtp_password", env=env),
            from_address=_str("smtp_from", f"helpdesk@{mail_domain()}", env) or "",
            from_name=_str("smtp_from_name", env=env),
            timeout=_float("smtp_timeout", 30.0, env),
            batch=_int("smtp_batch", 100, env),
            max_attempts=_int("smtp_max_attempts", 10, env),
            retry_base_seconds=_float("smtp_retry_base_seconds", 60.0, env),
            retry_max_seconds=_float("smtp_retry_max_seconds", 3600.0, env),
            claim_seconds=_float("smtp_claim_seconds", 300.0, env),
        )


@dataclass(frozen=True)
class ImapConfig:
    host: str
    user: str
    password: str
    port: int = 993
    tls: bool = True  # implicit TLS (IMAPS); False: plain IMAP, optionally upgraded with starttls
    starttls: bool = False
    folder: str = "INBOX"
    processed_folder: str | None = None  # None: flag processed messages \Seen and leave them
    batch: int = 200  # messages per poll
    timeout: float = 60.0

    @classmethod
    def from_settings(cls, env: dict[str, str] | None = None) -> ImapConfig | None:
        """The configured mailbox, or None when no ``imap_host`` is set."""
        host = _str("imap_host", env=env)
        if not host:
            return None
        tls = _bool("imap_tls", True, env)
        user, password = _str("imap_user", env=env), _str("imap_password", env=env)
        if not user or password is None:
            raise ValueError("imap_host is set but imap_user or imap_password is missing")
        return cls(
            host=host,
            user=user,
            password=password,
            port=_int("imap_port", 993 if tls else 143, env),
            tls=tls,
            starttls=_bool("imap_starttls", False, env),
            folder=_str("imap_folder", "INBOX", env) or "INBOX",
            processed_folder=_str("imap_processed_folder", env=env),
            batch=_int("imap_batch", 200, env),
            timeout=_float("imap_timeout", 60.0, env),
        )


@dataclass(frozen=True)
class InboundDefaults:
    category: str = "Other"
    priority: str = "Medium"
    own_addresses: tuple[str, ...] = ()  # mail from these is a loop: quarantined, never answered

    @classmethod
    def from_settings(cls, env: dict[str, str] | None = None) -> InboundDefaults:
        own = {a.strip().lower() for a in (_str("email_own_addresses", "", env) or "").split(",") if a.strip()}
        smtp_from = _str("smtp_from", env=env)
        if smtp_from:
            own.add(smtp_from.strip().lower())
        imap_user = _str("imap_user", env=env)
        if imap_user and "@" in imap_user:
            own.add(imap_user.strip().lower())
        return cls(
            category=_str("email_category", "Other", env) or "Other",
            priority=_str("email_priority", "Medium", env) or "Medium",
            own_addresses=tuple(sorted(own)),
        )


def worker_interval(env: dict[str, str] | None = None) -> float:
    return _float("worker_interval", 60.0, env)

