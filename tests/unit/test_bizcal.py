"""Tests for lib.bizcal: business-time arithmetic for SLA clocks."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.bizcal import (
    BusinessCalendar,
    add_business_time,
    add_business_time_with_pauses,
    business_seconds_between,
    business_seconds_in_intervals,
)

LONDON = ZoneInfo("Europe/London")
HOUR = 3600.0
CAL = BusinessCalendar(holidays=frozenset({date(2026, 12, 25), date(2026, 12, 28)}))


def local(*args: int) -> datetime:
    """A Europe/London wall-clock datetime."""
    return datetime(*args, tzinfo=LONDON)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- required scenarios ---------------------------------------------------------------


def test_friday_afternoon_rolls_over_weekend() -> None:
    due = add_business_time(CAL, local(2026, 11, 27, 15), 16 * HOUR)
    assert due == local(2026, 12, 1, 15)
    assert due.tzinfo is UTC


def test_christmas_holidays_are_skipped() -> None:
    assert add_business_time(CAL, local(2026, 12, 24, 16), 8 * HOUR) == local(2026, 12, 29, 16)


def test_always_on_counts_real_seconds_across_clocks_going_forward() -> None:
    cal = BusinessCalendar(tz="Europe/London", always_on=True)
    due = add_business_time(cal, local(2026, 3, 29, 0, 30), 4 * HOUR)
    assert due == utc(2026, 3, 29, 4, 30)
    assert due.astimezone(LONDON).hour == 5
    assert due.astimezone(LONDON).minute == 30


def test_business_hours_across_clocks_going_forward() -> None:
    due = add_business_time(CAL, local(2026, 3, 27, 13), 8 * HOUR)
    assert due == local(2026, 3, 30, 13)
    assert due == utc(2026, 3, 30, 12)  # 13:00 BST


def test_window_stays_nine_to_five_local_on_dst_change_days() -> None:
    cal = BusinessCalendar(workdays=frozenset(range(7)))
    # Sunday 2026-03-29 (spring forward) and Sunday 2026-10-25 (fall back).
    for day in (date(2026, 3, 29), date(2026, 10, 25)):
        opens = datetime.combine(day, time(9), tzinfo=LONDON)
        assert add_business_time(cal, opens - timedelta(hours=3), 1) == opens + timedelta(seconds=1)
        day_span = (opens - timedelta(hours=8), opens + timedelta(hours=12))
        assert business_seconds_between(cal, *day_span) == 8 * HOUR


def test_paused_waiting_on_user_then_running_again() -> None:
    created = local(2026, 11, 30, 9)
    running = [(created, local(2026, 11, 30, 11)), (local(2026, 12, 2, 11), None)]
    due = add_business_time_with_pauses(CAL, created, 16 * HOUR, running=running)
    assert due == local(2026, 12, 3, 17)


def test_resolved_then_reopened() -> None:
    created = local(2026, 11, 30, 9)
    running = [(created, local(2026, 11, 30, 13)), (local(2026, 12, 1, 9), None)]
    due = add_business_time_with_pauses(CAL, created, 16 * HOUR, running=running)
    assert due == local(2026, 12, 2, 13)


def test_paused_clock_has_no_due_time() -> None:
    created = local(2026, 11, 30, 9)
    running = [(created, local(2026, 11, 30, 13))]
    assert add_business_time_with_pauses(CAL, created, 16 * HOUR, running=running) is None
    assert add_business_time_with_pauses(CAL, created, 16 * HOUR, running=[]) is None


def test_target_reached_inside_closed_interval_is_breached_moment() -> None:
    created = local(2026, 11, 30, 9)
    running = [(created, local(2026, 12, 2, 12))]  # ran Mon 09:00 .. Wed 12:00, now paused
    due = add_business_time_with_pauses(CAL, created, 16 * HOUR, running=running)
    assert due == local(2026, 12, 1, 17)


def test_pauses_time_before_start_does_not_count() -> None:
    created = local(2026, 11, 30, 13)
    running = [(local(2026, 11, 30, 9), None)]
    due = add_business_time_with_pauses(CAL, created, 4 * HOUR, running=running)
    assert due == local(2026, 11, 30, 17)


def test_pauses_validation() -> None:
    created = local(2026, 11, 30, 9)
    with pytest.raises(ValueError):
        add_business_time_with_pauses(
            CAL, created, HOUR, running=[(created, None), (local(2026, 12, 1, 9), None)]
        )
    with pytest.raises(ValueError):
        add_business_time_with_pauses(
            CAL,
            created,
            99 * HOUR,
            running=[(created, local(2026, 11, 30, 12)), (local(2026, 11, 30, 11), None)],
        )


@pytest.mark.parametrize(
    "start",
    [
        local(2026, 11, 28, 12),  # Saturday
        local(2026, 11, 29, 23, 59),  # Sunday night
        local(2026, 11, 30, 7),  # before opening
        local(2026, 11, 27, 18),  # Friday after closing
    ],
)
def test_start_outside_hours_rolls_to_next_opening(start: datetime) -> None:
    assert add_business_time(CAL, start, 1) == local(2026, 11, 30, 9, 0, 1)
    assert add_business_time(CAL, start, 8 * HOUR) == local(2026, 11, 30, 17)


def test_start_before_opening_same_day() -> None:
    assert add_business_time(CAL, local(2026, 12, 1, 7), HOUR) == local(2026, 12, 1, 10)
    assert add_business_time(CAL, local(2026, 12, 1, 18), HOUR) == local(2026, 12, 2, 10)


def test_start_on_holiday_skips_it() -> None:
    assert add_business_time(CAL, local(2026, 12, 25, 10), HOUR) == local(2026, 12, 29, 10)
    assert add_business_time(CAL, local(2026, 12, 28, 9), HOUR) == local(2026, 12, 29, 10)


def test_zero_seconds_returns_start_even_outside_hours() -> None:
    start = local(2026, 11, 28, 3)
    assert add_business_time(CAL, start, 0) == start
    assert add_business_time(CAL, start, 0).tzinfo is UTC


def test_target_exactly_at_closing_returns_closing_time() -> None:
    assert add_business_time(CAL, local(2026, 11, 30, 9), 8 * HOUR) == local(2026, 11, 30, 17)


def test_start_in_other_zone() -> None:
    start = datetime(2026, 11, 30, 4, tzinfo=ZoneInfo("America/New_York"))  # 09:00 London
    assert add_business_time(CAL, start, HOUR) == local(2026, 11, 30, 10)


def test_between_round_trips_fixed_cases() -> None:
    start = local(2026, 11, 27, 15)
    assert business_seconds_between(CAL, start, local(2026, 12, 1, 15)) == 16 * HOUR
    christmas = (local(2026, 12, 24, 16), local(2026, 12, 29, 16))
    assert business_seconds_between(CAL, *christmas) == 8 * HOUR
    assert business_seconds_between(CAL, local(2026, 12, 1, 15), start) == 0
    assert business_seconds_between(CAL, local(2026, 11, 28), local(2026, 11, 29, 23)) == 0


def test_intervals_with_open_end_use_now() -> None:
    now = local(2026, 12, 1, 12)
    intervals = [(local(2026, 11, 30, 9), local(2026, 11, 30, 11)), (local(2026, 12, 1, 10), None)]
    assert business_seconds_in_intervals(CAL, intervals, now=now) == 4 * HOUR


def test_long_targets_cost_one_step_per_calendar_day() -> None:
    """Counted, not timed: each function looks at each calendar day of the span once."""
    looked: list[date] = []

    class Counting(BusinessCalendar):
        def is_working_day(self, day: date) -> bool:
            looked.append(day)
            return super().is_working_day(day)

    cal = Counting(**{f: getattr(CAL, f) for f in ("tz", "workdays", "start", "end", "holidays", "always_on")})
    start = local(2026, 1, 5, 9)
    due = add_business_time(cal, start, 2000 * HOUR)
    days = (due.date() - start.date()).days + 1
    assert len(looked) <= days + 4  # the span, the day before and after: never a step per hour
    looked.clear()
    assert business_seconds_between(cal, start, due) == 2000 * HOUR
    assert len(looked) <= days + 4  # the span, the day before and after: never a step per hour


def test_naive_datetimes_and_negative_seconds_are_rejected() -> None:
    with pytest.raises(ValueError):
        add_business_time(CAL, datetime(2026, 11, 30, 9), HOUR)
    with pytest.raises(ValueError):
        add_business_time(CAL, local(2026, 11, 30, 9), -1)


# --- calendar object ------------------------------------------------------------------


def test_to_dict_is_json_and_round_trips() -> None:
    cal = BusinessCalendar(
        tz="America/New_York",
        workdays=frozenset({0, 2, 5}),
        start=time(8, 30),
        end=time(18, 15),
        holidays=frozenset({date(2026, 7, 3)}),
    )
    data = json.loads(json.dumps(cal.to_dict()))
    assert data["start"] == "08:30:00"
    assert data["holidays"] == ["2026-07-03"]
    assert BusinessCalendar.from_dict(data) == cal
    assert BusinessCalendar.from_dict({}) == BusinessCalendar()


def test_twenty_four_seven() -> None:
    cal = BusinessCalendar.twenty_four_seven()
    assert cal.always_on and cal.tz == "UTC"
    assert BusinessCalendar.from_dict(cal.to_dict()) == cal
    start = utc(2026, 12, 25, 23)
    assert add_business_time(cal, start, 3 * HOUR) == utc(2026, 12, 26, 2)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"workdays": frozenset()},
        {"workdays": frozenset({7})},
        {"start": time(17), "end": time(9)},
        {"start": time(9), "end": time(9)},
    ],
)
def test_invalid_calendars_are_rejected(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        BusinessCalendar(**kwargs)


# --- properties -----------------------------------------------------------------------

ZONES = [UTC, LONDON, ZoneInfo("America/New_York"), ZoneInfo("Australia/Sydney")]
TZ_NAMES = ["Europe/London", "America/New_York", "Australia/Sydney", "Asia/Kolkata", "UTC"]


@st.composite
def calendars(draw: st.DrawFn) -> BusinessCalendar:
    # Windows of at least an hour keep the 600-hour targets below a few thousand days.
    start_minute = draw(st.integers(0, 22 * 60))
    end_minute = draw(st.integers(start_minute + 60, 24 * 60 - 1))
    holidays = draw(st.frozensets(st.dates(date(2025, 12, 1), date(2027, 1, 31)), max_size=20))
    return BusinessCalendar(
        tz=draw(st.sampled_from(TZ_NAMES)),
        workdays=draw(st.frozensets(st.integers(0, 6), min_size=1)),
        start=time(*divmod(start_minute, 60)),
        end=time(*divmod(end_minute, 60)),
        holidays=holidays,
        always_on=draw(st.booleans()),
    )


moments = st.datetimes(
    min_value=datetime(2025, 12, 1),
    max_value=datetime(2026, 12, 31),
    timezones=st.sampled_from(ZONES),
    allow_imaginary=False,
)
durations = st.floats(min_value=0, max_value=600 * HOUR, allow_nan=False)
PROPS = settings(max_examples=200, deadline=None)


@PROPS
@given(calendars(), moments, moments)
def test_business_time_never_exceeds_wall_time(
    cal: BusinessCalendar, a: datetime, b: datetime
) -> None:
    elapsed = business_seconds_between(cal, a, b)
    # Subtract in UTC: aware datetimes sharing a tzinfo subtract as wall-clock times.
    wall = (b.astimezone(UTC) - a.astimezone(UTC)).total_seconds()
    assert 0 <= elapsed <= max(0.0, wall)


@PROPS
@given(calendars(), moments, durations)
def test_add_then_measure_round_trips(
    cal: BusinessCalendar, start: datetime, seconds: float
) -> None:
    due = add_business_time(cal, start, seconds)
    assert due.tzinfo is UTC
    assert due >= start
    assert abs(business_seconds_between(cal, start, due) - seconds) <= 1


@PROPS
@given(calendars(), moments, durations, durations)
def test_more_seconds_never_due_earlier(
    cal: BusinessCalendar, start: datetime, x: float, y: float
) -> None:
    low, high = sorted((x, y))
    assert add_business_time(cal, start, low) <= add_business_time(cal, start, high)


@PROPS
@given(calendars(), st.lists(moments, min_size=2, max_size=8))
def test_paused_time_never_counts(cal: BusinessCalendar, points: list[datetime]) -> None:
    points = sorted(p.astimezone(UTC) for p in points)  # real order, even across DST folds
    # Alternate running / paused stretches between consecutive points.
    intervals = [(points[i], points[i + 1]) for i in range(0, len(points) - 1, 2)]
    hull = business_seconds_between(cal, points[0], points[-1])
    running = business_seconds_in_intervals(cal, intervals, now=points[-1])
    parts = sum(business_seconds_between(cal, a, b) for a, b in intervals)
    assert running == pytest.approx(parts)
    assert running <= hull + 1e-6


@PROPS
@given(calendars(), st.lists(moments, min_size=2, max_size=8), durations)
def test_pauses_due_matches_accumulated_time(
    cal: BusinessCalendar, points: list[datetime], seconds: float
) -> None:
    points = sorted(p.astimezone(UTC) for p in points)  # real order, even across DST folds
    intervals: list[tuple[datetime, datetime | None]] = [
        (points[i], points[i + 1]) for i in range(0, len(points) - 1, 2)
    ]
    due = add_business_time_with_pauses(cal, points[0], seconds, running=intervals)
    total = business_seconds_in_intervals(cal, intervals, now=points[-1])
    if due is None:
        assert total < seconds
    else:
        assert total >= seconds - 1
        counted = business_seconds_in_intervals(
            cal, [(a, min(b, due)) for a, b in intervals if a < due], now=due
        )
        assert abs(counted - seconds) <= 1
