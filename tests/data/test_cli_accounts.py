"""The CLI's account commands on SQLite and PostgreSQL: list-users, deactivate-user, reset-password,
unlock-user and revoke-sessions, driven through ``lib.cli.main`` and checked against the database and the audit log."""

from __future__ import annotations

import csv
import getpass
import io
import sys
from datetime import timedelta

import pytest
from sqlalchemy import select

from lib.cli import main
from lib.db import read_session, transaction
from lib.models import AuditLog, User
from lib.users import check_password
from lib.workflow import Role
from tests.conftest import fast_hash

NEW_PASSWORD = "a brand new passphrase"


def url_of(engine) -> str:  # type: ignore[no-untyped-def]
    return engine.url.render_as_string(hide_password=False)


def cli(engine, *argv: str) -> int:  # type: ignore[no-untyped-def]
    return main(["--database-url", url_of(engine), *argv])


def user(engine, username: str) -> User:  # type: ignore[no-untyped-def]
    with read_session(engine) as s:
        found = s.scalar(select(User).where(User.username == username))
        assert found is not None
        s.expunge(found)
        return found


def audit_rows(engine, action: str) -> list[AuditLog]:  # type: ignore[no-untyped-def]
    with read_session(engine) as s:
        rows = list(s.scalars(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)))
        for r in rows:
            s.expunge(r)
        return rows


def lock(engine, username: str, *, until, failures: int = 5) -> None:  # type: ignore[no-untyped-def]
    with transaction(engine) as s:
        u = s.scalar(select(User).where(User.username == username))
        assert u is not None
        u.failed_logins, u.locked_until = failures, until


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


# --- list-users -----------------------------------------------------------------------------------------


def test_list_users_table_and_csv(engine, staff, clock, capsys) -> None:
    now = clock.now().replace(microsecond=0)
    lock(engine, "tech", until=now + timedelta(minutes=15))
    lock(engine, "tech2", until=now - timedelta(minutes=1), failures=0)  # a lock that ran out is not shown
    with transaction(engine) as s:
        lead = s.get(User, staff.lead)
        assert lead is not None
        lead.last_login_at = now - timedelta(hours=2)
        senior = s.get(User, staff.senior)
        assert senior is not None
        senior.active = False
    capsys.readouterr()
    assert cli(engine, "list-users") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["username", "name", "role", "active", "locked", "until", "last", "login"]
    assert set(lines[1]) <= {"-", " "}
    body = {line.split()[0]: line for line in lines[2:-1]}
    assert list(body) == ["lead", "senior", "tech", "tech2"]
    assert "Lena Lead" in body["lead"] and " lead " in body["lead"]
    assert (now - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ") in body["lead"]
    assert body["senior"].split()[-2:] == ["senior", "no"]  # no lock, never logged in
    assert (now + timedelta(minutes=15)).strftime("%Y-%m-%dT%H:%M:%SZ") in body["tech"]
    assert "Z" not in body["tech2"]
    assert lines[-1] == "4 account(s); times in UTC"

    assert cli(engine, "list-users", "--format", "csv") == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["username"] for r in rows] == ["lead", "senior", "tech", "tech2"]
    assert list(rows[0]) == ["username", "name", "role", "active", "locked_until", "last_login"]
    by = {r["username"]: r for r in rows}
    assert by["tech"]["locked_until"] == (now + timedelta(minutes=15)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert by["tech2"]["locked_until"] == "" and by["tech"]["last_login"] == ""
    assert by["senior"]["active"] == "no" and by["lead"]["role"] == "lead" and by["tech"]["name"] == "Tom Tech"


# --- deactivate-user ------------------------------------------------------------------------------------


def test_deactivate_user_through_the_service(engine, staff, capsys) -> None:
    assert cli(engine, "deactivate-user", "TECH") == 0
    assert "deactivated 'tech' (as lead 'lead')" in capsys.readouterr().out
    assert user(engine, "tech").active is False
    [row] = audit_rows(engine, "user_changed")
    assert (row.actor, row.target, row.detail) == ("lead", "tech", "deactivated")
    assert cli(engine, "deactivate-user", "tech") == 0
    assert "already inactive" in capsys.readouterr().out
    assert len(audit_rows(engine, "user_changed")) == 1


def test_deactivate_user_refuses_the_last_active_lead(engine, staff, capsys) -> None:
    capsys.readouterr()
    assert cli(engine, "deactivate-user", "lead") == 1
    err = capsys.readouterr().err
    assert "'lead' is the last active lead" in err and "create-user --role lead" in err
    assert user(engine, "lead").active is True
    assert cli(engine, "deactivate-user", "lead", "--as", "lead") == 1
    assert user(engine, "lead").active is True
    assert audit_rows(engine, "user_changed") == []


def test_deactivate_a_lead_when_another_remains(engine, staff, capsys) -> None:
    with transaction(engine) as s:
        s.add(User(username="lead2", name="Second Lead", role=int(Role.LEAD), password_hash=fast_hash("x" * 12),
                   capacity=10, active=True))
    assert cli(engine, "deactivate-user", "lead") == 0  # acted as the other lead, not as itself
    assert "(as lead 'lead2')" in capsys.readouterr().out
    assert user(engine, "lead").active is False
    assert audit_rows(engine, "user_changed")[0].actor == "lead2"
    assert cli(engine, "deactivate-user", "lead2") == 1  # now the last one
    assert "last active lead" in capsys.readouterr().err


def test_deactivate_user_as_someone_who_is_not_a_lead(engine, staff, capsys) -> None:
    capsys.readouterr()
    assert cli(engine, "deactivate-user", "tech2", "--as", "tech") == 1
    assert "'tech' is not an active lead" in capsys.readouterr().err
    assert user(engine, "tech2").active is True


# --- reset-password -------------------------------------------------------------------------------------


def test_reset_password_from_stdin(engine, staff, clock, monkeypatch, capsys) -> None:
    lock(engine, "tech", until=clock.now() + timedelta(minutes=10))
    monkeypatch.setattr(sys, "stdin", io.StringIO(NEW_PASSWORD + "\n"))
    assert cli(engine, "reset-password", "tech") == 0
    out = capsys.readouterr().out
    assert "password of 'tech' reset and any lockout cleared (as lead 'lead')" in out
    assert NEW_PASSWORD not in out
    tech = user(engine, "tech")
    assert check_password(NEW_PASSWORD, tech.password_hash)
    assert not check_password(staff.password, tech.password_hash)
    assert (tech.failed_logins, tech.locked_until) == (0, None)
    [row] = audit_rows(engine, "password_reset")
    assert (row.actor, row.target) == ("lead", "tech")
    assert NEW_PASSWORD not in (row.detail or "")


def test_reset_password_from_a_terminal_prompt(engine, staff, monkeypatch, capsys) -> None:
    answers = iter([NEW_PASSWORD, NEW_PASSWORD, NEW_PASSWORD, "something else entirely"])
    prompts: list[str] = []

    def fake_getpass(prompt: str = "") -> str:
        prompts.append(prompt)
        return next(answers)

    monkeypatch.setattr(sys, "stdin", Terminal(""))
    monkeypatch.setattr(getpass, "getpass", fake_getpass)
    assert cli(engine, "reset-password", "tech2") == 0
    assert prompts == ["New password: ", "Repeat new password: "]
    assert check_password(NEW_PASSWORD, user(engine, "tech2").password_hash)
    before = user(engine, "tech").password_hash
    capsys.readouterr()
    assert cli(engine, "reset-password", "tech") == 1
    assert "the two entries differ" in capsys.readouterr().err
    assert user(engine, "tech").password_hash == before


@pytest.mark.parametrize(("line", "message"), [
    ("short\n", "at least 10 characters"),
    (" padded password \n", "must not start or end with spaces"),
    ("é" * 40 + "\n", "at most 72 bytes"),
    ("", "nothing on stdin"),
])
def test_reset_password_validates_like_the_app(engine, staff, monkeypatch, capsys, line, message) -> None:
    before = user(engine, "tech").password_hash
    monkeypatch.setattr(sys, "stdin", io.StringIO(line))
    capsys.readouterr()
    assert cli(engine, "reset-password", "tech") == 1
    assert message in capsys.readouterr().err
    assert user(engine, "tech").password_hash == before
    assert audit_rows(engine, "password_reset") == []


def test_reset_password_never_from_the_command_line(engine, staff, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        cli(engine, "reset-password", "tech", NEW_PASSWORD)
    assert exc.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err


# --- unlock-user ----------------------------------------------------------------------------------------


def test_unlock_user(engine, staff, clock, capsys) -> None:
    until = clock.now().replace(microsecond=0) + timedelta(minutes=15)
    lock(engine, "tech", until=until)
    before = user(engine, "tech").password_hash
    assert cli(engine, "unlock-user", "tech") == 0
    out = capsys.readouterr().out
    assert "unlocked 'tech' (failed logins 5 -> 0; lock until " + until.strftime("%Y-%m-%dT%H:%M:%SZ") in out
    tech = user(engine, "tech")
    assert (tech.failed_logins, tech.locked_until, tech.password_hash) == (0, None, before)
    [row] = audit_rows(engine, "unlocked")
    assert (row.actor, row.target) == ("cli", "tech")
    assert cli(engine, "unlock-user", "tech") == 0
    assert "nothing changed" in capsys.readouterr().out
    assert len(audit_rows(engine, "unlocked")) == 1
    lock(engine, "tech2", until=None, failures=2)  # failures short of a lockout are cleared too
    assert cli(engine, "unlock-user", "tech2", "--as", "lead") == 0
    assert user(engine, "tech2").failed_logins == 0
    assert audit_rows(engine, "unlocked")[-1].actor == "lead"


def test_revoke_sessions_signs_every_browser_out(engine, staff, capsys) -> None:
    from lib import login, sessions

    tokens = []
    for _ in range(2):
        result = login.sign_in(engine, username="tech", password=staff.password)
        with transaction(engine) as s:
            tokens.append(sessions.claim(s, code=result.code or ""))
    assert all(sessions.check(engine, token=t) for t in tokens)
    assert cli(engine, "revoke-sessions", "tech") == 0
    assert "ended 2 session(s) of 'tech'" in capsys.readouterr().out
    assert not any(sessions.check(engine, token=t) for t in tokens)
    [row] = audit_rows(engine, "sessions_revoked")
    assert (row.actor, row.target, row.detail) == ("cli", "tech", "2 ended")


# --- unknown accounts -----------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["deactivate-user", "reset-password", "unlock-user", "revoke-sessions"])
def test_unknown_user_is_exit_1_with_a_clear_message(engine, staff, monkeypatch, capsys, command) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(NEW_PASSWORD + "\n"))
    capsys.readouterr()
    assert cli(engine, command, "ghost") == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no user 'ghost'") and "list-users" in err
    assert sys.stdin.read() == NEW_PASSWORD + "\n"  # no password asked for an account that does not exist


def test_deactivate_user_hands_on_open_tickets(engine, staff, capsys) -> None:
    from lib import tickets
    from lib.directory import RequesterInput
    from lib.models import Ticket
    from lib.tickets import TicketDraft

    with transaction(engine) as s:
        t = tickets.create_ticket(s, actor=staff.tech, draft=TicketDraft(
            summary="Screen flickers", category="Hardware", priority="Low", channel="phone",
            requester=RequesterInput(name="Ann", email="ann@example.com")))
        tickets.take(s, actor=staff.tech, ticket_id=t.id)
        tid = t.id
    assert cli(engine, "deactivate-user", "tech") == 1
    assert "still assigned to" in capsys.readouterr().err
    assert user(engine, "tech").active
    assert cli(engine, "deactivate-user", "tech", "--open-tickets", "reassign", "--to", "tech2") == 0
    assert "went to 'tech2'" in capsys.readouterr().out
    with read_session(engine) as s:
        ticket = s.get(Ticket, tid)
        assert ticket is not None and ticket.assignee_id == staff.tech2
    assert not user(engine, "tech").active
