"""The workload board counts "waiting for an acknowledgement" one way: the per-person columns, the desk's totals,
the flags and lib.acknowledge's clocks agree (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from lib import acknowledge, board, tickets
from lib.db import read_session, transaction
from lib.models import Ticket
from lib.workflow import Priority
from tests.conftest import new_ticket

MON = datetime(2026, 11, 30, tzinfo=UTC)  # London is on GMT in winter: UTC = local time


def at(hh: int, mm: int = 0) -> datetime:
    return MON.replace(hour=hh, minute=mm)



@pytest.fixture
def desk(engine, staff) -> None:
    """Three Lows for Tom since 9:00 (due 13:00), a High for Tara at 15:00 (due 15:30), a Medium for Sam at 15:30,
    a High Tom acknowledged, and an unassigned Medium."""
    for _ in range(3):
        new_ticket(engine, staff.lead, priority="Low", assignee=staff.tech, now=at(9))
    new_ticket(engine, staff.lead, priority="High", assignee=staff.tech2, now=at(15))
    new_ticket(engine, staff.lead, priority="Medium", assignee=staff.senior, now=at(15, 30))
    acked = new_ticket(engine, staff.lead, priority="High", assignee=staff.tech, now=at(9))
    with transaction(engine) as s:
        tickets.acknowledge(s, ticket_id=acked, actor=staff.tech, expected_version=s.get(Ticket, acked).version,
                            now=at(9, 5))
    new_ticket(engine, staff.lead, priority="Medium", now=at(9))


def totals(engine, now: datetime) -> board.Board:
    with read_session(engine) as s:
        b = board.load_board(s, now=now)
        clocks = acknowledge.unacknowledged(s)
        late = acknowledge.overdue(s, now=now)
        late_flagged = acknowledge.overdue(s, now=now, min_priority=Priority.HIGH)
    # one definition: the people's columns add up to the desk's totals, which are lib.acknowledge's clocks
    assert sum(p.unacknowledged for p in b.people) == b.unacknowledged_total == len(clocks)
    assert sum(p.ack_overdue for p in b.people) == b.ack_overdue_total == len(late)
    flagged_for_ack = [f for f in b.flags if any(r.startswith("not acknowledged") for r in f.reasons)]
    assert len(flagged_for_ack) == b.ack_overdue_flagged == len(late_flagged)
    return b


def test_totals_agree_when_some_are_flagged(engine, staff, desk) -> None:
    b = totals(engine, at(15, 40))
    assert (b.unacknowledged_total, b.ack_overdue_total, b.ack_overdue_flagged) == (5, 4, 1)
    people = {p.name: p for p in b.people}
    assert (people["Tom Tech"].unacknowledged, people["Tom Tech"].ack_overdue) == (3, 3)
    assert board.ack_summary(b) == ("5 tickets waiting for an acknowledgement: 4 past their target "
                                    "(1 of them High or Critical, flagged above).")


def test_totals_agree_when_none_is_flagged(engine, staff, desk) -> None:
    b = totals(engine, at(15, 20))  # the High is not due before 15:30
    assert (b.unacknowledged_total, b.ack_overdue_total, b.ack_overdue_flagged) == (5, 3, 0)
    assert not any(r.startswith("not acknowledged") for f in b.flags for r in f.reasons)
    assert board.ack_summary(b) == ("5 tickets waiting for an acknowledgement: 3 past their target "
                                    "(none High or Critical, so none flagged).")


def test_nothing_waiting(engine, staff) -> None:
    b = totals(engine, at(12))
    assert b.unacknowledged_total == 0
    assert board.ack_summary(b) == "No ticket is waiting for an acknowledgement."
    new_ticket(engine, staff.lead, priority="Low", assignee=staff.tech, now=at(11, 50))
    b = totals(engine, at(12))
    assert board.ack_summary(b) == "1 ticket waiting for an acknowledgement, none past its target (so none is flagged)."
