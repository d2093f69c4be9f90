"""Demo data: ``python -m lib.cli seed-demo --tickets N --years Y --seed S``.

A believable desk: a lead, two seniors and eight technicians with skills per category and a capacity;
a few thousand contacts with their devices; tickets arriving mostly on weekdays in business hours, more
each year; each ticket's life (assignment, acknowledgement, actions, waits on the user or a vendor,
escalations, resolution, confirmation, closure with every reason, reopenings) written as the events the
services write (``lib.seed.life``), with the ticket's columns consistent with them, its SLA policy copied
on, due and at-risk moments set, and each missed target recorded once as an ``sla_breached`` event.

The same seed and ``now`` give the same data on an empty database. Rows go in with explicit ids in
batches, one transaction per batch: the Core ``insert()`` statement executemany'd on SQLite, ``COPY``
on PostgreSQL (whose id sequences are then moved past the new rows). Large runs generate in a second
process while this one writes, and on an empty database build the secondary indexes of tickets and
events once at the end. Run it on a quiet database: tickets created by others meanwhile would take ids
it is about to use.
"""

from __future__ import annotations

import multiprocessing
import queue
import random
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine

from lib import clock, sla
from lib.bizcal import BusinessCalendar
from lib.config import get_settings
from lib.db import transaction
from lib.errors import ValidationError
from lib.metrics import metrics_store
from lib.models import Category, Setting, Ticket, TicketEvent
from lib.seed.batches import YEAR, Batch, Plan, arrivals_for, batches
from lib.seed.business_seconds import FastClock
from lib.seed.people import make_people
from lib.seed.rows import EVENT_COLUMNS, TICKET_COLUMNS, check_columns, defer_indexes, restore_indexes, write_rows
from lib.workflow import Priority

Progress = Callable[[int, int], None] | None
#: From this many tickets: build indexes at the end (on an empty database) and generate in a second process.
BULK_FROM = 20_000


def seed_demo(engine: Engine, *, tickets: int, years: float, seed: int, progress: Progress = None,
              demo_password: str | None = None, now: datetime | None = None, batch_size: int = 10_000,
              stage: Callable[[str], None] | None = None) -> str:
    """Fill the database with demo data and return a one-line summary (which shows a generated password once)."""
    if not isinstance(tickets, int) or isinstance(tickets, bool) or not 0 <= tickets <= 20_000_000:
        raise ValidationError({"--tickets": "give a whole number from 0 to 20,000,000"})
    if not isinstance(years, int | float) or isinstance(years, bool) or not 0 < years <= 30:
        raise ValidationError({"--years": "give a number of years above 0 and at most 30"})
    if demo_password is not None:
        from lib.users import validate_password

        validate_password(demo_password, field="--demo-password")
    check_columns()
    now = (now or clock.now()).astimezone(UTC).replace(microsecond=0)
    end = int(now.timestamp())
    start = end - int(years * YEAR)
    password = demo_password or secrets.token_urlsafe(12)
    with transaction(engine) as s:
        people = make_people(s, random.Random(f"{seed}/people"), tickets=tickets, password=password, now=now)
        categories = {c.name: c.id for c in s.scalars(select(Category).where(Category.active.is_(True)).order_by(Category.id))}
        policies = {int(p): sla.policy_for(s, p) for p in Priority}
        desk_calendar = sla.get_calendar(s)
        first_tid = (s.scalar(select(func.max(Ticket.id))) or 0) + 1
        first_eid = (s.scalar(select(func.max(TicketEvent.id))) or 0) + 1
    if not categories:
        raise ValidationError({"categories": "no active category: activate at least one"})
    settings = get_settings()
    far = end + 3 * int(YEAR)
    plan = Plan(
        seed=seed, end=end, arrivals=arrivals_for(random.Random(f"{seed}/arrivals"), tickets, start, end, desk_calendar.tz),
        batch_size=batch_size, first_tid=first_tid, first_eid=first_eid, people=people, categories=categories,
        policies=policies, desk=FastClock(desk_calendar, start, far),
        clocks={p: FastClock(BusinessCalendar.from_dict(pol["calendar"]), start, far) if pol else None
                for p, pol in policies.items()},
        confirmation_wait=settings.confirmation_wait_days * 86400,
        reopen_window=max(settings.reopen_window_days * 86400, 2 * 86400),
        postgres=engine.dialect.name == "postgresql",
    )
    bulk = tickets >= BULK_FROM
    deferred: list[str] | None = None
    if bulk:
        deferred = defer_indexes(engine)
    else:
        restore_indexes(engine)
    rollups = defer_rollups(engine) if deferred and not plan.postgres else restore_rollups(engine)
    done = open_count = events_total = 0
    try:
        for ticket_rows, event_rows, last_tid, last_eid, n_open in _produce(plan, engine, in_worker=bulk):
            _write_batch(engine, plan.postgres, ticket_rows, event_rows, last_tid, last_eid)
            done += len(ticket_rows)
            open_count += n_open
            events_total += len(event_rows)
            if progress:
                progress(done, tickets)
    finally:
        if (deferred or rollups) and stage:
            stage("building the indexes and the metrics tables (about two minutes per million tickets) ...")
        if deferred:
            restore_indexes(engine)
        if rollups:
            restore_rollups(engine)
    if tickets:
        with transaction(engine) as s:  # parents of linked tickets are major incidents
            s.execute(text("UPDATE tickets SET is_major_incident = :t WHERE id IN "
                           "(SELECT DISTINCT parent_id FROM tickets WHERE parent_id IS NOT NULL)"), {"t": True})
        if plan.postgres:
            # The triggers appended every ticket's day counts as deltas (metric_day_deltas); the worker folds
            # them each cycle, but until then every metrics read sums them all (3.8M rows at 1M tickets: the
            # Metrics page took 2.2 s instead of a few hundred ms). Fold them now.
            with transaction(engine) as s:
                metrics_store.fold_days(s)
        if plan.postgres and bulk:
            # Fresh statistics and visibility map: without them the planner guesses half the tickets are
            # open and counts them with a full scan until autovacuum comes by.
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM (ANALYZE) tickets, ticket_events, ticket_metrics, metric_days")
    elif progress:
        progress(0, 0)
    staff = (f"{len(people.created)} new demo staff accounts ({', '.join(people.created)})" if people.created
             else "the existing demo staff accounts")
    secret = ""
    if people.created and demo_password is None:
        secret = f"; their password (shown only now, stored only as a hash): {password}"
    return (f"seeded {tickets:,} tickets and {events_total:,} events over {years:g} year{'' if years == 1 else 's'} "
            f"({open_count:,} open at the end), {people.requesters:,} contacts, {people.devices:,} devices, "
            f"{staff}{secret}")


ROLLUP_MEMO_KEY = "seed_deferred_rollups"


def defer_rollups(engine: Engine) -> bool:
    """SQLite, empty database: load without the per-row triggers that keep the metrics tables in step, and
    fill those tables once at the end (:func:`restore_rollups`). A note in the settings table makes the next
    run repair an interrupted one."""
    with transaction(engine) as s:
        s.add(Setting(key=ROLLUP_MEMO_KEY, value={"rebuild": True}))
        s.flush()
        metrics_store.drop_ticket_triggers(s)
    return True


def restore_rollups(engine: Engine) -> bool:
    """Refill the metrics tables and recreate their triggers after :func:`defer_rollups` (idempotent)."""
    with transaction(engine) as s:
        memo = s.get(Setting, ROLLUP_MEMO_KEY)
        if memo is None:
            return False
        metrics_store.rebuild(s)
        s.delete(memo)
    return False


def _write_batch(engine: Engine, pg: bool, tickets: list[tuple], events: list[tuple], last_tid: int,
                 last_eid: int) -> None:
    with transaction(engine) as s:
        conn = s.connection()
        if pg:
            conn.exec_driver_sql("LOCK TABLE tickets, ticket_events IN EXCLUSIVE MODE")
        else:
            conn.exec_driver_sql("PRAGMA cache_size=-262144")  # 256 MB while it writes
        write_rows(conn, "tickets", TICKET_COLUMNS, tickets)
        write_rows(conn, "ticket_events", EVENT_COLUMNS, events)
        if pg:
            for name, value in (("tickets", last_tid), ("ticket_events", last_eid)):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), :v)"), {"v": value})
        else:
            conn.exec_driver_sql("PRAGMA cache_size=-2000")


# --- a second process generates while this one writes ------------------------------------------------


def _produce(plan: Plan, engine: Engine, *, in_worker: bool) -> Iterator[Batch]:
    """The batches of ``plan``: from a forked worker process for large runs (the data is the same either way)."""
    if not in_worker or "fork" not in multiprocessing.get_all_start_methods():
        yield from batches(plan)
        return
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue(maxsize=3)
    worker = ctx.Process(target=_worker, args=(plan, engine, q), name="seed-demo-generator", daemon=True)
    worker.start()
    try:
        while True:
            try:
                item = q.get(timeout=5)
            except queue.Empty:
                if not worker.is_alive():
                    raise RuntimeError(f"the generating process stopped (exit code {worker.exitcode})") from None
                continue
            if item is None:
                break
            if isinstance(item, str):
                raise RuntimeError(f"generating the demo data failed: {item}")
            yield item
    finally:
        if worker.is_alive():
            worker.terminate()
        worker.join(timeout=10)


def _worker(plan: Plan, engine: Engine, q) -> None:
    import traceback

    engine.dispose(close=False)  # the parent's pooled connections are never touched here
    try:
        for item in batches(plan):
            q.put(item)
        q.put(None)
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises it
        q.put(traceback.format_exc(limit=5))
