"""lib.metrics.measures on SQLite and PostgreSQL.

* Generated data (seed-demo, 3,000 tickets over a year): every metric equals a plain pandas computation over
  the rows of ``export-csv`` and ``export-events`` (the reference below, written without lib.metrics.measures), for
  several ranges (weeks, days across both daylight-saving changes, an old range, filters, another time zone);
  the counts read from metric_days equal those read ticket by ticket, in zones east and west of UTC; and the
  two engines give the same numbers for the same seed. The exports carry no satisfaction rating, requester
  or device id, or duplicate link: the reference reads those few columns with a plain SELECT.
* Hand-built tickets through the services (``now=``): reopenings, pauses, a never-answered ticket, a ticket
  created and resolved in different weeks, SLA breaches, closure reasons, the days and weeks around the
  daylight-saving changes of 2026 in Europe/London.
* The real ServiceNow log imported (on SQLite) and its created / resolved / backlog / resolution-time figures
  checked against pandas over the raw CSV file.
"""

from __future__ import annotations

import inspect
import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

from lib import tickets
from lib.db import make_engine, read_session, transaction, upgrade_schema
from lib.directory import RequesterInput
from lib.metrics import measures, metrics_store
from lib.metrics.measures import MetricFilter
from lib.models import Ticket
from lib.seed.demo import seed_demo
from lib.tickets import TicketDraft
from lib.transfer.exporter import export_events_csv, export_tickets_csv
from lib.workflow import OPEN_STATUSES, ActionKind, ClosureReason, ConfirmationVia, Priority
from tests.conftest import _pg_base_url
from tests.conftest import testdata_dir as shared_testdata

TZ = "Europe/London"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
OPEN = {s.value for s in OPEN_STATUSES}
WORK = {r.value for r in (ClosureReason.CONFIRMED, ClosureReason.NO_REPLY)}
LABEL_TO_PRIORITY = {p.label: int(p) for p in Priority}
TIME_COLUMNS = ("created_at", "acknowledged_at", "first_response_at", "resolved_at", "closed_at", "response_due_at",
                "resolution_due_at")
AGE_LIMITS = (1, 3, 7, 14, 28)


# --- the reference: plain pandas over the exports ----------------------------------------------------------


@dataclass
class Ref:
    tickets: pd.DataFrame  # export-csv, times parsed
    events: pd.DataFrame  # export-events, times parsed, ticket_id added
    side: pd.DataFrame  # what the exports do not carry: satisfaction, requester, device model, duplicate link
    users: pd.DataFrame  # id, name, capacity, active


def load_reference(engine: Engine, folder: Path) -> Ref:
    export_tickets_csv(engine, folder / "tickets.csv")
    export_events_csv(engine, folder / "events.csv")
    t = pd.read_csv(folder / "tickets.csv", dtype=str, keep_default_na=False)
    for col in TIME_COLUMNS:
        t[col] = pd.to_datetime(t[col].replace("", None), utc=True, format="%Y-%m-%dT%H:%M:%SZ")
    t["id"] = t["id"].astype(int)
    t["priority"] = t["priority"].map(LABEL_TO_PRIORITY)
    t["reopen_count"] = t["reopen_count"].astype(int)
    e = pd.read_csv(folder / "events.csv", dtype=str, keep_default_na=False)
    e["occurred_at"] = pd.to_datetime(e["occurred_at"], utc=True, format="%Y-%m-%dT%H:%M:%SZ")
    e["event_id"] = e["event_id"].astype(int)
    e["ticket_id"] = e["ticket"].str.rsplit("-", n=1).str[1].astype(int)
    with engine.connect() as conn:
        side = pd.read_sql(text("SELECT t.id, t.satisfaction, t.requester_id, t.device_id, t.duplicate_of_id, "
                                "t.category_id, d.make_model FROM tickets t LEFT JOIN devices d ON d.id = t.device_id"),
                           conn)
        users = pd.read_sql(text("SELECT id, name, capacity, active FROM users"), conn)
        cats = dict(conn.execute(text("SELECT name, id FROM categories")).all())
    t["category_id"] = t["category"].map(cats).astype(int)
    return Ref(t, e, side.set_index("id"), users)


def local_day(s: pd.Series, tz: str = TZ) -> pd.Series:
    return s.dt.tz_convert(tz).dt.tz_localize(None).dt.normalize()


def label(days: pd.Series, grain: str) -> pd.Series:
    return days - pd.to_timedelta(days.dt.day_of_week, unit="D") if grain == "week" else days


def scoped(ref: Ref, f: MetricFilter) -> pd.DataFrame:
    t = ref.tickets
    keep = pd.Series(True, index=t.index)
    if f.priorities:
        keep &= t["priority"].isin(f.priorities)
    if f.category_ids:
        keep &= t["category_id"].isin(f.category_ids)
    if f.assignee_ids:
        names = set(ref.users[ref.users["id"].isin(f.assignee_ids)]["name"])
        keep &= t["assignee"].isin(names)
    if f.channels:
        keep &= t["channel"].isin(f.channels)
    return t[keep]


def in_range(t: pd.DataFrame, col: str, f: MetricFilter) -> pd.DataFrame:
    d = local_day(t[col], f.tz or TZ)
    mask = (d >= pd.Timestamp(f.start)) & (d < pd.Timestamp(f.end))
    out = t[mask.fillna(False)].copy()
    out["period"] = label(d[mask.fillna(False)], f.grain).dt.date
    return out


def ref_flow(ref: Ref, f: MetricFilter) -> pd.DataFrame:
    t = scoped(ref, f)
    parts = []
    for measure, col, cond in (("created", "created_at", None), ("resolved", "resolved_at", None),
                               ("closed", "closed_at", lambda x: x["closure_reason"].isin(WORK)),
                               ("closed_other", "closed_at", lambda x: ~x["closure_reason"].isin(WORK))):
        r = in_range(t, col, f)
        if cond is not None:
            r = r[cond(r)]
        parts.append(r.groupby(["period", "priority", "category"]).size().rename(measure))
    ev = ref.events[ref.events["kind"] == "reopened"].merge(t[["id", "priority", "category"]], left_on="ticket_id",
                                                            right_on="id")
    r = in_range(ev, "occurred_at", f)
    parts.append(r.groupby(["period", "priority", "category"]).size().rename("reopened"))
    out = pd.concat(parts, axis=1).fillna(0).astype(int).reset_index()
    return out.sort_values(["period", "priority", "category"]).reset_index(drop=True)


def period_ends(f: MetricFilter) -> list[pd.Timestamp]:
    p = measures.periods(f)  # only the dates; the instants are made here with pandas
    return [pd.Timestamp(d).tz_localize(f.tz or TZ).tz_convert("UTC") for d in p.ends]


def ref_backlog(ref: Ref, f: MetricFilter) -> list[int]:
    """Status after every status event before the moment: open work or not (whatever the creation date)."""
    t = scoped(ref, f)
    ev = ref.events[(ref.events["to_status"] != "") & ref.events["ticket_id"].isin(t["id"])]
    ev = ev.sort_values(["occurred_at", "event_id"])
    out = []
    for moment in period_ends(f):
        last = ev[ev["occurred_at"] < moment].groupby("ticket_id")["to_status"].last()
        out.append(int(last.isin(OPEN).sum()))
    return out


def hours(delta: pd.Series) -> pd.Series:
    return delta.dt.total_seconds() / 3600


def ref_stats(h: pd.Series) -> dict:
    h = h.dropna()
    if h.empty:
        return {"n": 0, "median_h": None, "p90_h": None, "mean_h": None}
    return {"n": len(h), "median_h": h.quantile(0.5), "p90_h": h.quantile(0.9), "mean_h": h.mean()}


def ref_durations(ref: Ref, f: MetricFilter) -> dict:
    t = scoped(ref, f)
    ack = in_range(t, "acknowledged_at", f)
    first = in_range(t, "first_response_at", f)
    res = in_range(t, "resolved_at", f)
    closed = in_range(t, "closed_at", f)
    closed = closed[closed["closure_reason"].isin(WORK) & closed["resolved_at"].notna()]
    return {"ack": ref_stats(hours(ack["acknowledged_at"] - ack["created_at"])),
            "first_response": ref_stats(hours(first["first_response_at"] - first["created_at"])),
            "resolution": ref_stats(hours(res["resolved_at"] - res["created_at"])),
            "confirmation_delay": ref_stats(hours(closed["closed_at"] - closed["resolved_at"]))}


def ref_sla(ref: Ref, f: MetricFilter) -> dict[tuple, tuple[int, int]]:
    t = scoped(ref, f).copy()
    t = t[t["response_due_at"].notna()]  # the ticket carries an SLA policy
    t["responded_at"] = t[["acknowledged_at", "first_response_at"]].min(axis=1)
    out = {}
    for clock, col, flag in (("response", "responded_at", "response_breached"),
                             ("resolution", "resolved_at", "resolution_breached")):
        r = in_range(t, col, f)
        for period, g in r.groupby("period"):
            breached = int((g[flag] == "yes").sum())
            out[(period, clock)] = (len(g) - breached, breached)
    return out


def ref_rates(ref: Ref, f: MetricFilter) -> dict:
    t = scoped(ref, f)
    res = in_range(t, "resolved_at", f)
    escalated = set(ref.events[ref.events["kind"] == "escalated"]["ticket_id"])
    fcr = res[(res["reopen_count"] == 0) & (res["first_response_at"] == res["resolved_at"])
              & ~res["id"].isin(escalated)]
    closed = in_range(t, "closed_at", f)
    sat = ref.side.loc[closed["id"], "satisfaction"].dropna()
    n = len(res)
    return {"reopen_rate": None if n == 0 else (res["reopen_count"] > 0).sum() / n,
            "first_contact_resolution": None if n == 0 else len(fcr) / n,
            "satisfaction_avg": None if sat.empty else sat.mean(), "satisfaction_n": len(sat), "resolved": n}


def ref_closures(ref: Ref, f: MetricFilter) -> dict[str, int]:
    closed = in_range(scoped(ref, f), "closed_at", f)
    return closed.groupby("closure_reason").size().to_dict()


def ref_workload(ref: Ref, f: MetricFilter) -> dict[str, tuple]:
    t = scoped(ref, f)
    open_ = t[t["status"].isin(OPEN) & (t["assignee"] != "")]
    res = in_range(t, "resolved_at", f)
    out: dict[str, tuple] = {}
    for name in set(open_["assignee"]) | set(res["assignee"][res["assignee"] != ""]):
        mine = open_[open_["assignee"] == name]
        by_p = mine.groupby("priority").size().to_dict()
        weighted = sum(n * p for p, n in by_p.items())  # the default weights: low 1 .. critical 4
        out[name] = (len(mine), weighted, int((res["assignee"] == name).sum()),
                     tuple(by_p.get(p, 0) for p in (1, 2, 3, 4)))
    return out


def ref_ageing(ref: Ref, now: datetime) -> list[int]:
    t = ref.tickets[ref.tickets["status"].isin(OPEN)]
    age = (pd.Timestamp(now) - t["created_at"]).dt.total_seconds() / 86400
    edges = [-np.inf, *AGE_LIMITS, np.inf]
    counts = pd.cut(age, edges, right=False).value_counts(sort=False)
    return [int(c) for c in counts]


def ref_repeats(ref: Ref, f: MetricFilter, days: int) -> set[tuple]:
    t = scoped(ref, f).set_index("id").join(ref.side[["requester_id", "device_id", "duplicate_of_id", "make_model"]])
    d = local_day(t["created_at"], f.tz or TZ)
    t = t[(d >= pd.Timestamp(f.end - timedelta(days=days))) & (d < pd.Timestamp(f.end)) & t["duplicate_of_id"].isna()]
    out = set()
    for kind, keys in (("requester", ["requester_id"]), ("device", ["device_id"]),
                       ("category+model", ["category_id", "make_model"])):
        part = t.dropna(subset=keys)
        if kind == "category+model":
            part = part[part["make_model"] != ""]
        for key, g in part.groupby(keys):
            if len(g) >= 2:
                key = key if isinstance(key, tuple) else (key,)
                key_id = "|".join(str(int(k)) if isinstance(k, float | np.floating) else str(k) for k in key)
                out.add((kind, key_id, len(g), tuple(sorted(g.index))))
    return out


# --- comparing ---------------------------------------------------------------------------------------------


def approx(value: float | None) -> object:
    return None if value is None else pytest.approx(value, rel=1e-9, abs=1e-9)


def assert_stats(got: dict, want: dict) -> None:
    assert got["n"] == want["n"]
    for key in ("median_h", "p90_h", "mean_h"):
        assert got[key] == approx(want[key]), key


def check_all(session, ref: Ref, f: MetricFilter) -> None:
    flow = measures.flow(session, f)
    p = measures.periods(f)
    assert len(flow) == len(p) * len(f.priorities or Priority) * flow["category"].nunique()
    counts = ["created", "resolved", "closed", "closed_other", "reopened"]
    got = flow[flow[counts].sum(axis=1) > 0][["period", "priority", "category", *counts]]
    got = got.sort_values(["period", "priority", "category"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, ref_flow(ref, f), check_dtype=False)

    assert list(measures.backlog(session, f)["backlog_end"]) == ref_backlog(ref, f)

    got_d, want_d = measures.durations(session, f), ref_durations(ref, f)
    for name in want_d:
        assert_stats(got_d[name], want_d[name])

    dist = measures.resolution_by_priority(session, f)
    res = in_range(scoped(ref, f), "resolved_at", f)
    assert sorted(zip(dist["priority"], dist["hours"].round(9), strict=True)) == sorted(
        zip(res["priority"], hours(res["resolved_at"] - res["created_at"]).round(9), strict=True))

    sla = measures.sla_compliance(session, f)
    want_sla = ref_sla(ref, f)
    assert len(sla) == 2 * len(p)
    for row in sla.itertuples():
        met, breached = want_sla.get((row.period, row.clock), (0, 0))
        assert (row.met, row.breached) == (met, breached), (row.period, row.clock)
        if met + breached == 0:
            assert pd.isna(row.pct)
        else:
            assert row.pct == approx(100 * met / (met + breached))

    closures = measures.closures_by_reason(session, f)
    want_c = ref_closures(ref, f)
    assert {r.reason: r.count for r in closures.itertuples() if r.count} == want_c

    rates, want_r = measures.rates(session, f), ref_rates(ref, f)
    for key, value in want_r.items():
        assert rates[key] == approx(value), key

    work = measures.workload(session, f)
    got_w = {r.technician: (r.open, r.open_weighted, r.resolved_in_range,
                            (r.open_low, r.open_medium, r.open_high, r.open_critical))
             for r in work.itertuples() if r.open or r.resolved_in_range}
    assert got_w == ref_workload(ref, f)

    k = measures.kpis(session, f)
    for g, i in ((f, 0), (f.previous(), 1)):
        fl, d, s, r = ref_flow(ref, g), ref_durations(ref, g), ref_sla(ref, g), ref_rates(ref, g)
        assert k["created"][i] == fl["created"].sum()
        assert k["resolved"][i] == fl["resolved"].sum()
        assert k["closed"][i] == fl["closed"].sum()
        assert k["ack_median_h"][i] == approx(d["ack"]["median_h"])
        assert k["first_response_median_h"][i] == approx(d["first_response"]["median_h"])
        assert k["resolution_median_h"][i] == approx(d["resolution"]["median_h"])
        assert k["resolution_p90_h"][i] == approx(d["resolution"]["p90_h"])
        for clock in ("response", "resolution"):
            met = sum(v[0] for (_, c), v in s.items() if c == clock)
            breached = sum(v[1] for (_, c), v in s.items() if c == clock)
            assert k[f"sla_{clock}_pct"][i] == approx(None if met + breached == 0 else 100 * met / (met + breached))
        assert k["reopen_rate"][i] == approx(r["reopen_rate"])
    assert k["backlog_end"] == (ref_backlog(ref, f)[-1], ref_backlog(ref, f.previous())[-1])

    rep = measures.repeat_issues(session, f, days=30, limit=10_000)
    assert {(r.kind, r.key_id, r.count, tuple(r.ticket_ids)) for r in rep.itertuples()} == ref_repeats(ref, f, 30)
    assert list(rep["count"]) == sorted(rep["count"], reverse=True)


# --- generated data on both engines -------------------------------------------------------------------------


def _seed(engine: Engine) -> None:
    upgrade_schema(engine)
    seed_demo(engine, tickets=3000, years=1.0, seed=5, now=NOW, demo_password="demo password 123")


@pytest.fixture(scope="module")
def seeded_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, Ref]]:
    folder = tmp_path_factory.mktemp("metrics_sqlite")
    engine = make_engine(f"sqlite:///{folder / 'seeded.sqlite3'}")
    _seed(engine)
    yield engine, load_reference(engine, folder)
    engine.dispose()


@pytest.fixture(scope="module")
def seeded_postgresql(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, Ref]]:
    base = _pg_base_url()
    assert base is not None
    name = f"helpdesk_m_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(make_url(base).set(database=name).render_as_string(hide_password=False))
    try:
        _seed(engine)
        yield engine, load_reference(engine, tmp_path_factory.mktemp("metrics_pg"))
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def seeded(request: pytest.FixtureRequest) -> tuple[Engine, Ref]:
    return request.getfixturevalue(f"seeded_{request.param}")


RANGES = {
    "12 weeks": MetricFilter(start=date(2026, 8, 31), end=date(2026, 11, 23)),
    "ragged weeks": MetricFilter(start=date(2026, 9, 3), end=date(2026, 11, 27)),
    "days across the spring change": MetricFilter(start=date(2026, 3, 22), end=date(2026, 4, 6), grain="day"),
    "days across the autumn change": MetricFilter(start=date(2026, 10, 18), end=date(2026, 11, 2), grain="day"),
    "an old range (counted forward)": MetricFilter(start=date(2026, 1, 5), end=date(2026, 2, 16)),
    "priorities and categories": MetricFilter(start=date(2026, 8, 3), end=date(2026, 11, 23), priorities=(3, 4),
                                              category_ids=(1, 2, 3)),
    "technicians and channel": MetricFilter(start=date(2026, 8, 3), end=date(2026, 11, 23), assignee_ids=(4, 5, 6),
                                            channels=("email", "phone")),
    "another time zone, days": MetricFilter(start=date(2026, 10, 26), end=date(2026, 11, 9), grain="day",
                                            tz="America/New_York"),
}


@pytest.mark.parametrize("tz", ["Europe/London", "Australia/Sydney", "America/St_Johns", "Pacific/Kiritimati"])
def test_counts_from_metric_days_equal_the_per_ticket_rows(seeded, tz, monkeypatch):
    """metric_days counts per UTC day; local days and weeks are corrected at their edges from the tickets."""
    engine, _ = seeded
    filters = [MetricFilter(start=date(2026, 3, 16), end=date(2026, 4, 13), tz=tz),
               MetricFilter(start=date(2026, 10, 20), end=date(2026, 11, 3), grain="day", tz=tz),
               MetricFilter(start=date(2025, 12, 1), end=date(2026, 11, 23), priorities=(1, 4), tz=tz)]
    results = []
    for use_days in (True, False):
        monkeypatch.setattr(measures, "USE_DAYS", use_days)
        with read_session(engine) as s:
            results.append([(measures.flow(s, f), measures.sla_compliance(s, f), measures.closures_by_reason(s, f),
                             measures.kpis(s, f), measures.rates(s, f)) for f in filters])
    for days, rows in zip(*results, strict=True):
        for a, b in zip(days, rows, strict=True):
            if isinstance(a, pd.DataFrame):
                pd.testing.assert_frame_equal(a, b)
            else:
                assert a == b
    with read_session(engine) as s:
        assert metrics_store.check_days(s) == []


@pytest.mark.parametrize("name", list(RANGES))
def test_every_metric_equals_the_pandas_reference(seeded, name):
    engine, ref = seeded
    with read_session(engine) as s:
        check_all(s, ref, RANGES[name])


def test_ageing_and_open_work_equal_the_reference(seeded):
    engine, ref = seeded
    with read_session(engine) as s:
        ageing = measures.ageing(s, now=NOW)
    assert list(ageing["bucket"]) == ["<1 d", "1–3 d", "3–7 d", "1–2 wk", "2–4 wk", ">4 wk"]
    assert list(ageing["count"]) == ref_ageing(ref, NOW)
    assert ageing["count"].sum() == ref.tickets["status"].isin(OPEN).sum()


def test_short_event_ranges_looked_up_by_key_give_the_join_s_numbers(seeded, monkeypatch):
    """PostgreSQL reads a short range of status events first and looks their tickets up by key
    (metrics_store.SHORT_RANGE); a long one is joined to every ticket. Both forms give the same deltas, per
    group and under a filter."""
    engine, _ = seeded
    f = RANGES["technicians and channel"]
    day = datetime(2026, 11, 2, tzinfo=UTC)
    ranges = [[day, day + timedelta(days=7), day + timedelta(days=9)],  # closed weeks, as the report reads them
              [day - timedelta(days=60), day, day + timedelta(days=14)],
              [day + timedelta(days=14), None]]  # open-ended, up to now
    found = []
    with read_session(engine) as s:
        scopes = [measures.MetricFilter(start=f.start, end=f.end).scope(tuple(measures._categories(s))),
                  f.scope(tuple(measures._categories(s)))]
        for short in (timedelta(days=100_000), timedelta(0)):
            monkeypatch.setattr(metrics_store, "SHORT_RANGE", short)
            found.append([metrics_store.backlog_deltas(s, b, scope, group=g)
                          for b in ranges for scope in scopes for g in (None, "assignee_id", "priority")])
    assert found[0] == found[1]
    assert any(len(d) > 3 for d in found[0])  # the ranges hold events: the comparison says something


def test_the_range_is_read_from_both_ends_alike(seeded):
    """The backlog counted back from the open tickets and forward from the first event agree."""
    engine, _ = seeded
    f = RANGES["12 weeks"]
    with read_session(engine) as s:
        scope = f.scope(tuple(measures._categories(s)))
        bounds = list(measures.periods(f).bounds)
        forward = metrics_store.backlog_before(s, bounds[-1], scope)
        backward = measures.backlog(s, f)["backlog_end"].iloc[-1]
        assert forward.get(None, 0) == backward
        assert metrics_store.check(s) == []


def test_same_numbers_on_sqlite_and_postgresql(seeded_sqlite, seeded_postgresql):
    results = []
    for engine, _ in (seeded_sqlite, seeded_postgresql):
        with read_session(engine) as s:
            out = {}
            for name, f in RANGES.items():
                for fn in ("flow", "backlog", "resolution_by_priority", "sla_compliance", "closures_by_reason",
                           "workload", "repeat_issues"):
                    df = getattr(measures, fn)(s, f).drop(columns=["latest"], errors="ignore")
                    out[(name, fn)] = df.sort_values(list(df.columns[:2])).reset_index(drop=True) \
                        if fn == "resolution_by_priority" else df
                for fn in ("durations", "rates", "kpis"):
                    out[(name, fn)] = getattr(measures, fn)(s, f)
            out["ageing"] = measures.ageing(s, now=NOW)
            results.append(out)
    lite, pg = results
    for key, value in lite.items():
        if isinstance(value, pd.DataFrame):
            pd.testing.assert_frame_equal(value, pg[key], check_dtype=False, obj=str(key))
        else:
            assert value == pg[key], key


def test_memo_is_per_transaction(seeded_sqlite):
    engine, _ = seeded_sqlite
    f = RANGES["12 weeks"]
    with read_session(engine) as s:
        first = measures.flow(s, f)
        assert measures.flow(s, f).equals(first)
        s.rollback()  # a new transaction reads again
        assert measures.flow(s, f).equals(first)


# --- hand-built cases through the services -------------------------------------------------------------------


def _draft(**kw) -> TicketDraft:
    base = dict(summary="Laptop will not start", category="Hardware", priority="Medium", channel="phone",
                requester=RequesterInput(name="Ann Smith", email="ann@example.com"))
    base.update(kw)
    return TicketDraft(**base)  # type: ignore[arg-type]


def _t(text_: str) -> datetime:
    return datetime.fromisoformat(text_).replace(tzinfo=UTC)


class Desk:
    """Service calls with explicit times, each in its own transaction as a page makes them."""

    def __init__(self, engine: Engine, staff) -> None:  # type: ignore[no-untyped-def]
        self.engine, self.staff = engine, staff

    def create(self, at: str, **kw) -> int:
        with transaction(self.engine) as s:
            return tickets.create_ticket(s, actor=self.staff.tech, draft=_draft(**kw), now=_t(at)).id

    def do(self, fn, tid: int, at: str, **kw) -> None:  # type: ignore[no-untyped-def]
        kw.setdefault("actor", self.staff.tech)
        with transaction(self.engine) as s:
            if "expected_version" in inspect.signature(fn).parameters:
                kw["expected_version"] = s.get(Ticket, tid).version
            fn(s, ticket_id=tid, now=_t(at), **kw)

    def work(self, tid: int, at: str) -> None:
        self.do(tickets.take, tid, at)
        self.do(tickets.acknowledge, tid, at)

    def resolve(self, tid: int, at: str) -> None:
        self.do(tickets.log_action, tid, at, kind=ActionKind.DIAGNOSIS, text="Checked it", minutes=5)
        self.do(tickets.resolve, tid, at, resolution_notes="Fixed", root_cause="Worn part")

    def confirm_and_close(self, tid: int, at: str) -> None:
        self.do(tickets.record_confirmation, tid, at, via=ConfirmationVia.PHONE, confirmed_by="Ann Smith")
        self.do(tickets.close, tid, at, reason=ClosureReason.CONFIRMED)


def read(engine: Engine, fn, f: MetricFilter, **kw):  # type: ignore[no-untyped-def]
    with read_session(engine) as s:
        return getattr(measures, fn)(s, f, **kw)


def weekly(start: date, weeks: int, **kw) -> MetricFilter:
    return MetricFilter(start=start, end=start + timedelta(weeks=weeks), tz=TZ, **kw)


W1 = date(2026, 11, 2)  # a Monday (GMT all along)


def test_reopened_ticket_counts_once_in_its_final_resolution(engine, staff):
    desk = Desk(engine, staff)
    tid = desk.create("2026-11-02 09:00")
    desk.work(tid, "2026-11-02 09:10")
    desk.resolve(tid, "2026-11-03 10:00")  # week 1
    desk.do(tickets.reopen, tid, "2026-11-10 09:00", reason="It broke again")  # week 2
    desk.resolve(tid, "2026-11-17 09:00")  # week 3
    f = weekly(W1, 3)
    flow = read(engine, "flow", f).groupby("period")[["created", "resolved", "reopened"]].sum()
    assert list(flow["created"]) == [1, 0, 0]
    assert list(flow["resolved"]) == [0, 0, 1]
    assert list(flow["reopened"]) == [0, 1, 0]
    # resolved at the end of week 1, open again through week 2, resolved in week 3
    assert list(read(engine, "backlog", f)["backlog_end"]) == [0, 1, 0]
    d = read(engine, "durations", f)
    assert d["resolution"]["n"] == 1 and d["resolution"]["median_h"] == pytest.approx(15 * 24)  # created -> final
    r = read(engine, "rates", f)
    assert (r["reopen_rate"], r["first_contact_resolution"], r["reopened"]) == (1.0, 0.0, 1)


def test_pauses_stay_in_the_backlog_and_in_the_wall_clock_time(engine, staff):
    desk = Desk(engine, staff)
    tid = desk.create("2026-11-02 09:00", channel="email")
    desk.work(tid, "2026-11-02 10:00")
    desk.do(tickets.request_info, tid, "2026-11-02 11:00", text="Which model is it?")
    with transaction(engine) as s:
        tickets.requester_reply(s, ticket_id=tid, from_label="ann@example.com", text="A T14", now=_t("2026-11-12 11:00"))
    desk.resolve(tid, "2026-11-12 15:00")
    f = weekly(W1, 2)
    assert list(read(engine, "backlog", f)["backlog_end"]) == [1, 0]  # waiting on the user is open work
    d = read(engine, "durations", f)
    assert d["resolution"]["median_h"] == pytest.approx(10 * 24 + 6)  # wall clock, pauses included
    assert d["first_response"]["median_h"] == pytest.approx(2)  # the question was the first public message
    assert d["ack"]["median_h"] == pytest.approx(1)
    assert read(engine, "rates", f)["first_contact_resolution"] == 0.0


def test_never_answered_ticket(engine, staff):
    desk = Desk(engine, staff)
    desk.create("2026-11-03 08:00", priority="Critical", channel="alert", requester=None)
    f = weekly(W1, 1)
    d = read(engine, "durations", f)
    assert d["ack"] == {"n": 0, "median_h": None, "p90_h": None, "mean_h": None}
    assert d["first_response"]["n"] == 0
    sla = read(engine, "sla_compliance", f)
    assert sla[["met", "breached"]].to_numpy().sum() == 0  # its clocks have not ended
    assert sla["pct"].isna().all()
    assert list(read(engine, "backlog", f)["backlog_end"]) == [1]
    with read_session(engine) as s:
        ages = measures.ageing(s, now=_t("2026-11-05 09:00"))
    assert list(ages["count"]) == [0, 1, 0, 0, 0, 0]


def test_created_and_resolved_in_different_weeks_and_closure_reasons(engine, staff):
    desk = Desk(engine, staff)
    a = desk.create("2026-11-06 16:00", category="Printing")  # Friday, week 1
    desk.work(a, "2026-11-06 16:30")
    desk.resolve(a, "2026-11-10 09:00")  # week 2
    desk.confirm_and_close(a, "2026-11-11 09:00")
    b = desk.create("2026-11-09 09:00")
    desk.do(tickets.close, b, "2026-11-09 10:00", actor=staff.lead, reason=ClosureReason.DUPLICATE, duplicate_of=a)
    c = desk.create("2026-11-09 11:00")
    desk.do(tickets.close, c, "2026-11-09 12:00", actor=staff.lead, reason=ClosureReason.CANCELLED,
            note="Sorted itself out")
    f = weekly(W1, 2)
    flow = read(engine, "flow", f)
    by_week = flow.groupby("period")[["created", "resolved", "closed", "closed_other"]].sum()
    assert by_week.loc[W1].tolist() == [1, 0, 0, 0]
    assert by_week.loc[W1 + timedelta(weeks=1)].tolist() == [2, 1, 1, 2]
    printing = flow[(flow["category"] == "Printing") & (flow["resolved"] > 0)]
    assert printing[["period", "priority"]].values.tolist() == [[W1 + timedelta(weeks=1), 2]]
    assert list(read(engine, "backlog", f)["backlog_end"]) == [1, 0]
    closures = read(engine, "closures_by_reason", f).set_index("reason")["count"]
    assert (closures["confirmed"], closures["duplicate"], closures["cancelled"], closures["no_reply"]) == (1, 1, 1, 0)
    d = read(engine, "durations", f)
    assert d["resolution"]["median_h"] == pytest.approx(3 * 24 + 17)
    assert d["confirmation_delay"]["median_h"] == pytest.approx(24)
    k = read(engine, "kpis", weekly(W1 + timedelta(weeks=1), 1))
    assert k["created"] == (2, 1) and k["closed"] == (1, 0) and k["backlog_end"] == (0, 1)


def test_sla_compliance_counts_where_the_clock_ended(engine, staff):
    """Critical: response 30 min, resolution 4 h, around the clock (the seeded targets)."""
    desk = Desk(engine, staff)
    late = desk.create("2026-11-05 10:00", priority="Critical")
    desk.work(late, "2026-11-05 10:45")  # acknowledged after 45 min: the response target is missed
    desk.resolve(late, "2026-11-05 13:00")  # 3 h: resolution met
    quick = desk.create("2026-11-06 23:50", priority="Critical")
    desk.work(quick, "2026-11-07 00:05")
    desk.resolve(quick, "2026-11-09 12:00")  # next week, far past 4 h: resolution breached
    f = weekly(W1, 2)
    sla = read(engine, "sla_compliance", f).set_index(["period", "clock"])
    assert sla.loc[(W1, "response"), ["met", "breached"]].tolist() == [1, 1]
    assert sla.loc[(W1, "response"), "pct"] == 50.0
    assert sla.loc[(W1, "resolution"), ["met", "breached"]].tolist() == [1, 0]
    assert sla.loc[(W1 + timedelta(weeks=1), "resolution"), ["met", "breached"]].tolist() == [0, 1]
    assert sla.loc[(W1 + timedelta(weeks=1), "response"), ["met", "breached"]].tolist() == [0, 0]
    with read_session(engine) as s:
        kinds = s.execute(text("SELECT ticket_id, meta FROM ticket_events WHERE kind = 'sla_breached'")).all()
    assert len(kinds) == 2  # each breach was recorded once, as an event


def test_first_contact_resolution(engine, staff):
    desk = Desk(engine, staff)
    fixed = desk.create("2026-11-03 09:00")
    desk.work(fixed, "2026-11-03 09:00")
    desk.resolve(fixed, "2026-11-03 09:20")  # the fix is the first thing the requester hears
    talked = desk.create("2026-11-03 10:00")
    desk.work(talked, "2026-11-03 10:00")
    desk.do(tickets.public_reply, talked, "2026-11-03 10:05", text="Looking into it")
    desk.resolve(talked, "2026-11-03 11:00")
    r = read(engine, "rates", weekly(W1, 1))
    assert r["first_contact_resolution"] == 0.5 and r["resolved"] == 2


def test_days_and_weeks_across_the_spring_change(engine, staff):
    """Sunday 2026-03-29 has 23 hours in London; BST starts at 01:00 UTC."""
    desk = Desk(engine, staff)
    ids = [desk.create(at) for at in ("2026-03-28 23:30",  # Saturday 23:30 GMT
                                      "2026-03-29 00:30",  # Sunday 00:30 GMT
                                      "2026-03-29 22:30",  # Sunday 23:30 BST
                                      "2026-03-29 23:30")]  # Monday 30th 00:30 BST: the next week
    desk.work(ids[0], "2026-03-29 01:00")
    desk.resolve(ids[0], "2026-03-29 22:59")  # Sunday 23:59 BST
    f = MetricFilter(start=date(2026, 3, 28), end=date(2026, 3, 31), grain="day", tz=TZ)
    days = read(engine, "flow", f).groupby("period")[["created", "resolved"]].sum()
    assert days["created"].tolist() == [1, 2, 1]
    assert days["resolved"].tolist() == [0, 1, 0]
    assert read(engine, "backlog", f)["backlog_end"].tolist() == [1, 2, 3]
    weeks = read(engine, "flow", weekly(date(2026, 3, 23), 2)).groupby("period")["created"].sum()
    assert weeks.tolist() == [3, 1]
    p = measures.periods(f)
    assert [b.isoformat() for b in p.bounds] == ["2026-03-28T00:00:00+00:00", "2026-03-29T00:00:00+00:00",
                                                 "2026-03-29T23:00:00+00:00", "2026-03-30T23:00:00+00:00"]


def test_days_and_weeks_across_the_autumn_change(engine, staff):
    """Sunday 2026-10-25 has 25 hours in London; GMT is back at 01:00 UTC."""
    desk = Desk(engine, staff)
    desk.create("2026-10-24 23:30")  # Sunday 00:30 BST
    desk.create("2026-10-25 00:30")  # Sunday 01:30 BST
    desk.create("2026-10-25 01:30")  # Sunday 01:30 GMT, the second time round
    desk.create("2026-10-25 23:30")  # Sunday 23:30 GMT
    desk.create("2026-10-26 00:00")  # Monday 00:00 GMT: the next week
    f = MetricFilter(start=date(2026, 10, 24), end=date(2026, 10, 27), grain="day", tz=TZ)
    days = read(engine, "flow", f).groupby("period")["created"].sum()
    assert days.tolist() == [0, 4, 1]
    weeks = read(engine, "flow", weekly(date(2026, 10, 19), 2)).groupby("period")["created"].sum()
    assert weeks.tolist() == [4, 1]
    assert measures.periods(f).bounds[2] - measures.periods(f).bounds[1] == timedelta(hours=25)


def test_workload_and_filters(engine, staff):
    desk = Desk(engine, staff)
    a = desk.create("2026-11-03 09:00", priority="High")
    desk.work(a, "2026-11-03 09:05")
    b = desk.create("2026-11-03 10:00", priority="Low", channel="email")
    desk.work(b, "2026-11-03 10:05")
    desk.resolve(b, "2026-11-04 10:00")
    f = weekly(W1, 1)
    work = read(engine, "workload", f).set_index("technician")
    tom = work.loc["Tom Tech"]
    assert (tom["open"], tom["open_high"], tom["open_weighted"], tom["resolved_in_range"]) == (1, 1, 3, 1)
    assert work.loc["Tara Tech", "open"] == 0 and len(work) == 4  # every active staff member is listed
    only_email = read(engine, "flow", weekly(W1, 1, channels=("email",)))
    assert only_email["created"].sum() == 1
    assert read(engine, "flow", weekly(W1, 1, priorities=(3,)))["created"].sum() == 1
    assert read(engine, "flow", weekly(W1, 1, assignee_ids=(staff.tech2,)))["created"].sum() == 0


def test_ticket_metrics_follow_every_write(engine, staff):
    desk = Desk(engine, staff)
    tid = desk.create("2026-11-03 09:00")
    desk.work(tid, "2026-11-03 09:05")
    desk.do(tickets.update_fields, tid, "2026-11-03 09:06", changes={"priority": "Critical", "category": "Software"})
    desk.do(tickets.assign, tid, "2026-11-03 09:07", actor=staff.lead, assignee_id=staff.tech2)
    with read_session(engine) as s:
        row = s.execute(text("SELECT priority, assignee_id, is_open, acknowledged_us FROM ticket_metrics")).one()
        assert tuple(row) == (4, staff.tech2, 1, measures.to_us(_t("2026-11-03 09:05")))
        assert metrics_store.check(s) == [] and metrics_store.check_days(s) == []
    desk.do(tickets.log_action, tid, "2026-11-04 08:00", actor=staff.tech2, kind=ActionKind.DIAGNOSIS, text="Looked")
    desk.do(tickets.resolve, tid, "2026-11-04 09:00", actor=staff.tech2, resolution_notes="Fixed")
    desk.do(tickets.reopen, tid, "2026-11-05 09:00", reason="Back again")
    with read_session(engine) as s:
        assert metrics_store.check(s) == [] and metrics_store.check_days(s) == []
    with transaction(engine) as s:
        s.execute(text("DELETE FROM ticket_metrics"))
        assert metrics_store.check(s) == [tid]
        metrics_store.fold_days(s)  # PostgreSQL: the counts are in metric_days now, not in the deltas
        s.execute(text("UPDATE metric_days SET created = created + 5"))
        assert metrics_store.check_days(s) != []
        assert metrics_store.rebuild(s) == 1
        assert metrics_store.check(s) == [] and metrics_store.check_days(s) == []


def test_filters_and_weeks_are_checked():
    assert measures.week_range("2026-W47") == (date(2026, 11, 16), date(2026, 11, 23))
    assert measures.week_range("2026-w01") == (date(2025, 12, 29), date(2026, 1, 5))
    for bad in ("2026-47", "2026-W54", "soon"):
        with pytest.raises(measures.MetricsError):
            measures.week_range(bad)
    with pytest.raises(measures.MetricsError):
        MetricFilter(start=date(2026, 1, 1), end=date(2026, 2, 1), grain="month")  # type: ignore[arg-type]
    with pytest.raises(measures.MetricsError):
        MetricFilter(start=date(2026, 1, 1), end=date(2026, 2, 1), priorities=(7,))
    with pytest.raises(measures.MetricsError):
        MetricFilter(start=date(2026, 1, 1), end=date(2026, 2, 1), tz="Mars/Olympus").zone  # noqa: B018
    f = MetricFilter(start=date(2026, 11, 4), end=date(2026, 11, 20))
    p = measures.periods(f)
    assert p.labels == (date(2026, 11, 2), date(2026, 11, 9), date(2026, 11, 16))
    assert p.starts[0] == date(2026, 11, 4) and p.ends[-1] == date(2026, 11, 20)
    assert f.previous() == MetricFilter(start=date(2026, 10, 19), end=date(2026, 11, 4))


def test_an_empty_range_gives_empty_frames(engine):
    f = MetricFilter(start=date(2026, 11, 4), end=date(2026, 11, 4))
    with read_session(engine) as s:
        assert measures.flow(s, f).empty and measures.backlog(s, f).empty
        assert measures.durations(s, f)["resolution"]["n"] == 0
        assert measures.kpis(s, f)["created"] == (0, 0)


# --- the real ServiceNow log -------------------------------------------------------------------------------


def test_servicenow_log_figures_equal_pandas_over_the_raw_file(sqlite_engine):
    """On SQLite: the import itself is tested on both engines (test_import_servicenow.py), and the metrics give
    the same numbers on both (test_same_numbers_on_sqlite_and_postgresql); the import takes most of the time."""
    from lib.transfer.importer import import_csv

    engine = sqlite_engine
    path = shared_testdata() / "servicenow_incident_event_log.csv"
    report = import_csv(engine, path)
    assert report.refused == []
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    raw["row"] = range(len(raw))
    raw["at"] = pd.to_datetime(raw["sys_updated_at"], format="%d-%m-%Y %H:%M", utc=True)
    raw["opened"] = pd.to_datetime(raw["opened_at"], format="%d-%m-%Y %H:%M", utc=True)
    raw["mod"] = raw["sys_mod_count"].astype(int)
    incidents = []
    for number, g in raw.sort_values(["at", "mod", "row"]).groupby("number", sort=False):
        created = min(g["opened"].min(), g["at"].min())  # opened_at, or an earlier update
        # the replayed history: (time, open work or not); "resolved" is the last time it became Resolved
        prev, resolved, history = "New", None, [(created, True)]
        for state, at in zip(g["incident_state"], g["at"], strict=True):
            if state == prev:
                continue
            if prev in ("Resolved", "Closed") and state not in ("Resolved", "Closed"):
                resolved = None
            elif state == "Resolved" and prev != "Closed":
                resolved = at
            history.append((at, state not in ("Resolved", "Closed")))
            prev = state
        incidents.append({"number": number, "created": created, "resolved": resolved, "history": history})
    inc = pd.DataFrame(incidents)
    start, end = date(2016, 2, 29), date(2016, 6, 6)  # the log's weeks (Mondays)
    f = MetricFilter(start=start, end=end, tz="UTC")
    with read_session(engine) as s:
        flow = measures.flow(s, f).groupby("period")[["created", "resolved"]].sum()
        backlog = measures.backlog(s, f)
        d = measures.durations(s, f)

    def week_of(ts: pd.Series) -> pd.Series:
        days = ts.dt.tz_localize(None).dt.normalize()
        return (days - pd.to_timedelta(days.dt.day_of_week, unit="D")).dt.date

    created = inc[(inc["created"] >= pd.Timestamp(start, tz="UTC")) & (inc["created"] < pd.Timestamp(end, tz="UTC"))]
    want_created = week_of(created["created"]).value_counts()
    res = inc.dropna(subset=["resolved"])
    res = res[(res["resolved"] >= pd.Timestamp(start, tz="UTC")) & (res["resolved"] < pd.Timestamp(end, tz="UTC"))]
    want_resolved = week_of(res["resolved"]).value_counts()
    for period, row in flow.iterrows():
        assert row["created"] == want_created.get(period, 0), period
        assert row["resolved"] == want_resolved.get(period, 0), period
    assert flow["created"].sum() > 0 and flow["resolved"].sum() > 0
    for row in backlog.itertuples():
        moment = pd.Timestamp(row.period_end, tz="UTC")
        want = sum(1 for h in inc["history"] if [o for at, o in h if at < moment][-1:] == [True])
        assert row.backlog_end == want, row.period
    h = (res["resolved"] - res["created"]).dt.total_seconds() / 3600
    assert_stats(d["resolution"], ref_stats(h))


def test_day_counts_from_concurrent_writers_fold_to_the_same_sums(engine, staff) -> None:
    """PostgreSQL writers append day-count deltas (no shared row, no lock); reads add them to metric_days and a
    fold moves them in without changing any sum. SQLite keeps metric_days directly (the fold does nothing)."""
    from sqlalchemy import select

    from lib.db import run_transaction
    from lib.models import Category

    def make(i: int):  # type: ignore[no-untyped-def]
        def create(s):  # type: ignore[no-untyped-def]
            t = tickets.create_ticket(s, actor=staff.tech, draft=TicketDraft(
                summary=f"Dock {i} flickers", category="Hardware", priority=("Low", "High")[i % 2], channel="phone",
                requester=RequesterInput(name="Ann", email="ann@example.com")))
            tickets.take(s, actor=staff.tech, ticket_id=t.id)
            return t.id
        return create

    threads = [threading.Thread(target=lambda i=i: run_transaction(engine, make(i))) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    with read_session(engine) as s:
        assert metrics_store.check_days(s) == []
        every = metrics_store.Scope(all_category_ids=tuple(s.scalars(select(Category.id))))
        before = metrics_store.day_sums(s, "created", [0, 10**6], every)
    assert sum(v[0] for v in before.values()) == 12
    folded = run_transaction(engine, metrics_store.fold_days)
    assert (folded >= 12) if engine.dialect.name == "postgresql" else folded == 0
    assert run_transaction(engine, metrics_store.fold_days) == 0
    with read_session(engine) as s:
        assert metrics_store.check_days(s) == []
        assert metrics_store.day_sums(s, "created", [0, 10**6], every) == before
