"""Business-time arithmetic on epoch seconds over a precomputed table of opening windows.

The rules are those of :mod:`lib.bizcal` (the windows of working days in the calendar's zone; a start
outside hours rolls to the next opening; a target landing exactly on a closing time returns that
closing time; an ``always_on`` calendar counts every second), but each step is two binary searches
instead of a walk over the days. Bulk work (seeding a million tickets) needs that speed; the tests
check the results against :func:`lib.sla.compute`.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from datetime import UTC, datetime, timedelta

from lib.bizcal import BusinessCalendar
from lib.workflow import RUNNING_STATUSES

Seconds = int | float
Interval = tuple[Seconds, Seconds | None]
RUNNING = frozenset(s.value for s in RUNNING_STATUSES)


def _num(x: float) -> Seconds:
    return int(x) if x == int(x) else x


class FastClock:
    """Opening windows of ``cal`` between ``first`` and ``last`` (epoch seconds), ready for quick sums.

    Outside the table (well past ``last``) every second counts, which only ever matters for moments
    far beyond the period being generated.
    """

    def __init__(self, cal: BusinessCalendar, first: Seconds, last: Seconds) -> None:
        self.always_on = cal.always_on
        self.opens: list[Seconds] = []
        self.closes: list[Seconds] = []
        self.cum_start: list[Seconds] = []
        self.cum_end: list[Seconds] = []
        self.total: Seconds = 0
        if self.always_on:
            return
        zone = cal.zone
        day = datetime.fromtimestamp(first, UTC).astimezone(zone).date() - timedelta(days=2)
        end = datetime.fromtimestamp(last, UTC).astimezone(zone).date() + timedelta(days=2)
        total: Seconds = 0
        while day <= end:
            if cal.is_working_day(day):
                opens = _num(datetime.combine(day, cal.start, tzinfo=zone).timestamp())
                closes = _num(datetime.combine(day, cal.end, tzinfo=zone).timestamp())
                if closes > opens:
                    self.opens.append(opens)
                    self.closes.append(closes)
                    self.cum_start.append(total)
                    total += closes - opens
                    self.cum_end.append(total)
            day += timedelta(days=1)
        self.total = total
        if not self.opens:  # a calendar with no working day in range: behave as always on
            self.always_on = True

    def elapsed(self, t: Seconds) -> Seconds:
        """Business seconds from the start of the table up to ``t``."""
        if self.always_on:
            return t
        i = bisect_right(self.closes, t)  # the first window closing after t
        if i == len(self.closes):
            return self.total + (t - self.closes[-1])
        opens = self.opens[i]
        return self.cum_start[i] + (t - opens if t > opens else 0)

    def moment(self, x: Seconds) -> Seconds:
        """The moment at which ``elapsed`` reaches ``x`` (the earliest one)."""
        if self.always_on:
            return x
        i = bisect_left(self.cum_end, x)
        if i == len(self.cum_end):
            return self.closes[-1] + (x - self.total)
        return self.opens[i] + (x - self.cum_start[i])

    def add(self, t: Seconds, seconds: Seconds) -> Seconds:
        """``t`` plus ``seconds`` of business time (like ``bizcal.add_business_time``)."""
        if seconds <= 0:
            return t
        return self.moment(self.elapsed(t) + seconds)

    def between(self, a: Seconds, b: Seconds) -> Seconds:
        return self.elapsed(b) - self.elapsed(a) if b > a else 0

    def due_with_pauses(self, start: Seconds, seconds: Seconds, running: list[Interval]) -> Seconds | None:
        """Like ``bizcal.add_business_time_with_pauses``: the due moment of a clock that runs only in ``running``."""
        if seconds <= 0:
            return start
        remaining = seconds
        for a, b in running:
            lo = a if a > start else start
            if b is None:
                return self.add(lo, remaining)
            if b <= lo:
                continue
            used = self.between(lo, b)
            if used >= remaining:
                due = self.add(lo, remaining)
                return due if due < b else b
            remaining -= used
        return None


def running_intervals(created: Seconds, history: list[tuple[Seconds, str]]) -> list[Interval]:
    """When the resolution clock ran, from ``(time, to_status)`` pairs in time order (``sla.intervals_from_history``)."""
    intervals: list[Interval] = []
    since: Seconds | None = created
    for at, status in history:
        if at < created:
            at = created
        runs = status in RUNNING
        if runs and since is None:
            since = at
        elif not runs and since is not None:
            if at > since:
                intervals.append((since, at))
            since = None
    if since is not None:
        intervals.append((since, None))
    return intervals
