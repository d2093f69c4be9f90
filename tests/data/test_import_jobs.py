"""Imports from the app on SQLite and PostgreSQL: dry runs (counts of a run, nothing written), the preview (parsed
values and the column mapping), import jobs (started with an audit entry, run in the page or by the worker, their
refused rows as CSV) and an interrupted job that resumes from its checkpoint without importing anything twice."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from lib import worker
from lib.config import get_settings
from lib.db import read_session, transaction
from lib.errors import PermissionDenied, ValidationError
from lib.models import AuditLog, Category, ImportJob, ImportRefusal, Requester, Ticket, TicketEvent, User
from lib.transfer import import_jobs, importer_generic, importer_servicenow
from lib.transfer.import_jobs import JobState
from lib.transfer.import_preview import preview
from lib.transfer.import_rows import IGNORED, Item
from lib.transfer.importer import import_csv
from tests.conftest import Staff, fresh_sqlite, make_staff

HEADER = ("external_id,created_at,summary,description,category,priority,status,channel,requester_name,"
          "requester_email,assignee,resolved_at,closed_at,closure_reason,legacy_code")
GOOD = [
    "A-1,2024-03-01T09:15:00Z,Printer jams,Tray 2,Printing,High,,phone,Ann Smith,ann@example.com,,,,,X1",
    "A-2,2024-03-02 10:00,VPN drops,,networking,2,Closed,E-mail,Bob Jones,bob@example.com,tech,"
    "2024-03-02T12:00:00Z,2024-03-03T09:00:00+01:00,no reply,X2",
    "A-3,2024-03-05,Laptop fan loud,,Hardware,Low,resolved,walk in,Cy Young,,,2024-03-05T10:00:00Z,,,X3",
    "A-4,2024-03-06,Mail quota,,Software,Medium,in progress,,Dee Dee,dee@example.com,tech,,,,X4",
    "A-5,2024-03-07,New monitor,,Hardware,Low,,,Ann Smith,ann@example.com,,,,,X5",
    "A-6,2024-03-08,Wi-Fi slow,,Networking,High,,,Eve Long,eve@example.com,,,,,X6",
    "A-7,2024-03-09,Password reset,,Software,Critical,,,Fay Short,fay@example.com,,,,,X7",
]
BAD = [
    "A-8,2024-03-02,Bad priority,,Software,urgent,,,Gil New,gil@example.com,,,,,X8",
    "A-9,yesterday,Bad date,,Sofware,Low,,,,,,,,,X9",
]



@pytest.fixture(autouse=True)
def _settings_read_afresh():  # type: ignore[no-untyped-def]
    """Settings a test patched into the environment are not left cached for the next test."""
    yield
    get_settings.cache_clear()


def write(path: Path, lines: list[str], header: str = HEADER) -> Path:
    path.write_text(header + "\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def counts(engine: Engine) -> dict[str, int]:
    with read_session(engine) as s:
        return {model.__tablename__: s.scalar(select(func.count()).select_from(model)) or 0
                for model in (Ticket, TicketEvent, Requester, Category, User, AuditLog)}


def tickets_of(engine: Engine) -> list[tuple[str, str, int, int, int]]:
    """Each imported ticket: (reference, status, priority, events, version), sorted."""
    with read_session(engine) as s:
        events = dict(s.execute(select(TicketEvent.ticket_id, func.count()).group_by(TicketEvent.ticket_id)).all())
        return sorted((f"{t.external_source}:{t.external_ref}", t.status, t.priority, events.get(t.id, 0), t.version)
                      for t in s.scalars(select(Ticket).where(Ticket.external_ref.is_not(None))).unique())


# --- dry runs -----------------------------------------------------------------------------------------------


def test_dry_run_reports_the_counts_of_a_run_and_writes_nothing(engine, staff, tmp_path, monkeypatch):
    monkeypatch.setattr(importer_generic.LAYOUT, "batch", 2)  # several batches: later rows see earlier ones
    path = write(tmp_path / "t.csv", GOOD + BAD + [GOOD[0].replace("Printer jams", "Printer jams again")])
    before = counts(engine)
    dry = import_csv(engine, path, dry_run=True)
    assert counts(engine) == before
    assert (dry.created, dry.updated, dry.unchanged, dry.rows) == (7, 1, 0, 10)  # the last row updates A-1
    assert [r.split(":")[0] for r in dry.refused] == ["row 9", "row 10"]
    assert "dry run" in dry.summary() and "would be created" in dry.summary()
    real = import_csv(engine, path)
    assert (real.created, real.updated, real.unchanged, real.refused) == (dry.created, dry.updated, dry.unchanged,
                                                                          dry.refused)
    after = counts(engine)
    again = import_csv(engine, path, dry_run=True)
    # A-1 is in the file twice: its first row puts the old summary back, its last row the new one.
    assert (again.created, again.updated, again.unchanged, len(again.refused)) == (0, 2, 6, 2)
    assert counts(engine) == after


SN_HEADER = ("number,incident_state,active,reassignment_count,reopen_count,sys_mod_count,made_sla,caller_id,opened_by,"
             "opened_at,sys_created_by,sys_created_at,sys_updated_by,sys_updated_at,contact_type,location,category,"
             "subcategory,u_symptom,cmdb_ci,impact,urgency,priority,assignment_group,assigned_to,knowledge,"
             "u_priority_confirmation,notify,problem_id,rfc,vendor,caused_by,closed_code,resolved_by,resolved_at,"
             "closed_at")


def sn_row(number: str, state: str, mod: int, at: str, *, category: str = "Category 9", who: str = "Resolver 1",
           priority: str = "3 - Moderate") -> str:
    return (f"{number},{state},TRUE,0,0,{mod},TRUE,Caller 1,Opened by 1,01-03-2016 09:00,Created by 1,"
            f"01-03-2016 09:00,Updated by 1,{at},Phone,Location 1,{category},Subcategory 1,Symptom 1,?,2 - Medium,"
            f"2 - Medium,{priority},Group 1,{who},FALSE,FALSE,Do Not Notify,?,?,?,?,?,?,?,?")


SN_ROWS = [
    sn_row("INC001", "New", 0, "01-03-2016 09:00"),
    sn_row("INC002", "New", 0, "01-03-2016 09:05", category="Category 9", who="Resolver 2"),
    sn_row("INC001", "Active", 1, "01-03-2016 10:00"),
    sn_row("INC003", "New", 0, "02-03-2016 09:00", who="Resolver 2"),
    sn_row("INC002", "Resolved", 1, "01-03-2016 11:00", who="Resolver 2"),
    sn_row("INC003", "Nonsense", 1, "02-03-2016 10:00", who="Resolver 2"),
    sn_row("INC004", "New", 0, "03-03-2016 09:00", category="Category 12"),
]


def test_servicenow_dry_run_across_batches_matches_the_run(engine, tmp_path, monkeypatch):
    # One incident per batch: a dry run keeps the categories and placeholder accounts an earlier incident made.
    monkeypatch.setattr(importer_servicenow.LAYOUT, "batch", 1)
    path = write(tmp_path / "sn.csv", SN_ROWS, SN_HEADER)
    before = counts(engine)
    dry = import_csv(engine, path, dry_run=True)
    assert counts(engine) == before
    assert (dry.layout, dry.created, len(dry.refused), dry.rows) == ("servicenow", 3, 1, 7)
    assert dry.refused[0].startswith("INC003: row 7: incident_state 'Nonsense'")
    real = import_csv(engine, path)
    assert (real.created, real.refused) == (dry.created, dry.refused)


def test_cli_dry_run(sqlite_engine, tmp_path, capsys):
    from lib.cli import main

    make_staff(sqlite_engine)
    url = sqlite_engine.url.render_as_string(hide_password=False)
    path = write(tmp_path / "t.csv", GOOD[:2])
    before = counts(sqlite_engine)
    assert main(["--database-url", url, "import-csv", str(path), "--dry-run", "--quiet"]) == 0
    assert "dry run (generic layout) of 2 rows, nothing written: 2 tickets would be created" in \
        capsys.readouterr().out
    assert counts(sqlite_engine) == before
    assert main(["--database-url", url, "import-csv", str(write(tmp_path / "b.csv", BAD[:1])), "--dry-run"]) == 1
    assert "refused: row 2: priority 'urgent'" in capsys.readouterr().err


# --- preview ------------------------------------------------------------------------------------------------


def test_preview_shows_parsed_values_mapping_and_problems(engine, staff, tmp_path):
    path = write(tmp_path / "t.csv", GOOD[:2] + BAD)
    before = counts(engine)
    p = preview(engine, path, limit=3)
    assert counts(engine) == before
    assert (p.layout, p.total_rows, p.header[0]) == ("generic", 4, "external_id")
    mapping = dict(p.mapping)
    assert mapping["legacy_code"] == IGNORED and mapping["priority"] == "priority"
    assert [c for c, _ in p.mapping] == p.header
    first, second, third = p.rows
    assert (first.where, first.outcome) == ("row 2", "would be created")
    assert first.values["Priority"] == "High" and first.values["Status"] == "New"
    assert first.values["Created"] == datetime(2024, 3, 1, 9, 15, tzinfo=UTC)
    assert first.values["Requester"] == "Ann Smith <ann@example.com>" and first.values["Channel"] == "Phone"
    assert second.values["Category"] == "Networking" and second.values["Priority"] == "Medium"
    assert second.values["Status"] == "Closed" and second.values["Assignee"] == "Tom Tech"
    assert second.values["Closed"] == datetime(2024, 3, 3, 8, tzinfo=UTC)
    assert (third.outcome, third.problems) == ("refused", ["priority 'urgent' is not one of Low, Medium, High, "
                                                           "Critical"])
    import_csv(engine, path)
    assert [r.outcome for r in preview(engine, path).rows] == ["unchanged", "unchanged", "refused", "refused"]


def test_preview_of_a_bad_file_says_why(engine, tmp_path):
    odd = tmp_path / "odd.csv"
    odd.write_text("id,title\n1,x\n")
    with pytest.raises(ValidationError, match="cannot tell the layout"):
        preview(engine, odd)
    with pytest.raises(ValidationError, match="missing column"):
        preview(engine, odd, layout="generic")


def test_servicenow_preview_maps_its_columns(engine, tmp_path):
    path = write(tmp_path / "sn.csv", SN_ROWS, SN_HEADER)
    p = preview(engine, path)
    mapping = dict(p.mapping)
    assert mapping["incident_state"].startswith("status") and mapping["number"].startswith("external reference")
    assert [(r.where.split(" ")[0], r.outcome) for r in p.rows] == [
        ("INC001", "would be created"), ("INC002", "would be created"), ("INC003", "refused"),
        ("INC004", "would be created")]
    assert p.rows[1].values["Status"] == "Resolved" and p.rows[1].values["Assignee"] == "Resolver 2"
    assert p.rows[0].values["Priority"] == "Medium" and p.rows[0].values["Timeline events"] == 3


# --- jobs ---------------------------------------------------------------------------------------------------


def start(engine: Engine, staff: Staff, data: bytes, **kwargs: Any) -> tuple[int, import_jobs.Claim | None]:
    with transaction(engine) as s:
        job, claim = import_jobs.start_job(s, actor=staff.lead, filename="tickets.csv", data=data, **kwargs)
        return job.id, claim


def file_bytes(lines: list[str]) -> bytes:
    return (HEADER + "\n" + "\n".join(lines) + "\n").encode()


def test_a_small_import_runs_in_the_page_with_audit_and_refused_csv(engine, staff):
    job_id, claim = start(engine, staff, file_bytes(GOOD[:3] + BAD))
    assert claim is not None and claim.job_id == job_id
    assert import_jobs.claim_next(engine) is None  # claimed by its creation: no worker takes it
    seen: list[tuple[int, int | None]] = []
    view = import_jobs.run_job(engine, claim, progress=lambda done, total: seen.append((done, total)))
    assert (view.state, view.created, view.refused, view.rows_done, view.rows_total) == ("done", 3, 2, 5, 5)
    assert seen[-1] == (5, 5) and view.fraction == 1.0 and view.started_by == "Lena Lead"
    with read_session(engine) as s:
        job = s.get(ImportJob, job_id)
        assert job is not None and job.data is None and job.claim_token is None  # the upload is not kept
        reasons = import_jobs.refusals(s, job_id)
        audit = [(a.actor, a.action, a.target) for a in s.scalars(select(AuditLog).order_by(AuditLog.id))]
    assert audit == [("lead", "import_started", f"import {job_id}: tickets.csv"),
                     ("lead", "import_finished", f"import {job_id}: tickets.csv")]
    rows = list(csv.reader(io.StringIO(import_jobs.refusals_csv(reasons).decode("utf-8-sig"))))
    assert rows[0] == ["row", "reason"] and [r[0] for r in rows[1:]] == ["row 5", "row 6"]
    assert rows[1][1].startswith("priority 'urgent'")


def test_a_dry_run_job_writes_nothing_but_its_own_row(engine, staff):
    before = counts(engine)
    job_id, claim = start(engine, staff, file_bytes(GOOD[:2] + BAD[:1]), dry_run=True)
    assert claim is not None
    view = import_jobs.run_job(engine, claim)
    assert (view.state, view.dry_run, view.created, view.refused) == ("done", True, 2, 1)
    assert counts(engine) == before  # no tickets, and no audit entry for a dry run
    with read_session(engine) as s:
        assert len(import_jobs.refusals(s, job_id)) == 1


def test_only_a_lead_starts_an_import_and_a_bad_file_is_refused_before(engine, staff):
    with pytest.raises(PermissionDenied), transaction(engine) as s:
        import_jobs.start_job(s, actor=staff.tech, filename="t.csv", data=file_bytes(GOOD[:1]))
    with pytest.raises(ValidationError, match="missing column"), transaction(engine) as s:
        import_jobs.start_job(s, actor=staff.lead, filename="t.csv", data=b"external_id,summary\n1,x\n",
                              layout="generic")
    with pytest.raises(ValidationError, match="empty"), transaction(engine) as s:
        import_jobs.start_job(s, actor=staff.lead, filename="t.csv", data=b"")
    with read_session(engine) as s:
        assert s.scalar(select(func.count()).select_from(ImportJob)) == 0


def test_a_big_import_is_left_to_the_worker(engine, staff, monkeypatch):
    monkeypatch.setenv("HELPDESK_IMPORT_INLINE_MAX_ROWS", "4")
    get_settings.cache_clear()
    try:
        job_id, claim = start(engine, staff, file_bytes(GOOD + BAD))
        assert claim is None
        assert import_jobs.get_job(engine, job_id).state == JobState.QUEUED
        report = worker.run_cycle(engine, smtp=None, imap=None)
        assert report.errors == []
        view = import_jobs.get_job(engine, job_id)
        assert (view.state, view.in_worker, view.created, view.refused) == ("done", True, 7, 2)
        assert worker.run_imports(engine) == 0  # nothing left
    finally:
        get_settings.cache_clear()


def test_two_workers_never_claim_the_same_job(engine, staff, monkeypatch):
    monkeypatch.setenv("HELPDESK_IMPORT_INLINE_MAX_ROWS", "0")
    get_settings.cache_clear()
    try:
        first, _ = start(engine, staff, file_bytes(GOOD[:1]))
        second, _ = start(engine, staff, file_bytes(GOOD[1:2]))
    finally:
        get_settings.cache_clear()
    a, b = import_jobs.claim_next(engine), import_jobs.claim_next(engine)
    assert a is not None and b is not None and (a.job_id, b.job_id) == (first, second)
    assert import_jobs.claim_next(engine) is None
    stale = import_jobs.Claim(a.job_id, "not-the-token")
    assert import_jobs.run_job(engine, stale).state == JobState.QUEUED  # a lost claim writes nothing


class Killed(BaseException):
    """The process dies: nothing of the runner's own error handling runs."""


def test_an_interrupted_job_resumes_without_duplicates(engine, staff, tmp_path, sqlite_template, monkeypatch, clock):
    lines = GOOD + BAD
    # What one clean run makes, in a database of its own.
    clean_dir = tmp_path / "clean"
    clean_dir.mkdir()
    clean = fresh_sqlite(sqlite_template, clean_dir)
    make_staff(clean)
    clean_report = import_csv(clean, write(tmp_path / "t.csv", lines))
    want = tickets_of(clean)
    clean.dispose()

    monkeypatch.setattr(importer_generic.LAYOUT, "batch", 2)
    monkeypatch.setenv("HELPDESK_IMPORT_INLINE_MAX_ROWS", "0")
    get_settings.cache_clear()
    try:
        job_id, _ = start(engine, staff, file_bytes(lines))
    finally:
        get_settings.cache_clear()
    # 1. The worker's run pauses after its row budget (one batch): resumable from the checkpoint.
    assert import_jobs.run_due(engine, budget_rows=2) == 1
    view = import_jobs.get_job(engine, job_id)
    assert (view.state, view.rows_done, view.created) == ("running", 2, 2)
    # 2. The next runner dies in the middle of its third batch (rows 6-7; row 6 already written in it).
    original = importer_generic.GenericLayout.handle

    def dies(self: importer_generic.GenericLayout, session: Session, item: Item) -> str:
        if item.key == "A-6":
            raise Killed
        return original(self, session, item)

    monkeypatch.setattr(importer_generic.GenericLayout, "handle", dies)
    with pytest.raises(Killed):
        import_jobs.run_due(engine)
    monkeypatch.setattr(importer_generic.GenericLayout, "handle", original)
    view = import_jobs.get_job(engine, job_id)
    assert (view.state, view.rows_done, view.created) == ("running", 4, 4)
    assert len(tickets_of(engine)) == 4  # the dead batch left nothing
    # Its claim still holds: nobody takes the job until it lapses.
    assert import_jobs.run_due(engine) == 0
    clock.advance(timedelta(seconds=import_jobs.CLAIM_SECONDS + 1))
    assert import_jobs.run_due(engine) == 1
    view = import_jobs.get_job(engine, job_id)
    assert (view.state, view.rows_done, view.created, view.updated, view.unchanged, view.refused) == (
        "done", 9, clean_report.created, 0, 0, len(clean_report.refused))
    assert tickets_of(engine) == want  # exactly the tickets of one clean run, none twice
    with read_session(engine) as s:
        assert s.scalar(select(func.count()).select_from(ImportRefusal)) == 2
        dupes = s.execute(select(Ticket.external_ref).group_by(Ticket.external_source, Ticket.external_ref)
                          .having(func.count() > 1)).all()
        assert dupes == []
        # the pause is no failure; the runner that died holding its claim is one
        assert s.scalar(select(ImportJob.attempts).where(ImportJob.id == job_id)) == 1


def test_a_servicenow_job_paused_after_every_incident_ends_as_one_clean_run(engine, staff, tmp_path, sqlite_template,
                                                                          monkeypatch):
    clean_dir = tmp_path / "clean"
    clean_dir.mkdir()
    clean = fresh_sqlite(sqlite_template, clean_dir)
    import_csv(clean, write(tmp_path / "sn.csv", SN_ROWS, SN_HEADER))
    want = tickets_of(clean)
    clean.dispose()

    monkeypatch.setattr(importer_servicenow.LAYOUT, "batch", 1)
    monkeypatch.setenv("HELPDESK_IMPORT_INLINE_MAX_ROWS", "0")
    get_settings.cache_clear()
    try:
        job_id, _ = start(engine, staff, (SN_HEADER + "\n" + "\n".join(SN_ROWS) + "\n").encode())
    finally:
        get_settings.cache_clear()
    runs = 0
    while import_jobs.get_job(engine, job_id).active:
        assert import_jobs.run_due(engine, budget_rows=1) == 1  # one incident, then a pause
        runs += 1
    view = import_jobs.get_job(engine, job_id)
    # four incidents, a pause after each; the fifth run finds the file's end
    assert (runs, view.state, view.created, view.refused, view.rows_done) == (5, "done", 3, 1, 7)
    assert tickets_of(engine) == want


def test_a_big_dry_run_in_the_worker_writes_nothing_and_shows_progress(engine, staff, monkeypatch):
    # SQLite: on a copy of the database; PostgreSQL: one transaction, rolled back. Progress is written as it goes.
    monkeypatch.setattr(importer_generic.LAYOUT, "batch", 3)
    monkeypatch.setenv("HELPDESK_IMPORT_INLINE_MAX_ROWS", "0")
    get_settings.cache_clear()
    try:
        job_id, claim = start(engine, staff, file_bytes(GOOD + BAD), dry_run=True)
    finally:
        get_settings.cache_clear()
    assert claim is None
    before = counts(engine)
    seen: list[int] = []
    original = import_jobs._dry_run

    def watched(*args, **kwargs):  # type: ignore[no-untyped-def]
        def progress(done: int, total: int | None) -> None:
            seen.append(import_jobs.get_job(engine, job_id).rows_done)

        return original(*args, **{**kwargs, "progress": progress})

    monkeypatch.setattr(import_jobs, "_dry_run", watched)
    assert import_jobs.run_due(engine) == 1
    view = import_jobs.get_job(engine, job_id)
    assert (view.state, view.created, view.refused, view.rows_done) == ("done", 7, 2, 9)
    assert counts(engine) == before
    assert seen == [0, 3, 6]  # read before each batch's progress is stored: the job row moved as it went
