"""Poll an IMAP mailbox: each unseen message goes through ``mail_in.ingest_message`` in its own transaction.

A message is flagged ``\\Seen`` (or moved to the processed folder, when one is configured) only after its
transaction committed. If flagging fails afterwards (the connection dropped), the next poll fetches it
again and the recorded Message-ID makes it a harmless duplicate, which is then flagged. A message whose
transaction fails stays unseen for the next poll; the loop goes on with the others. Fetching uses
``BODY.PEEK[]`` so reading alone never marks a message seen.
"""

from __future__ import annotations

import imaplib
import logging
import ssl
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from lib.db import transaction
from lib.mail.inbound import IngestResult, ingest_message
from lib.mail.settings import ImapConfig, InboundDefaults

log = logging.getLogger("helpdesk.imap")


class ImapUnavailable(Exception):
    """The mailbox cannot be reached, logged in to or selected."""


@dataclass
class PollReport:
    fetched: int = 0
    results: list[IngestResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # messages left unseen for the next poll
    unavailable: str | None = None

    def __str__(self) -> str:
        kinds: dict[str, int] = {}
        for r in self.results:
            kinds[r.kind] = kinds.get(r.kind, 0) + 1
        text = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in kinds.items()) or "nothing new"
        if self.errors:
            text += f", {len(self.errors)} left for the next poll"
        return text + (f" (mailbox unavailable: {self.unavailable})" if self.unavailable else "")


def quote_mailbox(name: str) -> str:
    """A mailbox name as an IMAP quoted string (names may hold spaces)."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def connect(config: ImapConfig) -> imaplib.IMAP4:
    try:
        if config.tls:
            conn: imaplib.IMAP4 = imaplib.IMAP4_SSL(config.host, config.port, ssl_context=ssl.create_default_context(),
                                                    timeout=config.timeout)
        else:
            conn = imaplib.IMAP4(config.host, config.port, timeout=config.timeout)
            if config.starttls:
                conn.starttls(ssl_context=ssl.create_default_context())
        conn.login(config.user, config.password)
        return conn
    except (OSError, imaplib.IMAP4.error) as exc:
        raise ImapUnavailable(f"{config.host}:{config.port}: {type(exc).__name__}: {exc}") from exc


def _check(typ: str, data: object, what: str) -> None:
    if typ != "OK":
        raise imaplib.IMAP4.error(f"{what} failed: {typ} {data!r}")


def _raw_message(data: list) -> bytes | None:
    for item in data or []:
        if isinstance(item, tuple) and len(item) >= 2 and isinstance(item[1], bytes | bytearray):
            return bytes(item[1])
    return None


def _mark_processed(conn: imaplib.IMAP4, uid: bytes, config: ImapConfig, can_move: bool) -> None:
    typ, data = conn.uid("STORE", uid, "+FLAGS.SILENT", r"(\Seen)")  # type: ignore[arg-type]  # imaplib takes bytes; typeshed says str
    _check(typ, data, "STORE \\Seen")
    if not config.processed_folder:
        return
    target = quote_mailbox(config.processed_folder)
    if can_move:
        typ, data = conn.uid("MOVE", uid, target)  # type: ignore[arg-type]  # imaplib takes bytes; typeshed says str
        _check(typ, data, "MOVE")
        return
    typ, data = conn.uid("COPY", uid, target)  # type: ignore[arg-type]  # imaplib takes bytes; typeshed says str
    _check(typ, data, "COPY")
    typ, data = conn.uid("STORE", uid, "+FLAGS.SILENT", r"(\Deleted)")  # type: ignore[arg-type]  # imaplib takes bytes; typeshed says str
    _check(typ, data, "STORE \\Deleted")
    conn.expunge()


def poll(engine: Engine, config: ImapConfig | None = None, *, now: datetime | None = None) -> PollReport:
    """Ingest the unseen messages of the configured folder (at most ``config.batch`` per call)."""
    config = config or ImapConfig.from_settings()
    report = PollReport()
    if config is None:
        report.unavailable = "no IMAP mailbox configured (imap_host)"
        return report
    defaults = InboundDefaults.from_settings()
    try:
        conn = connect(config)
    except ImapUnavailable as exc:
        report.unavailable = str(exc)
        log.warning("IMAP: %s", exc)
        return report
    try:
        try:
            typ, data = conn.capability()  # after login: servers announce more than in the greeting
            can_move = typ == "OK" and b"MOVE" in (data[0] or b"").upper().split()
            if config.processed_folder:
                conn.create(quote_mailbox(config.processed_folder))  # "already exists" is fine
            typ, data = conn.select(quote_mailbox(config.folder))
            _check(typ, data, f"SELECT {config.folder}")
            typ, data = conn.uid("SEARCH", None, "UNSEEN")  # type: ignore[arg-type]  # None (no charset) is skipped; typeshed says str
            _check(typ, data, "SEARCH UNSEEN")
        except (OSError, imaplib.IMAP4.error) as exc:
            report.unavailable = f"{type(exc).__name__}: {exc}"
            log.warning("IMAP: %s", report.unavailable)
            return report
        uids = (data[0] or b"").split()[: config.batch]
        for uid in uids:
            try:
                typ, data = conn.uid("FETCH", uid, "(BODY.PEEK[])")  # type: ignore[arg-type]  # imaplib takes bytes; typeshed says str
                _check(typ, data, "FETCH")
                raw = _raw_message(data)
                if raw is None:  # expunged by someone else meanwhile
                    continue
                report.fetched += 1
                with transaction(engine) as session:
                    result = ingest_message(session, raw, now=now, defaults=defaults)
                report.results.append(result)
                _mark_processed(conn, uid, config, can_move)
            except (imaplib.IMAP4.abort, OSError) as exc:  # the connection is gone: the rest waits for the next poll
                report.unavailable = f"connection lost: {exc}"
                log.warning("IMAP: %s", report.unavailable)
                break
            except (imaplib.IMAP4.error, SQLAlchemyError) as exc:
                report.errors.append(f"UID {uid.decode()}: {type(exc).__name__}: {exc}".splitlines()[0])
                log.warning("IMAP message UID %s left for the next poll: %s", uid.decode(), exc)
        return report
    finally:
        try:
            conn.logout()
        except (OSError, imaplib.IMAP4.error):
            pass
