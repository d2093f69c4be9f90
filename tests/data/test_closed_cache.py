"""The metrics of closed days kept between page runs (lib/metrics/closed_cache.py), on both engines.

The triggers compare the times a write touches with the database's own clock, so this test's desk lives at
the database's present (read from the database, whatever the date): its data ends now, and the product's
clock is set to the same moment. After each kind of write the kept metrics must equal a computation from
scratch; the writes about now leave the count alone, the writes that reach back move it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from lib import tickets
from lib.db import read_session, transaction
from lib.directory import RequesterInput
from lib.metrics import closed_cache, measures
from lib.metrics.measures import MetricFilter
from lib.models import Ticket, TicketEvent, User
from lib.seed.demo import seed_demo
from lib.tickets import TicketDraft
from lib.workflow import STATUS_INFO, Priority, Status

READS = ("kpis", "flow", "backlog", "durations", "resolution_by_priority", "sla_compliance", "closures_by_reason",
         "rates", "workload", "repeat_issues")


def database_now(engine: Engine) -> datetime:
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            value = conn.execute(text("SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS bigint)")).scalar()
        else:
            value = conn.execute(text("SELECT CAST(strftime('%s', 'now') AS INTEGER)")).scalar()
    return datetime.fromtimestamp(int(value), UTC)


@pytest.fixture
def desk(engine: Engine, clock) -> Iterator[tuple[Engine, datetime]]:
    now = database_now(engine)
    clock.set(now)
    seed_demo(engine, tickets=900, years=0.08, seed=11, now=now, demo_password="kept days 123")
    closed_cache.clear()
    yield engine, now
    closed_cache.clear()


def metrics_filters(now: datetime) -> list[MetricFilter]:
    today = now.date()
    return [MetricFilter(start=today - timedelta(days=21), end=today + timedelta(days=1), tz="UTC"),
            MetricFilter(start=today - timedelta(days=21), end=today + timedelta(days=1), tz="UTC", grain="day",
                         priorities=(int(Priority.MEDIUM), int(Priority.HIGH)))]


def everything(engine: Engine, f: MetricFilter) -> dict:
    with read_session(engine) as s:
        return {name: getattr(measures, name)(s, f) for name in READS}


def assert_kept_equals_fresh(engine: Engine, now: datetime, monkeypatch: pytest.MonkeyPatch) -> None:
    for f in metrics_filters(now):
        kept = everything(engine, f)
        with monkeypatch.context() as m:
            m.setattr(closed_cache, "enabled", False)
            fresh = everything(engine, f)
        for name in READS:
            a, b = kept[name], fresh[name]
            if isinstance(a, pd.DataFrame):
                if name == "resolution_by_priority":
                    a, b = a.sort_values(list(a.columns)).reset_index(drop=True), \
                        b.sort_values(list(b.columns)).reset_index(drop=True)
                pd.testing.assert_frame_equal(a, b, obj=name)
            else:
                assert a == b, name


def version(engine: Engine) -> tuple | None:
    with read_session(engine) as s:
        return closed_cache.version(s)


def lead_id(engine: Engine) -> int:
    with read_session(engine) as s:
        return s.query(User.id).filter(User.username == "lead").scalar()


def test_writes_about_now_keep_the_closed_days_and_writes_reaching_back_drop_them(desk, monkeypatch):
    engine, now = desk
    lead = lead_id(engine)
    assert_kept_equals_fresh(engine, now, monkeypatch)  # the first reads keep the closed days' parts
    assert closed_cache.entries() > 0
    start = version(engine)
    assert start is not None

    # An open ticket from before the kept edge, in whichever open status the demo data left it: which statuses
    # the generated tickets are in depends on the weekday and hour the desk's data ends at (here, the database's
    # present), so none of them is counted on.
    unresolved = [st.value for st in Status if STATUS_INFO[st].open and not STATUS_INFO[st].resolved]
    with read_session(engine) as s:
        found = s.query(Ticket.id).filter(Ticket.status.in_(unresolved),
                                          Ticket.created_at < now - timedelta(days=6)).order_by(Ticket.id).first()
        assert found is not None, "the demo data holds no open ticket older than six days"
        old_open = found[0]
        old_resolved = s.query(Ticket.id).filter(Ticket.status == Status.RESOLVED.value,
                                                 Ticket.resolved_at < now - timedelta(days=4)).order_by(Ticket.id).first()

    # about now: a note on an old ticket, a new ticket, taking it on
    with transaction(engine) as s:
        tickets.internal_note(s, actor=lead, ticket_id=old_open, text="Checked the cabling again.")
    with transaction(engine) as s:
        new = tickets.create_ticket(s, actor=lead, draft=TicketDraft(
            summary="Printer on floor 2 jams", description="Every second page.", category="Hardware",
            priority="High", channel="phone", requester=RequesterInput(name="Ann Lee", email="ann.lee@example.com"))).id
    with transaction(engine) as s:
        tickets.take(s, actor=lead, ticket_id=new)
    assert version(engine) == start
    assert_kept_equals_fresh(engine, now, monkeypatch)

    # reaching back: the priority of a six-day-old ticket
    with transaction(engine) as s:
        t = s.get(Ticket, old_open)
        tickets.update_fields(s, actor=lead, ticket_id=old_open, expected_version=t.version,
                              changes={"priority": Priority.LOW if t.priority != Priority.LOW else Priority.CRITICAL})
    moved = version(engine)
    assert moved != start
    assert_kept_equals_fresh(engine, now, monkeypatch)

    # reaching back: reopening a ticket resolved days ago clears its resolution
    if old_resolved is not None:
        with transaction(engine) as s:
            t = s.get(Ticket, old_resolved[0])
            tickets.reopen(s, actor=lead, ticket_id=t.id, expected_version=t.version, reason="It came back.")
        assert version(engine) != moved
        moved = version(engine)
        assert_kept_equals_fresh(engine, now, monkeypatch)

    # reaching back: a status event recorded with an old time (an import)
    with transaction(engine) as s:
        s.add(TicketEvent(ticket_id=old_open, kind="status_changed", from_status="assigned", to_status="resolved",
                          occurred_at=now - timedelta(days=5), actor_label="import"))
    assert version(engine) != moved
    assert_kept_equals_fresh(engine, now, monkeypatch)


def test_rebuilding_the_metrics_tables_counts_as_reaching_back(desk):
    engine, _ = desk
    from lib.metrics import metrics_store

    before = version(engine)
    with transaction(engine) as s:
        metrics_store.rebuild(s)
    assert version(engine) != before


def test_the_edge_is_a_utc_midnight_at_least_36_hours_back() -> None:
    at = datetime(2026, 12, 3, 11, 0, tzinfo=UTC)
    edge = closed_cache.edge_us(at)
    assert edge == measures.to_us(datetime(2026, 12, 1, tzinfo=UTC))
    assert measures.to_us(at) - edge >= closed_cache.READ_LAG_US
    assert closed_cache.READ_LAG_US - closed_cache.WRITE_MARGIN_US >= 6 * closed_cache.HOUR_US


def test_the_change_log_is_compacted_and_every_version_stays_new(engine: Engine) -> None:
    """PostgreSQL appends a row per change that reaches back; the worker's rollups step compacts the log. Each
    version seen along the way differs from every earlier one, so nothing kept is served under an old count."""
    from lib import worker

    with transaction(engine) as s:
        closed_cache.count_change(s)
    seen = [version(engine)]
    for _ in range(5):
        with transaction(engine) as s:
            closed_cache.count_change(s)
        seen.append(version(engine))
    with transaction(engine) as s:
        removed = closed_cache.compact(s, above=3)
    seen.append(version(engine))
    worker.fold_rollups(engine)  # the worker's step runs it too (nothing more above the default threshold)
    with transaction(engine) as s:
        closed_cache.count_change(s)
    seen.append(version(engine))
    if engine.dialect.name == "sqlite":  # one counter row: compacting leaves it, and the version, as they were
        assert seen[6] == seen[5]
        del seen[6]
    assert len(set(seen)) == len(seen), seen
    if engine.dialect.name == "postgresql":
        assert removed >= 5
        with read_session(engine) as s:
            assert s.execute(text(f"SELECT count(*) FROM {closed_cache.PAST_LOG}")).scalar() == 2
    else:
        assert removed == 0  # one counter row: nothing to compact


def test_the_kept_parts_are_bounded_in_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The least recently used parts go once the kept parts hold more than MAX_BYTES."""
    import numpy as np

    closed_cache.clear()
    monkeypatch.setattr(closed_cache, "MAX_BYTES", 3 * 8_000_000 + 1_000)
    try:
        for i in range(5):
            closed_cache._kept(("part", i), lambda: np.zeros(1_000_000))  # 8 MB each
        assert closed_cache.entries() == 3 and closed_cache.held_bytes() <= closed_cache.MAX_BYTES
        hit = closed_cache._kept(("part", 4), lambda: pytest.fail("the newest part was dropped"))
        assert hit.shape == (1_000_000,)
        assert closed_cache.size({"a": np.zeros(10), "b": [np.zeros(10)]}) > 160
    finally:
        closed_cache.clear()
    assert closed_cache.held_bytes() == 0
