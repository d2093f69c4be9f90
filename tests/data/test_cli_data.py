"""The CLI's data commands on SQLite and PostgreSQL: seed-demo, import-csv (generic layout), export-csv,
export-events, backup and restore, driven through ``lib.cli.main`` and checked against the database."""

from __future__ import annotations

import csv
import io
import random
import sys
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from lib import sla, tickets
from lib.cli import main
from lib.db import read_session, transaction
from lib.metrics import metrics_store
from lib.models import Requester, Setting, Ticket, TicketEvent, User
from lib.seed import demo as seed_module
from lib.seed.demo import seed_demo
from lib.seed.rows import INDEX_MEMO_KEY, check_columns
from lib.transfer.exporter import export_events_csv, export_tickets_csv
from lib.transfer.importer import import_csv
from lib.users import check_password
from lib.workflow import TRANSITIONS, ClosureReason, EventKind, Status
from tests.conftest import fresh_sqlite

NOW = datetime(2026, 3, 2, 15, 30, tzinfo=UTC)
PASSWORD = "correct horse battery staple"


def url_of(engine) -> str:  # type: ignore[no-untyped-def]
    return engine.url.render_as_string(hide_password=False)


def load(engine):  # type: ignore[no-untyped-def]
    with Session(engine) as s:  # closed, not rolled back: the objects stay readable
        ts = {t.id: t for t in s.scalars(select(Ticket)).unique()}
        evs: dict[int, list[TicketEvent]] = defaultdict(list)
        for ev in s.scalars(select(TicketEvent).order_by(TicketEvent.occurred_at, TicketEvent.id)).unique():
            evs[ev.ticket_id].append(ev)
    return ts, evs


# --- seed-demo ------------------------------------------------------------------------------------------


def test_seed_demo_is_consistent(engine):
    summary = seed_demo(engine, tickets=2000, years=1, seed=7, demo_password=PASSWORD, now=NOW)
    assert summary.startswith("seeded 2,000 tickets") and PASSWORD not in summary
    ts, evs = load(engine)
    assert len(ts) == 2000
    with read_session(engine) as s:
        staff = list(s.scalars(select(User)))
        assert {u.username for u in staff} == {"lead", "senior1", "senior2"} | {f"tech{i}" for i in range(1, 9)}
        assert len({u.password_hash for u in staff}) == 1  # hashed once
        assert check_password(PASSWORD, staff[0].password_hash)
        assert all(u.skills for u in staff)
    n = len(ts)
    prio = Counter(t.priority for t in ts.values())
    for p, share in ((1, 0.30), (2, 0.45), (3, 0.20), (4, 0.05)):
        assert abs(prio[p] / n - share) < 0.05, prio
    open_share = sum(t.is_open for t in ts.values()) / n
    assert 0.03 <= open_share <= 0.08
    assert sum(t.status != Status.CLOSED for t in ts.values()) / n <= 0.09
    reasons = Counter(t.closure_reason for t in ts.values() if t.status == Status.CLOSED)
    assert set(reasons) == {r.value for r in ClosureReason}
    assert reasons[ClosureReason.CONFIRMED.value] == max(reasons.values())
    assert sum(t.reopen_count > 0 for t in ts.values()) > 10
    assert Counter(t.channel for t in ts.values())["alert"] > 100
    legal = {(frm.value, (to or frm).value) for (frm, _action), to in TRANSITIONS.items()}
    for t in ts.values():
        events = evs[t.id]
        kinds = [e.kind for e in events]
        statuses = [e for e in events if e.to_status is not None]
        assert kinds[0] == EventKind.CREATED and statuses[-1].to_status == t.status, t.id
        moves = {(e.from_status, e.to_status) for e in statuses[1:]}
        assert moves <= legal, (t.id, moves - legal)  # every move is one the workflow allows
        assert t.is_open == (Status(t.status) in (Status.NEW, Status.ASSIGNED, Status.IN_PROGRESS,
                                                   Status.WAITING_USER, Status.WAITING_VENDOR))
        assert t.reopen_count == kinds.count(EventKind.REOPENED), t.id
        assert t.version == max((e.meta or {}).get("v", 0) for e in events), t.id
        assert t.sla_policy and t.sla_policy["priority"] == t.priority
        if t.status == Status.CLOSED:
            closed = [e for e in events if e.kind == EventKind.CLOSED]
            assert t.closure_reason and closed and closed[-1].occurred_at == t.closed_at, t.id
            assert closed[-1].meta["reason"] == t.closure_reason
        else:
            assert t.closure_reason is None and t.closed_at is None
        if t.closure_reason == ClosureReason.NOT_APPLICABLE:
            assert t.channel == "alert" and t.requester_id is None
        if t.closure_reason == ClosureReason.CONFIRMED:
            assert t.confirmed_at is not None and t.resolution_notes and (t.root_cause or t.root_cause_unknown_reason)
        acks = [e.occurred_at for e in events if e.kind == EventKind.ACKNOWLEDGED]
        assert t.acknowledged_at == (acks[0] if acks else None), t.id
        if t.resolved_at is not None:
            assert t.resolved_at == [e.occurred_at for e in events if e.kind == EventKind.RESOLVED][-1]
        breaches = {e.meta["clock"]: e for e in events if e.kind == EventKind.SLA_BREACHED}
        assert ("response" in breaches) == (t.response_breached_at is not None), t.id
        assert ("resolution" in breaches) == (t.resolution_breached_at is not None), t.id
        for clock, ev in breaches.items():
            assert ev.meta["due_at"] == getattr(t, f"{clock}_breached_at").isoformat()
            assert ev.meta["priority"] == t.priority
        assert [e.occurred_at for e in events] == sorted(e.occurred_at for e in events)
        assert all(e.occurred_at <= NOW for e in events)
    assert 0.02 < sum(t.resolution_breached_at is not None for t in ts.values()) / n < 0.25


def test_a_seeded_desk_has_its_day_counts_folded(engine):
    """PostgreSQL's triggers append day-count deltas for the worker to fold; a seed folds them itself, so the
    metrics read summed days rather than millions of deltas before the worker's first cycle."""
    from lib.metrics import metrics_store

    seed_demo(engine, tickets=300, years=0.5, seed=5, demo_password=PASSWORD, now=NOW)
    with read_session(engine) as s:
        assert metrics_store.check_days(s) == []  # the day counts equal a recount
        if engine.dialect.name == "postgresql":
            assert s.scalar(text(f"SELECT count(*) FROM {metrics_store.DELTAS}")) == 0
            assert s.scalar(text(f"SELECT count(*) FROM {metrics_store.DAYS}")) > 0


def test_seeded_sla_columns_match_lib_sla(engine):
    """The due and at-risk moments written in bulk are the ones lib.sla computes from the events."""
    seed_demo(engine, tickets=600, years=0.5, seed=3, demo_password=PASSWORD, now=NOW)
    rng = random.Random(1)
    with read_session(engine) as s:
        all_ids = list(s.scalars(select(Ticket.id)))
        for tid in rng.sample(all_ids, 200):
            t = s.get(Ticket, tid)
            response, resolution = sla.compute(t.sla_policy, created_at=t.created_at,
                                               intervals=sla.running_intervals(s, t))
            assert (t.response_due_at, t.response_risk_at) == (response.due_at, response.risk_at), tid
            assert (t.resolution_due_at, t.resolution_risk_at) == (resolution.due_at, resolution.risk_at), tid
            breached = sla.responded_at(t) is None and t.response_due_at <= NOW or (
                sla.responded_at(t) is not None and sla.responded_at(t) > t.response_due_at)
            assert (t.response_breached_at is not None) == breached, tid


def _exports(engine, folder: Path) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    export_tickets_csv(engine, folder / "t.csv")
    export_events_csv(engine, folder / "e.csv")
    return (folder / "t.csv").read_text(), (folder / "e.csv").read_text()


def test_seed_demo_is_deterministic_and_bulk_path_matches(sqlite_template, tmp_path, monkeypatch):
    outputs = []
    for i, bulk_from in enumerate((10**9, 300, 10**9)):
        folder = tmp_path / str(i)
        folder.mkdir()
        eng = fresh_sqlite(sqlite_template, folder)
        monkeypatch.setattr(seed_module, "BULK_FROM", bulk_from)  # 300: second process, indexes built at the end
        with eng.connect() as conn:
            indexes = set(conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'index'").scalars())
        seed_demo(eng, tickets=800, years=0.5, seed=11 if i < 2 else 12, demo_password=PASSWORD, now=NOW,
                  batch_size=250)
        with eng.connect() as conn:
            assert set(conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'index'").scalars()) == indexes
        with read_session(eng) as s:
            assert s.get(Setting, INDEX_MEMO_KEY) is None
        outputs.append(_exports(eng, folder))
        eng.dispose()
    assert outputs[0] == outputs[1]
    assert outputs[0] != outputs[2]


def test_seed_demo_reuses_staff_and_appends(engine):
    with transaction(engine) as s:
        from lib.users import create_user

        create_user(s, actor=None, username="lead", name="Real Lead", email=None, password="first lead password",
                    role="lead", first_run=True)
    summary = seed_demo(engine, tickets=150, years=0.2, seed=1, now=NOW)
    assert "10 new demo staff accounts" in summary and "their password (shown only now" in summary
    generated = summary.rsplit(": ", 1)[1]
    with read_session(engine) as s:
        lead = s.scalar(select(User).where(User.username == "lead"))
        assert lead.name == "Real Lead" and check_password("first lead password", lead.password_hash)
        lead_id = lead.id
        tech = s.scalar(select(User).where(User.username == "tech1"))
        assert check_password(generated, tech.password_hash)
    second = seed_demo(engine, tickets=100, years=0.2, seed=2, now=NOW)
    assert "existing demo staff accounts" in second and "password" not in second
    with read_session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Ticket)) == 250
        assert s.scalar(select(func.max(Ticket.id))) == 250
    with transaction(engine) as s:  # the id sequence moved on: the services keep numbering after the seed
        t = tickets.create_ticket(s, actor=lead_id, draft=tickets.TicketDraft(
            summary="After the seed", category="Other", priority="Low", channel="phone",
            requester_id=s.scalar(select(Requester.id).limit(1))))
        assert t.id == 251


def test_seed_bulk_path_builds_the_indexes_again(engine, monkeypatch):
    """Large runs generate in a second process and, on an empty database, build the indexes at the end."""
    def indexes() -> set[str]:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                return set(conn.exec_driver_sql("SELECT indexname FROM pg_indexes WHERE tablename IN "
                                                "('tickets', 'ticket_events')").scalars())
            return set(conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name IN "
                                            "('tickets', 'ticket_events')").scalars())

    before = indexes()
    assert {"ix_tickets_queue", "ix_events_ticket"} <= before
    monkeypatch.setattr(seed_module, "BULK_FROM", 100)
    seed_demo(engine, tickets=700, years=0.5, seed=9, demo_password=PASSWORD, now=NOW, batch_size=200)
    assert indexes() == before
    ts, evs = load(engine)
    assert len(ts) == 700 and all(evs[t] for t in ts)
    with Session(engine) as s:
        assert s.get(Setting, INDEX_MEMO_KEY) is None
        assert s.get(Setting, seed_module.ROLLUP_MEMO_KEY) is None
        # the metrics tables were filled at the end (SQLite) or kept by the triggers (PostgreSQL), and agree
        assert metrics_store.check(s) == [] and metrics_store.check_days(s) == []
        assert s.scalar(text("SELECT count(*) FROM ticket_metrics")) == 700
        triggers = (s.scalars(text("SELECT name FROM sqlite_master WHERE type = 'trigger'")) if
                    engine.dialect.name == "sqlite" else
                    s.scalars(text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")))
        assert {"ticket_metrics_insert", "ticket_metrics_update", "metric_days_insert"} <= set(triggers)


@pytest.mark.parametrize("kwargs, field", [
    ({"tickets": -1, "years": 1}, "--tickets"), ({"tickets": 10, "years": 0}, "--years"),
    ({"tickets": 10, "years": 1, "demo_password": "short"}, "--demo-password"),
])
def test_seed_demo_refuses_bad_arguments(sqlite_engine, kwargs, field):
    from lib.errors import ValidationError

    with pytest.raises(ValidationError) as exc:
        seed_demo(sqlite_engine, seed=1, **kwargs)
    assert field in exc.value.fields


def test_seed_rows_cover_every_column():
    check_columns()


# --- the CLI end to end ---------------------------------------------------------------------------------


def run_cli(*argv: str, stdin: str | None = None, monkeypatch=None) -> int:  # type: ignore[no-untyped-def]
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    return main(list(argv))


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_cli_end_to_end(engine, tmp_path, monkeypatch, capsys):
    url = url_of(engine)
    assert run_cli("--database-url", url, "init-db") == 0
    assert run_cli("--database-url", url, "create-user", "boss", "--role", "lead", "--password-stdin",
                   stdin="a long enough password\n", monkeypatch=monkeypatch) == 0
    assert run_cli("--database-url", url, "seed-demo", "--tickets", "400", "--years", "0.5", "--seed", "5",
                   "--quiet") == 0
    out = capsys.readouterr().out
    assert "seeded 400 tickets" in out and "11 new demo staff accounts" in out and "their password" in out
    assert run_cli("--database-url", url, "export-csv", str(tmp_path / "t.csv"), "--quiet") == 0
    assert run_cli("--database-url", url, "export-events", str(tmp_path / "e.csv"), "--quiet") == 0
    rows, events = read_csv(tmp_path / "t.csv"), read_csv(tmp_path / "e.csv")
    with Session(engine) as s:
        assert len(rows) == s.scalar(select(func.count()).select_from(Ticket)) == 400
        assert len(events) == s.scalar(select(func.count()).select_from(TicketEvent))
        first = s.get(Ticket, 1)
    assert rows[0]["number"] == "HD-000001" and rows[0]["created_at"] == first.created_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert all(r["created_at"].endswith("Z") for r in rows)
    assert {r["priority"] for r in rows} == {"Low", "Medium", "High", "Critical"}
    assert {r["response_breached"] for r in rows} == {"yes", "no"}
    assert [e["ticket"] for e in events] == sorted(e["ticket"] for e in events)
    assert events[0]["kind"] == "created" and events[0]["to_status"] == "new"
    assert run_cli("--database-url", url, "export-csv", "/nonexistent/folder/t.csv") == 1


def test_cli_backup_and_restore_sqlite(sqlite_engine, tmp_path, capsys):
    url = url_of(sqlite_engine)
    seed_demo(sqlite_engine, tickets=120, years=0.2, seed=4, demo_password=PASSWORD, now=NOW)
    backup_path = tmp_path / "backup.sqlite3"
    assert run_cli("--database-url", url, "backup", str(backup_path), "--quiet") == 0
    assert run_cli("--database-url", url, "backup", str(backup_path), "--quiet") == 1  # never overwritten
    seed_demo(sqlite_engine, tickets=30, years=0.2, seed=5, now=NOW)
    capsys.readouterr()
    assert run_cli("--database-url", url, "restore", str(backup_path)) == 1
    assert "--force" in capsys.readouterr().err
    assert run_cli("--database-url", url, "restore", str(backup_path), "--force") == 0
    sqlite_engine.dispose()
    with read_session(sqlite_engine) as s:
        assert s.scalar(select(func.count()).select_from(Ticket)) == 120
    fresh = tmp_path / "fresh.sqlite3"  # restoring into a new file needs no --force
    assert run_cli("--database-url", f"sqlite:///{fresh}", "restore", str(backup_path)) == 0
    not_a_backup = tmp_path / "x.csv"
    not_a_backup.write_text("a,b\n1,2\n")
    assert run_cli("--database-url", f"sqlite:///{tmp_path / 'other.sqlite3'}", "restore", str(not_a_backup)) == 1
    assert "not a SQLite database" in capsys.readouterr().err


def test_cli_backup_and_restore_postgres(pg_engine, tmp_path):
    import shutil

    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
        pytest.skip("pg_dump/pg_restore not installed")
    from tests.conftest import reset_postgres

    reset_postgres(pg_engine)
    url = url_of(pg_engine)
    seed_demo(pg_engine, tickets=80, years=0.2, seed=4, demo_password=PASSWORD, now=NOW)
    dump = tmp_path / "backup.dump"
    assert run_cli("--database-url", url, "backup", str(dump), "--quiet") == 0
    seed_demo(pg_engine, tickets=20, years=0.2, seed=5, now=NOW)
    assert run_cli("--database-url", url, "restore", str(dump)) == 1
    assert run_cli("--database-url", url, "restore", str(dump), "--force") == 0
    with read_session(pg_engine) as s:
        assert s.scalar(select(func.count()).select_from(Ticket)) == 80
    reset_postgres(pg_engine)


# --- import-csv, generic layout ---------------------------------------------------------------------------

HEADER = ("external_id,created_at,summary,description,category,priority,status,channel,requester_name,"
          "requester_email,requester_phone,assignee,resolved_at,closed_at,closure_reason,resolution_notes,root_cause")
GOOD = [
    'G-1,2024-03-01T09:15:00Z,Printer jams on tray 2,"Every morning, since Monday",Printing,High,,phone,Ann Smith,'
    'ann@example.com,,,,,,,',
    "G-2,2024-03-02 10:00,VPN drops,,networking,medium,Closed,E-mail,Bob Jones,bob@example.com,,tech,"
    "2024-03-02T12:00:00Z,2024-03-03T09:00:00+01:00,no reply,Reset the VPN profile,Corrupt profile",
    "G-3,2024-03-05,Laptop fan loud 🙂,'; DROP TABLE tickets; --,Hardware,4,resolved,walk in,Cy Young,,+44 20 7946 0000,"
    ",2024-03-05T10:00:00Z,,,Cleaned the fan,",
]
BAD = [
    ("G-4,2024-03-02,Bad priority,,Software,urgent,,,,,,,,,,,", "priority 'urgent' is not one of Low, Medium, High, Critical"),
    ("G-5,2024-03-02,Bad status,,Software,Low,finished,,,,,,,,,,", "status 'finished' is not one of"),
    ("G-6,2024-03-02,,,Software,Low,,,Dee New,dee@example.com,,,,,,,", "summary is required"),
    ("G-7,yesterday,Bad date,,Software,Low,,,,,,,,,,,", "created_at 'yesterday' is not an ISO-8601 time"),
    ("G-8,2024-03-02,Wrong types,,Software,3.5,,,,not-an-email,,,,yes,,,", "priority '3.5'"),
    ("G-9,2024-03-02,Closed without time,,Software,Low,closed,,,,,,,,,,", "closed_at is required for a closed ticket"),
    ("G-10,2024-03-02,Unknown people,,Sofware,Low,,,,,,nobody,,,,,", "category 'Sofware' is not a known category"),
    ("G-11,2024-03-02,Too few cells,Software,Low", "has 5 cells where the header has 17"),
    ("G-12,2024-03-02,Control\x07char,,Software,Low,,,,,,,,,,,", "summary contains control characters"),
]


def write_csv(path: Path, lines: list[str]) -> Path:
    path.write_text(HEADER + "\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_generic_import_refuses_rows_by_number_and_is_idempotent(engine, staff, tmp_path):
    path = write_csv(tmp_path / "tickets.csv", GOOD + [line for line, _ in BAD])
    report = import_csv(engine, path)
    assert (report.layout, report.created, report.updated, report.unchanged) == ("generic", 3, 0, 0)
    assert len(report.refused) == len(BAD)
    for n, (refused, (_, reason)) in enumerate(zip(report.refused, BAD, strict=True), start=len(GOOD) + 2):
        assert refused.startswith(f"row {n}: ") and reason in refused, refused
    assert "not-an-email" in report.refused[4] and "closed_at 'yes'" in report.refused[4]
    assert "assignee 'nobody'" in report.refused[6]
    ts, evs = load(engine)
    by_ref = {t.external_ref: t for t in ts.values()}
    assert set(by_ref) == {"G-1", "G-2", "G-3"}
    with read_session(engine) as s:  # nothing of a refused row was written, not even its new contact
        assert s.scalar(select(Requester).where(Requester.email == "dee@example.com")) is None
    g2, g3 = by_ref["G-2"], by_ref["G-3"]
    assert (g2.status, g2.closure_reason, g2.channel, g2.priority) == ("closed", "no_reply", "email", 2)
    assert g2.closed_at == datetime(2024, 3, 3, 8, tzinfo=UTC) and g2.assignee_id == staff.tech
    assert [(e.kind, e.from_status, e.to_status) for e in evs[g2.id]] == [
        ("created", None, "new"), ("assigned", None, None), ("resolved", "new", "resolved"), ("closed", "resolved", "closed")]
    assert g3.description.startswith("'; DROP TABLE") and "🙂" in g3.summary and g3.status == "resolved"
    assert by_ref["G-1"].is_open and by_ref["G-1"].channel == "phone"
    events_before = sum(len(v) for v in evs.values())
    again = import_csv(engine, path)
    assert (again.created, again.updated, again.unchanged, len(again.refused)) == (0, 0, 3, len(BAD))
    assert sum(len(v) for v in load(engine)[1].values()) == events_before
    # a changed row updates its ticket, each change an event
    changed = write_csv(tmp_path / "changed.csv", [GOOD[0].replace("High,,phone", "Critical,in progress,phone")])
    assert import_csv(engine, changed).updated == 1
    ts, evs = load(engine)
    g1 = next(t for t in ts.values() if t.external_ref == "G-1")
    assert (g1.priority, g1.status) == (4, "in_progress")
    assert [(e.kind, e.field) for e in evs[g1.id]][-2:] == [("field_changed", "priority"), ("status_changed", None)]
    # once the desk works on it, the file no longer overwrites it
    with transaction(engine) as s:
        tickets.internal_note(s, actor=staff.tech, ticket_id=g1.id, text="Called the user")
    report = import_csv(engine, write_csv(tmp_path / "again.csv", [GOOD[0]]))
    assert report.updated == 0 and "worked on in the desk" in report.refused[0]


def test_generic_import_leaves_nothing_of_a_row_that_fails_while_writing(engine, staff, tmp_path, monkeypatch):
    import lib.transfer.importer_generic as generic

    original = generic._apply_status

    def explode(session, ticket, row, now):  # type: ignore[no-untyped-def]
        if row.external_id == "G-1":
            raise ValueError("disk on fire")
        return original(session, ticket, row, now)

    monkeypatch.setattr(generic, "_apply_status", explode)
    report = import_csv(engine, write_csv(tmp_path / "t.csv", GOOD))
    assert report.created == 2 and report.refused == ["row 2: disk on fire"]
    with read_session(engine) as s:
        assert s.scalar(select(Ticket).where(Ticket.external_ref == "G-1")) is None
        assert s.scalar(select(Requester).where(Requester.email == "ann@example.com")) is None
        assert s.scalar(select(func.count()).select_from(TicketEvent).where(TicketEvent.ticket_id.not_in(
            select(Ticket.id)))) == 0


def test_import_cli_reports_and_exit_codes(sqlite_engine, tmp_path, capsys):
    url = url_of(sqlite_engine)
    good = write_csv(tmp_path / "good.csv", GOOD[:1])
    assert run_cli("--database-url", url, "import-csv", str(good), "--quiet") == 0
    assert "1 tickets created" in capsys.readouterr().out
    bad = write_csv(tmp_path / "bad.csv", [BAD[0][0]])
    assert run_cli("--database-url", url, "import-csv", str(bad), "--quiet") == 1
    captured = capsys.readouterr()
    assert "refused: row 2: priority 'urgent'" in captured.err and "1 refused" in captured.out
    odd = tmp_path / "odd.csv"
    odd.write_text("id,title\n1,x\n")
    assert run_cli("--database-url", url, "import-csv", str(odd)) == 1
    assert "cannot tell the layout" in capsys.readouterr().err
    assert run_cli("--database-url", url, "import-csv", str(odd), "--layout", "generic") == 1
    assert "missing column(s) external_id, created_at, summary" in capsys.readouterr().err


def test_export_handles_text_and_missing_values(engine, staff, tmp_path):
    import_csv(engine, write_csv(tmp_path / "t.csv", GOOD))
    out = tmp_path / "out"
    out.mkdir()
    assert export_tickets_csv(engine, out / "tickets.csv") == 3
    rows = {r["summary"]: r for r in read_csv(out / "tickets.csv")}
    g3 = rows["Laptop fan loud 🙂"]
    assert (g3["status"], g3["resolved_at"], g3["closed_at"], g3["assignee"]) == ("resolved", "2024-03-05T10:00:00Z", "", "")
    assert rows["VPN drops"]["closed_at"] == "2024-03-03T08:00:00Z" and rows["VPN drops"]["assignee"] == "Tom Tech"
    assert export_events_csv(engine, out / "events.csv") == 7
    assert {r["actor"] for r in read_csv(out / "events.csv")} == {"import"}
    assert sorted(p.name for p in out.iterdir()) == ["events.csv", "tickets.csv"]  # no partial files left


def test_seed_demo_now_gives_the_same_data_on_both_engines(engine, sqlite_template, tmp_path, capsys):
    """``seed-demo --now`` fixes the moment the data ends at: the same seed and moment give identical tickets and
    events on SQLite and PostgreSQL (the benchmarks compare the engines on that)."""
    args = ["seed-demo", "--tickets", "300", "--years", "0.5", "--seed", "7", "--now", "2026-11-30T10:00:00Z",
            "--demo-password", PASSWORD, "--quiet"]
    assert run_cli("--database-url", url_of(engine), *args) == 0
    for name in ("other", "a", "b"):
        (tmp_path / name).mkdir()
    other = fresh_sqlite(sqlite_template, tmp_path / "other")
    assert run_cli("--database-url", str(other.url), *args) == 0
    assert _exports(engine, tmp_path / "a") == _exports(other, tmp_path / "b")
    other.dispose()
    capsys.readouterr()
    assert run_cli("--database-url", url_of(engine), "seed-demo", "--now", "2026-11-30 10:00") == 1
    assert "has no time zone" in capsys.readouterr().err
