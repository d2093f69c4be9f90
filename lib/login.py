"""Signing in: a password checked under the lockout rule (lib.users), then a server-side session (lib.sessions)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Engine

from lib import sessions, users
from lib.audit_log import audit
from lib.db import read_session, transaction
from lib.models import User
from lib.ticket_core import now_utc

#: A valid bcrypt hash of nothing anyone types: an unknown name costs the same check as a wrong password.
_NOBODY = "$2b$12$.XHyjJsL5OoeCGsPn3dhVOxjR0KWByVAm6TD.ZSvzayozBuBcNBcK"


@dataclass(frozen=True)
class SignIn:
    """The outcome of a password: a hand-over ``code`` for /auth/session, or a message for the form."""

    code: str | None = None
    error: str | None = None
    locked: bool = False


def sign_in(engine: Engine, *, username: str, password: str, user_agent: str | None = None,
            now: datetime | None = None) -> SignIn:
    """Check a password under the lockout rule and start a session. Three short transactions: count the
    attempt (refused unchecked when locked), check bcrypt with no lock held, record the result and start the
    session."""
    now = now_utc(now)
    name = (username or "").strip().lower()
    with transaction(engine) as s:
        reservation = users.reserve_attempt(s, username=name, now=now)
    if not reservation.allowed:
        with transaction(engine) as s:
            audit(s, actor=None, action="login_refused", target=name[:64], detail="locked", now=now)
        return SignIn(error=reservation.locked, locked=True)
    with read_session(engine) as s:
        user = s.get(User, reservation.user_id) if reservation.user_id is not None else None
        stored, is_active = (user.password_hash, user.active) if user is not None else (_NOBODY, False)
    ok = users.check_password(password or "", stored) and is_active
    with transaction(engine) as s:
        locked = users.finish_attempt(s, username=name or "(empty)", reservation=reservation, ok=ok, now=now)
        if ok:
            assert reservation.user_id is not None
            return SignIn(code=sessions.start(s, user_id=reservation.user_id, user_agent=user_agent, now=now))
    if locked:
        return SignIn(error=locked, locked=True)
    return SignIn(error="Username or password is incorrect.")
