"""Business-time arithmetic for SLA clocks.

A :class:`BusinessCalendar` describes when the help desk is open: working weekdays, daily
opening hours in local wall time, and local holidays. A working day's window is
``[start, end)`` local time, converted to UTC with :mod:`zoneinfo`, so on a daylight-saving
change day the window is still 09:00-17:00 on the clock. An ``always_on`` calendar counts
every real second (24x7, holidays ignored).

All functions take timezone-aware datetimes in any zone and return UTC datetimes. The cost is
at most one step per calendar day, so targets of months of business time are cheap.
Pure standard library: safe to import from the worker, the CLI and the tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

__all__ = [
    "BusinessCalendar",
    "add_business_time",
    "add_business_time_with_pauses",
    "business_seconds_between",
    "business_seconds_in_intervals",
]

Interval = tuple[datetime, datetime | None]


@dataclass(frozen=True)
class BusinessCalendar:
    """Opening hours of the desk. Weekdays use ``date.weekday()`` numbering (Monday=0)."""

    tz: str = "Europe/London"
    workdays: frozenset[int] = frozenset({0, 1, 2, 3, 4})
    start: time = time(9, 0)
    end: time = time(17, 0)
    holidays: frozenset[date] = frozenset()
    always_on: bool = False

    def __post_init__(self) -> None:
        ZoneInfo(self.tz)  # raises ZoneInfoNotFoundError for an unknown zone
        object.__setattr__(self, "workdays", frozenset(self.workdays))
        object.__setattr__(self, "holidays", frozenset(self.holidays))
        if not self.workdays or not self.workdays <= set(range(7)):
            raise ValueError("workdays must be a non-empty subset of 0..6 (Monday=0)")
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("start and end are local wall times and must be naive")
        if self.start >= self.end:
            raise ValueError("start must be earlier than end")

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    def is_working_day(self, day: date) -> bool:
        """True if ``day`` (a local date) is a working weekday and not a holiday."""
        return day.weekday() in self.workdays and day not in self.holidays

    def to_dict(self) -> dict:
        """JSON-serialisable form; :meth:`from_dict` restores an equal calendar."""
        return {
            "tz": self.tz,
            "workdays": sorted(self.workdays),
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "holidays": sorted(d.isoformat() for d in self.holidays),
            "always_on": self.always_on,
        }

    @classmethod
    def from_dict(cls, d: dict) -> BusinessCalendar:
        """Build a calendar from :meth:`to_dict` output; missing keys take the defaults."""
        kwargs: dict = {}
        if "tz" in d:
            kwargs["tz"] = str(d["tz"])
        if "workdays" in d:
            kwargs["workdays"] = frozenset(int(x) for x in d["workdays"])
        for key in ("start", "end"):
            if key in d:
                value = d[key]
                kwargs[key] = value if isinstance(value, time) else time.fromisoformat(value)
        if "holidays" in d:
            kwargs["holidays"] = frozenset(
                x if isinstance(x, date) else date.fromisoformat(x) for x in d["holidays"]
            )
        if "always_on" in d:
            kwargs["always_on"] = bool(d["always_on"])
        return cls(**kwargs)

    @classmethod
    def twenty_four_seven(cls, tz: str = "UTC") -> BusinessCalendar:
        """A calendar in which every real second is business time."""
        return cls(tz=tz, workdays=frozenset(range(7)), always_on=True)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"timezone-aware datetime required, got {moment!r}")
    return moment.astimezone(UTC)


def _windows(cal: BusinessCalendar, since: datetime) -> Iterator[tuple[datetime, datetime]]:
    """Yield the UTC opening windows of working days, in order, that end after ``since``.

    Never-ending: callers stop iterating once they have what they need.
    """
    zone = cal.zone
    day = since.astimezone(zone).date() - timedelta(days=1)
    while True:
        if cal.is_working_day(day):
            opens = datetime.combine(day, cal.start, tzinfo=zone).astimezone(UTC)
            closes = datetime.combine(day, cal.end, tzinfo=zone).astimezone(UTC)
            if closes > since and closes > opens:
                yield opens, closes
        day += timedelta(days=1)


def add_business_time(cal: BusinessCalendar, start: datetime, seconds: float) -> datetime:
    """Return the UTC moment at which ``seconds`` of business time have elapsed after ``start``.

    A start outside business hours rolls to the next opening. ``seconds == 0`` returns
    ``start`` itself (in UTC). A target landing exactly on a closing time returns that
    closing time, not the next opening.
    """
    begin = _utc(start)
    if seconds < 0:
        raise ValueError("seconds must not be negative")
    if seconds == 0:
        return begin
    if cal.always_on:
        return begin + timedelta(seconds=seconds)
    remaining = float(seconds)
    for opens, closes in _windows(cal, begin):
        frm = max(opens, begin)
        available = (closes - frm).total_seconds()
        if remaining <= available:
            return frm + timedelta(seconds=remaining)
        remaining -= available
    raise AssertionError("unreachable: _windows never ends")  # pragma: no cover


def business_seconds_between(cal: BusinessCalendar, a: datetime, b: datetime) -> float:
    """Business seconds in ``[a, b)``; 0 if ``b <= a``."""
    lo, hi = _utc(a), _utc(b)
    if hi <= lo:
        return 0.0
    if cal.always_on:
        return (hi - lo).total_seconds()
    total = 0.0
    for opens, closes in _windows(cal, lo):
        if opens >= hi:
            break
        total += (min(closes, hi) - max(opens, lo)).total_seconds()
    return total


def business_seconds_in_intervals(
    cal: BusinessCalendar, intervals: Iterable[Interval], *, now: datetime
) -> float:
    """Sum of business seconds over running intervals; an open end (``None``) runs until ``now``."""
    return sum(
        business_seconds_between(cal, a, now if b is None else b) for a, b in intervals
    )


def add_business_time_with_pauses(
    cal: BusinessCalendar, start: datetime, seconds: float, *, running: list[Interval]
) -> datetime | None:
    """Due moment of a clock that runs only during ``running`` (sorted, non-overlapping).

    Time before ``start`` does not count. Returns the UTC moment at which the business time
    accumulated over the intervals reaches ``seconds``:

    * reached inside a closed interval: that (past, i.e. breached) moment;
    * last interval open (end ``None``): continue from its start with the time still owed;
    * otherwise the clock is paused and has no due time: ``None``.
    """
    begin = _utc(start)
    if seconds < 0:
        raise ValueError("seconds must not be negative")
    if seconds == 0:
        return begin
    remaining = float(seconds)
    previous_end: datetime | None = None
    for index, (a, b) in enumerate(running):
        lo = _utc(a)
        if previous_end is not None and lo < previous_end:
            raise ValueError("running intervals must be sorted and non-overlapping")
        lo = max(lo, begin)
        if b is None:
            if index != len(running) - 1:
                raise ValueError("only the last running interval may be open")
            return add_business_time(cal, lo, remaining)
        hi = _utc(b)
        previous_end = hi
        if hi <= lo:
            continue
        used = business_seconds_between(cal, lo, hi)
        if used >= remaining:
            return min(add_business_time(cal, lo, remaining), hi)
        remaining -= used
    return None
