"""Signed, expiring, single-use confirmation links for requesters (who never log in).

A link carries ``<token id>.<nonce>.<signature>``; the signature is an HMAC-SHA256 of the token id,
nonce, ticket and purpose with the server secret. The token row records expiry and use, so a link
works once. Opening the page records nothing (mail scanners fetch links); only pressing a button does.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from lib import tickets
from lib.config import get_secret, get_settings
from lib.errors import HelpdeskError, ValidationError
from lib.models import PUBLIC_URL_MARK, ActionToken, Ticket, ticket_ref
from lib.ticket_core import SystemActor, add_event, now_utc
from lib.workflow import ConfirmationVia, EventKind, Status

PURPOSE = "confirm"
TTL = timedelta(days=14)


class LinkRefused(HelpdeskError):
    """The link is tampered, expired or already used; the message says which."""


def _secret() -> bytes:
    return (get_secret("server_secret", generate=True) or "").encode()


def _sign(token_id: int, nonce: str, ticket_id: int, purpose: str) -> str:
    msg = f"{token_id}.{nonce}.{ticket_id}.{purpose}".encode()
    return hmac.new(_secret(), msg, hashlib.sha256).hexdigest()[:32]


def issue(session: Session, ticket: Ticket, *, now: datetime | None = None, ttl: timedelta = TTL) -> str:
    now = now_utc(now)
    row = ActionToken(ticket_id=ticket.id, purpose=PURPOSE, nonce=secrets.token_urlsafe(16),
                      expires_at=now + ttl, created_at=now)
    session.add(row)
    session.flush()
    return f"{row.id}.{row.nonce}.{_sign(row.id, row.nonce, ticket.id, PURPOSE)}"


def public_url() -> str | None:
    """The address people open the app at (``public_url``), without a trailing slash; None when unset."""
    url = get_settings().public_url
    return url.rstrip("/") if url else None


def links_text(session: Session, ticket: Ticket) -> str:
    token = issue(session, ticket)
    return (f"Confirm or tell us it is still broken here (the link works once, for {TTL.days} days):\n"
            f"{PUBLIC_URL_MARK}/confirm?t={token}")


def check(session: Session, token: str, *, now: datetime | None = None) -> tuple[ActionToken, Ticket]:
    """The token row and ticket for a link, or LinkRefused with a clear reason. Records nothing."""
    now = now_utc(now)
    parts = (token or "").strip().split(".")
    if len(parts) != 3 or not parts[0].isdigit():
        raise LinkRefused("This link is not valid. Please use the link from your e-mail exactly as it was sent.")
    row = session.get(ActionToken, int(parts[0]))
    if row is None or not hmac.compare_digest(row.nonce, parts[1]) or not hmac.compare_digest(
        _sign(row.id, row.nonce, row.ticket_id, row.purpose), parts[2]
    ):
        raise LinkRefused("This link is not valid. Please use the link from your e-mail exactly as it was sent.")
    if row.used_at is not None:
        raise LinkRefused(f"This link was already used on {row.used_at:%Y-%m-%d %H:%M} UTC. "
                          "If something is still wrong, reply to our e-mail.")
    if now > row.expires_at:
        raise LinkRefused("This link has expired. Reply to our e-mail and we will get back to you.")
    ticket = session.get(Ticket, row.ticket_id)
    assert ticket is not None
    if Status(ticket.status) not in (Status.RESOLVED, Status.AWAITING_CONFIRMATION):
        raise LinkRefused(f"{ticket_ref(ticket.id)} is no longer waiting for your confirmation.")
    return row, ticket


def answer(session: Session, token: str, *, works: bool, comment: str | None = None, rating: int | None = None,
           now: datetime | None = None) -> Ticket:
    """The requester pressed a button: confirm the fix, or reopen with their comment (public)."""
    now = now_utc(now)
    row, ticket = check(session, token, now=now)
    if rating is not None and (isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5):
        raise ValidationError({"rating": "choose 1 to 5 stars"})
    who = ticket.requester.email if ticket.requester and ticket.requester.email else "requester"
    actor = SystemActor(label=f"{who} (signed link)")
    row.used_at = now
    if works:
        tickets.record_confirmation(session, actor=actor, ticket_id=ticket.id, expected_version=ticket.version,
                                    via=ConfirmationVia.LINK, confirmed_by=who, note=comment, now=now)
    else:
        if not (comment or "").strip():
            raise ValidationError({"comment": "tell us what is still not working"})
        tickets.reopen(session, actor=actor, ticket_id=ticket.id, expected_version=ticket.version,
                       reason=f"Still broken, says the requester: {comment}", now=now)
    if rating is not None:
        ticket.satisfaction = rating
        add_event(session, ticket, EventKind.FIELD_CHANGED, actor=None, actor_label=actor.label, now=now,
                  field="satisfaction", new=rating)
    return ticket
