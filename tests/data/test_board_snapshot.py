"""The board counted from the kept snapshot of open tickets equals the board counted in SQL, after every kind of
write and at several moments, on SQLite and PostgreSQL; and a write patches the snapshot instead of rebuilding it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from lib import assignment, board, board_snapshot, tickets
from lib.db import read_session, transaction
from lib.models import Ticket
from tests.conftest import new_ticket

MON = datetime(2026, 11, 30, tzinfo=UTC)


def at(hh: int, mm: int = 0, days: int = 0) -> datetime:
    return MON.replace(hour=hh, minute=mm) + timedelta(days=days)


#: Moments the two boards are compared at: before and after targets, the evening, the next days.
MOMENTS = [at(9, 30), at(11), at(13, 30), at(16), at(9, days=1), at(12, days=3)]



def version(engine, tid: int) -> int:
    with read_session(engine) as s:
        return s.get(Ticket, tid).version


def same_boards(engine, *, limit: int | None = None) -> board.Board:
    """The snapshot's board equals SQL's at every moment; the last one is returned."""
    for now in MOMENTS:
        with read_session(engine) as s:
            expected = board.load_board(s, now=now)
            kept = board_snapshot.load_board(s, now=now)
            if limit is not None:  # the flags' order, past a short limit
                assert [f.ticket_id for f in board.flagged(s, now=now, limit=limit)[0]] == \
                    [f.ticket_id for f in expected.flags[:limit]]
        assert kept == expected, now
    same_counts(engine)
    return kept


def same_counts(engine) -> dict:
    """The open tickets per person and priority (the assignment suggestions' loads) agree too: all of them, some
    people with one ticket left out, and nobody."""
    with read_session(engine) as s:
        whole = assignment.open_counts_by_assignee(s)
        assert board_snapshot.open_counts(s) == whole
        some = sorted(whole)[:2]
        left_out = s.scalar(select(Ticket.id).where(Ticket.is_open.is_(True), Ticket.assignee_id.in_(some))
                            .order_by(Ticket.id).limit(1))
        assert board_snapshot.open_counts(s, some, exclude_ticket=left_out) == \
            assignment.open_counts_by_assignee(s, some, exclude_ticket=left_out)
        assert board_snapshot.open_counts(s, []) == {}
    return whole


@pytest.fixture(autouse=True)
def fresh_snapshots():
    board_snapshot.clear()
    yield
    board_snapshot.clear()


def test_the_kept_board_equals_the_counted_one_after_each_kind_of_write(engine, staff) -> None:
    ids = []
    for i, prio in enumerate(["Low", "Medium", "High", "Critical", "High", "Critical", "Medium", "Low"]):
        assignee = (staff.tech, staff.tech2, staff.senior, None)[i % 4]
        ids.append(new_ticket(engine, staff.lead, priority=prio, assignee=assignee, now=at(9, i)))
    first = same_boards(engine)
    assert first.flags_total > 0 and first.unacknowledged_total > 0
    assert len(same_counts(engine)) == 3  # three people hold open tickets
    with read_session(engine) as s:
        built = board_snapshot.current(s).built

    def write(fn) -> None:  # type: ignore[no-untyped-def]
        with transaction(engine) as s:
            fn(s)
        same_boards(engine)

    write(lambda s: tickets.acknowledge(s, actor=staff.tech, ticket_id=ids[0], expected_version=version(engine, ids[0]),
                                        now=at(9, 20)))
    write(lambda s: tickets.update_fields(s, actor=staff.lead, ticket_id=ids[1], expected_version=version(engine, ids[1]),
                                          changes={"priority": "Critical"}, now=at(9, 21)))
    write(lambda s: tickets.assign(s, actor=staff.lead, ticket_id=ids[3], assignee_id=staff.tech,
                                   expected_version=version(engine, ids[3]), now=at(9, 22)))
    write(lambda s: tickets.internal_note(s, actor=staff.lead, ticket_id=ids[2], text="looked at it", now=at(9, 23)))
    write(lambda s: tickets.acknowledge(s, actor=staff.tech2, ticket_id=ids[5],
                                        expected_version=version(engine, ids[5]), now=at(9, 24)))
    write(lambda s: tickets.resolve(s, actor=staff.tech2, ticket_id=ids[5], expected_version=version(engine, ids[5]),
                                    resolution_notes="Replaced the switch port", root_cause="Faulty port",
                                    now=at(9, 25)))
    write(lambda s: tickets.reopen(s, actor=staff.lead, ticket_id=ids[5], expected_version=version(engine, ids[5]),
                                   reason="Still drops", now=at(9, 26)))
    ids.append(new_ticket(engine, staff.lead, priority="Critical", assignee=staff.senior, now=at(9, 27)))
    same_boards(engine)
    # the writes above patched the snapshot: it was never read again in full
    with read_session(engine) as s:
        assert board_snapshot.current(s).built == built


def test_the_flags_order_agrees_past_a_short_limit(engine, staff, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(7):
        new_ticket(engine, staff.lead, priority=("High", "Critical")[i % 2], assignee=(staff.tech, None)[i % 2],
                   now=at(7, 8 * i))
    monkeypatch.setattr(board_snapshot, "FLAG_LIMIT", 3)
    monkeypatch.setattr(board, "FLAG_LIMIT", 3)
    for now in MOMENTS:
        with read_session(engine) as s:
            sql_flags, sql_total = board.flagged(s, now=now, limit=3)
            kept = board_snapshot.load_board(s, now=now)
        assert [f.ticket_id for f in kept.flags] == [f.ticket_id for f in sql_flags]
        assert kept.flags_total == sql_total


def test_an_empty_desk_and_a_replaced_database(engine, staff) -> None:
    same_boards(engine)
    new_ticket(engine, staff.lead, priority="High", assignee=staff.tech, now=at(9))
    kept = same_boards(engine)
    assert kept.unacknowledged_total == 1


def test_an_old_snapshot_is_built_again_in_the_background_and_stays_right(engine, staff, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import time

    new_ticket(engine, staff.lead, priority="High", assignee=staff.tech, now=at(9))
    with read_session(engine) as s:
        first = board_snapshot.current(s)
    monkeypatch.setattr(board_snapshot, "REBUILD_SECONDS", 0.0)
    new_ticket(engine, staff.lead, priority="Critical", now=at(9, 5))
    same_boards(engine)  # served at once from the patched snapshot while the new one is built
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with board_snapshot._lock:
            key = str(engine.url)
            if not board_snapshot._rebuilding and board_snapshot._kept[key] is not first:
                break
        time.sleep(0.05)
    with board_snapshot._lock:
        assert board_snapshot._kept[str(engine.url)] is not first, "no new snapshot was put in place"
    monkeypatch.setattr(board_snapshot, "REBUILD_SECONDS", 600.0)
    same_boards(engine)


def test_the_server_builds_the_snapshot_at_start(engine, staff, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """server.py's lifespan calls warm_board(): the configured database's snapshot exists before any board read."""
    from lib.config import get_settings
    from lib.server_routes import warm_board

    new_ticket(engine, staff.lead, priority="High", assignee=staff.tech, now=at(9))
    monkeypatch.setenv("HELPDESK_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    try:
        warm_board().join(timeout=60)
    finally:
        get_settings.cache_clear()
    with board_snapshot._lock:
        snap = board_snapshot._kept.get(str(engine.url))
    assert snap is not None and int(snap.live.sum()) == 1
