"""Mail settings: SMTP out, IMAP in, and what a new e-mail ticket gets by default.

Each value comes from the environment (``HELPDESK_SMTP_HOST`` ...) or from ``.streamlit/secrets.toml``
under ``[helpdesk]`` (``smtp_host = "..."``); the environment wins, as for every other setting. No host
configured means the route is off: the worker then leaves the outbox pending and skips IMAP.
Every setting is listed in docs/configuration.md (generated from lib/config.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from lib.config import load_settings


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
        st = load_settings(env)  # afresh at each worker cycle
        if not st.smtp_host:
            return None
        default_port = 465 if st.smtp_ssl else (587 if st.smtp_starttls else 25)
        return cls(
            host=st.smtp_host,
            port=st.smtp_port if st.smtp_port is not None else default_port,
            starttls=st.smtp_starttls,
            ssl=st.smtp_ssl,
            user=st.smtp_user,
            password=st.smtp_password,
            from_address=st.smtp_from or f"helpdesk@{st.mail_domain}",
            from_name=st.smtp_from_name,
            timeout=st.smtp_timeout,
            batch=st.smtp_batch,
            max_attempts=st.smtp_max_attempts,
            retry_base_seconds=st.smtp_retry_base_seconds,
            retry_max_seconds=st.smtp_retry_max_seconds,
            claim_seconds=st.smtp_claim_seconds,
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
        st = load_settings(env)  # afresh at each worker cycle
        if not st.imap_host:
            return None
        if not st.imap_user or st.imap_password is None:
            raise ValueError("imap_host is set but imap_user or imap_password is missing")
        return cls(
            host=st.imap_host,
            user=st.imap_user,
            password=st.imap_password,
            port=st.imap_port if st.imap_port is not None else (993 if st.imap_tls else 143),
            tls=st.imap_tls,
            starttls=st.imap_starttls,
            folder=st.imap_folder or "INBOX",
            processed_folder=st.imap_processed_folder,
            batch=st.imap_batch,
            timeout=st.imap_timeout,
        )


@dataclass(frozen=True)
class InboundDefaults:
    category: str = "Other"
    priority: str = "Medium"
    own_addresses: tuple[str, ...] = ()  # mail from these is a loop: quarantined, never answered
    spam_mail: str = "quarantine"  # spam, bulk and automatic mail that answers no ticket: "quarantine" or "ticket"

    @classmethod
    def from_settings(cls, env: dict[str, str] | None = None) -> InboundDefaults:
        st = load_settings(env)  # afresh at each worker cycle
        own = {a.lower() for a in st.email_own_addresses}
        if st.smtp_from:
            own.add(st.smtp_from.strip().lower())
        if st.imap_user and "@" in st.imap_user:
            own.add(st.imap_user.strip().lower())
        return cls(
            category=st.email_category or "Other",
            priority=st.email_priority or "Medium",
            own_addresses=tuple(sorted(own)),
            spam_mail=st.spam_mail,
        )


def worker_interval(env: dict[str, str] | None = None) -> float:
    return load_settings(env).worker_interval

