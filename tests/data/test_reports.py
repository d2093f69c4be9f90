"""The weekly report (lib.metrics.weekly_report) and ``python -m lib.cli report`` on SQLite and PostgreSQL.

The headline numbers are checked against the pandas reference of tests/data/test_metrics.py (plain pandas
over export-csv and export-events); the files against what a reader needs: JSON that loads, a CSV headline
table, an XLSX workbook with one sheet per table (openpyxl reads it), and one self-contained HTML page with
the interactive charts and no script from elsewhere.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import date, timedelta

import openpyxl
import pandas as pd
import pytest
from sqlalchemy import text

from lib import tickets
from lib.db import read_session, transaction
from lib.metrics import measures, weekly_report
from lib.metrics.measures import MetricFilter
from lib.seed.demo import seed_demo
from lib.workflow import ClosureReason, Priority
from tests.conftest import ROOT
from tests.data.test_metrics import (
    NOW,
    OPEN,
    TZ,
    Desk,
    approx,
    in_range,
    load_reference,
    ref_backlog,
    ref_durations,
    ref_flow,
    ref_sla,
    scoped,
)

WEEK = "2026-W47"
MONDAY = date(2026, 11, 16)
KEYS = ("week", "created", "created_by_priority", "created_by_category", "resolved", "closed", "reopened",
        "backlog_end", "ack_median_hours", "first_response_median_hours", "resolution_median_hours",
        "resolution_p90_hours", "sla_response_pct", "sla_resolution_pct", "by_technician", "previous_week",
        "four_week_avg", "sla_breaches", "oldest_open", "repeat_issues", "preventive_steps")


@pytest.fixture
def seeded_small(engine, tmp_path):
    seed_demo(engine, tickets=700, years=0.25, seed=9, now=NOW, demo_password="demo password 123")
    return engine, load_reference(engine, tmp_path)


def _week(monday: date) -> MetricFilter:
    return MetricFilter(start=monday, end=monday + timedelta(days=7), tz=TZ)


def _pct(sla: dict, clock: str) -> float | None:
    met = sum(v[0] for (_, c), v in sla.items() if c == clock)
    breached = sum(v[1] for (_, c), v in sla.items() if c == clock)
    return None if met + breached == 0 else 100 * met / (met + breached)


def test_weekly_report_equals_the_reference(seeded_small):
    engine, ref = seeded_small
    with read_session(engine) as s:
        report = weekly_report.weekly_report(s, WEEK, now=NOW)
    assert set(KEYS) <= set(report)
    json.dumps(report, allow_nan=False)  # JSON-serialisable, no NaN

    for block, monday in ((report, MONDAY), (report["previous_week"], MONDAY - timedelta(weeks=1))):
        f = _week(monday)
        flow, d, sla = ref_flow(ref, f), ref_durations(ref, f), ref_sla(ref, f)
        assert block["created"] == flow["created"].sum()
        assert block["resolved"] == flow["resolved"].sum()
        assert block["closed"] == flow["closed"].sum()
        assert block["closed_other"] == flow["closed_other"].sum()
        assert block["reopened"] == flow["reopened"].sum()
        assert block["backlog_end"] == ref_backlog(ref, f)[-1]
        assert block["created_by_priority"] == {p.label: int(flow[flow["priority"] == int(p)]["created"].sum())
                                                for p in sorted(Priority, reverse=True)}
        assert block["created_by_category"] == {c: int(n) for c, n in flow.groupby("category")["created"].sum().items()
                                                if n}
        assert block["ack_median_hours"] == approx(d["ack"]["median_h"])
        assert block["first_response_median_hours"] == approx(d["first_response"]["median_h"])
        assert block["resolution_median_hours"] == approx(d["resolution"]["median_h"])
        assert block["resolution_p90_hours"] == approx(d["resolution"]["p90_h"])
        assert block["sla_response_pct"] == approx(_pct(sla, "response"))
        assert block["sla_resolution_pct"] == approx(_pct(sla, "resolution"))

    four = [MONDAY - timedelta(weeks=i) for i in range(4, 0, -1)]
    avg = report["four_week_avg"]
    assert avg["weeks"] == ["2026-W43", "2026-W44", "2026-W45", "2026-W46"]
    pooled = MetricFilter(start=four[0], end=MONDAY, tz=TZ)
    assert avg["created"] == approx(sum(ref_flow(ref, _week(m))["created"].sum() for m in four) / 4)
    assert avg["backlog_end"] == approx(sum(ref_backlog(ref, _week(m))[-1] for m in four) / 4)
    assert avg["resolution_median_hours"] == approx(ref_durations(ref, pooled)["resolution"]["median_h"])
    assert avg["sla_response_pct"] == approx(_pct(ref_sla(ref, pooled), "response"))

    # per technician: open at the end of the week (status events) and resolved in it
    f = _week(MONDAY)
    end = pd.Timestamp(MONDAY + timedelta(days=7)).tz_localize(TZ)
    ev = ref.events[ref.events["to_status"] != ""].sort_values(["occurred_at", "event_id"])
    status = ev[ev["occurred_at"] < end].groupby("ticket_id")["to_status"].last()
    open_ids = set(status[status.isin(OPEN)].index)
    people = {r["technician"]: r for r in report["by_technician"]}
    t = ref.tickets
    # the rows add up to the headline: resolved tickets with no assignee have their own row
    assert sum(r["resolved"] for r in report["by_technician"]) == report["resolved"]
    for name, row in people.items():
        if row["user_id"] is None:
            assert row["open"] == len(t[t["id"].isin(open_ids) & (t["assignee"] == "")])
            unassigned = scoped(ref, f)
            assert row["resolved"] == len(in_range(unassigned[unassigned["assignee"] == ""], "resolved_at", f))
            continue
        assert row["open"] == len(t[t["id"].isin(open_ids) & (t["assignee"] == name)]), name
        mine = scoped(ref, f)
        assert row["resolved"] == len(in_range(mine[mine["assignee"] == name], "resolved_at", f)), name

    breaches = ref.events[(ref.events["kind"] == "sla_breached")]
    week_breaches = in_range(breaches, "occurred_at", f)
    assert len(report["sla_breaches"]) == len(week_breaches)
    assert {b["clock"] for b in report["sla_breaches"]} <= {"response", "resolution"}
    # which clock each breach was on comes from export-events' detail column
    clocks = sorted((int(r.ticket_id), json.loads(r.detail)["clock"]) for r in week_breaches.itertuples())
    assert sorted((b["ticket_id"], b["clock"]) for b in report["sla_breaches"]) == clocks
    assert sorted(b["ticket_id"] for b in report["sla_breaches"]) == sorted(week_breaches["ticket_id"])

    open_now = t[t["status"].isin(OPEN)].sort_values(["created_at", "id"])
    assert [o["ticket_id"] for o in report["oldest_open"]] == list(open_now["id"][:10])

    with read_session(engine) as s:
        repeats = measures.repeat_issues(s, f, days=30)
    assert [(r["kind"], r["count"], r["ticket_ids"]) for r in report["repeat_issues"]] == \
        [(r.kind, r.count, list(r.ticket_ids)) for r in repeats.itertuples()]
    assert report["preventive_steps"] == []
    weeks = report["trend"]["weeks"]
    assert len(weeks) == 8 and weeks[-1] == WEEK


def test_preventive_steps_and_user_text_in_the_report(engine, staff, tmp_path):
    desk = Desk(engine, staff)
    tid = desk.create("2026-11-17 09:00", summary="<script>alert('x')</script> printer")
    desk.work(tid, "2026-11-17 09:05")
    desk.resolve(tid, "2026-11-17 10:00")
    desk.do(tickets.record_confirmation, tid, "2026-11-18 10:00", via="phone", confirmed_by="Ann Smith")
    desk.do(tickets.close, tid, "2026-11-18 10:05", reason=ClosureReason.CONFIRMED,
            preventive_steps="Replace the rollers <b>every</b> 6 months")
    other = desk.create("2026-11-18 11:00", summary="<img src=x onerror=alert(1)> still open")
    with read_session(engine) as s:
        report = weekly_report.weekly_report(s, WEEK, now=NOW)
        out = weekly_report.write_report(s, WEEK, "html", tmp_path / "week.html", now=NOW)
    steps = report["preventive_steps"]
    assert [(p["ticket_id"], p["steps"]) for p in steps] == [(tid, "Replace the rollers <b>every</b> 6 months")]
    assert report["oldest_open"][0]["ticket_id"] == other
    page = out.read_text(encoding="utf-8")
    assert "<img src=x" not in page and "<b>every</b>" not in page and "<script>alert" not in page
    assert "&lt;img src=x onerror=alert(1)&gt; still open" in page


def test_report_files(seeded_small, tmp_path):
    engine, _ = seeded_small
    with read_session(engine) as s:
        report = weekly_report.weekly_report(s, WEEK, now=NOW)
        paths = {fmt: weekly_report.write_report(s, WEEK, fmt, tmp_path / f"week.{fmt}", now=NOW) for fmt in weekly_report.FORMATS}

    assert json.loads(paths["json"].read_text(encoding="utf-8")) == report

    csv = pd.read_csv(paths["csv"])
    assert list(csv.columns) == ["measure", "label", "unit", "this_week", "previous_week", "four_week_avg",
                                 "change_vs_previous"]
    assert list(csv["measure"]) == [k for k, _, _ in weekly_report.HEADLINE]
    assert csv.set_index("measure").loc["created", "this_week"] == report["created"]
    # counts are written as whole numbers, hours to 0.01, and reopenings are named as events
    import csv as csv_module

    raw = {row[0]: row for row in csv_module.reader(paths["csv"].read_text().splitlines()[1:])}
    assert raw["created"][3] == str(report["created"])  # "12", never "12.0"
    hours = raw["resolution_median_hours"][3]
    assert hours == "" or len(hours.split(".")[-1]) <= 2
    assert raw["reopened"][2] == "reopen events"

    book = openpyxl.load_workbook(paths["xlsx"], read_only=True)
    assert book.sheetnames == list(weekly_report.tables(report))
    rows = list(book["Headline"].iter_rows(values_only=True))
    assert rows[0][:4] == ("measure", "label", "unit", "this_week") and len(rows) == len(weekly_report.HEADLINE) + 1
    breaches = list(book["SLA breaches"].iter_rows(values_only=True))
    assert len(breaches) == len(report["sla_breaches"]) + 1

    page = paths["html"].read_text(encoding="utf-8")
    assert page.count("<html") == 1 and 'class="plotly-graph-div"' in page and "Plotly.newPlot" in page
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, re.I)  # plotly.js is inline: the file opens offline
    assert not re.search(r"<link[^>]*\bhref\s*=\s*[\"']?https?:", page, re.I)  # nor a stylesheet from elsewhere
    assert WEEK in page


def test_a_week_without_tickets(engine, tmp_path):
    with read_session(engine) as s:
        report = weekly_report.weekly_report(s, "2026-W02", now=NOW)
        page = weekly_report.render_html(report)
    assert report["created"] == 0 and report["backlog_end"] == 0
    assert report["resolution_median_hours"] is None and report["sla_response_pct"] is None
    assert report["sla_breaches"] == [] and report["oldest_open"] == []
    assert "No SLA target was missed this week." in page


def test_unknown_format_and_week(engine, tmp_path):
    with read_session(engine) as s:
        with pytest.raises(weekly_report.ReportError):
            weekly_report.write_report(s, WEEK, "pdf", tmp_path / "x.pdf")
        with pytest.raises(measures.MetricsError):
            weekly_report.weekly_report(s, "2026-W60")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith((".x.", "x."))]  # nothing half-written


def test_last_full_week():
    assert weekly_report.last_full_week(date(2026, 11, 26)) == "2026-W47"
    assert weekly_report.last_full_week(date(2026, 11, 23)) == "2026-W47"  # a Monday: last week is the full one
    assert weekly_report.last_full_week(date(2026, 1, 1)) == "2025-W52"


def _cli(url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lib.cli", "--database-url", url, *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)


def test_report_cli(sqlite_engine, tmp_path, capsys):
    """The cron path in a real process; the other commands in this one (same parser, same handlers)."""
    from lib.cli import main

    seed_demo(sqlite_engine, tickets=300, years=0.2, seed=2, now=NOW, demo_password="demo password 123")
    url = sqlite_engine.url.render_as_string(hide_password=False)
    out = tmp_path / "week.json"
    done = _cli(url, "report", "--week", WEEK, "--format", "json", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert f"report for {WEEK} written to" in done.stdout
    data = json.loads(out.read_text(encoding="utf-8"))
    with read_session(sqlite_engine) as s:
        f = _week(MONDAY)
        assert data["created"] == int(measures.flow(s, f)["created"].sum())
        assert data["backlog_end"] == int(measures.backlog(s, f)["backlog_end"].iloc[-1])
    capsys.readouterr()
    assert main(["--database-url", url, "report", "--week", "2026-47", "--format", "csv",
                 "--out", str(tmp_path / "x.csv")]) == 1
    assert "not an ISO week" in capsys.readouterr().err
    assert main(["--database-url", url, "rebuild-rollups", "--check"]) == 0
    assert "in step" in capsys.readouterr().out
    with transaction(sqlite_engine) as s:  # a row out of step (only rebuild-rollups writes it by hand)
        s.execute(text("UPDATE ticket_metrics SET reopen_count = reopen_count + 7 WHERE ticket_id = 1"))
    assert main(["--database-url", url, "rebuild-rollups", "--check"]) == 1
    assert main(["--database-url", url, "rebuild-rollups"]) == 0
    assert "rebuilt ticket_metrics and metric_days: 300 tickets" in capsys.readouterr().out
    assert main(["--database-url", url, "rebuild-rollups", "--check"]) == 0


def test_report_cli_writes_every_format(sqlite_engine, tmp_path):
    from lib.cli import main

    seed_demo(sqlite_engine, tickets=200, years=0.1, seed=4, now=NOW, demo_password="demo password 123")
    url = sqlite_engine.url.render_as_string(hide_password=False)
    for fmt in ("csv", "xlsx", "html"):
        out = tmp_path / f"r.{fmt}"
        assert main(["--database-url", url, "report", "--week", WEEK, "--format", fmt, "--out", str(out)]) == 0
        assert out.stat().st_size > 0
    assert openpyxl.load_workbook(tmp_path / "r.xlsx").sheetnames[0] == "Headline"
