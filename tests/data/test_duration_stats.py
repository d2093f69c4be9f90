"""Duration statistics summarised in the database (lib.metrics.metrics_store.duration_stats) on SQLite and PostgreSQL.

The median and the 90th percentile must equal numpy's default (linear interpolation over float64 hours) to the
last bit, and the mean must be the exact mean: checked on random values in memory (ties, one and two values,
negative values) and on rows written into ticket_metrics, through the store and through the Metrics page's
``durations()`` and ``kpis()``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from fractions import Fraction

import numpy as np
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from lib.db import read_session, transaction
from lib.metrics import closed_cache, measures, metrics_store
from lib.metrics.measures import US_PER_HOUR, MetricFilter

RANGE = MetricFilter(start=date(2026, 1, 5), end=date(2026, 3, 2), tz="UTC")  # eight weeks
PREVIOUS = RANGE.previous()
LO_US = measures.to_us(datetime(2025, 11, 10, tzinfo=UTC))  # the previous range's start
HI_US = measures.to_us(datetime(2026, 3, 2, tzinfo=UTC))
WORK = "confirmed"
NOT_WORK = "cancelled"


def random_durations(rng: np.random.Generator, n: int) -> np.ndarray:
    """Microseconds: whole hours and minutes (many ties), any microsecond, and a few negative values."""
    kind = rng.integers(0, 3, size=n)
    hours = rng.integers(0, 40, size=n) * US_PER_HOUR
    minutes = rng.integers(-30, 3000, size=n) * 60_000_000
    anything = rng.integers(-10**9, 10**12, size=n)
    return np.where(kind == 0, hours, np.where(kind == 1, minutes, anything)).astype(np.int64)


def exact_mean_h(values: np.ndarray) -> float:
    return float(Fraction(sum(int(v) for v in values), len(values) * US_PER_HOUR))


def assert_same(got: dict, values: np.ndarray) -> None:
    """``got`` equals measures.stats (numpy) bit for bit for n, median and p90; its mean is the exact one."""
    want = measures.stats(values)
    assert got["n"] == want["n"]
    if want["n"] == 0:
        assert got == want
        return
    hours = values.astype(np.float64) / US_PER_HOUR
    p50, p90 = np.percentile(hours, [50, 90])
    assert got["median_h"] == want["median_h"] == float(p50), (got, want)
    assert got["p90_h"] == want["p90_h"] == float(p90), (got, want)
    assert got["mean_h"] == exact_mean_h(values)
    # numpy's float64 mean differs only by its own rounding, at the scale of the values it sums
    assert abs(got["mean_h"] - want["mean_h"]) <= 1e-12 * float(np.abs(hours).mean())


# --- in memory -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 9, 10, 11, 12, 20, 21, 101, 1000, 4097])
def test_summary_equals_numpy_bit_for_bit(n: int) -> None:
    rng = np.random.default_rng(n)
    for _ in range(60 if n < 100 else 5):
        values = random_durations(rng, n)
        before = values.copy()
        assert_same(measures.summary_stats(metrics_store.summarize(values)), values)
        assert np.array_equal(values, before)  # the caller's array (the memo's) is left as it was


def test_summary_on_many_sizes_and_awkward_values() -> None:
    """Every size up to 300, values all equal, all negative, and far apart (the interpolation's rounding)."""
    rng = np.random.default_rng(7)
    for n in range(1, 301):
        values = random_durations(rng, n)
        assert_same(measures.summary_stats(metrics_store.summarize(values)), values)
    for given in ([5 * US_PER_HOUR] * 7, [-1, -2, -3, -10**12], [0, 10**15], [-10**15, 1, 10**15],
                  [1, 2], [3], [0], [-7]):
        arr = np.array(given, dtype=np.int64)
        assert_same(measures.summary_stats(metrics_store.summarize(arr)), arr)


def test_empty_and_the_documented_example() -> None:
    assert measures.summary_stats(metrics_store.summarize(np.zeros(0, dtype=np.int64))) == {
        "n": 0, "median_h": None, "p90_h": None, "mean_h": None}
    hours = np.array([1, 2, 3, 10], dtype=np.int64) * US_PER_HOUR  # docs/metrics.md: the median is 2.5
    got = measures.summary_stats(metrics_store.summarize(hours))
    assert got["median_h"] == 2.5 and got["mean_h"] == 4.0


def test_exact_sum_does_not_wrap_around() -> None:
    """Values whose int64 sum would overflow still give the exact mean."""
    values = np.full(4, 2**62, dtype=np.int64)
    summary = metrics_store.summarize(values)
    assert summary.total == 2**64
    assert summary.mean(1) == float(2**62)


def test_quantile_ranks_follow_numpy() -> None:
    assert metrics_store.quantile_ranks(1, 0.9) == (0, 0, 0.0)
    assert metrics_store.quantile_ranks(2, 0.5) == (0, 1, 0.5)
    assert metrics_store.quantile_ranks(11, 0.9) == (9, 10, (11 - 1) * 0.9 - 9)
    with pytest.raises(ValueError):
        metrics_store.quantile_ranks(0, 0.5)


# --- in the database -------------------------------------------------------------------------------------

COLUMNS = ("ticket_id", "priority", "category_id", "assignee_id", "channel", "is_open", "created_us",
           "acknowledged_us", "first_response_us", "responded_us", "resolved_us", "closed_us", "closure_reason",
           "reopen_count", "escalation_level", "sla_target", "response_breached", "resolution_breached",
           "is_duplicate", "response_tally", "resolution_tally", "closure_tally_a", "closure_tally_b", "first_contact")


def write_rows(engine: Engine, n: int, seed: int) -> list[dict]:
    """``n`` ticket_metrics rows with milestones spread over both ranges and random durations (some negative)."""
    rng = np.random.default_rng(seed)
    with transaction(engine) as s:
        categories = [int(c) for c in s.execute(text("SELECT id FROM categories ORDER BY id")).scalars()]
    rows = []
    for i in range(n):
        def at() -> int:
            return int(rng.integers(LO_US, HI_US))

        def maybe(moment: int) -> int | None:
            return None if rng.random() < 0.15 else moment

        ack, first, resolved = maybe(at()), maybe(at()), maybe(at())
        closed = maybe(at()) if resolved is not None else None
        created = (ack or first or resolved or at()) - int(random_durations(rng, 1)[0])
        responded = min((m for m in (ack, first) if m is not None), default=None)
        rows.append({
            "ticket_id": i + 1, "priority": int(rng.integers(1, 5)), "category_id": int(rng.choice(categories)),
            "assignee_id": None, "channel": "email" if rng.random() < 0.5 else "phone",
            "is_open": 0 if resolved else 1, "created_us": created, "acknowledged_us": ack, "first_response_us": first,
            "responded_us": responded, "resolved_us": resolved, "closed_us": closed,
            "closure_reason": None if closed is None else (WORK if rng.random() < 0.7 else NOT_WORK),
            "reopen_count": 0, "escalation_level": 0, "sla_target": 0, "response_breached": 0,
            "resolution_breached": 0, "is_duplicate": 0, "response_tally": 0, "resolution_tally": 0,
            "closure_tally_a": 0, "closure_tally_b": 0, "first_contact": 0})
    with transaction(engine) as s:
        s.execute(text(f"INSERT INTO {metrics_store.TABLE} ({', '.join(COLUMNS)}) "
                       f"VALUES ({', '.join(':' + c for c in COLUMNS)})"), rows)
    return rows


def expected(rows: list[dict], name: str, lo: int, hi: int, priorities: tuple[int, ...] = ()) -> np.ndarray:
    """The durations of ``name`` counted in [lo, hi), straight from the rows written."""
    start, end = {"ack": ("created_us", "acknowledged_us"), "first_response": ("created_us", "first_response_us"),
                  "resolution": ("created_us", "resolved_us"), "confirmation_delay": ("resolved_us", "closed_us")}[name]
    out = [r[end] - r[start] for r in rows if r[end] is not None and lo <= r[end] < hi
           and (name != "confirmation_delay" or r["closure_reason"] == WORK)
           and (not priorities or r["priority"] in priorities)]
    return np.array(out, dtype=np.int64)


def bounds(f: MetricFilter) -> tuple[int, int]:
    us = measures.periods(f).us
    return us[0], us[-1]


def test_store_duration_stats_equal_numpy(engine: Engine) -> None:
    rows = write_rows(engine, 1500, seed=1)
    lo, hi = bounds(RANGE)
    with read_session(engine) as s:
        scope = RANGE.scope(tuple(measures._categories(s)))
        for name in measures.DURATIONS:
            time_col, _, where = measures.DURATIONS[name]
            values = expected(rows, name, lo, hi)
            assert values.size > 100 and (values < 0).any()
            summary = metrics_store.duration_stats(s, time_col, lo, hi, scope, measures._duration_expr(name),
                                                   where=where)
            assert summary.total == int(values.sum())
            assert_same(measures.summary_stats(summary), values)


def test_one_two_and_no_values_in_the_database(engine: Engine) -> None:
    """Windows holding 0, 1, 2, 3 ... acknowledgements, with the resolution's packed priority shifted out."""
    rows = write_rows(engine, 300, seed=2)
    acked = sorted(r["acknowledged_us"] for r in rows if r["acknowledged_us"] is not None)
    resolved = sorted(r["resolved_us"] for r in rows if r["resolved_us"] is not None)
    with read_session(engine) as s:
        scope = metrics_store.Scope(all_category_ids=tuple(measures._categories(s)))
        for k in range(0, 12):
            for name, times in (("ack", acked), ("resolution", resolved)):
                time_col, _, where = measures.DURATIONS[name]
                lo, hi = times[5], times[5 + k]  # k values
                values = expected(rows, name, lo, hi)
                assert values.size == k
                got = metrics_store.duration_stats(s, time_col, lo, hi, scope, measures._duration_expr(name),
                                                   where=where)
                assert_same(measures.summary_stats(got), values)


def test_negative_resolution_times_unpack_by_floor_division(engine: Engine) -> None:
    """Resolved before created: the packed value (duration * 8 + priority) is negative and shifts back right."""
    rows = write_rows(engine, 40, seed=3)
    with transaction(engine) as s:
        s.execute(text(f"UPDATE {metrics_store.TABLE} SET created_us = resolved_us + 5 WHERE resolved_us IS NOT NULL "
                       "AND ticket_id % 2 = 0"))
    for r in rows:
        if r["resolved_us"] is not None and r["ticket_id"] % 2 == 0:
            r["created_us"] = r["resolved_us"] + 5
    lo, hi = LO_US, HI_US
    values = expected(rows, "resolution", lo, hi)
    assert (values == -5).sum() >= 5
    with read_session(engine) as s:
        scope = metrics_store.Scope(all_category_ids=tuple(measures._categories(s)))
        got = metrics_store.duration_stats(s, "resolved_us", lo, hi, scope, measures._duration_expr("resolution"))
        (packed,) = metrics_store.columns_in_range(s, "resolved_us", lo, hi, scope, measures.DURATIONS["resolution"][1])
    fetched = packed >> 3  # what the distribution chart reads
    assert sorted(fetched.tolist()) == sorted(values.tolist())
    assert_same(measures.summary_stats(got), values)


@pytest.mark.parametrize("kept", [False, True], ids=["read", "closed-days-kept"])
@pytest.mark.parametrize("priorities", [(), (2, 4)])
def test_durations_and_kpis_equal_numpy(engine: Engine, priorities: tuple[int, ...], kept: bool,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The page's calls: bit for bit what numpy gives over the values, for this range and the previous one,
    whether every value is read or the closed days' values are kept between runs and merged with the rest."""
    monkeypatch.setattr(closed_cache, "enabled", kept)
    closed_cache.clear()
    rows = write_rows(engine, 2000, seed=4)
    f = MetricFilter(start=RANGE.start, end=RANGE.end, tz="UTC", priorities=priorities)
    for _ in range(2 if kept else 1):  # kept: the second time from the kept parts
        with read_session(engine) as s:
            got, kpis = measures.durations(s, f), measures.kpis(s, f)
            fetched = [k for k in measures._cache(s) if isinstance(k, tuple) and k[0] == "durations"]
    if engine.dialect.name == "postgresql" and not kept:
        assert fetched == []  # PostgreSQL sent summaries only
    if kept:
        assert closed_cache.entries() > 0
    for name in measures.DURATIONS:
        assert_same(got[name], expected(rows, name, *bounds(f), priorities))
    for g, i in ((f, 0), (f.previous(), 1)):
        ack = measures.stats(expected(rows, "ack", *bounds(g), priorities))
        first = measures.stats(expected(rows, "first_response", *bounds(g), priorities))
        res = measures.stats(expected(rows, "resolution", *bounds(g), priorities))
        assert ack["n"] > 50 and res["n"] > 50
        assert kpis["ack_median_h"][i] == ack["median_h"]
        assert kpis["first_response_median_h"][i] == first["median_h"]
        assert kpis["resolution_median_h"][i] == res["median_h"]
        assert kpis["resolution_p90_h"][i] == res["p90_h"]


def test_values_read_for_the_chart_give_the_same_stats(engine: Engine) -> None:
    """After the distribution chart has read the resolution times, durations() summarises those (same numbers)."""
    write_rows(engine, 800, seed=5)
    with read_session(engine) as s:
        first = measures.durations(s, RANGE)
    with read_session(engine) as s:
        chart = measures.resolution_by_priority(s, RANGE)
        again = measures.durations(s, RANGE)
    assert len(chart) == first["resolution"]["n"]
    assert again == first
