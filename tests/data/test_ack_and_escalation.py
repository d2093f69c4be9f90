"""Acknowledgement clocks, automatic reassignment by the worker, the lead's flags and the workload board,
on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy import select

from lib import acknowledge, board, queries, sla, tickets, worker
from lib.db import read_session, transaction
from lib.errors import PermissionDenied
from lib.models import Category, Setting, Ticket, User, UserSkill
from lib.sla import SlaState
from lib.workflow import EventKind, Priority, Status
from tests.conftest import new_ticket

MON = datetime(2026, 11, 30, tzinfo=UTC)  # London is on GMT in winter: UTC = local time


def at(day: datetime, hh: int, mm: int = 0) -> datetime:
    return day.replace(hour=hh, minute=mm)



def call(engine, fn, tid: int, **kw) -> Ticket:
    with transaction(engine) as s:
        return fn(s, ticket_id=tid, expected_version=s.get(Ticket, tid).version, **kw)


def clock(engine, tid: int) -> acknowledge.AckClock | None:
    with read_session(engine) as s:
        return acknowledge.clock_for(s, tid)


def switch_auto(engine, lead: int, on: bool) -> None:
    with transaction(engine) as s:
        acknowledge.set_auto_reassign(s, actor=lead, enabled=on)


def skills(engine, levels: dict[int, int], category: str = "Networking") -> None:
    with transaction(engine) as s:
        cat = s.scalar(select(Category.id).where(Category.name == category))
        for uid, level in levels.items():
            s.add(UserSkill(user_id=uid, category_id=cat, level=level))


# --- the acknowledgement clock ------------------------------------------------------------------


def test_ack_target_in_business_hours(engine, staff) -> None:
    tid = new_ticket(engine, staff.lead, priority="High", assignee=staff.tech, now=at(MON, 10))
    c = clock(engine, tid)
    assert c.assigned_at == at(MON, 10) and c.target_minutes == 30
    assert c.due_at == at(MON, 10, 30) and not c.around_the_clock
    assert not c.overdue(at(MON, 10, 29)) and c.overdue(at(MON, 10, 30))
    assert c.describe() == "30 min business target"
    # assigned late on a Friday: the target runs on into Monday morning
    fri = datetime(2026, 11, 27, 16, 50, tzinfo=UTC)
    tid = new_ticket(engine, staff.lead, priority="High", assignee=staff.tech, now=fri)
    assert clock(engine, tid).due_at == at(MON, 9, 20)


def test_ack_target_around_the_clock_for_critical(engine, staff) -> None:
    sat = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
    tid = new_ticket(engine, staff.lead, priority="Critical", assignee=staff.tech, now=sat)
    c = clock(engine, tid)
    assert c.around_the_clock and c.due_at == sat + timedelta(minutes=15)
    assert c.describe() == "15 min target"


def test_ack_target_skips_holidays_of_the_calendar(engine, staff) -> None:
    with transaction(engine) as s:
        sla.save_calendar(s, actor=staff.lead, calendar=sla.make_calendar(
            tz="Europe/London", workdays=[0, 1, 2, 3, 4], start=time(9), end=time(17),
            holidays=[date(2026, 12, 25), date(2026, 12, 28)]))
    eve = datetime(2026, 12, 24, 16, 0, tzinfo=UTC)
    tid = new_ticket(engine, staff.lead, priority="Medium", assignee=staff.tech, now=eve)  # 2 h target
    assert clock(engine, tid).due_at == datetime(2026, 12, 29, 10, 0, tzinfo=UTC)


def test_acknowledging_stops_and_reassigning_restarts_the_clock(engine, staff) -> None:
    tid = new_ticket(engine, staff.tech, priority="High", now=at(MON, 9))
    assert clock(engine, tid) is None  # unassigned: nobody to acknowledge yet
    call(engine, tickets.assign, tid, actor=staff.lead, assignee_id=staff.tech, now=at(MON, 11))
    assert clock(engine, tid).due_at == at(MON, 11, 30)
    call(engine, tickets.acknowledge, tid, actor=staff.tech, now=at(MON, 11, 10))
    assert clock(engine, tid) is None
    with read_session(engine) as s:
        assert s.get(Ticket, tid).acknowledged_at == at(MON, 11, 10)
    call(engine, tickets.assign, tid, actor=staff.lead, assignee_id=staff.tech2, now=at(MON, 13))
    c = clock(engine, tid)
    assert c.assignee_id == staff.tech2 and c.assigned_at == at(MON, 13) and c.due_at == at(MON, 13, 30)
    call(engine, tickets.escalate_to_senior, tid, actor=staff.tech2, senior_id=staff.senior, reason="routing",
         now=at(MON, 14))
    c = clock(engine, tid)
    assert c.assignee_id == staff.senior and c.due_at == at(MON, 14, 30)


def test_waiting_tickets_have_no_ack_clock(engine, staff) -> None:
    tid = new_ticket(engine, staff.lead, priority="High", assignee=staff.tech, now=at(MON, 9))
    call(engine, tickets.acknowledge, tid, actor=staff.tech, now=at(MON, 9, 5))
    call(engine, tickets.request_info, tid, actor=staff.tech, text="Which floor?", now=at(MON, 9, 10))
    call(engine, tickets.assign, tid, actor=staff.lead, assignee_id=staff.tech2, now=at(MON, 10))
    assert clock(engine, tid) is None  # still waiting on the user: nothing to acknowledge yet


def test_overdue_in_sql_agrees_with_each_clock(engine, staff) -> None:
    """The desk-wide condition (one cut-off per target and calendar) picks exactly the tickets whose own
    clocks have passed, across a weekend, with several priorities and policies."""
    starts = [datetime(2026, 11, 27, h, m, tzinfo=UTC) for h, m in ((8, 0), (12, 0), (16, 10), (16, 40), (16, 55),
                                                                    (18, 0))]
    starts += [datetime(2026, 11, 28, 3, 0, tzinfo=UTC), datetime(2026, 11, 30, 9, 0, tzinfo=UTC)]
    prios = ["Low", "Medium", "High", "Critical"]
    for i, when in enumerate(starts):
        new_ticket(engine, staff.lead, priority=prios[i % 4], assignee=(staff.tech, staff.tech2)[i % 2], now=when)
    with transaction(engine) as s:  # a later edit of the targets: new tickets carry a different High policy
        sla.update_target(s, actor=staff.lead, priority=Priority.HIGH, ack_minutes=45, response_minutes=60,
                          resolution_minutes=480, business_hours=True)
    new_ticket(engine, staff.lead, priority="High", assignee=staff.tech, now=datetime(2026, 11, 27, 16, 30, tzinfo=UTC))
    sizes = []
    for now in (at(MON, 9, 0), at(MON, 9, 20), at(MON, 9, 40), at(MON, 10, 1), at(MON, 13, 0)):
        with read_session(engine) as s:
            each = {c.ticket_id for c in acknowledge.unacknowledged(s) if c.overdue(now)}
            sizes.append(len(each))
            in_sql = set(s.scalars(select(Ticket.id).where(acknowledge.overdue_sql(s, now=now))))
            counts = acknowledge.overdue_counts(s, now=now)
            assert in_sql == each, now
            assert sum(counts.values()) == len(each)
            assert [c.ticket_id for c in acknowledge.overdue(s, now=now)] == sorted(
                each, key=lambda t: (-s.get(Ticket, t).priority, t))
    assert sizes == sorted(sizes) and 0 < sizes[0] < sizes[-1]  # the set grows with time


# --- automatic reassignment ---------------------------------------------------------------------


def test_setting_is_a_leads_and_off_by_default(engine, staff) -> None:
    with read_session(engine) as s:
        assert acknowledge.auto_reassign_enabled(s) is False
    with transaction(engine) as s:
        with pytest.raises(PermissionDenied):
            acknowledge.set_auto_reassign(s, actor=staff.tech, enabled=True)
    switch_auto(engine, staff.lead, True)
    with read_session(engine) as s:
        assert acknowledge.auto_reassign_enabled(s) is True
        assert s.get(Setting, acknowledge.AUTO_REASSIGN_KEY).value is True
    switch_auto(engine, staff.lead, False)
    with read_session(engine) as s:
        assert acknowledge.auto_reassign_enabled(s) is False


def test_worker_reassigns_only_when_switched_on(engine, staff) -> None:
    skills(engine, {staff.tech: 3, staff.tech2: 2, staff.senior: 1})
    tid = new_ticket(engine, staff.lead, priority="High", assignee=staff.tech, now=at(MON, 10))
    worker.run_cycle(engine, smtp=None, imap=None, now=at(MON, 10, 45))
    with read_session(engine) as s:
        assert s.get(Ticket, tid).assignee_id == staff.tech  # setting off: only flagged
    switch_auto(engine, staff.lead, True)
    assert acknowledge.reassign_unacknowledged(engine, now=at(MON, 10, 20)) == []  # not due yet
    report = worker.run_cycle(engine, smtp=None, imap=None, now=at(MON, 10, 45))
    assert not report.errors
    with read_session(engine) as s:
        t = s.get(Ticket, tid)
        assert t.assignee_id == staff.tech2 and t.status == Status.ASSIGNED.value
        entry = [e for e in queries.timeline(s, tid) if e.kind == EventKind.ASSIGNED.value][-1]
    assert entry.actor == "system" and entry.old_value == "Tom Tech" and entry.new_value == "Tara Tech"
    assert entry.body == ("Not acknowledged in time: Tom Tech had not acknowledged it within the 30 min business "
                          "target (due 2026-11-30 10:30 UTC); reassigned automatically.")
    assert entry.meta["explanation"] == "Networking 2/3; load 0 of 10 = no open tickets; most skilled with room"
    assert clock(engine, tid).due_at == at(MON, 11, 15)  # Tara's own clock starts now


def test_who_let_it_lapse_is_not_offered_it_again(engine, staff) -> None:
    skills(engine, {staff.tech: 3, staff.tech2: 2, staff.senior: 1})
    switch_auto(engine, staff.lead, True)
    tid = new_ticket(engine, staff.lead, priority="High", assignee=staff.tech, now=at(MON, 10))
    assert acknowledge.reassign_unacknowledged(engine, now=at(MON, 10, 31)) == [tid]
    assert acknowledge.reassign_unacknowledged(engine, now=at(MON, 11, 2)) == [tid]
    with read_session(engine) as s:
        assert s.get(Ticket, tid).assignee_id == staff.senior  # not back to Tom, who is the most skilled
        assert acknowledge.lapsed_holders(s, tid) == {staff.tech, staff.tech2}
    assert acknowledge.reassign_unacknowledged(engine, now=at(MON, 11, 33)) == [tid]
    with read_session(engine) as s:
        assert s.get(Ticket, tid).assignee_id == staff.lead  # the last one with room
    assert acknowledge.reassign_unacknowledged(engine, now=at(MON, 12, 4)) == []  # nobody left: the lead sees it
    with read_session(engine) as s:
        assert s.get(Ticket, tid).assignee_id == staff.lead


def test_nobody_with_room_leaves_the_ticket_flagged(engine, staff) -> None:
    switch_auto(engine, staff.lead, True)
    with transaction(engine) as s:
        for u in s.scalars(select(User).where(User.id != staff.tech)).unique():
            u.capacity = 0
    tid = new_ticket(engine, staff.lead, priority="High", assignee=staff.tech, now=at(MON, 10))
    assert acknowledge.reassign_unacknowledged(engine, now=at(MON, 11)) == []
    with read_session(engine) as s:
        flags, total = board.flagged(s, now=at(MON, 11))
    assert total == 1 and flags[0].ticket_id == tid
    assert "not acknowledged (due 10:30)" in flags[0].reasons


def test_the_board_says_its_times_in_desk_time(engine, staff, monkeypatch: pytest.MonkeyPatch) -> None:
    from lib.config import get_settings

    # New York is 5 hours behind: a High logged at 15:00 UTC (10:00 there, in business hours) is to be acknowledged
    # by 15:30 UTC, 10:30 at the desk.
    monkeypatch.setenv("HELPDESK_TIMEZONE", "America/New_York")
    get_settings.cache_clear()
    try:
        switch_auto(engine, staff.lead, True)
        with transaction(engine) as s:
            for u in s.scalars(select(User).where(User.id != staff.tech)).unique():
                u.capacity = 0
            s.get(User, staff.senior).away_until = at(MON, 18)
        tid = new_ticket(engine, staff.lead, priority="High", assignee=staff.tech, now=at(MON, 15))
        assert acknowledge.reassign_unacknowledged(engine, now=at(MON, 16)) == []
        with read_session(engine) as s:
            flags, _ = board.flagged(s, now=at(MON, 16))
            people = {p.name: p for p in board.load_board(s, now=at(MON, 16)).people}
        assert next(f for f in flags if f.ticket_id == tid).reasons[-1] == "not acknowledged (due 10:30)"
        assert people["Sam Senior"].why(at(MON, 16)).endswith("away until Mon 30 Nov 13:00")
    finally:
        get_settings.cache_clear()


def test_an_acknowledgement_in_between_wins(engine, staff) -> None:
    switch_auto(engine, staff.lead, True)
    tid = new_ticket(engine, staff.lead, priority="High", assignee=staff.tech, now=at(MON, 10))
    with read_session(engine) as s:
        seen = acknowledge.overdue(s, now=at(MON, 10, 40))
    assert [c.ticket_id for c in seen] == [tid]
    call(engine, tickets.acknowledge, tid, actor=staff.tech, now=at(MON, 10, 41))  # Tom was quicker
    with transaction(engine) as s:
        assert acknowledge.reassign_one(s, seen[0], now=at(MON, 10, 42)) is None
    with read_session(engine) as s:
        t = s.get(Ticket, tid)
        assert t.assignee_id == staff.tech and t.status == Status.IN_PROGRESS.value


# --- flags and the board ------------------------------------------------------------------------


@pytest.fixture
def desk(engine, staff):
    """Monday 15:40: a spread of High/Critical trouble, and a Medium that is breached but not flagged."""
    ids = {}
    ids["high_risk"] = new_ticket(engine, staff.lead, priority="High", assignee=staff.tech, now=at(MON, 9))
    call(engine, tickets.acknowledge, ids["high_risk"], actor=staff.tech, now=at(MON, 9, 5))  # 6 of 8 h by 15:00
    ids["crit_breached"] = new_ticket(engine, staff.lead, priority="Critical", assignee=staff.tech, now=at(MON, 9))
    call(engine, tickets.acknowledge, ids["crit_breached"], actor=staff.tech, now=at(MON, 9, 5))  # due 13:00
    ids["high_unacked"] = new_ticket(engine, staff.lead, priority="High", assignee=staff.tech2, now=at(MON, 15))
    ids["medium_breached"] = new_ticket(engine, staff.lead, priority="Medium", now=at(MON, 9))  # response due 13:00
    ids["high_waiting"] = new_ticket(engine, staff.lead, priority="High", assignee=staff.senior, now=at(MON, 9))
    call(engine, tickets.acknowledge, ids["high_waiting"], actor=staff.senior, now=at(MON, 9, 5))
    call(engine, tickets.request_info, ids["high_waiting"], actor=staff.senior, text="Which VLAN?",
         now=at(MON, 9, 10))
    ids["low_ok"] = new_ticket(engine, staff.lead, priority="Low", assignee=staff.tech2, now=at(MON, 15))
    with transaction(engine) as s:
        s.get(User, staff.tech2).capacity = 3
    return ids


NOW = at(MON, 15, 40)


def test_flags_for_the_lead(engine, staff, desk) -> None:
    with read_session(engine) as s:
        flags, total = board.flagged(s, now=NOW)
    assert total == 3
    assert [f.ticket_id for f in flags] == [desk["crit_breached"], desk["high_risk"], desk["high_unacked"]]
    crit, risk, unacked = flags
    assert crit.state is SlaState.BREACHED and crit.reasons == ("resolution breached",)
    assert risk.state is SlaState.AT_RISK and risk.reasons == ("resolution at risk",)
    assert unacked.state is SlaState.AT_RISK and unacked.reasons == ("not acknowledged (due 15:30)",)
    assert unacked.assignee == "Tara Tech"
    with read_session(engine) as s:  # a little later the unacknowledged one is also at risk on its response
        later, _ = board.flagged(s, now=at(MON, 15, 50))
    assert later[-1].reasons == ("response at risk", "not acknowledged (due 15:30)")


def test_flag_states_match_sla_state(engine, staff, desk) -> None:
    with read_session(engine) as s:
        flags, _ = board.flagged(s, now=NOW)
        for f in flags:
            state = sla.state(s.get(Ticket, f.ticket_id), now=NOW)
            assert state is f.state or (state is SlaState.OK and f.ticket_id == desk["high_unacked"])
        assert sla.state(s.get(Ticket, desk["medium_breached"]), now=NOW) is SlaState.BREACHED
        assert sla.state(s.get(Ticket, desk["high_waiting"]), now=NOW) is SlaState.PAUSED


def test_board_per_person(engine, staff, desk) -> None:
    with read_session(engine) as s:
        b = board.load_board(s, now=NOW)
        open_tickets = list(s.scalars(select(Ticket).where(Ticket.is_open.is_(True))).unique())
        states = {t.id: sla.state(t, now=NOW) for t in open_tickets}
    people = {p.name: p for p in b.people}
    tara, tom, sam = people["Tara Tech"], people["Tom Tech"], people["Sam Senior"]
    assert b.people[0] is tara and b.overloaded == [tara]  # 3 + 1 of 3: listed first
    assert tara.why(NOW) == "over capacity: load 4 of 3 = 1 high + 1 low; 2 not acknowledged (1 past target)"
    assert tom.counts == {Priority.HIGH: 1, Priority.CRITICAL: 1} and tom.load == 7
    assert (tom.breached, tom.at_risk, tom.unacknowledged, tom.ack_overdue) == (1, 1, 0, 0)
    assert tom.oldest_created_at == at(MON, 9)
    assert tom.why(NOW) == "load 7 of 10 = 1 critical + 1 high; 1 breached; 1 at risk"
    assert (sam.breached, sam.at_risk, sam.open) == (0, 0, 1)  # waiting on the user: paused
    assert b.unassigned == {Priority.MEDIUM: 1} and b.unassigned_oldest == at(MON, 9)
    # the board's SQL agrees with sla.state ticket by ticket
    assert sum(p.breached for p in b.people) + 1 == sum(1 for v in states.values() if v is SlaState.BREACHED)
    assert sum(p.at_risk for p in b.people) == sum(1 for v in states.values() if v is SlaState.AT_RISK)
    assert b.flags_total == 3


def test_board_lists_an_inactive_holder_and_the_away(engine, staff, desk) -> None:
    with transaction(engine) as s:
        s.get(User, staff.tech).active = False
        s.get(User, staff.senior).away_until = NOW + timedelta(days=2)
    with read_session(engine) as s:
        b = board.load_board(s, now=NOW)
    people = {p.name: p for p in b.people}
    assert people["Tom Tech"].why(NOW).endswith("inactive: reassign their tickets")
    assert "away until" in people["Sam Senior"].why(NOW)


def test_open_tickets_of_a_person_for_reassignment(engine, staff, desk) -> None:
    with read_session(engine) as s:
        rows = board.open_tickets(s, assignee_id=staff.tech2, now=NOW)
        unassigned = board.open_tickets(s, assignee_id=None, now=NOW)
    assert [r.id for r in rows] == [desk["high_unacked"], desk["low_ok"]]
    assert rows[0].ack_due_at == at(MON, 15, 30)
    assert rows[1].ack_due_at == datetime(2026, 12, 1, 11, 0, tzinfo=UTC)  # Low: 4 business hours
    assert [r.id for r in unassigned] == [desk["medium_breached"]] and unassigned[0].state is SlaState.BREACHED
