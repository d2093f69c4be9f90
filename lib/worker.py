"""The background worker: IMAP poll, outbox, SLA breaches, confirmation reminders, no-reply closures, rollup folds,
big imports started on the Admin page, staff notifications (tickets newly at risk, the daily digest: lib.staff_jobs).

Run it inside the app server (``start_background`` from the ``st.App`` lifespan; the single-machine
default) or as its own process (``python -m lib.cli worker``; ``--once`` for cron). Several workers may run
at once: outbox rows are claimed (``SKIP LOCKED`` on PostgreSQL, the write lock on SQLite), inbound mail is
recorded by Message-ID, the SLA pass runs under an advisory lock on PostgreSQL, and reminders and closures
go through the ticket services with the version read, so a second worker's attempt is refused as stale.

Each step of a cycle is independent: a failing step is logged and the others still run.

Confirmation follow-up (seed: "a reminder, then closure with reason no reply"): a ticket awaiting the
user's confirmation for ``confirmation_wait_days`` gets one reminder (a new confirmation request by the
system, with fresh links; it restarts the wait); when the wait passes again with no answer it is closed
with reason *no reply*. A ticket on which the requester wrote back since the request is left to its
technician: it is neither reminded nor closed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from sqlalchemy import select, text
from sqlalchemy.engine import Engine

from lib import followups, sla, staff_jobs, tickets, webhooks
from lib.acknowledge import reassign_unacknowledged
from lib.config import get_settings
from lib.db import transaction
from lib.errors import HelpdeskError
from lib.mail.imap_poll import PollReport
from lib.mail.imap_poll import poll as poll_imap
from lib.mail.outbound import SendReport, send_outbox
from lib.mail.raw_store import prune as prune_raw_mail
from lib.mail.settings import ImapConfig, SmtpConfig, worker_interval
from lib.models import Ticket, TicketEvent
from lib.ticket_core import SystemActor, now_utc
from lib.workflow import ClosureReason, EventKind, Status

log = logging.getLogger("helpdesk.worker")

WORKER = SystemActor(label="worker")
_SLA_LOCK_ID = 727_274_101
_UNSET = object()
_T = TypeVar("_T")


@dataclass
class CycleReport:
    imap: PollReport | None = None
    outbox: SendReport | None = None
    breaches: int | None = None  # None: another worker was on it
    reminded: list[int] = field(default_factory=list)
    closed: list[int] = field(default_factory=list)
    followups: int | None = None
    webhooks: int | None = None  # deliveries sent
    weekly_report: str | None = None  # the ISO week whose report mail was queued in this cycle
    errors: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        parts = []
        if self.imap is not None:
            parts.append(f"imap: {self.imap}")
        if self.outbox is not None:
            parts.append(f"outbox: {self.outbox}")
        parts.append(f"sla: {self.breaches if self.breaches is not None else 'skipped'} new breach(es)")
        parts.append(f"confirmation: {len(self.reminded)} reminded, {len(self.closed)} closed (no reply)")
        if self.followups is not None:
            parts.append(f"follow-ups: {self.followups}")
        if self.webhooks:
            parts.append(f"webhooks: {self.webhooks} sent")
        if self.weekly_report:
            parts.append(f"weekly report {self.weekly_report} queued")
        if self.errors:
            parts.append(f"{len(self.errors)} step(s) failed")
        return "; ".join(parts)


# --- steps -----------------------------------------------------------------------------------------


def record_sla_breaches(engine: Engine, *, now: datetime | None = None) -> int | None:
    """``sla.record_breaches`` in its own transaction; None when another worker holds the pass (PostgreSQL)."""
    with transaction(engine) as session:
        if session.get_bind().dialect.name == "postgresql":
            got = session.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _SLA_LOCK_ID}).scalar()
            if not got:
                return None
        return sla.record_breaches(session, now=now)


def reminder_text(wait_days: int) -> str:
    return (f"A reminder: we have not heard from you yet. If we do not hear back within {wait_days} days, "
            "we will take it that everything works and close the request.")


def follow_up_confirmations(engine: Engine, *, now: datetime | None = None) -> tuple[list[int], list[int]]:
    """Remind, then close with reason no reply, tickets awaiting confirmation past the wait; (reminded, closed)."""
    now = now_utc(now)
    wait_days = get_settings().confirmation_wait_days
    cutoff = now - timedelta(days=wait_days)
    with transaction(engine) as session:
        due = list(session.execute(
            select(Ticket.id, Ticket.version)
            .where(Ticket.status == Status.AWAITING_CONFIRMATION.value, Ticket.confirmation_requested_at <= cutoff)
            .order_by(Ticket.confirmation_requested_at, Ticket.id)
        ))
    reminded: list[int] = []
    closed: list[int] = []
    for ticket_id, version in due:
        try:
            with transaction(engine) as session:
                ticket = session.get(Ticket, ticket_id)
                if ticket is None or ticket.version != version or ticket.confirmation_requested_at is None:
                    continue  # changed since we looked: the next cycle sees it afresh
                requests = session.scalars(
                    select(TicketEvent).where(TicketEvent.ticket_id == ticket_id,
                                              TicketEvent.kind == EventKind.CONFIRMATION_REQUESTED.value)
                    .order_by(TicketEvent.id.desc()).limit(1)
                ).unique().all()
                replied = session.scalar(
                    select(TicketEvent.id).where(TicketEvent.ticket_id == ticket_id,
                                                 TicketEvent.kind == EventKind.INBOUND_EMAIL.value,
                                                 TicketEvent.occurred_at >= ticket.confirmation_requested_at).limit(1)
                )
                if replied is not None:
                    continue  # the requester answered: a technician decides
                already_reminded = bool(requests) and requests[0].actor_id is None
                if not already_reminded:
                    tickets.request_confirmation(session, actor=WORKER, ticket_id=ticket_id, expected_version=version,
                                                 message=reminder_text(wait_days), now=now)
                    reminded.append(ticket_id)
                else:
                    tickets.close(session, actor=WORKER, ticket_id=ticket_id, expected_version=version,
                                  reason=ClosureReason.NO_REPLY, now=now,
                                  note=f"Closed automatically: no reply {wait_days} days after the reminder.")
                    closed.append(ticket_id)
        except HelpdeskError as exc:  # stale (another worker or a technician was first), or a guard not met
            log.info("confirmation follow-up of ticket %s skipped: %s", ticket_id, exc)
    return reminded, closed


def follow_up_reminders(engine: Engine, *, now: datetime | None = None) -> int:
    """Remind owners of follow-ups that fell due (lib.followups); returns how many reminders were queued."""
    with transaction(engine) as session:
        return int(followups.send_due_reminders(session, now=now_utc(now)))


def run_cycle(engine: Engine, *, smtp: SmtpConfig | None = None, imap: ImapConfig | None = None,
              now: datetime | None = None) -> CycleReport:
    """One pass of every step. ``smtp``/``imap`` None: that route is skipped."""
    report = CycleReport()

    def step(name: str, fn: Callable[[], _T]) -> _T | None:
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - one failing step must not stop the others or the loop
            log.exception("worker step %s failed", name)
            report.errors.append(f"{name}: {type(exc).__name__}: {exc}")
            return None

    if imap is not None:
        report.imap = step("imap", lambda: poll_imap(engine, imap, now=now))
    # staff notifications first, so their mail goes out in this cycle's outbox step
    step("at risk", lambda: staff_jobs.notify_at_risk(engine, now=now))  # assignees, once per ticket per SLA clock
    step("staff digest", lambda: staff_jobs.send_digests(engine, now=now))  # from staff_digest_hour, once a day
    report.weekly_report = step("weekly report", lambda: send_weekly_report(engine, now=now))  # on the lead's schedule
    if smtp is not None:
        report.outbox = step("outbox", lambda: send_outbox(engine, smtp, now=now))
    report.breaches = step("sla", lambda: record_sla_breaches(engine, now=now))
    step("unacknowledged", lambda: reassign_unacknowledged(engine, now=now))  # only when the lead switched it on
    result = step("confirmations", lambda: follow_up_confirmations(engine, now=now))
    if result is not None:
        report.reminded, report.closed = result
    report.followups = step("follow-ups", lambda: follow_up_reminders(engine, now=now))
    report.webhooks = step("webhooks", lambda: webhooks.deliver_due(engine, now=now))  # when a lead set one
    step("rollups", lambda: fold_rollups(engine))
    step("raw mail", lambda: prune_raw_mail(engine, now=now))  # older than mail_raw_retention_days
    step("imports", lambda: run_imports(engine, now=now))
    return report


def send_weekly_report(engine: Engine, *, now: datetime | None = None) -> str | None:
    """Mail the weekly report when its scheduled time has come (lib.report_mail); the ISO week sent, or None."""
    from lib import report_mail

    return report_mail.send_due(engine, now=now)


def run_imports(engine: Engine, *, now: datetime | None = None) -> int:
    """Run the imports started on the Admin page that wait for the worker (lib.transfer.import_jobs)."""
    from lib.transfer import import_jobs

    return import_jobs.run_due(engine, now=now, budget_rows=get_settings().import_worker_rows_per_cycle or None)


def fold_rollups(engine: Engine) -> int:
    """PostgreSQL: move the day-count deltas the writers appended into metric_days (lib.metrics.metrics_store),
    and compact the log of changes that reach back (lib.metrics.closed_cache.compact)."""
    from lib.db import run_transaction
    from lib.metrics import closed_cache, metrics_store

    folded = run_transaction(engine, metrics_store.fold_days, what="fold rollups")
    run_transaction(engine, closed_cache.compact, what="compact the metrics change log")
    return folded


def run(engine: Engine, *, once: bool = False, interval: float | None = None,
        stop_event: threading.Event | None = None, smtp: SmtpConfig | None | object = _UNSET,
        imap: ImapConfig | None | object = _UNSET) -> CycleReport | None:
    """Run cycles every ``interval`` seconds until ``stop_event`` is set (or one cycle with ``once``).

    ``smtp`` and ``imap`` default to the configured servers; pass None to switch a route off.
    Returns the last cycle's report.
    """
    smtp_config = SmtpConfig.from_settings() if smtp is _UNSET else cast("SmtpConfig | None", smtp)
    imap_config = ImapConfig.from_settings() if imap is _UNSET else cast("ImapConfig | None", imap)
    interval = worker_interval() if interval is None else interval
    stop_event = stop_event or threading.Event()
    if smtp_config is None:
        log.info("no SMTP server configured (smtp_host): the outbox stays pending")
    if imap_config is None:
        log.info("no IMAP mailbox configured (imap_host): mail comes in through 'ingest-email' only")
    last: CycleReport | None = None
    while True:
        last = run_cycle(engine, smtp=smtp_config, imap=imap_config)
        log.info("worker cycle: %s", last)
        if once or stop_event.wait(max(interval, 0.1)):
            return last


def start_background(engine: Engine, *, interval: float | None = None, smtp: SmtpConfig | None | object = _UNSET,
                     imap: ImapConfig | None | object = _UNSET) -> Callable[[], None]:
    """Start the worker in a daemon thread; returns ``stop()``, which ends it after the current step."""
    stop_event = threading.Event()

    def target(**kwargs: Any) -> None:
        try:
            run(**kwargs)
        except Exception:  # noqa: BLE001 - a thread dies silently otherwise
            log.exception("the background worker stopped")

    thread = threading.Thread(
        target=target, name="helpdesk-worker", daemon=True,
        kwargs={"engine": engine, "interval": interval, "stop_event": stop_event, "smtp": smtp, "imap": imap},
    )
    thread.start()

    def stop(timeout: float = 30.0) -> None:
        stop_event.set()
        thread.join(timeout)

    return stop
