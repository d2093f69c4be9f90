"""Assignment suggestions from the database on SQLite and PostgreSQL: who is considered, the loads, the
explanations recorded in events, auto-assign, the lead's reassignment, the weights setting, query count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, select

from lib import assignment, tickets
from lib.assignment import Need
from lib.db import transaction
from lib.directory import RequesterInput
from lib.errors import PermissionDenied, StaleTicket, ValidationError
from lib.models import Category, Setting, Ticket, TicketEvent, User, UserSkill
from lib.tickets import TicketDraft
from lib.workflow import EscalationLevel, EventKind, Priority, Role, Status
from tests.conftest import fast_hash

NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)  # a Monday, 10:00 in London (GMT)


def add_user(engine, username: str, *, role: Role = Role.TECHNICIAN, capacity: int = 10, active: bool = True,
             away_until: datetime | None = None, skills: dict[str, int] | None = None) -> int:
    with transaction(engine) as s:
        user = User(username=username, name=username.capitalize(), role=int(role), capacity=capacity, active=active,
                    away_until=away_until, password_hash=fast_hash("correct horse battery"))
        s.add(user)
        s.flush()
        cats = {c.name: c.id for c in s.scalars(select(Category))}
        for name, level in (skills or {}).items():
            s.add(UserSkill(user_id=user.id, category_id=cats[name], level=level))
        return user.id


def skill(engine, user_id: int, category: str, level: int) -> None:
    with transaction(engine) as s:
        cat = s.scalar(select(Category.id).where(Category.name == category))
        s.add(UserSkill(user_id=user_id, category_id=cat, level=level))


def new_ticket(engine, actor: int, *, priority: str = "Medium", category: str = "Networking",
               assignee: int | None = None, now: datetime = NOW) -> int:
    with transaction(engine) as s:
        return tickets.create_ticket(s, actor=actor, now=now, draft=TicketDraft(
            summary=f"{priority} {category} problem", category=category, priority=priority, channel="phone",
            requester=RequesterInput(name="Ann Smith", email="ann@example.com"), assignee_id=assignee)).id


def give(engine, lead: int, user_id: int, *priorities: str, category: str = "Networking") -> list[int]:
    return [new_ticket(engine, lead, priority=p, category=category, assignee=user_id) for p in priorities]


def cat_id(engine, name: str = "Networking") -> int:
    with transaction(engine) as s:
        return s.scalar(select(Category.id).where(Category.name == name))


def suggest(engine, target, **kw) -> assignment.Suggestions:
    with transaction(engine) as s:
        return assignment.suggest(s, target, now=kw.pop("now", NOW), limit=kw.pop("limit", None), **kw)


def names(found: assignment.Suggestions) -> list[str]:
    return [c.name for c in found.candidates]


@pytest.fixture
def desk(engine, staff):
    """Ann: expert, busy; Ben: basic, idle; Sam (senior): good, one low ticket; Lena (lead), Tom, Tara: no skill."""
    ann = add_user(engine, "ann", skills={"Networking": 3})
    ben = add_user(engine, "ben", skills={"Networking": 1})
    skill(engine, staff.senior, "Networking", 2)
    give(engine, staff.lead, ann, "High", "Medium", "Low")  # 3 + 2 + 1 = 6
    give(engine, staff.lead, staff.tech, "Low")
    give(engine, staff.lead, staff.tech2, "Low", "Low")
    give(engine, staff.lead, staff.lead, "Low")
    give(engine, staff.lead, staff.senior, "Low")
    return {"ann": ann, "ben": ben, **{k: getattr(staff, k) for k in ("lead", "senior", "tech", "tech2")}}


def test_critical_goes_to_the_most_skilled_with_room(engine, desk) -> None:
    found = suggest(engine, Need(category_id=cat_id(engine), priority=Priority.CRITICAL))
    assert names(found)[:3] == ["Ann", "Sam Senior", "Ben"]
    assert found.candidates[0].explanation == "Networking 3/3; load 6 of 10 = 1 high + 1 medium + 1 low; " \
                                              "most skilled with room"
    assert found.best.user_id == desk["ann"] and found.considered == 6


def test_low_goes_to_the_least_loaded_with_the_skill(engine, desk) -> None:
    found = suggest(engine, Need(category_id=cat_id(engine), priority=Priority.LOW))
    assert names(found)[:3] == ["Ben", "Sam Senior", "Ann"]
    assert found.candidates[0].explanation == "Networking 1/3; load 0 of 10 = no open tickets; lowest of 3"
    assert found.candidates[2].explanation == "Networking 3/3; load 6 of 10 = 1 high + 1 medium + 1 low; " \
                                              "3rd lowest of 3"
    # then those without the skill, least loaded first
    # the lead after the team members with room, though as little loaded as Tom
    assert names(found)[3:] == ["Tom Tech", "Tara Tech", "Lena Lead"]
    assert found.candidates[-1].explanation.endswith("has room; a lead: after the team members with room")


def test_away_inactive_excluded_and_full_last(engine, desk) -> None:
    add_user(engine, "gone", active=False, skills={"Networking": 3})
    add_user(engine, "holiday", away_until=NOW + timedelta(days=3), skills={"Networking": 3})
    back = add_user(engine, "back", away_until=NOW - timedelta(hours=1), skills={"Networking": 2})
    full = add_user(engine, "full", capacity=4, skills={"Networking": 3})
    give(engine, desk["lead"], full, "Critical")
    found = suggest(engine, Need(category_id=cat_id(engine), priority=Priority.CRITICAL))
    assert "Gone" not in names(found) and "Holiday" not in names(found)
    assert found.excluded == {"away": 1}
    assert names(found)[-1] == "Full"
    assert found.candidates[-1].full and found.candidates[-1].explanation == \
        "Networking 3/3; load 4 of 4 = 1 critical; full"
    assert back in [c.user_id for c in found.candidates]


def test_escalated_tickets_go_to_seniors_and_leads_only(engine, desk) -> None:
    tid = new_ticket(engine, desk["lead"], priority="High", assignee=desk["tech"])
    with transaction(engine) as s:
        t = s.get(Ticket, tid)
        tickets.escalate_to_senior(s, actor=desk["tech"], ticket_id=tid, expected_version=t.version,
                                   senior_id=desk["senior"], reason="needs a router config change", now=NOW)
    found = suggest(engine, tid)
    assert found.escalated
    assert {c.role for c in found.candidates} <= {Role.SENIOR, Role.LEAD}
    assert names(found) == ["Sam Senior", "Lena Lead"]
    assert found.excluded == {"role": 4}
    assert found.candidates[0].current  # Sam holds it now
    # the ticket itself does not count in its holder's load
    assert found.candidates[0].explanation == "Networking 2/3; load 1 of 10 = 1 low; most skilled with room"
    by_need = suggest(engine, Need(category_id=cat_id(engine), priority=Priority.HIGH,
                                   escalation=EscalationLevel.VENDOR))
    assert names(by_need) == ["Sam Senior", "Lena Lead"]


def test_weights_come_from_the_settings_table(engine, desk) -> None:
    with transaction(engine) as s:
        with pytest.raises(PermissionDenied):
            assignment.save_weights(s, actor=desk["tech"], weights={"critical": 8})
    with transaction(engine) as s:
        with pytest.raises(ValidationError) as err:
            assignment.save_weights(s, actor=desk["lead"], weights={"critical": -1, "urgent": 2})
        assert set(err.value.fields) == {"critical", "urgent"}
    with transaction(engine) as s:
        assignment.save_weights(s, actor=desk["lead"], weights={"high": 7, Priority.LOW: 0})
        assert s.get(Setting, assignment.WEIGHTS_KEY).value == {"critical": 4, "high": 7, "medium": 2, "low": 0}
    found = suggest(engine, Need(category_id=cat_id(engine), priority=Priority.CRITICAL))
    assert found.candidates[0].explanation.startswith("Networking 3/3; load 9 of 10 = 1 high + 1 medium + 1 low;")
    assert found.weights[Priority.HIGH] == 7


def test_only_open_tickets_count(engine, desk) -> None:
    tid = new_ticket(engine, desk["lead"], priority="Critical", assignee=desk["ben"])
    before = suggest(engine, Need(category_id=cat_id(engine), priority=Priority.LOW))
    ben = next(c for c in before.candidates if c.name == "Ben")
    assert ben.load == 4 and ben.counts == {Priority.CRITICAL: 1}
    with transaction(engine) as s:
        t = s.get(Ticket, tid)
        tickets.close(s, actor=desk["lead"], ticket_id=tid, expected_version=t.version, reason="cancelled",
                      note="the user fixed it", now=NOW)
    after = suggest(engine, Need(category_id=cat_id(engine), priority=Priority.LOW))
    assert next(c for c in after.candidates if c.name == "Ben").load == 0


def test_a_few_queries_whatever_the_team_size(engine, desk) -> None:
    for i in range(25):
        uid = add_user(engine, f"extra{i}", skills={"Networking": 1 + i % 3})
        give(engine, desk["lead"], uid, *(["Low"] * (i % 4)))
    tid = new_ticket(engine, desk["lead"], priority="High")
    statements: list[str] = []

    def count(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        found = suggest(engine, tid)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert found.considered == 31
    selects = [q for q in statements if q.lstrip().upper().startswith("SELECT")]
    assert len(selects) <= 5, selects


def test_auto_assign_records_the_explanation(engine, desk) -> None:
    tid = new_ticket(engine, desk["tech"], priority="Low")
    with transaction(engine) as s:
        chosen = assignment.auto_assign(s, actor=desk["tech"], ticket_id=tid, now=NOW)
    assert chosen.name == "Ben"
    with transaction(engine) as s:
        t = s.get(Ticket, tid)
        assert t.assignee_id == desk["ben"] and t.status == Status.ASSIGNED.value
        ev = s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == tid,
                                                 TicketEvent.kind == EventKind.ASSIGNED.value)).unique().one()
        assert ev.meta["explanation"] == "Networking 1/3; load 0 of 10 = no open tickets; lowest of 3"
        assert ev.body == "Assigned to the best candidate (asked by Tom Tech)"
        assert ev.new_value == "Ben"
    # a technician cannot use it to move someone else's ticket; a lead can (to the next best)
    with transaction(engine) as s:
        with pytest.raises(PermissionDenied):
            assignment.auto_assign(s, actor=desk["tech2"], ticket_id=tid, now=NOW)
    with transaction(engine) as s:
        moved = assignment.auto_assign(s, actor=desk["lead"], ticket_id=tid, now=NOW)
        assert moved.name == "Sam Senior"
        assert s.get(Ticket, tid).assignee_id == desk["senior"]


def test_auto_assign_at_intake_in_one_transaction(engine, desk) -> None:
    with transaction(engine) as s:
        t = tickets.create_ticket(s, actor=desk["tech"], now=NOW, draft=TicketDraft(
            summary="VPN drops", category="Networking", priority="Critical", channel="phone",
            requester=RequesterInput(name="Ann Smith", email="ann@example.com")))
        chosen = assignment.auto_assign(s, actor=desk["tech"], ticket_id=t.id, now=NOW)
        tid = t.id
    assert chosen.name == "Ann"
    with transaction(engine) as s:
        kinds = [e.kind for e in s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == tid)
                                           .order_by(TicketEvent.id)).unique()]
        assert kinds[:2] == ["created", "assigned"]
        assert s.get(Ticket, tid).assignee_id == desk["ann"]


def test_auto_assign_when_nobody_has_room_leaves_it(engine, staff) -> None:
    with transaction(engine) as s:
        for u in s.scalars(select(User)).unique():
            u.capacity = 0
    tid = new_ticket(engine, staff.tech, priority="High")
    with transaction(engine) as s:
        assert assignment.auto_assign(s, actor=staff.tech, ticket_id=tid, now=NOW) is None
        assert s.get(Ticket, tid).assignee_id is None


def test_lead_reassigns_with_explanations_and_versions(engine, desk) -> None:
    a, b = give(engine, desk["lead"], desk["ann"], "Low", "Medium", category="Networking")[:2]
    with transaction(engine) as s:
        versions = {t.id: t.version for t in s.scalars(select(Ticket).where(Ticket.id.in_([a, b]))).unique()}
    with transaction(engine) as s:
        with pytest.raises(PermissionDenied):
            assignment.reassign(s, actor=desk["tech"], moves=[(a, versions[a])], assignee_id=desk["ben"])
    with transaction(engine) as s:
        lines = assignment.reassign(s, actor=desk["lead"], moves=[(a, versions[a]), (b, versions[b])],
                                    assignee_id=desk["ben"], note="Ann is on the data-centre move", now=NOW)
    assert lines[0] == "Networking 1/3; load 0 of 10 = no open tickets; lowest of 3"
    assert lines[1].startswith("Networking 1/3; load 1 of 10 = 1 low;")  # the first move already counts
    with transaction(engine) as s:
        evs = list(s.scalars(select(TicketEvent).where(TicketEvent.ticket_id.in_([a, b]),
                                                       TicketEvent.kind == EventKind.ASSIGNED.value,
                                                       TicketEvent.old_value == "Ann")).unique())
        assert sorted(e.meta["explanation"] for e in evs) == sorted(lines)
        assert {e.body for e in evs} == {"Ann is on the data-centre move"}
    with transaction(engine) as s:  # the version the board showed is stale now
        with pytest.raises(StaleTicket):
            assignment.reassign(s, actor=desk["lead"], moves=[(a, versions[a])], assignee_id=desk["ann"])


def test_lead_choice_outside_the_candidates_is_recorded_as_such(engine, desk) -> None:
    tid = new_ticket(engine, desk["lead"], priority="High", assignee=desk["tech"])
    with transaction(engine) as s:
        t = s.get(Ticket, tid)
        tickets.escalate_to_senior(s, actor=desk["tech"], ticket_id=tid, expected_version=t.version,
                                   senior_id=desk["senior"], reason="beyond me", now=NOW)
    with transaction(engine) as s:
        t = s.get(Ticket, tid)
        assert assignment.reassign(s, actor=desk["lead"], moves=[(tid, t.version)], assignee_id=desk["ben"],
                                   now=NOW) == [None]
        ev = s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == tid,
                                                 TicketEvent.kind == EventKind.ASSIGNED.value)
                       .order_by(TicketEvent.id.desc()).limit(1)).unique().one()
        assert ev.meta["explanation"] == "chosen by the lead outside the suggestions"
