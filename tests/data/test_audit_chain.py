"""The audit trail on SQLite and PostgreSQL: the database refuses UPDATE and DELETE of ticket events and audit
rows; every way events are written leaves a valid per-ticket hash chain (services, concurrent writers, seeding,
both importers); ``verify-audit`` passes on that and names the event an edit or a removal broke."""

from __future__ import annotations

import csv
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from lib import audit_chain, audit_log, tickets
from lib.cli import main
from lib.db import read_session, transaction
from lib.directory import RequesterInput
from lib.models import AuditLog, Ticket, TicketEvent, ticket_ref
from lib.seed.demo import seed_demo
from lib.ticket_core import add_event
from lib.tickets import TicketDraft
from lib.transfer.importer import import_csv
from lib.workflow import EventKind
from tests.conftest import Staff, awaiting_confirmation, make_staff, reset_postgres, wait_for_lock_waiter

NOW = datetime(2026, 3, 2, 15, 30, tzinfo=UTC)


def url_of(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def verify_cli(engine: Engine, capsys: pytest.CaptureFixture[str], *more: str) -> tuple[int, str]:
    code = main(["--database-url", url_of(engine), "verify-audit", "--quiet", *more])
    return code, capsys.readouterr().out


def new_ticket(engine: Engine, staff: Staff, summary: str = "Printer jams on floor 2") -> int:
    with transaction(engine) as s:
        t = tickets.create_ticket(s, actor=staff.tech, draft=TicketDraft(
            summary=summary, category="Hardware", priority="Medium", channel="phone",
            requester=RequesterInput(name="Dee", email="dee@example.com")))
        return t.id


def event_ids(engine: Engine, ticket_id: int) -> list[int]:
    with read_session(engine) as s:
        return list(s.scalars(select(TicketEvent.id).where(TicketEvent.ticket_id == ticket_id).order_by(TicketEvent.id)))


def refused(engine: Engine, sql: str, **params: object) -> str:
    """Run ``sql`` in its own transaction; it must fail. Returns the database's message."""
    with pytest.raises(DBAPIError) as info, engine.begin() as conn:
        conn.execute(text(sql), params)
    return str(info.value.orig)


def chain_report(engine: Engine) -> audit_chain.Report:
    return audit_chain.verify(engine)


# --- the database refuses changes ----------------------------------------------------------------------


def test_events_and_audit_rows_cannot_be_updated_or_deleted(engine, staff):
    tid = awaiting_confirmation(engine, staff)
    with transaction(engine) as s:
        audit_log.audit(s, actor="lead", action="user_changed", target="tech", detail="capacity 10 -> 12")
    first = event_ids(engine, tid)[0]
    for sql in ("UPDATE ticket_events SET body = 'nothing happened' WHERE id = :id",
                "UPDATE ticket_events SET chain_hash = NULL WHERE id = :id",
                "UPDATE ticket_events SET occurred_at = recorded_at, chain_hash = 'x' WHERE id = :id",
                "DELETE FROM ticket_events WHERE id = :id"):
        assert "ticket_events is append-only" in refused(engine, sql, id=first)
    assert "ticket_events is append-only" in refused(engine, "DELETE FROM ticket_events")
    for sql in ("UPDATE audit_log SET detail = 'capacity 10 -> 10'", "DELETE FROM audit_log"):
        assert "audit_log is append-only" in refused(engine, sql)
    if engine.dialect.name == "postgresql":
        for table in ("ticket_events", "audit_log"):
            assert f"{table} is append-only" in refused(engine, f"TRUNCATE {table} CASCADE")
    with read_session(engine) as s:
        assert s.scalar(select(func.count()).select_from(AuditLog)) == 1
        assert s.scalar(select(func.count()).select_from(TicketEvent).where(TicketEvent.ticket_id == tid)) == len(
            event_ids(engine, tid))
    assert chain_report(engine).intact


def test_the_orm_cannot_change_an_event_either(engine, staff):
    tid = new_ticket(engine, staff)
    with pytest.raises(DBAPIError, match="append-only"), transaction(engine) as s:
        ev = s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == tid)).unique().one()
        ev.body = "rewritten"
    with pytest.raises(DBAPIError, match="append-only"), transaction(engine) as s:
        s.delete(s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == tid)).unique().one())


def test_only_an_unhashed_event_may_be_given_its_hash(engine, staff):
    tid = new_ticket(engine, staff)
    (eid,) = event_ids(engine, tid)
    with transaction(engine) as s, audit_chain.maintenance(s.connection()):
        s.execute(text("UPDATE ticket_events SET chain_hash = NULL WHERE id = :id"), {"id": eid})
    # sealing passes the trigger: NULL -> a hash, nothing else changed ...
    assert "append-only" in refused(engine, "UPDATE ticket_events SET chain_hash = 'a', body = 'b' WHERE id = :id",
                                    id=eid)
    with engine.begin() as conn:
        conn.execute(text("UPDATE ticket_events SET chain_hash = 'a' WHERE id = :id"), {"id": eid})
    # ... once
    assert "append-only" in refused(engine, "UPDATE ticket_events SET chain_hash = 'b' WHERE id = :id", id=eid)


def test_the_schema_has_the_triggers_and_the_chain_covers_every_column(engine):
    with engine.connect() as conn:
        assert audit_chain.missing_triggers(conn) == []
    columns = set(TicketEvent.__table__.columns.keys())
    assert columns == {"id", "chain_hash", *audit_chain.CHAIN_FIELDS}, "a new column must join the canonical form"


def test_maintenance_restores_the_triggers_even_when_its_work_fails(engine, staff):
    tid = new_ticket(engine, staff)
    with pytest.raises(RuntimeError), transaction(engine) as s, audit_chain.maintenance(s.connection()):
        s.execute(text("UPDATE ticket_events SET body = 'x' WHERE ticket_id = :t"), {"t": tid})
        raise RuntimeError("the correction went wrong")
    assert "append-only" in refused(engine, "DELETE FROM ticket_events")
    with engine.connect() as conn:
        assert audit_chain.missing_triggers(conn) == []
    assert chain_report(engine).intact


def test_reset_between_postgresql_tests_empties_the_audit_tables(pg_engine):
    reset_postgres(pg_engine)
    awaiting_confirmation(pg_engine, make_staff(pg_engine))
    with transaction(pg_engine) as s:
        audit_log.audit(s, actor="cli", action="unlocked", target="tech")
    reset_postgres(pg_engine)
    with read_session(pg_engine) as s:
        assert s.scalar(select(func.count()).select_from(TicketEvent)) == 0
        assert s.scalar(select(func.count()).select_from(AuditLog)) == 0
    with pg_engine.connect() as conn:
        assert audit_chain.missing_triggers(conn) == []
    with pg_engine.begin() as conn:  # the triggers are back in force for everyone else
        conn.execute(text("INSERT INTO audit_log (at, actor, action) VALUES (now(), 'x', 'y')"))
    assert "append-only" in refused(pg_engine, "DELETE FROM audit_log")
    reset_postgres(pg_engine)


# --- the chain and verify-audit ----------------------------------------------------------------------------


def test_verify_passes_on_a_normal_history_then_names_an_edited_event(engine, staff, capsys):
    tid = awaiting_confirmation(engine, staff)
    other = new_ticket(engine, staff, "VPN drops every hour")
    with transaction(engine) as s:
        tickets.take(s, actor=staff.tech, ticket_id=other)
        tickets.internal_note(s, actor=staff.tech, ticket_id=other, text="Checked the client logs")
        tickets.public_reply(s, actor=staff.tech, ticket_id=other, text="We are on it", minutes=5)
    code, out = verify_cli(engine, capsys)
    assert code == 0
    assert out.count("\n") == 1 and out.startswith("audit trail intact: 2 ticket(s)"), out

    ids = event_ids(engine, tid)
    edited = ids[len(ids) // 2]
    with transaction(engine) as s, audit_chain.maintenance(s.connection()):  # the way an administrator would
        s.execute(text("UPDATE ticket_events SET body = 'Nothing found', minutes = 1 WHERE id = :id"), {"id": edited})
    code, out = verify_cli(engine, capsys)
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith(f"{ticket_ref(tid)}: event {edited}: its fields differ"), out
    assert lines[-1].startswith("audit trail NOT intact: 1 broken chain(s)") and len(lines) == 2
    assert verify_cli(engine, capsys, "--ticket", str(other))[0] == 0
    code, out = verify_cli(engine, capsys, "--ticket", ticket_ref(tid))
    assert code == 1 and f"event {edited}" in out


def test_verify_names_the_event_after_a_removed_one_and_a_removed_hash(engine, staff, capsys):
    tid = awaiting_confirmation(engine, staff)
    ids = event_ids(engine, tid)
    with transaction(engine) as s, audit_chain.maintenance(s.connection()):
        s.execute(text("DELETE FROM ticket_events WHERE id = :id"), {"id": ids[2]})
    code, out = verify_cli(engine, capsys)
    assert code == 1 and out.startswith(f"{ticket_ref(tid)}: event {ids[3]}: ")
    assert "or an event before it was removed" in out

    tid2 = awaiting_confirmation(engine, staff, summary="Laptop will not boot")
    ids2 = event_ids(engine, tid2)
    with transaction(engine) as s, audit_chain.maintenance(s.connection()):
        s.execute(text("UPDATE ticket_events SET chain_hash = NULL WHERE id = :id"), {"id": ids2[-1]})
    report = chain_report(engine)
    assert [(b.ticket_id, b.event_id) for b in report.broken] == [(tid, ids[3]), (tid2, ids2[-1])]
    assert "its hash was removed" in report.broken[1].problem


def test_verify_reports_missing_triggers(sqlite_engine, capsys):
    with sqlite_engine.begin() as conn:
        conn.execute(text("DROP TRIGGER audit_log_append_only_delete"))
    code, out = verify_cli(sqlite_engine, capsys)
    assert code == 1 and "append-only trigger audit_log_append_only_delete is missing" in out


def test_concurrent_event_writers_on_one_ticket_leave_a_valid_chain(engine, staff):
    tid = new_ticket(engine, staff)
    with transaction(engine) as s:
        tickets.take(s, actor=staff.tech, ticket_id=tid)
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def services(n: int) -> None:  # the services lock the ticket themselves
        try:
            start.wait()
            for i in range(6):
                with transaction(engine) as s:
                    tickets.internal_note(s, actor=staff.tech, ticket_id=tid, text=f"note {n}.{i}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def unlocked(n: int) -> None:  # as the mailer and the reminders do: the ticket read without a lock
        try:
            start.wait()
            for i in range(6):
                with transaction(engine) as s:
                    add_event(s, s.get_one(Ticket, tid), EventKind.MAIL_SENT, actor=None, actor_label="mailer",
                              now=NOW, body=f"mail {n}.{i}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=f, args=(n,)) for n, f in enumerate((services, services, unlocked, unlocked))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    report = chain_report(engine)
    assert report.intact and report.events == 2 + 4 * 6, report


def test_a_writer_that_arrives_while_another_holds_the_ticket_links_to_its_event(engine, staff):
    """Without the ticket lock taken where the hash is computed, the second writer would read the chain's end
    before the first one commits, and both events would link to the same predecessor."""
    tid = new_ticket(engine, staff)
    flushed, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def first() -> None:
        try:
            with transaction(engine) as s:
                add_event(s, s.get_one(Ticket, tid), EventKind.MAIL_SENT, actor=None, actor_label="mailer", now=NOW,
                          body="first")
                s.flush()
                flushed.set()
                release.wait(20)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
            flushed.set()

    def second() -> None:
        try:
            with transaction(engine) as s:
                add_event(s, s.get_one(Ticket, tid), EventKind.FOLLOW_UP_REMINDED, actor=None, actor_label="reminder",
                          now=NOW, body="second")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    a = threading.Thread(target=first)
    a.start()
    assert flushed.wait(20)
    b = threading.Thread(target=second)
    b.start()
    waited = wait_for_lock_waiter(engine)
    assert waited or engine.dialect.name == "sqlite"
    release.set()
    a.join(30)
    b.join(30)
    assert not errors, errors
    assert chain_report(engine).intact
    with read_session(engine) as s:
        bodies = list(s.scalars(select(TicketEvent.body).where(TicketEvent.ticket_id == tid).order_by(TicketEvent.id)))
    assert bodies[1:] == ["first", "second"]


def test_events_of_one_flush_chain_in_order(engine, staff):
    tid = new_ticket(engine, staff)
    with transaction(engine) as s:
        ticket = s.get(Ticket, tid)
        for i in range(5):
            add_event(s, ticket, EventKind.INTERNAL_NOTE, actor=None, actor_label="system", now=NOW, body=f"n{i}",
                      meta={"k": [i, "x"], "a": {"z": 1, "b": None}})
    assert chain_report(engine).intact


def test_events_written_before_chain_hashes_are_sealed(engine, staff, capsys):
    legacy = [awaiting_confirmation(engine, staff, summary=f"Old ticket {n}") for n in range(3)]
    with transaction(engine) as s, audit_chain.maintenance(s.connection()):  # as migration 0008 leaves them
        s.execute(text("UPDATE ticket_events SET chain_hash = NULL"))
    report = chain_report(engine)
    assert report.intact and report.unsealed == report.events > 0
    code, out = verify_cli(engine, capsys)
    assert code == 0 and "are not covered yet (verify-audit --seal)" in out

    with transaction(engine) as s:  # a new event seals its ticket's history first
        tickets.internal_note(s, actor=staff.tech, ticket_id=legacy[0], text="Still waiting for the user")
    report = chain_report(engine)
    assert report.intact and report.unsealed == report.events - len(event_ids(engine, legacy[0]))

    code, out = verify_cli(engine, capsys, "--seal")
    assert code == 0
    sealed, summary = out.splitlines()
    assert sealed == f"sealed {report.unsealed:,} event(s) written before chain hashes"
    assert summary.startswith("audit trail intact: 3 ticket(s)") and "not covered" not in summary
    with read_session(engine) as s:
        assert s.scalar(select(func.count()).select_from(TicketEvent).where(TicketEvent.chain_hash.is_(None))) == 0
    assert "sealed 0 event(s)" in verify_cli(engine, capsys, "--seal")[1]


# --- bulk writers --------------------------------------------------------------------------------------------


def test_seeded_history_has_valid_chains(engine):
    seed_demo(engine, tickets=150, years=0.5, seed=3, demo_password="correct horse battery staple", now=NOW)
    report = chain_report(engine)
    assert report.intact and report.tickets == 150 and report.unsealed == 0
    with read_session(engine) as s:  # fractional times (SLA breaches) and rich meta are among them
        assert s.scalar(select(func.count()).select_from(TicketEvent)
                        .where(TicketEvent.kind == EventKind.SLA_BREACHED.value)) > 0


def _write_csv(path: Path, header: list[str], rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.DictWriter(fh, fieldnames=header)
        out.writeheader()
        out.writerows(rows)
    return path


def test_generic_import_writes_valid_chains(engine, staff, tmp_path):
    header = ["external_id", "created_at", "summary", "category", "priority", "status", "assignee", "resolved_at"]
    rows = [{"external_id": "X-1", "created_at": "2026-01-05T09:00:00Z", "summary": "Old mail issue",
             "category": "Software", "priority": "High", "status": "resolved", "assignee": "tech",
             "resolved_at": "2026-01-06T10:30:00Z"},
            {"external_id": "X-2", "created_at": "2026-01-07T09:00:00Z", "summary": "Old VPN issue",
             "category": "Networking", "priority": "Low", "status": "new", "assignee": "", "resolved_at": ""}]
    assert import_csv(engine, _write_csv(tmp_path / "a.csv", header, rows)).created == 2
    rows[1].update(status="resolved", assignee="tech2", resolved_at="2026-01-08T11:00:00Z")
    assert import_csv(engine, _write_csv(tmp_path / "b.csv", header, rows)).updated == 1
    report = chain_report(engine)
    assert report.intact and report.tickets == 2 and report.unsealed == 0


SN_HEADER = ["number", "incident_state", "sys_mod_count", "sys_updated_at", "sys_updated_by", "opened_at",
             "opened_by", "priority", "caller_id", "category", "assigned_to", "contact_type"]


def _sn(number: str, state: str, mod: int, at: str, assignee: str) -> dict[str, str]:
    return {"number": number, "incident_state": state, "sys_mod_count": str(mod), "sys_updated_at": at,
            "sys_updated_by": f"Updated by {mod}", "opened_at": "29/2/2016 01:16", "opened_by": "Opened by 17",
            "priority": "3 - Moderate", "caller_id": "Caller 2403", "category": "Category 55", "assigned_to": assignee,
            "contact_type": "Phone"}


def test_servicenow_import_writes_valid_chains_and_appends_to_them(engine, tmp_path):
    rows = [_sn("INC1", "New", 0, "29/2/2016 01:23", "?"), _sn("INC1", "Active", 1, "1/3/2016 9:05", "Resolver 7"),
            _sn("INC2", "New", 0, "2/3/2016 8:00", "?"), _sn("INC1", "Resolved", 2, "1/3/2016 17:40", "Resolver 7")]
    assert import_csv(engine, _write_csv(tmp_path / "a.csv", SN_HEADER, rows[:3])).created == 2
    report = import_csv(engine, _write_csv(tmp_path / "b.csv", SN_HEADER, rows))
    assert (report.updated, report.refused) == (1, [])
    report_chain = chain_report(engine)
    assert report_chain.intact and report_chain.tickets == 2 and report_chain.unsealed == 0
