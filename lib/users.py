"""Staff accounts: creation, passwords, roles, skills, login failures and lockout."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

import bcrypt
from sqlalchemy import case, func, select, text, update
from sqlalchemy.orm import Session

from lib import assignment, sessions, tickets
from lib.audit_log import audit
from lib.config import get_settings
from lib.directory import clean_email
from lib.errors import NotFound, PermissionDenied, ValidationError
from lib.models import Category, Ticket, User, UserSkill
from lib.ticket_core import clean_id, clean_line, load_actor, lock_row, lock_ticket, now_utc, require_permission
from lib.workflow import Permission, Role

MIN_PASSWORD = 10
#: PostgreSQL advisory lock taken by the first-run setup.
FIRST_RUN_LOCK_ID = 727_274_003


def hash_password(password: str) -> str:
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(rounds=12)).decode("ascii")


def check_password(password: str, password_hash: str) -> bool:
    try:
        return bcrypt.checkpw(password.encode("utf-8"), password_hash.encode("ascii"))
    except ValueError:
        return False


def validate_password(password: object, *, field: str = "password") -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise ValidationError({field: f"use at least {MIN_PASSWORD} characters"})
    if len(password.encode("utf-8")) > 72:
        raise ValidationError({field: "at most 72 bytes (a bcrypt limit)"})
    if password.strip() != password:
        raise ValidationError({field: "must not start or end with spaces"})
    return password


def count_users(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(User)) or 0


def get_by_username(session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == (username or "").strip().lower()))


_USERNAME_OK = set("abcdefghijklmnopqrstuvwxyz0123456789._-")


def _clean_username(value: object) -> str:
    name = clean_line(value, "username", max_len=64)
    name = name.lower()
    if not set(name) <= _USERNAME_OK:
        raise ValidationError({"username": "use letters, digits, dots, dashes and underscores only"})
    return name


def create_user(session: Session, *, actor: int | None, username: str, name: str, email: str | None,
                password: str, role: Role | str | int, capacity: int = 10, first_run: bool = False,
                now: datetime | None = None) -> User:
    """Create a staff account. ``first_run``: the very first lead on an empty database (no actor)."""
    now = now_utc(now)
    if first_run:
        # Two browsers submitting the setup form at once must not both become the first lead: PostgreSQL takes
        # a transaction lock first (SQLite's write transaction already runs one at a time).
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": FIRST_RUN_LOCK_ID})
        if count_users(session) > 0:
            raise PermissionDenied("the first account already exists; log in instead")
        creator = None
    else:
        if actor is None:
            raise PermissionDenied("log in as a lead to create accounts")
        creator = load_actor(session, actor)
        require_permission(creator, Permission.MANAGE_ACCOUNTS, "create accounts")
    errors: dict[str, str] = {}
    values: dict[str, object] = {}
    for key, fn in (
        ("username", lambda: _clean_username(username)),
        ("name", lambda: clean_line(name, "name", max_len=120)),
        ("email", lambda: clean_email(email, "email")),
        ("password", lambda: validate_password(password)),
        ("role", lambda: Role.parse(role)),
        ("capacity", lambda: _capacity(capacity)),
    ):
        try:
            values[key] = fn()
        except ValidationError as exc:
            errors.update(exc.fields)
        except ValueError as exc:
            errors[key] = str(exc)
    if "username" in values and get_by_username(session, str(values["username"])) is not None:
        errors["username"] = f"{values['username']!r} is taken"
    if first_run and values.get("role") not in (None, Role.LEAD):
        errors["role"] = "the first account must be a lead"
    if errors:
        raise ValidationError(errors)
    user = User(username=values["username"], name=values["name"], email=values["email"],
                password_hash=hash_password(password), role=int(cast(Role, values["role"])),
                capacity=values["capacity"], active=True, created_at=now)
    session.add(user)
    session.flush()
    audit(session, actor=creator.username if creator else "setup", action="user_created",
          target=user.username, detail=f"role={Role(user.role).key}", now=now)
    return user


def _capacity(value: object) -> int:
    try:
        cap = int(value)  # type: ignore[call-overload]  # any input: errors caught below
    except (TypeError, ValueError):
        raise ValidationError({"capacity": "must be a whole number"}) from None
    if not 0 <= cap <= 200:
        raise ValidationError({"capacity": "must be between 0 and 200"})
    return cap


def update_user(session: Session, *, actor: int, user_id: int, name: str | None = None, email: str | None = None,
                role: Role | str | int | None = None, active: bool | None = None, capacity: int | None = None,
                away_until: datetime | None | bool = False, now: datetime | None = None) -> User:
    """A lead edits an account. ``away_until=False`` leaves it unchanged; None clears it."""
    now = now_utc(now)
    lead = load_actor(session, actor)
    require_permission(lead, Permission.MANAGE_ACCOUNTS, "change accounts")
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} does not exist")
    changes = []
    if name is not None and name != user.name:
        user.name = clean_line(name, "name", max_len=120)
        changes.append(f"name={user.name}")
    if email is not None and (clean_email(email) or None) != user.email:
        user.email = clean_email(email)
        changes.append(f"email={user.email}")
    if role is not None:
        new_role = Role.parse(role)
        if new_role != Role(user.role):
            if user.id == lead.id and new_role < Role.LEAD:
                _require_another_lead(session, user)
            changes.append(f"role {Role(user.role).key}->{new_role.key}")
            user.role = int(new_role)
    if active is not None and bool(active) != user.active:
        if not active and Role(user.role) is Role.LEAD:
            _require_another_lead(session, user)
        if not active:
            _require_no_open_tickets(session, user)
        user.active = bool(active)
        changes.append("activated" if active else "deactivated")
    if capacity is not None and _capacity(capacity) != user.capacity:
        user.capacity = _capacity(capacity)
        changes.append(f"capacity={user.capacity}")
    if away_until is not False and away_until != user.away_until:
        user.away_until = away_until  # type: ignore[assignment]  # a datetime or None: False is excluded above
        changes.append(f"away_until={away_until.isoformat() if isinstance(away_until, datetime) else 'none'}")
    if changes:
        audit(session, actor=lead.username, action="user_changed", target=user.username,
              detail="; ".join(changes), now=now)
    if any(c.startswith("role ") or c == "deactivated" for c in changes):
        # A new role or a closed account takes effect in every open browser: they sign in again.
        sessions.revoke_all(session, user_id=user.id, reason="account changed", now=now)
    return user


def _require_another_lead(session: Session, user: User) -> None:
    others = session.scalar(select(func.count()).select_from(User).where(
        User.role >= int(Role.LEAD), User.active.is_(True), User.id != user.id)) or 0
    if others == 0:
        raise ValidationError({"role": "the desk needs at least one active lead"})


# --- deactivation: an account leaves the desk, its open tickets do not stay with it ---------------


class OpenTickets(enum.StrEnum):
    """What happens to the open tickets of an account being deactivated."""

    QUEUE = "queue"  # back to the unassigned queue, where anyone may take them
    REASSIGN = "reassign"  # to one named active person

    @property
    def label(self) -> str:
        return {OpenTickets.QUEUE: "Return them to the queue", OpenTickets.REASSIGN: "Reassign to …"}[self]


def open_ticket_ids(session: Session, user_id: int) -> list[int]:
    """The open tickets (new, assigned, in progress, waiting) held by ``user_id``, oldest first."""
    return list(session.scalars(select(Ticket.id).where(Ticket.assignee_id == user_id, Ticket.is_open.is_(True))
                                .order_by(Ticket.id)))


def _held_message(user: User, held: int) -> str:
    return (f"{held} still assigned to {user.name}: to deactivate the account, return them to the unassigned "
            "queue or reassign them to an active person")


def _require_no_open_tickets(session: Session, user: User) -> None:
    held = len(open_ticket_ids(session, user.id))
    if held:
        raise ValidationError({"open_tickets": _held_message(user, held)})


def _parse_open_tickets(value: object) -> OpenTickets | None:
    if value is None or isinstance(value, OpenTickets):
        return value
    if isinstance(value, str) and value in {c.value for c in OpenTickets}:
        return OpenTickets(value)
    choices = " or ".join(repr(c.value) for c in OpenTickets)
    raise ValidationError({"open_tickets": f"unknown choice {value!r}: use {choices}"[:200]})


def deactivate(session: Session, *, actor: int, user_id: int, open_tickets: OpenTickets | str | None = None,
               to: int | None = None, now: datetime | None = None) -> User:
    """A lead closes an account and, in the same transaction, hands on the open tickets it holds.

    ``open_tickets``: ``"queue"`` returns each one to the unassigned queue, ``"reassign"`` gives each one to
    the active person ``to``. Both go through the assignment services, so every ticket's timeline records
    the change (with the reason) and its SLA clock follows. While the account holds open tickets, it is not
    deactivated without one of the two. An account already inactive that still holds open tickets (from
    before this rule) is handed on the same way.
    """
    now = now_utc(now)
    lead = load_actor(session, actor)
    require_permission(lead, Permission.MANAGE_ACCOUNTS, "deactivate accounts")
    uid = clean_id(user_id, "user")
    if uid is None:
        raise NotFound("no account given")
    # Locked (PostgreSQL): two leads deactivating the same person at once hand the tickets on once.
    user = lock_row(session, User, uid, missing=f"user {user_id} does not exist")
    choice = _parse_open_tickets(open_tickets)
    target: User | None = None
    if choice is OpenTickets.REASSIGN:
        to_id = clean_id(to, "reassign_to")
        target = session.get(User, to_id) if to_id is not None else None
        if target is None or not target.active or target.id == user.id:
            raise ValidationError({"reassign_to": "needs an active person other than the one being deactivated"})
    elif to is not None:
        raise ValidationError({"reassign_to": "goes with the choice 'reassign' only"})
    if user.active and Role(user.role) is Role.LEAD:
        _require_another_lead(session, user)
    held = open_ticket_ids(session, user.id)
    if held and choice is None:
        raise ValidationError({"open_tickets": _held_message(user, len(held))})
    if held:
        if target is None:
            note = f"{user.name}'s account was deactivated: back to the unassigned queue"
            for ticket_id in held:
                version = lock_ticket(session, ticket_id).version
                tickets.assign(session, actor=actor, ticket_id=ticket_id, assignee_id=None,
                               expected_version=version, note=note, now=now)
            detail = f"{len(held)} open ticket(s) returned to the queue"
        else:
            note = f"{user.name}'s account was deactivated: reassigned to {target.name}"
            moves = [(ticket_id, lock_ticket(session, ticket_id).version) for ticket_id in held]
            assignment.reassign(session, actor=actor, moves=moves, assignee_id=target.id, note=note, now=now)
            detail = f"{len(held)} open ticket(s) reassigned to {target.username}"
        audit(session, actor=lead.username, action="open_tickets_handed_on", target=user.username, detail=detail,
              now=now)
    return update_user(session, actor=actor, user_id=user.id, active=False, now=now)


def set_skills(session: Session, *, actor: int, user_id: int, skills: dict[int, int],
               now: datetime | None = None) -> User:
    """Replace a user's skills: {category id: level 1..3}; level 0 removes the skill."""
    lead = load_actor(session, actor)
    require_permission(lead, Permission.MANAGE_ACCOUNTS, "change skills")
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} does not exist")
    for cat_id, level in skills.items():
        if session.get(Category, cat_id) is None:
            raise ValidationError({"skills": f"category {cat_id} does not exist"})
        if not isinstance(level, int) or not 0 <= level <= 3:
            raise ValidationError({"skills": "levels run from 0 (none) to 3 (expert)"})
    user.skills = [UserSkill(category_id=c, level=lv) for c, lv in skills.items() if lv > 0]
    audit(session, actor=lead.username, action="skills_changed", target=user.username,
          detail=", ".join(f"{c}:{lv}" for c, lv in sorted(skills.items())), now=now)
    return user


def change_own_password(session: Session, *, actor: int, current: str, new: str, keep_session: int | None = None,
                        now: datetime | None = None) -> None:
    """Change one's own password; every other signed-in browser of the account is signed out (``keep_session``,
    the browser making the change, stays signed in)."""
    user = load_actor(session, actor)
    assert user is not None
    if not check_password(current or "", user.password_hash):
        raise ValidationError({"current_password": "is not your current password"})
    validate_password(new, field="new_password")
    user.password_hash = hash_password(new)
    sessions.revoke_all(session, user_id=user.id, reason="password changed", keep=keep_session, now=now)
    audit(session, actor=user.username, action="password_changed", target=user.username, now=now)


def reset_password(session: Session, *, actor: int, user_id: int, new: str, now: datetime | None = None) -> None:
    lead = load_actor(session, actor)
    require_permission(lead, Permission.MANAGE_ACCOUNTS, "reset passwords")
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} does not exist")
    validate_password(new, field="new_password")
    user.password_hash = hash_password(new)
    user.failed_logins, user.locked_until = 0, None
    sessions.revoke_all(session, user_id=user.id, reason="password reset", now=now)
    audit(session, actor=lead.username, action="password_reset", target=user.username, now=now)


def unlock(session: Session, *, actor: int | None, user_id: int, now: datetime | None = None) -> None:
    """A lead (or the CLI, ``actor=None``) lifts a lockout without touching the password."""
    who = "cli"
    if actor is not None:
        lead = load_actor(session, actor)
        require_permission(lead, Permission.MANAGE_ACCOUNTS, "unlock accounts")
        who = lead.username
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} does not exist")
    user.failed_logins, user.locked_until = 0, None
    audit(session, actor=who, action="unlocked", target=user.username, now=now)


# --- login bookkeeping (the login widget checks the password; we count failures in the DB) ---------


@dataclass(frozen=True)
class Reservation:
    """One password check allowed (``allowed``) or refused because the account is locked (``locked``)."""

    user_id: int | None
    allowed: bool
    failures: int
    locked: str | None = None


def reserve_attempt(session: Session, *, username: str, now: datetime | None = None) -> Reservation:
    """Count a login attempt *before* its password is checked, in one conditional UPDATE, so parallel attempts
    queue on the row and at most ``login_max_failures`` of them are ever checked: the attempt that reaches the
    limit sets the lock, and every attempt after it is refused unchecked. Commit before checking the password
    (bcrypt takes a quarter of a second; no lock is held meanwhile); :func:`finish_attempt` records the result.
    An unknown name is allowed (it fails on the password, at the same cost) and counts nothing."""
    now = now_utc(now)
    settings = get_settings()
    user_id = session.scalar(select(User.id).where(User.username == username))
    if user_id is None:
        return Reservation(None, True, 0)
    expired = User.locked_until.is_not(None) & (User.locked_until <= now)
    count = case((expired, 1), else_=User.failed_logins + 1)
    row = session.execute(
        update(User)
        .where(User.id == user_id, User.locked_until.is_(None) | (User.locked_until <= now))
        .values(failed_logins=count,
                locked_until=case((count >= settings.login_max_failures,
                                   now + timedelta(minutes=settings.login_lockout_minutes)), else_=None))
        .returning(User.failed_logins)
    ).first()
    if row is None:
        user = session.get(User, user_id)
        assert user is not None
        session.refresh(user)
        return Reservation(user_id, False, user.failed_logins, lock_message(user, now=now))
    return Reservation(user_id, True, row[0])


def finish_attempt(session: Session, *, username: str, reservation: Reservation, ok: bool,
                   now: datetime | None = None) -> str | None:
    """Record a checked attempt: success clears the count and the lock; a failure is audited (and the lock it
    set). Returns the lock message when this failure locked the account."""
    now = now_utc(now)
    if reservation.user_id is None:
        audit(session, actor=None, action="login_failed", target=username[:64], detail="unknown user", now=now)
        return None
    user = session.get(User, reservation.user_id)
    if user is None:
        return None
    if ok:
        user.failed_logins, user.locked_until, user.last_login_at = 0, None, now
        audit(session, actor=user.username, action="login", target=user.username, detail="password", now=now)
        return None
    audit(session, actor=user.username, action="login_failed", target=user.username,
          detail=f"failure {reservation.failures}", now=now)
    if reservation.failures >= get_settings().login_max_failures:
        audit(session, actor=user.username, action="lockout", target=user.username,
              detail=f"locked until {user.locked_until.isoformat() if user.locked_until else '?'}", now=now)
        return lock_message(user, now=now)
    return None


def record_logout(session: Session, *, username: str, now: datetime | None = None) -> None:
    audit(session, actor=username, action="logout", target=username, now=now)


def lock_message(user: User, *, now: datetime) -> str | None:
    if user.locked_until is not None and user.locked_until > now:
        minutes = max(1, math.ceil((user.locked_until - now).total_seconds() / 60))
        return (f"Too many failed logins: account {user.username!r} is locked for {minutes} more minute(s). "
                "Try again later or ask a lead to reset your password.")
    return None
