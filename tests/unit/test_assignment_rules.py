"""The ranking rule of lib.assignment, without a database: order and the explanation of each place; and the
acknowledgement cut-off of lib.acknowledge."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from hypothesis import given
from hypothesis import strategies as st

from lib.acknowledge import latest_overdue_start
from lib.assignment import (
    URGENT,
    is_full,
    load_breakdown,
    rank,
    score,
    standing,
    weighted_load,
)
from lib.bizcal import BusinessCalendar, add_business_time
from lib.desk_settings import DEFAULT_WEIGHTS, parse_weights
from lib.workflow import Priority, Role

C, H, M, L = Priority.CRITICAL, Priority.HIGH, Priority.MEDIUM, Priority.LOW


def person(uid: int, name: str, skill: int, counts: dict[Priority, int], *, priority: Priority, capacity: int = 10,
           weights: dict[Priority, int] | None = None, role: Role = Role.TECHNICIAN):
    return standing(user_id=uid, name=name, capacity=capacity, skill=skill, counts=counts,
                    weights=weights or DEFAULT_WEIGHTS, priority=priority, role=role)


def ranked(priority: Priority, *people_args) -> list[tuple[str, str]]:
    rows = [person(i + 1, *args[:3], priority=priority, **(args[3] if len(args) > 3 else {}))
            for i, args in enumerate(people_args)]
    return [(c.name, c.explanation) for c in rank(rows, priority=priority, category="Networking")]


def test_the_issue_example_line() -> None:
    out = ranked(L, ("Ann", 3, {H: 1, M: 1, L: 1}), ("Bob", 2, {C: 2}), ("Cy", 1, {H: 2, M: 1}),
                 ("Di", 3, {C: 1, H: 1, M: 1}))
    assert out[0] == ("Ann", "Networking 3/3; load 6 of 10 = 1 high + 1 medium + 1 low; lowest of 4")
    assert out[1] == ("Bob", "Networking 2/3; load 8 of 10 = 2 critical; 2nd lowest of 4")
    assert [n for n, _ in out] == ["Ann", "Bob", "Cy", "Di"]
    assert out[2][1].endswith("; 2nd lowest of 4")  # Cy ties with Bob at 8 of 10 (Bob is more skilled)
    assert out[3][1] == "Networking 3/3; load 9 of 10 = 1 critical + 1 high + 1 medium; 4th lowest of 4"


def test_skill_beats_load_for_critical() -> None:
    out = ranked(C, ("Busy expert", 3, {H: 2, L: 1}), ("Idle novice", 1, {}))
    assert out == [
        ("Busy expert", "Networking 3/3; load 7 of 10 = 2 high + 1 low; most skilled with room"),
        ("Idle novice", "Networking 1/3; load 0 of 10 = no open tickets; less skilled than the best with room (3/3)"),
    ]
    assert ranked(H, ("Busy expert", 3, {H: 2, L: 1}), ("Idle novice", 1, {}))[0][0] == "Busy expert"


def test_load_wins_for_low_and_medium() -> None:
    for priority in (L, M):
        out = ranked(priority, ("Busy expert", 3, {H: 2, L: 1}), ("Idle novice", 1, {}))
        assert out == [
            ("Idle novice", "Networking 1/3; load 0 of 10 = no open tickets; lowest of 2"),
            ("Busy expert", "Networking 3/3; load 7 of 10 = 2 high + 1 low; 2nd lowest of 2"),
        ]


def test_equal_skill_for_urgent_goes_to_the_less_loaded() -> None:
    out = ranked(C, ("Ann", 3, {M: 3}), ("Bob", 3, {M: 1}), ("Cy", 2, {}))
    assert out == [
        ("Bob", "Networking 3/3; load 2 of 10 = 1 medium; most skilled with room; least loaded of 2 at 3/3"),
        ("Ann", "Networking 3/3; load 6 of 10 = 3 medium; most skilled with room; 2nd least loaded of 2 at 3/3"),
        ("Cy", "Networking 2/3; load 0 of 10 = no open tickets; less skilled than the best with room (3/3)"),
    ]


def test_equal_load_for_routine_goes_to_the_more_skilled() -> None:
    out = ranked(L, ("Ann", 1, {L: 2}), ("Bob", 3, {L: 2}))
    assert [n for n, _ in out] == ["Bob", "Ann"]
    assert all(e.endswith("lowest of 2") and "2nd" not in e for _, e in out)  # a tie shares the place


def test_people_without_the_skill_come_after_the_skilled_for_routine_work() -> None:
    out = ranked(L, ("Generalist", 0, {}), ("Specialist", 2, {H: 2}))
    assert out == [
        ("Specialist", "Networking 2/3; load 6 of 10 = 2 high; the only one with the skill and room"),
        ("Generalist", "no Networking skill recorded; load 0 of 10 = no open tickets; has room"),
    ]
    # nobody has the skill: the least loaded is first, and the line says why
    out = ranked(L, ("A", 0, {L: 3}), ("B", 0, {L: 1}))
    assert out[0] == ("B", "no Networking skill recorded; load 1 of 10 = 1 low; nobody with the skill has room")


def test_full_people_are_last_and_say_full() -> None:
    out = ranked(C, ("Full expert", 3, {C: 2, H: 1}, {"capacity": 10}), ("Novice", 1, {L: 9}),
                 ("No capacity", 3, {}, {"capacity": 0}))
    assert [n for n, _ in out] == ["Novice", "Full expert", "No capacity"]
    assert out[1][1] == "Networking 3/3; load 11 of 10 = 2 critical + 1 high; full"
    assert out[2][1] == "Networking 3/3; load 0 of 0 = no open tickets; full"
    assert out[0][1].endswith("most skilled with room")  # the best of those with room, though only 1/3


def test_exactly_at_capacity_is_full() -> None:
    assert is_full(10, 10) and not is_full(9, 10) and is_full(0, 0)
    out = ranked(L, ("At capacity", 2, {C: 2, M: 1}), ("Over half", 1, {C: 2}))
    assert out[-1] == ("At capacity", "Networking 2/3; load 10 of 10 = 2 critical + 1 medium; full")


def test_share_of_capacity_not_absolute_load_for_routine_work() -> None:
    out = ranked(L, ("Part-timer", 2, {M: 2}, {"capacity": 5}), ("Full-timer", 2, {M: 3}, {"capacity": 20}))
    assert out[0] == ("Full-timer", "Networking 2/3; load 6 of 20 = 3 medium; lowest of 2")


def test_custom_weights_change_the_load() -> None:
    weights = {C: 10, H: 5, M: 1, L: 0}
    out = ranked(L, ("Ann", 2, {C: 1}, {"weights": weights}), ("Bob", 2, {L: 9, M: 2}, {"weights": weights}))
    assert out == [("Bob", "Networking 2/3; load 2 of 10 = 2 medium + 9 low; the only one with the skill and room"),
                   ("Ann", "Networking 2/3; load 10 of 10 = 1 critical; full")]


def test_weights_parsing_keeps_defaults_for_bad_entries() -> None:
    assert parse_weights(None) == DEFAULT_WEIGHTS
    assert parse_weights({"critical": 6, "HIGH": 5, "medium": -1, "low": True, "urgent": 3, "2": 7}) == {
        C: 6, H: 5, M: 7, L: 1}
    assert parse_weights([1, 2]) == DEFAULT_WEIGHTS


def test_breakdown_and_weighted_load() -> None:
    counts = {L: 1, C: 1, M: 0, H: 2}
    assert load_breakdown(counts) == "1 critical + 2 high + 1 low"
    assert load_breakdown({}) == "no open tickets"
    assert weighted_load(counts, DEFAULT_WEIGHTS) == 4 + 6 + 1


# --- properties ----------------------------------------------------------------------------------

priorities = st.sampled_from(list(Priority))
skills = st.integers(0, 3)
capacities = st.integers(0, 40)
loads = st.integers(0, 60)


@given(priorities, skills, skills, loads, capacities)
def test_score_is_monotone_in_skill(priority, a, b, load, capacity) -> None:
    lo, hi = sorted((a, b))
    assert score(skill=lo, load=load, capacity=capacity, priority=priority) <= \
        score(skill=hi, load=load, capacity=capacity, priority=priority)


@given(priorities, skills, loads, loads, capacities, capacities)
def test_score_is_monotone_in_free_capacity(priority, skill, load_a, load_b, cap_a, cap_b) -> None:
    # less load on the same capacity, or more capacity for the same load: never a lower score
    lo, hi = sorted((load_a, load_b))
    assert score(skill=skill, load=hi, capacity=cap_a, priority=priority) <= \
        score(skill=skill, load=lo, capacity=cap_a, priority=priority)
    small, big = sorted((cap_a, cap_b))
    assert score(skill=skill, load=load_a, capacity=small, priority=priority) <= \
        score(skill=skill, load=load_a, capacity=big, priority=priority)


people_lists = st.lists(st.tuples(skills, st.dictionaries(priorities, st.integers(0, 4), max_size=4),
                                  st.integers(0, 20)), min_size=1, max_size=8)


@given(priorities, people_lists)
def test_rank_follows_the_rule(priority, people) -> None:
    rows = [standing(user_id=i + 1, name=f"p{i}", capacity=cap, skill=skill, counts=counts, weights=DEFAULT_WEIGHTS,
                     priority=priority) for i, (skill, counts, cap) in enumerate(people)]
    out = rank(rows, priority=priority, category="Networking")
    assert sorted(c.user_id for c in out) == sorted(r.user_id for r in rows)
    fulls = [c.full for c in out]
    assert fulls == sorted(fulls)  # everyone with room comes before anyone full
    assert all(c.explanation.endswith("; full") == c.full for c in out)
    room = [c for c in out if not c.full]
    if priority in URGENT:
        assert [c.skill for c in room] == sorted((c.skill for c in room), reverse=True)
    else:
        skilled = [c for c in room if c.skill >= 1]
        assert room[: len(skilled)] == skilled
        assert [c.share for c in skilled] == sorted(c.share for c in skilled)
        if len(skilled) > 1:
            assert skilled[0].explanation.endswith(f"; lowest of {len(skilled)}")


# --- the acknowledgement cut-off (lib.acknowledge) -------------------------------------------------

LONDON = BusinessCalendar(tz="Europe/London", holidays=frozenset({date(2026, 12, 25), date(2026, 12, 28)}))
AROUND = BusinessCalendar.twenty_four_seven("Europe/London")


def test_cutoff_examples() -> None:
    mon_0910 = datetime(2026, 11, 30, 9, 10, tzinfo=UTC)
    assert latest_overdue_start(LONDON, 30, mon_0910) == datetime(2026, 11, 27, 16, 40, tzinfo=UTC)
    assert latest_overdue_start(AROUND, 15, mon_0910) == mon_0910 - timedelta(minutes=15)
    tue_after_christmas = datetime(2026, 12, 29, 10, 0, tzinfo=UTC)
    assert latest_overdue_start(LONDON, 120, tue_after_christmas) == datetime(2026, 12, 24, 16, 0, tzinfo=UTC)


@given(st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31)),
       st.sampled_from([15, 30, 120, 240, 600]), st.integers(-3 * 24 * 60, 0), st.booleans())
def test_cutoff_splits_overdue_from_not(now_naive, minutes, offset, around) -> None:
    cal = AROUND if around else LONDON
    now = now_naive.replace(tzinfo=UTC)
    cutoff = latest_overdue_start(cal, minutes, now)
    assert cutoff is not None
    start = now + timedelta(minutes=offset)
    overdue = add_business_time(cal, start, minutes * 60) <= now
    assert overdue == (start <= cutoff)
    assert add_business_time(cal, cutoff, minutes * 60) <= now
    assert add_business_time(cal, cutoff + timedelta(microseconds=2), minutes * 60) > now


def test_cutoff_none_when_nothing_can_be_overdue() -> None:
    never = BusinessCalendar(tz="UTC", workdays=frozenset({0}), start=time(9), end=time(9, 1),
                             holidays=frozenset(date(2026, 1, 5) + timedelta(weeks=w) for w in range(80)))
    assert latest_overdue_start(never, 600, datetime(2026, 6, 1, tzinfo=UTC)) is None


def test_a_lead_comes_after_the_team_unless_only_the_lead_can_take_it() -> None:
    lead = {"role": Role.LEAD}
    # idle lead, busier technicians with the skill: the technicians first
    out = ranked(L, ("Lena", 2, {}, lead), ("Tom", 1, {M: 2}), ("Tara", 1, {H: 1}))
    assert [n for n, _ in out] == ["Tara", "Tom", "Lena"]
    assert out[-1][1].endswith("; a lead: after the team members with room")
    assert ranked(C, ("Lena", 3, {}, lead), ("Tom", 1, {M: 2}))[0][0] == "Tom"
    # nobody has the skill: still the team first
    assert [n for n, _ in ranked(M, ("Lena", 0, {}, lead), ("Tom", 0, {H: 2}))] == ["Tom", "Lena"]
    # only the lead has the skill: the lead first, and the line says nothing about it
    out = ranked(L, ("Lena", 2, {}, lead), ("Tom", 0, {}))
    assert out[0] == ("Lena", "Networking 2/3; load 0 of 10 = no open tickets; the only one with the skill and room")
    # the team is full: the lead first
    out = ranked(L, ("Lena", 0, {}, lead), ("Tom", 3, {C: 3}))
    assert [n for n, _ in out] == ["Lena", "Tom"] and out[1][1].endswith("full")
