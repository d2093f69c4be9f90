"""Server-side login sessions: start, hand over, check, list and revoke. No streamlit import.

A sign-in goes in two steps, so that the browser's cookie can be HttpOnly (set by an HTTP route, never by page
JavaScript):

1. The page checks the password and calls :func:`start`, which stores a session holding only the SHA-256 of a
   one-time *code*, and sends the browser to ``/auth/session?code=…``.
2. That route calls :func:`claim`: the code is exchanged, once and within :data:`CODE_SECONDS`, for a random
   *token*; the route sets the cookie ``<token>.<signature>`` (HMAC of the token with the cookie key).

Every run of every page then calls :func:`check` with the cookie's token: the session must exist, not be
revoked, not be idle longer than ``session_idle_minutes`` nor older than ``session_lifetime_hours``, and its user
must be active. Log out, a password change or reset, a role change and a deactivation revoke sessions; a lead or
the CLI can revoke all of a person's sessions.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import CursorResult, Engine
from sqlalchemy.orm import Session

from lib.config import get_settings
from lib.db import read_session, transaction
from lib.models import LoginSession, User
from lib.ticket_core import now_utc

#: The one-time code must be exchanged this soon after the password was accepted.
CODE_SECONDS = 60
#: ``last_seen_at`` is written at most this often per session (a page run is a read, not a write).
TOUCH_SECONDS = 60


def _count(result: object) -> int:
    """Rows an UPDATE changed."""
    assert isinstance(result, CursorResult)
    return result.rowcount


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def sign(token: str, key: str) -> str:
    """The cookie value for ``token``: ``<token>.<HMAC-SHA256(key, token)>``."""
    mac = hmac.new(key.encode(), token.encode(), hashlib.sha256).hexdigest()
    return f"{token}.{mac}"


def unsign(value: str | None, key: str) -> str | None:
    """The token inside a cookie value, or None when the value is missing, malformed or not signed by ``key``."""
    if not value or value.count(".") != 1 or len(value) > 200:
        return None
    token, mac = value.split(".")
    expected = hmac.new(key.encode(), token.encode(), hashlib.sha256).hexdigest()
    return token if hmac.compare_digest(mac, expected) else None


@dataclass(frozen=True)
class SessionUser:
    """Who a valid session belongs to, re-read from the database at each check."""

    session_id: int
    user_id: int
    username: str
    #: The account, when the check read it in the caller's session (``check(session=...)``): no second read.
    user: User | None = field(default=None, compare=False, repr=False)


def start(session: Session, *, user_id: int, user_agent: str | None = None, now: datetime | None = None) -> str:
    """A new session for ``user_id`` (whose password was just accepted); returns its one-time hand-over code."""
    now = now_utc(now)
    settings = get_settings()
    code = secrets.token_urlsafe(32)
    session.add(LoginSession(user_id=user_id, code_hash=_digest(code), created_at=now, last_seen_at=now,
                             expires_at=now + timedelta(hours=settings.session_lifetime_hours),
                             user_agent=(user_agent or "")[:200] or None))
    session.flush()
    return code


def claim(session: Session, *, code: str, now: datetime | None = None) -> str | None:
    """Exchange a hand-over code for the session token, once: a second claim (a double click, a replayed link),
    a late one or one for a revoked session gets None. The exchange is a single conditional UPDATE, so two
    claims racing on two servers cannot both win."""
    now = now_utc(now)
    if not code or len(code) > 100:
        return None
    token = secrets.token_urlsafe(32)
    won = _count(session.execute(
        update(LoginSession)
        .where(LoginSession.code_hash == _digest(code), LoginSession.token_hash.is_(None),
               LoginSession.revoked_at.is_(None), LoginSession.created_at >= now - timedelta(seconds=CODE_SECONDS))
        .values(code_hash=None, token_hash=_digest(token), last_seen_at=now)
    ))
    return token if won == 1 else None


def check(engine: Engine, *, token: str | None, now: datetime | None = None,
          session: Session | None = None) -> SessionUser | None:
    """The signed-in user for ``token``, or None: unknown, revoked, idle too long, past its lifetime, or the
    account is inactive. A read on every page run; it writes only to end a session that ran out (so it also
    leaves the active list) or, at most once a minute, to note that the session is in use. ``session``: a read
    session to look the token up in (a page run's shared one), instead of one of its own."""
    if not token:
        return None
    now = now_utc(now)
    columns = (LoginSession.id, LoginSession.user_id, LoginSession.revoked_at, LoginSession.expires_at,
               LoginSession.last_seen_at, User.username, User.active)
    user: User | None = None
    row: Any
    if session is not None:  # the account itself too, in the caller's session
        row = session.execute(select(*columns, User).join(User, User.id == LoginSession.user_id)
                              .where(LoginSession.token_hash == _digest(token))).first()
        user = row[-1] if row is not None else None
    else:
        with read_session(engine) as s:
            row = s.execute(select(*columns).join(User, User.id == LoginSession.user_id)
                            .where(LoginSession.token_hash == _digest(token))).first()
    if row is None or row.revoked_at is not None:
        return None
    idle = timedelta(minutes=get_settings().session_idle_minutes)
    ended = ("expired" if now >= row.expires_at else "idle" if now - row.last_seen_at >= idle
             else "deactivated" if not row.active else None)
    if ended:
        with transaction(engine) as s:
            revoke(s, session_id=row.id, reason=ended, now=now)
        return None
    if now - row.last_seen_at >= timedelta(seconds=TOUCH_SECONDS):
        with transaction(engine) as s:
            s.execute(update(LoginSession).where(LoginSession.id == row.id, LoginSession.last_seen_at < now)
                      .values(last_seen_at=now))
    return SessionUser(row.id, row.user_id, row.username, user=user)


def revoke(session: Session, *, token: str | None = None, session_id: int | None = None, reason: str = "logout",
           now: datetime | None = None) -> int:
    """End one session (by its token or id); returns 1 when one was ended."""
    now = now_utc(now)
    if token is not None:
        where = LoginSession.token_hash == _digest(token)
    elif session_id is not None:
        where = LoginSession.id == session_id
    else:
        return 0
    return _count(session.execute(update(LoginSession).where(where, LoginSession.revoked_at.is_(None))
                                  .values(revoked_at=now, revoked_reason=reason[:40])))


def revoke_all(session: Session, *, user_id: int, reason: str, keep: int | None = None,
               now: datetime | None = None) -> int:
    """End every session of ``user_id`` (but ``keep``, the caller's own, when given); returns how many."""
    now = now_utc(now)
    q = update(LoginSession).where(LoginSession.user_id == user_id, LoginSession.revoked_at.is_(None))
    if keep is not None:
        q = q.where(LoginSession.id != keep)
    return _count(session.execute(q.values(revoked_at=now, revoked_reason=reason[:40])))


def active(session: Session, *, user_id: int, now: datetime | None = None) -> list[LoginSession]:
    """The user's sessions that would still sign in, newest first (signed-in browsers, not pending codes)."""
    now = now_utc(now)
    idle = timedelta(minutes=get_settings().session_idle_minutes)
    rows = session.scalars(
        select(LoginSession).where(LoginSession.user_id == user_id, LoginSession.revoked_at.is_(None),
                                   LoginSession.token_hash.is_not(None), LoginSession.expires_at > now,
                                   LoginSession.last_seen_at > now - idle)
        .order_by(LoginSession.last_seen_at.desc(), LoginSession.id.desc()))
    return list(rows)


# --- signing in ------------------------------------------------------------------------------------
