"""Imports started on the Admin page: a row of ``import_jobs`` per upload, run in the page or by the worker.

* **The upload is kept in the database** (``import_jobs.data``, emptied when the job ends), not under the data
  folder: the worker may be another process on another machine (``python -m lib.cli worker``), and several app
  servers may share one PostgreSQL; the database is the one place they all reach. Uploads are small enough for
  it (Streamlit's ``maxUploadSize``, 25 MB in .streamlit/config.toml).
* **Where it runs.** A file of at most ``import_inline_max_rows`` rows runs at once in the page; a bigger one is
  left to the worker (:func:`run_due`, one step of each cycle) and the page follows its progress.
* **Claims**, as for the outbox: a runner sets ``claim_token`` and ``claimed_until`` in a short transaction
  (``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL, the write lock on SQLite), so two workers never run the
  same job; the claim is renewed with every batch. A runner that dies leaves the job to others once its claim
  expires (:data:`CLAIM_SECONDS`). A job created to run in the page is claimed by its creation.
* **Checkpoint and resume.** Every batch of tickets commits together with the job's checkpoint (tickets handled,
  rows, counts, the batch's refused rows). A restarted run skips the tickets committed and carries the counts
  on; imports are idempotent by external reference besides, so nothing is ever imported twice.
* **Dry runs** write nothing: the same import in one transaction that is rolled back (on SQLite, a dry run in
  the worker runs on a copy of the database instead, so the desk's writes do not wait behind it).
"""

from __future__ import annotations

import csv
import enum
import io
import logging
import sqlite3
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from lib.audit_log import audit
from lib.config import get_settings
from lib.db import make_engine, read_session, transaction
from lib.errors import HelpdeskError, NotFound, ValidationError
from lib.models import ImportJob, ImportRefusal, User
from lib.ticket_core import load_actor, now_utc, require_permission
from lib.transfer.importer import ImportReport, import_csv, open_layout
from lib.transfer.safe_cells import neutralise_row
from lib.workflow import Permission

log = logging.getLogger("helpdesk.import")

#: A claim lasts this long without a renewal; each batch renews it, so only a runner that died lets it lapse.
CLAIM_SECONDS = 120
#: A job whose runs failed this many times (not a bad file: that fails at once) is given up as failed.
MAX_ATTEMPTS = 3


class JobState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


ACTIVE = (JobState.QUEUED.value, JobState.RUNNING.value)


class ClaimLost(HelpdeskError):
    """Another runner holds the job now (this one's claim lapsed): stop without writing."""


class Paused(Exception):
    """The run used its row budget: the job stays claimable and resumes from its checkpoint."""


@dataclass(frozen=True)
class Claim:
    job_id: int
    token: str


@dataclass(frozen=True)
class JobView:
    """What the page shows of a job."""

    id: int
    filename: str
    layout: str
    dry_run: bool
    in_worker: bool
    state: str
    rows_total: int
    rows_done: int
    created: int
    updated: int
    unchanged: int
    refused: int
    error: str | None
    started_by: str | None
    created_at: datetime
    finished_at: datetime | None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @property
    def fraction(self) -> float:
        if self.state == JobState.DONE:
            return 1.0
        return min(1.0, self.rows_done / self.rows_total) if self.rows_total else 0.0

    def summary(self) -> str:
        report = ImportReport(layout=self.layout, created=self.created, updated=self.updated,
                              unchanged=self.unchanged, refused=[""] * self.refused, rows=self.rows_done,
                              dry_run=self.dry_run)
        return report.summary()


# --- starting --------------------------------------------------------------------------------------------


@contextmanager
def upload_file(data: bytes, filename: str = "upload.csv") -> Iterator[Path]:
    """The uploaded bytes as a file (the importers read files), removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="helpdesk-import-") as folder:
        path = Path(folder) / (Path(filename).name or "upload.csv")
        path.write_bytes(data)
        yield path


@dataclass(frozen=True)
class Checked:
    """An upload whose file, header and mapping were checked: its layout and its data rows."""

    layout: str
    rows: int


def check_upload(data: bytes, filename: str, layout: str = "auto", mapping_toml: str | None = None) -> Checked:
    """Check an upload before its job is recorded (ValidationError naming what is wrong). Done outside the write
    transaction, so reading a big file holds no lock the desk's writers wait on."""
    if not data:
        raise ValidationError({"file": "the file is empty"})
    with upload_file(data, filename) as path:
        chosen, found = open_layout(path, layout, (mapping_toml or "").strip() or None)
        return Checked(chosen, found.count_rows(path))


def start_job(session: Session, *, actor: int, filename: str, data: bytes, layout: str = "auto",
              mapping_toml: str | None = None, dry_run: bool = False, now: datetime | None = None,
              checked: Checked | None = None) -> tuple[ImportJob, Claim | None]:
    """Record an import (or dry run) of ``data``; the file and its header are checked first (ValidationError).

    Returns the job and, when it is small enough to run in the page, the claim to run it with
    (:func:`run_job`); None: the worker runs it. A real import writes an audit-log entry. ``checked``: the result of
    :func:`check_upload` made before the transaction (else the file is checked here)."""
    user = load_actor(session, actor)
    require_permission(user, Permission.ADMIN, "import tickets")
    now = now_utc(now)
    mapping = (mapping_toml or "").strip() or None
    checked = checked or check_upload(data, filename, layout, mapping)
    chosen, rows = checked.layout, checked.rows
    in_worker = rows > get_settings().import_inline_max_rows
    job = ImportJob(started_by_id=user.id, filename=(Path(filename).name or "upload.csv")[:255], size_bytes=len(data),
                    data=data, layout=chosen, mapping_toml=mapping, dry_run=dry_run, in_worker=in_worker,
                    state=JobState.QUEUED.value, rows_total=rows, rows_done=0, items_done=0, created=0, updated=0,
                    unchanged=0, refused=0, attempts=0, created_at=now)
    if not in_worker:  # claimed by its creation: the page runs it next, no worker may take it first
        job.claim_token, job.claimed_until = uuid.uuid4().hex, now + timedelta(seconds=CLAIM_SECONDS)
    session.add(job)
    session.flush()
    if not dry_run:
        where = "in the background worker" if in_worker else "in the page"
        audit(session, actor=user.username, action="import_started", target=f"import {job.id}: {job.filename}"[:200],
              detail=f"{chosen} layout, {rows:,} rows, {len(data):,} bytes, run {where}", now=now)
    return job, (Claim(job.id, job.claim_token) if job.claim_token else None)


# --- claiming and running ----------------------------------------------------------------------------------


def claim_next(engine: Engine, *, now: datetime | None = None) -> Claim | None:
    """Claim the oldest job waiting to run (queued, or interrupted: its claim lapsed); None when there is none."""
    now = now_utc(now)
    with transaction(engine) as session:
        stmt = (select(ImportJob).where(ImportJob.state.in_(ACTIVE),
                                        or_(ImportJob.claimed_until.is_(None), ImportJob.claimed_until < now))
                .order_by(ImportJob.created_at, ImportJob.id).limit(1))
        if session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        job = session.scalar(stmt)
        if job is None:
            return None
        if job.claimed_until is not None:  # its runner died holding it (a pause or a release clears the claim)
            job.attempts += 1
            if job.attempts >= MAX_ATTEMPTS:
                job.state, job.finished_at, job.data = JobState.FAILED.value, now, None
                job.error = f"its runner stopped {job.attempts} times while importing it; the last batches are kept"
                job.claim_token = job.claimed_until = None
                return None
        job.claim_token, job.claimed_until = uuid.uuid4().hex, now + timedelta(seconds=CLAIM_SECONDS)
        return Claim(job.id, job.claim_token)


def _locked(session: Session, claim: Claim) -> ImportJob:
    """The job, locked, if ``claim`` still holds it; else ClaimLost."""
    stmt = select(ImportJob).where(ImportJob.id == claim.job_id)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    job = session.scalar(stmt)
    if job is None or job.claim_token != claim.token or job.state not in ACTIVE:
        raise ClaimLost(f"import {claim.job_id}: another runner holds it now")
    return job


def run_job(engine: Engine, claim: Claim, *, progress: Callable[[int, int | None], None] | None = None,
            budget_rows: int | None = None, now: datetime | None = None) -> JobView:
    """Run (or resume) the claimed job to its end; returns how it stands.

    ``budget_rows``: stop after the batch that reaches this many rows in this call, leaving the job resumable
    (the worker uses no budget; tests use one to interrupt a run). ``progress(rows done, rows in the file)``."""
    try:
        started = _start_run(engine, claim, now=now)
    except ClaimLost:
        log.warning("import %s: claim lost before the run; the runner that holds it carries on", claim.job_id)
        return get_job(engine, claim.job_id)
    data, layout, mapping, dry_run, resume, in_worker = started
    started_rows = resume.rows
    try:
        if data is None:
            raise ValidationError({"file": "the uploaded file is no longer stored"})
        with upload_file(data) as path:
            if dry_run:
                report = _dry_run(engine, claim, path, layout, mapping, in_worker=in_worker, progress=progress)
                _finish(engine, claim, report, report.refused)
            else:
                def checkpoint(session: Session, report: ImportReport, refused: list[str]) -> None:
                    job = _locked(session, claim)
                    job.items_done, job.rows_done = report.items, report.rows
                    job.created, job.updated, job.unchanged = report.created, report.updated, report.unchanged
                    job.refused += len(refused)
                    job.claimed_until = now_utc() + timedelta(seconds=CLAIM_SECONDS)
                    session.add_all(ImportRefusal(job_id=job.id, reason=r) for r in refused)

                def step(rows: int, total: int | None) -> None:
                    if progress:
                        progress(rows, total)
                    if budget_rows is not None and rows - started_rows >= budget_rows:
                        raise Paused

                report = import_csv(engine, path, layout=layout, mapping_toml=mapping, checkpoint=checkpoint,
                                    resume=resume, progress=step)
                _finish(engine, claim, report, [])
    except Paused:
        release(engine, claim)
    except ClaimLost:
        log.warning("import %s: claim lost; the runner that holds it carries on", claim.job_id)
    except ValidationError as exc:  # the file or the mapping: running it again would not help
        _fail(engine, claim, "; ".join(f"{k}: {v}" for k, v in exc.fields.items()) if exc.fields else str(exc),
              final=True)
    except Exception as exc:
        log.exception("import %s failed", claim.job_id)
        _fail(engine, claim, f"{type(exc).__name__}: {exc}", final=False)
    return get_job(engine, claim.job_id)


def _start_run(engine: Engine, claim: Claim, *, now: datetime | None
               ) -> tuple[bytes | None, str, str | None, bool, ImportReport, bool]:
    """Mark the claimed job running; (upload, layout, mapping, dry run, its checkpoint, in the worker)."""
    with transaction(engine) as session:
        job = _locked(session, claim)
        job.state, job.started_at = JobState.RUNNING.value, job.started_at or now_utc(now)
        resume = ImportReport(layout=job.layout, created=job.created, updated=job.updated, unchanged=job.unchanged,
                              rows=job.rows_done, items=job.items_done)
        return job.data, job.layout, job.mapping_toml, job.dry_run, resume, job.in_worker


def _dry_run(engine: Engine, claim: Claim, path: Path, layout: str, mapping: str | None, *, in_worker: bool,
             progress: Callable[[int, int | None], None] | None) -> ImportReport:
    """A dry run, its progress written to the job as it goes when another connection can (PostgreSQL, or a
    SQLite copy); in the page on SQLite the page shows the progress itself."""
    sqlite_file = engine.dialect.name == "sqlite" and (engine.url.database or "") not in ("", ":memory:")

    def step(rows: int, total: int | None) -> None:
        if progress:
            progress(rows, total)
        if not sqlite_file or in_worker:
            with transaction(engine) as session:
                job = _locked(session, claim)
                job.rows_done = rows
                job.claimed_until = now_utc() + timedelta(seconds=CLAIM_SECONDS)

    if sqlite_file and in_worker:
        with tempfile.TemporaryDirectory(prefix="helpdesk-dryrun-") as folder:
            copy = Path(folder) / "copy.sqlite3"
            source, target = sqlite3.connect(str(engine.url.database)), sqlite3.connect(str(copy))
            try:
                source.backup(target)
            finally:
                source.close()
                target.close()
            scratch = make_engine(f"sqlite:///{copy}")
            try:
                report = import_csv(scratch, path, layout=layout, mapping_toml=mapping, progress=step)
            finally:
                scratch.dispose()
        report.dry_run = True
        return report
    return import_csv(engine, path, layout=layout, mapping_toml=mapping, dry_run=True, progress=step)


def _finish(engine: Engine, claim: Claim, report: ImportReport, refused: list[str]) -> None:
    with transaction(engine) as session:
        job = _locked(session, claim)
        job.rows_done, job.items_done = report.rows, report.items
        job.created, job.updated, job.unchanged = report.created, report.updated, report.unchanged
        if refused:  # a dry run's refusals (a run's were written batch by batch)
            job.refused = len(refused)
            session.add_all(ImportRefusal(job_id=job.id, reason=r) for r in refused)
        job.state, job.finished_at, job.data = JobState.DONE.value, now_utc(), None
        job.claim_token = job.claimed_until = None
        if not job.dry_run:
            who = session.get(User, job.started_by_id) if job.started_by_id else None
            report.refused = [""] * job.refused  # the count over every resumed run, for the summary
            audit(session, actor=who.username if who else None, action="import_finished",
                  target=f"import {job.id}: {job.filename}"[:200], detail=report.summary())


def release(engine: Engine, claim: Claim) -> None:
    """Give the claim up: the job resumes from its checkpoint with the next runner (the worker's next cycle)."""
    try:
        with transaction(engine) as session:
            job = _locked(session, claim)
            job.claim_token = job.claimed_until = None
    except ClaimLost:
        pass  # another runner has it already


def _fail(engine: Engine, claim: Claim, error: str, *, final: bool) -> None:
    try:
        with transaction(engine) as session:
            job = _locked(session, claim)
            job.error = error[:2000]
            job.claim_token = job.claimed_until = None
            job.attempts += 1  # failures only: a pause, a release or a lapsed claim is not one
            if final or job.attempts >= MAX_ATTEMPTS:
                job.state, job.finished_at, job.data = JobState.FAILED.value, now_utc(), None
    except ClaimLost:
        pass


def run_due(engine: Engine, *, now: datetime | None = None, budget_rows: int | None = None,
            limit: int | None = None) -> int:
    """The worker's step: run the jobs waiting (queued, or interrupted with their claim lapsed), oldest first,
    until one is left unfinished (paused at ``budget_rows``, or failed and to be tried again in a later cycle);
    returns how many were run. ``limit``: at most that many jobs this call."""
    done = 0
    while limit is None or done < limit:
        claim = claim_next(engine, now=now)
        if claim is None:
            break
        view = run_job(engine, claim, budget_rows=budget_rows, now=now)
        done += 1
        if view.active:  # paused at its budget, or failed and to be tried again: the next cycle goes on
            break
    return done


# --- reading --------------------------------------------------------------------------------------------


def _view(job: ImportJob, started_by: str | None) -> JobView:
    return JobView(id=job.id, filename=job.filename, layout=job.layout, dry_run=job.dry_run, in_worker=job.in_worker,
                   state=job.state, rows_total=job.rows_total, rows_done=job.rows_done, created=job.created,
                   updated=job.updated, unchanged=job.unchanged, refused=job.refused, error=job.error,
                   started_by=started_by, created_at=job.created_at, finished_at=job.finished_at)


def get_job(engine: Engine, job_id: int) -> JobView:
    with read_session(engine) as session:
        row = session.execute(select(ImportJob, User.name).outerjoin(User, User.id == ImportJob.started_by_id)
                              .where(ImportJob.id == job_id)).first()
        if row is None:
            raise NotFound(f"import {job_id} does not exist")
        return _view(row[0], row[1])


def list_jobs(session: Session, *, limit: int = 20) -> list[JobView]:
    """The newest jobs first."""
    rows = session.execute(select(ImportJob, User.name).outerjoin(User, User.id == ImportJob.started_by_id)
                           .order_by(ImportJob.id.desc()).limit(limit))
    return [_view(job, name) for job, name in rows]


def refusals(session: Session, job_id: int) -> list[str]:
    return list(session.scalars(select(ImportRefusal.reason).where(ImportRefusal.job_id == job_id)
                                .order_by(ImportRefusal.id)))


def refusals_csv(reasons: list[str]) -> bytes:
    """The refused rows as CSV (``row``, ``reason``): ``row 17: priority ...`` → ``row 17``, ``priority ...``."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["row", "reason"])
    for line in reasons:
        where, _, why = line.partition(": ")
        writer.writerow(neutralise_row([where, why] if why else ["", where]))
    return out.getvalue().encode("utf-8-sig")

