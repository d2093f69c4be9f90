"""The raw message of every ingested mail, as it arrived (table ``mail_raw``).

Inbound mail that became a ticket, a comment or an internal note keeps its raw bytes here, linked to the
ticket; quarantined mail keeps its own copy in ``mail_quarantine``. So whatever the parser made of a
message (a cut quoted history, an HTML body turned into text, a body it could not read), staff can open the
original: the page ``/raw_mail?id=N`` (pages/raw_mail.py) shows it as inert plain text, never rendered.

Rows older than ``mail_raw_retention_days`` (0: kept forever) are removed by the worker (:func:`prune`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from lib.config import get_settings
from lib.db import transaction
from lib.models import RawMail
from lib.ticket_core import now_utc

PAGE_PATH = "raw_mail"
#: Characters shown on the page; the whole message is always offered as a download.
SHOWN_CHARS = 200_000


def raw_url(raw_id: int) -> str:
    """The page showing one raw message (a path on this site)."""
    return f"/{PAGE_PATH}?id={raw_id}"


@dataclass(frozen=True)
class RawMailInfo:
    id: int
    message_id: str
    ticket_id: int | None
    received_at: datetime
    size: int


def keep(session: Session, raw: bytes, *, message_id: str, now: datetime, ticket_id: int | None = None) -> RawMail:
    """Store one raw message (flushed, so its id is known); the caller's transaction commits it."""
    row = RawMail(message_id=message_id[:255], ticket_id=ticket_id, received_at=now, size=len(raw), raw=raw)
    session.add(row)
    session.flush()
    return row


def get(session: Session, raw_id: int) -> RawMail | None:
    return session.get(RawMail, raw_id)


def list_for_ticket(session: Session, ticket_id: int) -> list[RawMailInfo]:
    """The ticket's raw messages, oldest first (without their bytes)."""
    rows = session.execute(
        select(RawMail.id, RawMail.message_id, RawMail.ticket_id, RawMail.received_at, RawMail.size)
        .where(RawMail.ticket_id == ticket_id).order_by(RawMail.received_at, RawMail.id))
    return [RawMailInfo(*row) for row in rows]


def as_text(raw: bytes) -> str:
    """The message as text to show: UTF-8 where it is, undecodable bytes written as ``\\xNN``."""
    return raw.decode("utf-8", "backslashreplace").replace("\r\n", "\n")


def prune(engine: Engine, *, now: datetime | None = None, days: int | None = None) -> int:
    """Remove raw messages received more than ``days`` (default ``mail_raw_retention_days``) ago; 0 keeps all.

    Returns how many were removed. The tickets, comments and notes made from them stay."""
    days = get_settings().mail_raw_retention_days if days is None else days
    if days <= 0:
        return 0
    cutoff = now_utc(now) - timedelta(days=days)
    with transaction(engine) as session:
        result = session.execute(delete(RawMail).where(RawMail.received_at < cutoff))
        return int(getattr(result, "rowcount", 0) or 0)
