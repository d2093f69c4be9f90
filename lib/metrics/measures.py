"""Help desk metrics for a date range and filters, on SQLite and PostgreSQL (pure data: no streamlit, no plotly).

Every definition is written out in docs/metrics.md; in short:

* Days and ISO weeks (Monday to Sunday) are those of the configured time zone (``MetricFilter.tz``,
  default ``get_settings().timezone``), so a day can last 23 or 25 hours. A range is ``[start, end)`` in
  local dates; a period is labelled with its first day (a week with its Monday, even when the range cuts it).
* A ticket is counted under its *current* priority, category, assignee and channel.
* Counts and durations are taken in the period where the milestone falls: created (``created_at``),
  resolved (``resolved_at``: the last resolution; a reopening clears it, so a ticket reopened and resolved
  again counts once, in the period of its final resolution), closed (``closed_at``), acknowledged,
  first response.
* The backlog at the end of a period is the number of tickets whose status at that moment, after every
  status event before it, is open work (new, assigned, in progress, waiting on the user or a vendor).

Reads go through :mod:`lib.metrics.metrics_store` (index-only range reads on ``ticket_metrics`` and the status
events); results are memoised for the current transaction of the session, so a page that asks for the
flow, the KPIs and the SLA trend of the same filters in one session reads each range once.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
from sqlalchemy import text
from sqlalchemy.orm import Session

from lib import clock
from lib.config import get_settings
from lib.desk_settings import get_weights
from lib.metrics import closed_cache
from lib.metrics import metrics_store as store
from lib.workflow import CLOSURE_LABELS, WORK_CLOSURES, ClosureReason, EventKind, Priority

US_PER_HOUR = 3_600_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: resolution_by_priority returns at most this many rows (a uniform random sample beyond it, seeded).
SAMPLE_LIMIT = 50_000
#: Age buckets of open tickets: (label, upper bound in days; None = no bound).
AGE_BUCKETS: tuple[tuple[str, int | None], ...] = (
    ("<1 d", 1), ("1–3 d", 3), ("3–7 d", 7), ("1–2 wk", 14), ("2–4 wk", 28), (">4 wk", None))
WORK_REASONS = tuple(r.value for r in WORK_CLOSURES)
REASONS = tuple(r.value for r in ClosureReason)
PRIORITY_COLUMNS = {int(p): f"open_{p.name.lower()}" for p in Priority}

RATE_DEFINITIONS = {
    "reopen_rate": "Of the tickets resolved in the range (final resolution), the share reopened at least once.",
    "first_contact_resolution": "Of the tickets resolved in the range, the share resolved at first contact: the "
                                "resolution was the first public message to the requester (no question, reply or "
                                "workaround before it), with no escalation and no reopening.",
    "satisfaction_avg": "Mean rating (1–5) of the tickets closed in the range that carry one.",
    "satisfaction_n": "How many tickets closed in the range carry a rating.",
}

#: Counts come from metric_days unless a technician or channel filter needs the per-ticket rows (tests turn
#: it off to check that both ways agree).
USE_DAYS = True

Stats = dict[str, Any]
T = TypeVar("T")


class MetricsError(ValueError):
    """A filter or week the metrics cannot use (the message says which and why)."""


@dataclass(frozen=True)
class MetricFilter:
    start: date  # local date (configured time zone), inclusive
    end: date  # local date, exclusive
    grain: Literal["week", "day"] = "week"
    category_ids: tuple[int, ...] = ()
    priorities: tuple[int, ...] = ()
    assignee_ids: tuple[int, ...] = ()
    channels: tuple[str, ...] = ()
    tz: str | None = None  # default get_settings().timezone

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if isinstance(value, datetime) or not isinstance(value, date):
                raise MetricsError(f"{name} must be a date, not {type(value).__name__}")
        if self.grain not in ("week", "day"):
            raise MetricsError(f"grain must be 'week' or 'day', not {self.grain!r}")
        for name in ("category_ids", "priorities", "assignee_ids"):
            values = getattr(self, name) or ()
            if any(isinstance(v, bool) or not isinstance(v, int | np.integer) for v in values):
                raise MetricsError(f"{name} must be whole numbers")
            object.__setattr__(self, name, tuple(sorted({int(v) for v in values})))
        object.__setattr__(self, "channels", tuple(sorted({str(c) for c in self.channels or ()})))
        if any(p not in {int(x) for x in Priority} for p in self.priorities):
            raise MetricsError(f"priorities must be among {[int(p) for p in Priority]}")

    @property
    def zone(self) -> ZoneInfo:
        name = self.tz or get_settings().timezone
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise MetricsError(f"unknown time zone {name!r}") from exc

    def previous(self) -> MetricFilter:
        """The range of the same length just before this one (same filters)."""
        length = self.end - self.start
        return replace(self, start=self.start - length, end=self.start)

    def scope(self, all_category_ids: tuple[int, ...]) -> store.Scope:
        return store.Scope(self.priorities, self.category_ids, self.assignee_ids, self.channels, all_category_ids)

    def key(self) -> tuple:
        return (self.start, self.end, self.grain, self.category_ids, self.priorities, self.assignee_ids,
                self.channels, self.zone.key)


# --- periods --------------------------------------------------------------------------------------------


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The UTC instant at which ``day`` begins in ``zone`` (daylight saving included)."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def to_us(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


@dataclass(frozen=True)
class Periods:
    labels: tuple[date, ...]  # Monday of the ISO week, or the day
    starts: tuple[date, ...]  # first local day of the period inside the range
    ends: tuple[date, ...]  # local day after the period (exclusive), inside the range
    bounds: tuple[datetime, ...]  # UTC instants: len(labels) + 1

    @property
    def us(self) -> list[int]:
        return [to_us(b) for b in self.bounds]

    def __len__(self) -> int:
        return len(self.labels)


def periods(f: MetricFilter) -> Periods:
    """The periods of a filter's range; a range cut inside a week keeps that week's Monday as its label."""
    return _periods(f, f.zone.key)


@lru_cache(maxsize=256)
def _periods(f: MetricFilter, zone_key: str) -> Periods:
    zone = ZoneInfo(zone_key)
    labels, starts, ends = [], [], []
    day = f.start
    while day < f.end:
        if f.grain == "day":
            label, nxt = day, day + timedelta(days=1)
        else:
            label = day - timedelta(days=day.weekday())
            nxt = min(label + timedelta(days=7), f.end)
        labels.append(label)
        starts.append(day)
        ends.append(min(nxt, f.end))
        day = min(nxt, f.end)
    bounds = [local_midnight(d, zone) for d in starts] + ([local_midnight(f.end, zone)] if starts else [])
    return Periods(tuple(labels), tuple(starts), tuple(ends), tuple(bounds))


def week_range(iso_week: str) -> tuple[date, date]:
    """``"2026-W47"`` -> (its Monday, the next Monday)."""
    text_ = str(iso_week).strip().upper()
    try:
        year, week = text_.split("-W")
        monday = date.fromisocalendar(int(year), int(week), 1)
    except ValueError:
        raise MetricsError(f"{iso_week!r} is not an ISO week such as 2026-W47") from None
    return monday, monday + timedelta(days=7)


def iso_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


# --- memo and lookups ---------------------------------------------------------------------------------------


def _cache(session: Session) -> dict:
    tx = session.get_transaction()
    holder = session.info.get("metrics_memo")
    if holder is None or holder[0] is not tx:
        holder = (tx, {})
        session.info["metrics_memo"] = holder
    return holder[1]


def _memo(session: Session, key: Hashable, compute: Callable[[], T]) -> T:
    cache = _cache(session)
    if key in cache:
        return cache[key]
    value = compute()
    _cache(session)[key] = value  # the first read may have begun the transaction
    return value


def _categories(session: Session) -> dict[int, str]:
    # Core SQL, not the ORM: a fresh process (the report CLI) need not configure every mapper.
    return _memo(session, "categories", lambda: {int(i): n for i, n in session.execute(
        text("SELECT id, name FROM categories ORDER BY id"))})


def _scope(session: Session, f: MetricFilter) -> store.Scope:
    return f.scope(tuple(_categories(session)))


def _hours(values_us: np.ndarray) -> np.ndarray:
    return values_us.astype(np.float64) / US_PER_HOUR


def stats(values_us: np.ndarray) -> Stats:
    """n, median, 90th percentile (linear interpolation, as numpy and pandas) and mean, in hours.

    The definition :func:`summary_stats` reproduces from a database summary (the median and the percentile bit
    for bit, the mean exactly)."""
    n = int(values_us.size)
    if n == 0:
        return {"n": 0, "median_h": None, "p90_h": None, "mean_h": None}
    hours = _hours(values_us)
    p50, p90 = np.percentile(hours, [50, 90])
    return {"n": n, "median_h": float(p50), "p90_h": float(p90), "mean_h": float(hours.mean())}


def summary_stats(summary: store.DurationSummary) -> Stats:
    """:func:`stats` from a :class:`~lib.metrics.metrics_store.DurationSummary` of microseconds: the median and
    the 90th percentile equal numpy's to the last bit; the mean is the exact mean rounded once, which numpy's
    mean of float64 hours matches but for its own rounding (a few units in the last place when the durations
    share a sign; the reference tests allow 1e-9 relative)."""
    if summary.n == 0:
        return {"n": 0, "median_h": None, "p90_h": None, "mean_h": None}
    return {"n": summary.n, "median_h": summary.quantile(0.5, US_PER_HOUR),
            "p90_h": summary.quantile(0.9, US_PER_HOUR), "mean_h": summary.mean(US_PER_HOUR)}


def _pct(part: int, whole: int) -> float | None:
    return None if whole == 0 else 100.0 * part / whole


def _ratio(part: int, whole: int) -> float | None:
    return None if whole == 0 else part / whole


# --- scans (memoised per filter) -------------------------------------------------------------------------

Sums = dict[tuple[int, int, int], tuple[int, ...]]
# Few aggregates per row: SQLite spends more on each aggregate step than on reading the index entry, so the
# 0/1 conditions come packed three to a column (metrics_store.TALLIES) and are unpacked per group here.
RESOLVED_AGGS = ("count(*)", "sum(resolution_tally)", "sum(first_contact)")
CLOSED_AGGS = ("count(*)", "sum(closure_tally_a)", "sum(closure_tally_b)", "sum(COALESCE(satisfaction, 0))")
RESPONDED_AGGS = ("sum(response_tally)",)


def _unpack_resolved(v: tuple[int, ...]) -> tuple[int, ...]:
    """-> (resolved, with a target, breached, reopened, first contact)"""
    return (v[0], *store.untally(v[1]), v[2])


def _unpack_closed(v: tuple[int, ...]) -> tuple[int, ...]:
    """-> (closed, confirmed, no reply, duplicate, cancelled, not applicable, rating sum, ratings)"""
    a, b = store.untally(v[1]), store.untally(v[2])
    return (v[0], *a, b[0], b[1], v[3], b[2])


def _unpack_responded(v: tuple[int, ...]) -> tuple[int, ...]:
    """-> (with a target, breached)"""
    return store.untally(v[0])[:2]


UNPACK = {"resolved": _unpack_resolved, "closed": _unpack_closed, "responded": _unpack_responded}


def _sums(session: Session, f: MetricFilter, name: str, time_col: str, aggs: tuple[str, ...], whole: bool) -> Sums:
    """Per period (or, ``whole``, for the range as one period 0: what the previous range of the KPIs needs)."""

    def compute() -> Sums:
        p = periods(f)
        if not len(p):
            return {}
        bounds = [p.us[0], p.us[-1]] if whole else p.us
        scope = _scope(session, f)
        if USE_DAYS and not scope.narrows_people:  # metric_days is kept per priority and category only
            sums = closed_cache.sums(session, ("days", name, scope), bounds,
                                     lambda b: store.rollup_sums(session, name, b, scope))
        else:
            sums = closed_cache.sums(session, ("rows", time_col, scope, aggs), bounds,
                                     lambda b: store.period_sums(session, time_col, b, scope, aggs))
        unpack = UNPACK.get(name)
        return {k: unpack(v) for k, v in sums.items()} if unpack else sums

    return _memo(session, ("sums", name, whole, f.key()), compute)


def _created(session: Session, f: MetricFilter, whole: bool = False) -> Sums:
    return _sums(session, f, "created", "created_us", ("count(*)",), whole)


def _resolved(session: Session, f: MetricFilter, whole: bool = False) -> Sums:
    return _sums(session, f, "resolved", "resolved_us", RESOLVED_AGGS, whole)


def _closed(session: Session, f: MetricFilter, whole: bool = False) -> Sums:
    return _sums(session, f, "closed", "closed_us", CLOSED_AGGS, whole)


def _responded(session: Session, f: MetricFilter, whole: bool = False) -> Sums:
    return _sums(session, f, "responded", "responded_us", RESPONDED_AGGS, whole)


def _reopened(session: Session, f: MetricFilter, whole: bool = False) -> Sums:
    """Reopen events per period (or for the whole range), priority and category."""

    def compute() -> Sums:
        p = periods(f)
        if not len(p):
            return {}
        bounds = (p.bounds[0], p.bounds[-1]) if whole else p.bounds
        scope = _scope(session, f)
        return closed_cache.sums(session, ("reopened", scope), bounds,
                                 lambda b: store.event_counts(session, EventKind.REOPENED.value, b, scope))

    return _memo(session, ("reopened", whole, f.key()), compute)


DURATIONS: dict[str, tuple[str, tuple[str, ...], str]] = {
    # name: (time column, (duration expression, other columns...), extra condition)
    "ack": ("acknowledged_us", ("acknowledged_us - created_us",), ""),
    "first_response": ("first_response_us", ("first_response_us - created_us",), ""),
    # the priority rides along in the low three bits: one column to read instead of two
    "resolution": ("resolved_us", ("(resolved_us - created_us) * 8 + priority",), ""),
    "confirmation_delay": ("closed_us", ("closed_us - resolved_us",),
                           f"resolved_us IS NOT NULL AND closure_reason IN ({', '.join(repr(r) for r in WORK_REASONS)})"),
}


def _duration_values(session: Session, f: MetricFilter, name: str) -> list[np.ndarray]:
    """Durations in microseconds of the tickets whose milestone falls in the range (for the resolution: and
    their priorities, an aligned second array)."""
    time_col, exprs, where = DURATIONS[name]

    def compute() -> list[np.ndarray]:
        p = periods(f)
        if not len(p):
            values = [np.zeros(0, dtype=np.int64) for _ in exprs]
        else:
            values = _values(session, f, time_col, p.us[0], p.us[-1], exprs, where=where)
        if name == "resolution":
            packed = values[0]
            return [packed >> 3, packed & 7]  # arithmetic shift: floor division, right for negative values too
        return values

    return _memo(session, ("durations", name, f.key()), compute)


def _values(session: Session, f: MetricFilter, time_col: str, lo: int, hi: int, exprs: tuple[str, ...], *,
            where: str = "") -> list[np.ndarray]:
    """:func:`~lib.metrics.metrics_store.columns_in_range`, with the rows before the closed-day edge kept
    between runs (:mod:`lib.metrics.closed_cache`)."""
    scope = _scope(session, f)
    return closed_cache.values(session, ("values", time_col, scope, exprs, where), lo, hi,
                               lambda a, b: store.columns_in_range(session, time_col, a, b, scope, exprs, where=where))


def _duration_expr(name: str) -> str:
    """The duration alone, in microseconds: the resolution's packed priority shifted out (an arithmetic shift
    on both engines, so floor division by 8, right for negative values too)."""
    expr = DURATIONS[name][1][0]
    return f"(({expr}) >> 3)" if name == "resolution" else expr


def _duration_stats(session: Session, f: MetricFilter, name: str) -> Stats:
    """:func:`stats` of a duration over the range, without fetching its values where the database can rank them
    (PostgreSQL: :func:`~lib.metrics.metrics_store.duration_stats`). Values already read in this transaction
    (the distribution chart's) are summarised instead of read again; the result is the same either way."""

    def compute() -> Stats:
        p = periods(f)
        if not len(p):
            return summary_stats(store.summarize(np.zeros(0, dtype=np.int64)))
        fetched = ("durations", name, f.key()) in _cache(session)
        if fetched or session.get_bind().dialect.name != "postgresql" or closed_cache.applies(session, p.us[0]):
            # SQLite ranks by sorting, which costs more than fetching: the values are read (and kept for the
            # chart); where the range reaches before the closed-day edge, the kept values and today's are merged
            return summary_stats(store.summarize(_duration_values(session, f, name)[0]))
        time_col, _, where = DURATIONS[name]
        return summary_stats(store.duration_stats(session, time_col, p.us[0], p.us[-1], _scope(session, f),
                                                  _duration_expr(name), where=where))

    return dict(_memo(session, ("duration_stats", name, f.key()), compute))


def _per_period(sums: Sums, index: int, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=np.int64)
    for (k, _, _), v in sums.items():
        out[k] += v[index]
    return out


def _total(sums: Sums, index: int = 0) -> int:
    return sum(v[index] for v in sums.values())


# --- backlog --------------------------------------------------------------------------------------------


def _backlog_series(session: Session, f: MetricFilter, group: str | None = None) -> dict[int | None, list[int]]:
    """``{group value: [backlog at bounds[0], at bounds[1], ..., at bounds[n]]}`` (None: everything)."""

    def compute() -> dict[int | None, list[int]]:
        p = periods(f)
        if not len(p):
            return {}
        scope = _scope(session, f)
        bounds = list(p.bounds)

        def backlog_deltas(b: list) -> dict[tuple[int, int | None], int]:
            return closed_cache.sums(session, ("backlog", scope, group), b,
                                     lambda bb: store.backlog_deltas(session, bb, scope, group=group))

        first, last = store.time_span(session)
        forward = first is not None and last is not None and (bounds[0] - first) < (last - bounds[-1])
        if forward:
            start = {g: v for (_, g), v in backlog_deltas([datetime.min.replace(tzinfo=UTC), bounds[0]]).items()}
            deltas = backlog_deltas(bounds)
            groups = set(start) | {g for _, g in deltas}
            out = {}
            for g in groups:
                series = [start.get(g, 0)]
                for k in range(len(p)):
                    series.append(series[-1] + deltas.get((k, g), 0))
                out[g] = series
            return out
        now_open = store.open_now(session, scope, group=group)
        deltas = backlog_deltas([*bounds, None])
        groups = set(now_open) | {g for _, g in deltas}
        out = {}
        n = len(p)
        for g in groups:
            series = [0] * (n + 1)
            series[n] = now_open.get(g, 0) - deltas.get((n, g), 0)
            for k in range(n - 1, -1, -1):
                series[k] = series[k + 1] - deltas.get((k, g), 0)
            out[g] = series
        return out

    return _memo(session, ("backlog", group, f.key()), compute)


def _backlog_total(session: Session, f: MetricFilter) -> list[int]:
    p = periods(f)
    series = _backlog_series(session, f).get(None)
    return series if series is not None else [0] * (len(p) + 1)


# --- the API --------------------------------------------------------------------------------------------

FLOW_COLUMNS = ["period", "priority", "category", "category_id", "created", "resolved", "closed", "closed_other",
                "reopened"]


def flow(session: Session, f: MetricFilter) -> pd.DataFrame:
    """Created, resolved and closed per period, priority and category (long format, zeros included).

    ``closed`` counts closures that are resolved work (confirmed, no reply); duplicates, cancellations and
    not-applicable closures are in ``closed_other``. ``reopened`` counts reopen events."""
    p = periods(f)
    created, resolved, closed, reopened = _created(session, f), _resolved(session, f), _closed(session, f), \
        _reopened(session, f)
    names = _categories(session)
    cats = sorted({c for sums in (created, resolved, closed, reopened) for (_, _, c) in sums} | set(f.category_ids))
    prios = list(f.priorities) or [int(x) for x in Priority]
    work_idx = [1 + REASONS.index(r) for r in WORK_REASONS]
    rows = []
    for k, label in enumerate(p.labels):
        for prio in prios:
            for cat in cats:
                key = (k, prio, cat)
                c = closed.get(key)
                work = sum(c[i] for i in work_idx) if c else 0
                rows.append((label, prio, names.get(cat, f"category {cat}"), cat, created.get(key, (0,))[0],
                             resolved.get(key, (0,))[0], work, (c[0] - work) if c else 0,
                             reopened.get(key, (0,))[0]))
    return pd.DataFrame(rows, columns=FLOW_COLUMNS)


def backlog(session: Session, f: MetricFilter) -> pd.DataFrame:
    """Open work at the end of each period (``period_end`` is the local day after the period)."""
    p = periods(f)
    series = _backlog_total(session, f)
    return pd.DataFrame({"period": list(p.labels), "backlog_end": [int(v) for v in series[1:]],
                         "period_end": list(p.ends)}, columns=["period", "backlog_end", "period_end"])


def durations(session: Session, f: MetricFilter) -> dict[str, Stats]:
    """Time to acknowledge, first response, resolution (created → ...) and confirmation delay (resolved →
    closed, confirmed or no-reply closures), for the tickets whose end milestone falls in the range."""
    return {name: _duration_stats(session, f, name) for name in DURATIONS}


def resolution_by_priority(session: Session, f: MetricFilter, *, limit: int = SAMPLE_LIMIT) -> pd.DataFrame:
    """One row per ticket resolved in the range: priority, hours (created → resolved).

    Beyond ``limit`` rows a uniform random sample (fixed seed) is returned; ``df.attrs["total"]`` is the
    number of tickets and ``df.attrs["sampled"]`` says whether the rows are a sample."""
    values, prios = _duration_values(session, f, "resolution")
    total = int(values.size)
    if total > limit:
        order = np.lexsort((values, prios))  # one order whichever way the values were read
        values, prios = values[order], prios[order]
        pick = np.sort(np.random.default_rng(0).choice(total, size=limit, replace=False))
        values, prios = values[pick], prios[pick]
    df = pd.DataFrame({"priority": prios.astype(int), "hours": _hours(values)}, columns=["priority", "hours"])
    df.attrs.update({"total": total, "sampled": total > limit})
    return df


def sla_compliance(session: Session, f: MetricFilter) -> pd.DataFrame:
    """Per period and clock: targets met and breached, and met ÷ (met + breached) in %.

    Only tickets a target applied to count; a ticket counts in the period its clock ended (the response
    clock at the first of acknowledgement and first public reply, the resolution clock at resolution).
    Breached means the breach of that clock was recorded (an ``sla_breached`` event)."""
    p = periods(f)
    responded, resolved = _responded(session, f), _resolved(session, f)
    per = {"response": (_per_period(responded, 0, len(p)), _per_period(responded, 1, len(p))),
           "resolution": (_per_period(resolved, 1, len(p)), _per_period(resolved, 2, len(p)))}
    rows = []
    for k, label in enumerate(p.labels):
        for which, (target, breached) in per.items():
            met = int(target[k] - breached[k])
            rows.append((label, which, met, int(breached[k]), _pct(met, int(target[k]))))
    return pd.DataFrame(rows, columns=["period", "clock", "met", "breached", "pct"])


def closures_by_reason(session: Session, f: MetricFilter) -> pd.DataFrame:
    """Tickets closed in the range by closure reason (every reason listed, zeros included)."""
    closed = _closed(session, f)
    counts = {r: sum(v[1 + i] for v in closed.values()) for i, r in enumerate(REASONS)}
    other = _total(closed) - sum(counts.values())
    rows = [(r, CLOSURE_LABELS[ClosureReason(r)], counts[r], r in WORK_REASONS) for r in REASONS]
    if other:
        rows.append(("other", "Other", other, False))
    return pd.DataFrame(rows, columns=["reason", "label", "count", "counts_as_work"])


def rates(session: Session, f: MetricFilter) -> dict[str, Any]:
    """Reopen rate, first-contact resolution (fractions 0–1), satisfaction; definitions in ``definitions``."""
    resolved, closed = _resolved(session, f), _closed(session, f)
    n = _total(resolved)
    sat_i = 1 + len(REASONS)
    sat_sum, sat_n = _total(closed, sat_i), _total(closed, sat_i + 1)
    return {
        "reopen_rate": _ratio(_total(resolved, 3), n),
        "first_contact_resolution": _ratio(_total(resolved, 4), n),
        "satisfaction_avg": None if sat_n == 0 else sat_sum / sat_n,
        "satisfaction_n": sat_n,
        "resolved": n,
        "reopened": _total(_reopened(session, f)),
        "definitions": dict(RATE_DEFINITIONS),
    }


def _weights(session: Session) -> dict[int, int]:
    return {int(p): int(w) for p, w in get_weights(session).items()}


def workload(session: Session, f: MetricFilter) -> pd.DataFrame:
    """Per technician: open tickets now (by priority, and weighted by the assignment weights) against
    capacity, and tickets resolved in the range. Active staff, plus anyone holding open or resolved work."""
    scope = _scope(session, f)
    open_rows = session.execute(text(
        f"SELECT assignee_id, priority, count(*) FROM {store.table_for(session.get_bind().dialect.name, 'open')} "
        f"WHERE is_open = 1 AND assignee_id IS NOT NULL "
        f"AND {store.filter_sql(scope)} GROUP BY assignee_id, priority")).all()
    resolved_n = resolved_by_assignee(session, f)
    open_by: dict[int, dict[int, int]] = {}
    for uid, prio, n in open_rows:
        open_by.setdefault(int(uid), {})[int(prio)] = int(n)
    users = {int(r.id): r for r in session.execute(text("SELECT id, name, capacity, active FROM users"))}
    wanted = set(f.assignee_ids) if f.assignee_ids else \
        {u.id for u in users.values() if u.active} | set(open_by) | set(resolved_n)
    weights = _weights(session)
    rows = []
    for uid in sorted(wanted, key=lambda i: (users[i].name if i in users else "", i)):
        user = users.get(uid)
        by_p = open_by.get(uid, {})
        row = {"technician": user.name if user else f"user {uid}", "user_id": uid,
               "capacity": user.capacity if user else None, "open": sum(by_p.values()),
               "open_weighted": sum(n * weights.get(p, 0) for p, n in by_p.items()),
               "resolved_in_range": resolved_n.get(uid, 0), "active": bool(user.active) if user else False}
        for prio, col in PRIORITY_COLUMNS.items():
            row[col] = by_p.get(prio, 0)
        rows.append(row)
    columns = ["technician", "user_id", "capacity", "open", "open_weighted", "resolved_in_range",
               *PRIORITY_COLUMNS.values(), "active"]
    return pd.DataFrame(rows, columns=columns)


def ageing(session: Session, *, now: datetime | None = None, tz: str | None = None,
           f: MetricFilter | None = None) -> pd.DataFrame:
    """Open tickets by time since creation (elapsed time: a day is 24 hours, whatever the time zone ``tz``).

    ``f`` narrows by priority, category, assignee and channel (its dates are not used)."""
    now = (now or clock.now()).astimezone(UTC)
    now_us = to_us(now)
    scope = f.scope(tuple(_categories(session))) if f is not None else store.Scope()
    cuts = [now_us - days * 86_400 * 1_000_000 for _, days in AGE_BUCKETS if days is not None]
    sums = ", ".join(f"sum(CASE WHEN created_us > {c} THEN 1 ELSE 0 END)" for c in cuts)
    table = store.table_for(session.get_bind().dialect.name, "open")
    row = session.execute(text(f"SELECT count(*), {sums} FROM {table} WHERE is_open = 1 AND "
                               f"{store.filter_sql(scope)}")).one()
    total, newer = int(row[0]), [int(v or 0) for v in row[1:]]
    counts, prev = [], 0
    for n in [*newer, total]:
        counts.append(n - prev)
        prev = n
    return pd.DataFrame({"bucket": [b for b, _ in AGE_BUCKETS], "count": counts}, columns=["bucket", "count"])


def repeat_issues(session: Session, f: MetricFilter, *, days: int = 30, limit: int = 20) -> pd.DataFrame:
    """Groups of at least two tickets created within the last ``days`` days up to the range's end with the
    same requester, the same device, or the same category on the same device model (tickets closed as
    duplicates left out, as in lib.repeats; the filter's priority, category, assignee and channel apply).

    Columns: kind ("requester" | "device" | "category+model"), key (a label), count, ticket_ids (ascending),
    key_id ("12", or "3|HP LaserJet M404"), latest (the newest creation time, UTC). Largest groups first,
    then the most recent."""
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise MetricsError("days must be a whole number of at least 1")
    columns = ["kind", "key", "count", "ticket_ids", "key_id", "latest"]
    zone = f.zone
    lo, hi = to_us(local_midnight(f.end - timedelta(days=days), zone)), to_us(local_midnight(f.end, zone))

    def compute() -> list[np.ndarray]:
        # the window's rows, read from the creation index (a few per cent of the table), grouped here
        return _values(session, f, "created_us", lo, hi,
                       ("ticket_id", "COALESCE(requester_id, 0)", "COALESCE(device_id, 0)", "category_id",
                        "created_us"), where="is_duplicate = 0")

    ids, requesters, devices, cats, created = _memo(session, ("window", lo, hi, f.key()), compute)
    models = _device_models(session, sorted(set(devices[devices > 0].tolist())))
    names = sorted(set(models.values()))
    code = {m: i + 1 for i, m in enumerate(names)}  # 0: no model
    model_of = np.array([code.get(models.get(int(d), ""), 0) for d in devices], dtype=np.int64) if len(devices) \
        else np.zeros(0, dtype=np.int64)
    found = []
    for kind, key, keep in (("requester", requesters, requesters > 0), ("device", devices, devices > 0),
                            ("category+model", cats * (len(names) + 1) + model_of, model_of > 0)):
        for k, n, latest, members in _groups(key[keep], ids[keep], created[keep], limit):
            if kind == "category+model":
                label_key: tuple = (int(k) // (len(names) + 1), names[int(k) % (len(names) + 1) - 1])
            else:
                label_key = (int(k),)
            found.append((kind, label_key, n, latest, members))
    found.sort(key=lambda g: (-g[2], -g[3], g[0], str(g[1])))
    rows = []
    for kind, group_key, n, latest_us, ticket_ids in found[:limit]:
        rows.append((kind, _repeat_label(session, kind, group_key), n, ticket_ids, "|".join(str(k) for k in group_key),
                     EPOCH + timedelta(microseconds=latest_us)))
    return pd.DataFrame(rows, columns=columns)


def _groups(key: np.ndarray, ids: np.ndarray, created: np.ndarray, limit: int) -> list[tuple[int, int, int, list[int]]]:
    """(key, count, newest creation, ticket ids ascending) of the keys held by at least two tickets: the
    ``limit`` largest, the most recent first among equals."""
    if key.size == 0:
        return []
    order = np.argsort(key, kind="stable")
    k = key[order]
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    counts = np.diff(np.r_[starts, k.size])
    latest = np.maximum.reduceat(created[order], starts)
    pick = np.flatnonzero(counts >= 2)
    pick = pick[np.lexsort((-latest[pick], -counts[pick]))][:limit]
    return [(int(k[starts[g]]), int(counts[g]), int(latest[g]),
             sorted(int(i) for i in ids[order[starts[g]:starts[g] + counts[g]]])) for g in pick]


def _device_models(session: Session, device_ids: list[int]) -> dict[int, str]:
    out: dict[int, str] = {}
    for i in range(0, len(device_ids), 5000):
        chunk = device_ids[i:i + 5000]
        out.update({int(d): m for d, m in session.execute(text(
            f"SELECT id, make_model FROM devices WHERE id IN ({store.sql_ints(chunk)}) AND make_model IS NOT NULL"))
            if m.strip()})
    return out


def _repeat_label(session: Session, kind: str, key: tuple) -> str:
    if kind == "requester":
        name, email = session.execute(text("SELECT name, email FROM requesters WHERE id = :i"), {"i": int(key[0])}).one()
        return f"{name} <{email}>" if email else str(name)
    if kind == "device":
        tag, model, dtype = session.execute(text("SELECT asset_tag, make_model, device_type FROM devices WHERE id = :i"),
                                            {"i": int(key[0])}).one()
        return " · ".join(str(x) for x in (tag, model, dtype) if x) or f"device {key[0]}"
    return f"{_categories(session).get(int(key[0]), key[0])} · {key[1]}"


def kpis(session: Session, f: MetricFilter) -> dict[str, tuple[Any, Any]]:
    """Headline numbers as (this range, the previous range of equal length)."""
    out: dict[str, list[Any]] = {}
    for g, whole in ((f, False), (f.previous(), True)):  # this range's scans are the flow's, shared
        created, resolved, closed = _created(session, g, whole), _resolved(session, g, whole), _closed(session, g, whole)
        responded = _responded(session, g, whole)
        work_idx = [1 + REASONS.index(r) for r in WORK_REASONS]
        work = sum(v[i] for v in closed.values() for i in work_idx)
        res = _duration_stats(session, g, "resolution")
        values = {
            "created": _total(created),
            "resolved": _total(resolved),
            "closed": work,
            "closed_other": _total(closed) - work,
            "reopened": _total(_reopened(session, g, whole)),
            "backlog_end": None,
            "ack_median_h": _duration_stats(session, g, "ack")["median_h"],
            "first_response_median_h": _duration_stats(session, g, "first_response")["median_h"],
            "resolution_median_h": res["median_h"],
            "resolution_p90_h": res["p90_h"],
            "sla_response_pct": _pct(_total(responded) - _total(responded, 1), _total(responded)),
            "sla_resolution_pct": _pct(_total(resolved, 1) - _total(resolved, 2), _total(resolved, 1)),
            "reopen_rate": _ratio(_total(resolved, 3), _total(resolved)),
        }
        for k, v in values.items():
            out.setdefault(k, []).append(v)
    if len(periods(f)):
        series = _backlog_total(session, f)
        out["backlog_end"] = [series[-1], series[0]]
    return {k: (v[0], v[1]) for k, v in out.items()}


# --- helpers for the weekly report -------------------------------------------------------------------------


def backlog_by_assignee(session: Session, f: MetricFilter) -> dict[int | None, int]:
    """Open work at the end of the range per current assignee (None: unassigned)."""
    series = _backlog_series(session, f, group="assignee_id")
    return {g: s[-1] for g, s in series.items() if s[-1]}


def resolved_by_assignee(session: Session, f: MetricFilter) -> dict[int, int]:
    """Tickets resolved in the range per current assignee (unassigned left out)."""

    def compute() -> dict[int, int]:
        p = periods(f)
        if not len(p):
            return {}
        # one column read and counted here: cheaper on SQLite than a GROUP BY, which sorts every row
        (assignees,) = _values(session, f, "resolved_us", p.us[0], p.us[-1], ("COALESCE(assignee_id, 0)",))
        ids, counts = np.unique(assignees, return_counts=True)
        return {int(i): int(c) for i, c in zip(ids, counts, strict=True) if i}

    return _memo(session, ("resolved_by", f.key()), compute)
