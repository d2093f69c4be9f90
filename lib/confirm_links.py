"""Issuing the signed, expiring, single-use confirmation links mailed to requesters (lib.confirm answers them).

A link carries ``<token id>.<round>.<nonce>.<signature>``; the signature is an HMAC-SHA256 of the token id,
nonce, ticket, purpose and round with the server secret. The round is the ticket's ``reopen_count`` when the
link was mailed. Kept apart from lib.confirm so that the mail written at a resolution (lib.notify) can carry a
link without depending on the ticket services the answer calls.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from lib import clock
from lib.config import get_secret
from lib.models import PUBLIC_URL_MARK, ActionToken, Ticket

PURPOSE = "confirm"
TTL = timedelta(days=14)


def _secret() -> bytes:
    return (get_secret("server_secret", generate=True) or "").encode()


def sign(token_id: int, nonce: str, ticket_id: int, purpose: str, round_: int | None) -> str:
    """``round_`` None: the form of links mailed before rounds were signed (three parts)."""
    msg = f"{token_id}.{nonce}.{ticket_id}.{purpose}" + ("" if round_ is None else f".{round_}")
    return hmac.new(_secret(), msg.encode(), hashlib.sha256).hexdigest()[:32]


def issue(session: Session, ticket: Ticket, *, now: datetime | None = None, ttl: timedelta = TTL) -> str:
    """A new link for the ticket's current resolution round."""
    now = clock.utc(now)
    row = ActionToken(ticket_id=ticket.id, purpose=PURPOSE, nonce=secrets.token_urlsafe(16),
                      expires_at=now + ttl, created_at=now)
    session.add(row)
    session.flush()
    round_ = ticket.reopen_count or 0
    return f"{row.id}.{round_}.{row.nonce}.{sign(row.id, row.nonce, ticket.id, PURPOSE, round_)}"


def links_text(session: Session, ticket: Ticket) -> str:
    token = issue(session, ticket)
    return (f"Confirm or tell us it is still broken here (the link works once, for {TTL.days} days):\n"
            f"{PUBLIC_URL_MARK}/confirm?t={token}")
