"""Server-side sessions and the lockout, on both engines: a session ends at log out, at a password change or
reset, at a role change or deactivation, when idle and at the end of its lifetime; a hand-over code works once;
parallel wrong passwords are checked at most ``login_max_failures`` times."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from lib import login, sessions, users
from lib.auth_routes import safe_next
from lib.config import get_settings
from lib.db import transaction
from lib.models import AuditLog, LoginSession, User
from lib.workflow import Role
from tests.conftest import Staff, TestClock


def signed_in(engine: Engine, staff: Staff, username: str = "tech") -> str:
    result = login.sign_in(engine, username=username, password=staff.password, user_agent="pytest")
    assert result.code is not None, result.error
    with transaction(engine) as s:
        token = sessions.claim(s, code=result.code)
    assert token is not None
    return token


def who(engine: Engine, token: str) -> str | None:
    found = sessions.check(engine, token=token)
    return found.username if found else None


def test_a_session_holds_until_log_out_and_a_copied_token_is_refused_after(engine, staff) -> None:
    token = signed_in(engine, staff)
    copy = str(token)
    assert who(engine, token) == "tech"
    with transaction(engine) as s:
        assert sessions.revoke(s, token=token, reason="logout") == 1
    assert who(engine, copy) is None
    assert who(engine, "not-a-token") is None


def test_the_hand_over_code_works_once_and_only_for_a_minute(engine, staff, clock: TestClock) -> None:
    result = login.sign_in(engine, username="tech", password=staff.password)
    assert result.code
    with transaction(engine) as s:
        assert sessions.claim(s, code=result.code) is not None
        assert sessions.claim(s, code=result.code) is None
    late = login.sign_in(engine, username="tech", password=staff.password)
    clock.advance(timedelta(seconds=sessions.CODE_SECONDS + 1))
    with transaction(engine) as s:
        assert sessions.claim(s, code=late.code or "") is None


@pytest.mark.parametrize("change", ["reset", "own password", "role", "deactivate"])
def test_account_changes_end_every_session_of_the_account(engine, staff, change: str) -> None:
    first, second = signed_in(engine, staff), signed_in(engine, staff)
    other = signed_in(engine, staff, "tech2")
    with transaction(engine) as s:
        here = sessions.check(engine, token=second)
        assert here is not None
        if change == "reset":
            users.reset_password(s, actor=staff.lead, user_id=staff.tech, new="a brand new password")
        elif change == "own password":
            users.change_own_password(s, actor=staff.tech, current=staff.password, new="a brand new password",
                                      keep_session=here.session_id)
        elif change == "role":
            users.update_user(s, actor=staff.lead, user_id=staff.tech, role=Role.SENIOR)
        else:
            users.update_user(s, actor=staff.lead, user_id=staff.tech, active=False)
    assert who(engine, first) is None
    # The browser that changed its own password stays signed in; every other one is out.
    assert who(engine, second) == ("tech" if change == "own password" else None)
    assert who(engine, other) == "tech2"
    if change == "deactivate":  # reactivating does not bring an old session back
        with transaction(engine) as s:
            users.update_user(s, actor=staff.lead, user_id=staff.tech, active=True)
        assert who(engine, first) is None


def test_idle_and_lifetime_limits(engine, staff, clock: TestClock) -> None:
    settings = get_settings()
    token = signed_in(engine, staff)
    clock.advance(timedelta(minutes=settings.session_idle_minutes - 1))
    assert who(engine, token) == "tech"  # in use: it stays
    clock.advance(timedelta(minutes=settings.session_idle_minutes + 1))
    assert who(engine, token) is None
    with transaction(engine) as s:
        assert s.scalar(select(LoginSession.revoked_reason).where(LoginSession.revoked_at.is_not(None))) == "idle"
    busy = signed_in(engine, staff)
    for _ in range(settings.session_lifetime_hours * 60 // max(1, settings.session_idle_minutes - 1) + 1):
        clock.advance(timedelta(minutes=settings.session_idle_minutes - 1))
        if who(engine, busy) is None:
            break
    else:
        pytest.fail("a busy session outlived its lifetime")
    with transaction(engine) as s:
        assert set(s.scalars(select(LoginSession.revoked_reason))) == {"idle", "expired"}


def test_sign_out_everywhere_and_the_active_list(engine, staff) -> None:
    a, b = signed_in(engine, staff), signed_in(engine, staff)
    with transaction(engine) as s:
        assert len(sessions.active(s, user_id=staff.tech)) == 2
        assert sessions.revoke_all(s, user_id=staff.tech, reason="signed out everywhere") == 2
        assert sessions.active(s, user_id=staff.tech) == []
    assert who(engine, a) is None and who(engine, b) is None


def test_cookie_signature() -> None:
    key = "k" * 32
    value = sessions.sign("abc", key)
    assert sessions.unsign(value, key) == "abc"
    assert sessions.unsign(value, "x" * 32) is None
    assert sessions.unsign("abc", key) is None
    assert sessions.unsign(value.replace("abc", "abd"), key) is None
    assert sessions.unsign(None, key) is None


@pytest.mark.parametrize(("asked", "goes"), [
    ("/ticket?id=5", "/ticket?id=5"), ("/", "/"), (None, "/"), ("https://evil.example/", "/"),
    ("//evil.example", "/"), ("/\\evil.example", "/"), ("/a\r\nSet-Cookie: x=1", "/"), ("javascript:alert(1)", "/"),
])
def test_after_sign_in_the_browser_goes_only_to_this_site(asked: str | None, goes: str) -> None:
    assert safe_next(asked) == goes


def test_parallel_wrong_passwords_lock_after_the_limit(engine, staff) -> None:
    """20 wrong passwords at once: exactly ``login_max_failures`` are checked, the rest refused unchecked, and
    the account ends locked (the count is taken in one conditional UPDATE before the check)."""
    limit = get_settings().login_max_failures
    outcomes: list[login.SignIn] = []
    lock = threading.Lock()
    start = threading.Barrier(20)

    def attempt() -> None:
        start.wait()
        result = login.sign_in(engine, username="tech", password="wrong password")
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=attempt) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(outcomes) == 20 and all(o.code is None for o in outcomes)
    with transaction(engine) as s:
        checked = s.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action == "login_failed"))
        refused = s.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action == "login_refused"))
        tech = s.get(User, staff.tech)
        assert tech is not None
        assert checked == limit
        assert refused == 20 - limit
        assert tech.failed_logins == limit and tech.locked_until is not None
    # Locked: even the right password is refused, unchecked; a lead's unlock lets it in again.
    assert login.sign_in(engine, username="tech", password=staff.password).locked
    with transaction(engine) as s:
        users.unlock(s, actor=staff.lead, user_id=staff.tech)
    assert login.sign_in(engine, username="tech", password=staff.password).code


def test_four_wrong_then_the_right_password_signs_in_and_clears_the_count(engine, staff) -> None:
    for _ in range(get_settings().login_max_failures - 1):
        assert login.sign_in(engine, username="tech", password="nope").error == "Username or password is incorrect."
    assert login.sign_in(engine, username="tech", password=staff.password).code
    with transaction(engine) as s:
        tech = s.get(User, staff.tech)
        assert tech is not None and tech.failed_logins == 0 and tech.locked_until is None


def test_unknown_and_inactive_accounts_get_the_same_answer(engine, staff) -> None:
    with transaction(engine) as s:
        users.update_user(s, actor=staff.lead, user_id=staff.tech2, active=False)
    unknown = login.sign_in(engine, username="nobody", password="whatever")
    inactive = login.sign_in(engine, username="tech2", password=staff.password)
    assert unknown.error == inactive.error == "Username or password is incorrect."


def test_six_first_run_setups_at_once_make_one_lead(engine) -> None:
    """An empty database, six setup forms submitted together: one lead, five clear refusals."""
    from lib.errors import PermissionDenied

    outcomes: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(6)

    def setup(i: int) -> None:
        start.wait()
        try:
            with transaction(engine) as s:
                users.create_user(s, actor=None, username=f"lead{i}", name=f"Lead {i}", email=None,
                                  password="a long enough password", role=Role.LEAD, first_run=True)
            result = "created"
        except PermissionDenied as exc:
            result = str(exc)
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=setup, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes) == ["created"] + ["the first account already exists; log in instead"] * 5
    with transaction(engine) as s:
        assert s.scalar(select(func.count()).select_from(User)) == 1
