"""The weekly review: one ISO week's numbers against the previous week and the 4-week average, the trends,
SLA breaches, the oldest open tickets, repeat issues and preventive steps (no streamlit).

* :func:`weekly_report` returns a JSON-serialisable dict (the keys are listed in docs/metrics.md);
* :func:`write_report` writes it as JSON, CSV (the headline table), XLSX (a sheet per table) or one
  self-contained HTML file with the interactive charts (plotly.js inline: it opens offline). The CSV,
  XLSX and HTML tables are formula-safe (lib.transfer.safe_cells): summaries, names and other text never reach a
  spreadsheet as a formula, and numbers stay numbers.

The same from the CLI: ``python -m lib.cli report --week 2026-W47 --format html --out FILE``.
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from lib import clock
from lib.config import get_settings
from lib.desk_settings import window_days
from lib.metrics import measures
from lib.metrics.measures import MetricFilter, iso_week, local_midnight, week_range
from lib.models import Base, ticket_ref
from lib.transfer.safe_cells import CSV_QUOTING, neutralise_frame, write_xlsx
from lib.workflow import STATUS_LABELS, Priority, Status

FORMATS = ("json", "csv", "xlsx", "html")
TREND_WEEKS = 8
OLDEST_OPEN = 10
#: The headline numbers: key, label, unit ("tickets", "hours", "%").
HEADLINE: tuple[tuple[str, str, str], ...] = (
    ("created", "Created", "tickets"),
    ("resolved", "Resolved", "tickets"),
    ("closed", "Closed (resolved work: confirmed or no reply)", "tickets"),
    ("closed_other", "Closed as duplicate, cancelled or not applicable", "tickets"),
    ("reopened", "Reopened", "reopen events"),
    ("backlog_end", "Open at the end of the week", "tickets"),
    ("ack_median_hours", "Time to acknowledge, median", "hours"),
    ("first_response_median_hours", "First response time, median", "hours"),
    ("resolution_median_hours", "Resolution time, median", "hours"),
    ("resolution_p90_hours", "Resolution time, 90th percentile", "hours"),
    ("sla_response_pct", "SLA response targets met", "%"),
    ("sla_resolution_pct", "SLA resolution targets met", "%"),
)
COUNT_KEYS = ("created", "resolved", "closed", "closed_other", "reopened")


class ReportError(ValueError):
    """A report that cannot be made as asked (unknown format, bad week)."""


# --- the data -------------------------------------------------------------------------------------------


def weekly_report(session: Session, iso_week_: str, *, now: datetime | None = None) -> dict[str, Any]:
    """Everything the weekly review shows for ``iso_week_`` ("2026-W47"), JSON-serialisable."""
    now = (now or clock.now()).astimezone(UTC)
    monday, next_monday = week_range(iso_week_)
    week = iso_week(monday)
    zone_name = get_settings().timezone
    trend = MetricFilter(start=monday - timedelta(weeks=TREND_WEEKS - 1), end=next_monday, grain="week")
    this = MetricFilter(start=monday, end=next_monday, grain="week")
    prev = MetricFilter(start=monday - timedelta(weeks=1), end=monday, grain="week")
    four = MetricFilter(start=monday - timedelta(weeks=4), end=monday, grain="week")

    flow = measures.flow(session, trend)
    backlog = measures.backlog(session, trend)
    sla = measures.sla_compliance(session, trend)
    names = {int(p): p.label for p in sorted(Priority, reverse=True)}

    def block(weeks: list[date], f: MetricFilter, *, average: bool) -> dict[str, Any]:
        part = flow[flow["period"].isin(weeks)]
        div = len(weeks) if average else 1
        out: dict[str, Any] = {k: _num(part[k].sum() / div) for k in COUNT_KEYS}
        by_p = part.groupby("priority")["created"].sum()
        out["created_by_priority"] = {names[p]: _num(by_p.get(p, 0) / div) for p in names}
        by_c = part.groupby("category")["created"].sum()
        out["created_by_category"] = {str(c): _num(v / div) for c, v in by_c.items() if v}
        ends = backlog[backlog["period"].isin(weeks)]["backlog_end"]
        out["backlog_end"] = _num(ends.mean()) if len(ends) else None
        d = measures.durations(session, f)
        out["ack_median_hours"] = d["ack"]["median_h"]
        out["first_response_median_hours"] = d["first_response"]["median_h"]
        out["resolution_median_hours"] = d["resolution"]["median_h"]
        out["resolution_p90_hours"] = d["resolution"]["p90_h"]
        for which in ("response", "resolution"):
            rows = sla[(sla["clock"] == which) & sla["period"].isin(weeks)]
            met, breached = int(rows["met"].sum()), int(rows["breached"].sum())
            out[f"sla_{which}_pct"] = None if met + breached == 0 else 100.0 * met / (met + breached)
        return out

    report: dict[str, Any] = {
        "week": week,
        "start": monday.isoformat(),
        "end": next_monday.isoformat(),  # exclusive: the week is start .. end - 1 day
        "timezone": zone_name,
        "generated_at": _iso(now),
    }
    report.update(block([monday], this, average=False))
    report["previous_week"] = {"week": iso_week(prev.start), **block([prev.start], prev, average=False)}
    four_weeks = [four.start + timedelta(weeks=i) for i in range(4)]
    report["four_week_avg"] = {"weeks": [iso_week(w) for w in four_weeks], **block(four_weeks, four, average=True)}
    report["by_technician"] = _by_technician(session, this, resolved_total=int(report.get("resolved") or 0))
    report["trend"] = {
        "weeks": [iso_week(p) for p in backlog["period"]],
        "flow": _records(flow),
        "backlog": _records(backlog),
        "sla": _records(sla),
    }
    report["sla_breaches"] = _breaches(session, this)
    report["oldest_open"] = _oldest_open(session, now=now)
    report["repeat_issues"] = _repeats(session, this)
    report["preventive_steps"] = _preventive_steps(session, this)
    return _plain(report)


def _by_technician(session: Session, f: MetricFilter, *, resolved_total: int) -> list[dict[str, Any]]:
    """Per technician: open at the end of the week (by current assignee) and resolved in it. Tickets with no
    assignee have their own row, so the rows add up to the headline (``resolved_total``)."""
    open_end = measures.backlog_by_assignee(session, f)
    resolved = measures.resolved_by_assignee(session, f)
    users = {int(r.id): r for r in session.execute(text("SELECT id, name, capacity, active FROM users"))}
    ids = {u for u, r in users.items() if r.active} | {u for u in open_end if u is not None} | set(resolved)
    rows = []
    for uid in sorted(ids, key=lambda i: (users[i].name if i in users else "", i)):
        user = users.get(uid)
        rows.append({"technician": user.name if user else f"user {uid}", "user_id": uid,
                     "capacity": user.capacity if user else None, "open": open_end.get(uid, 0),
                     "resolved": resolved.get(uid, 0)})
    unassigned_resolved = resolved_total - sum(resolved.values())
    if open_end.get(None) or unassigned_resolved:
        rows.append({"technician": "(unassigned)", "user_id": None, "capacity": None, "open": open_end.get(None, 0),
                     "resolved": unassigned_resolved})
    return rows


def _local(moment: datetime | None) -> str | None:
    """A moment in the desk's time zone, ISO 8601 with its offset."""
    if moment is None:
        return None
    return moment.astimezone(ZoneInfo(get_settings().timezone)).isoformat(timespec="seconds")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _breaches(session: Session, f: MetricFilter) -> list[dict[str, Any]]:
    """Every SLA target missed in the week (the breach event's time is the due time that passed)."""
    zone = f.zone
    lo, hi = local_midnight(f.start, zone), local_midnight(f.end, zone)
    ev, t, u = (Base.metadata.tables[n] for n in ("ticket_events", "tickets", "users"))
    stmt = (select(ev.c.ticket_id, ev.c.occurred_at, ev.c.meta, t.c.summary, t.c.priority, t.c.status, u.c.name)
            .join(t, t.c.id == ev.c.ticket_id).outerjoin(u, u.c.id == t.c.assignee_id)
            .where(ev.c.kind == "sla_breached", ev.c.occurred_at >= lo, ev.c.occurred_at < hi)
            .order_by(ev.c.occurred_at, ev.c.id))
    prefix = get_settings().ticket_prefix
    desk = ZoneInfo(get_settings().timezone)
    priorities = {int(p): p.label for p in Priority}
    statuses: dict[str, str] = {}
    out = []
    # A busy week misses thousands of targets: the rows are fetched at once and the labels looked up once each.
    for tid, at, meta, summary, prio, status, assignee in session.execute(stmt).all():
        meta = meta or {}
        if status not in statuses:
            statuses[status] = _status_label(status)
        out.append({"ticket_id": tid, "ref": ticket_ref(tid, prefix), "summary": summary,
                    "priority": priorities.get(prio) or Priority(prio).label, "clock": meta.get("clock"),
                    "due_at": at.astimezone(desk).isoformat(timespec="seconds"),
                    "status": statuses[status], "assignee": assignee})
    return out


def _status_label(value: str) -> str:
    try:
        return STATUS_LABELS[Status(value)]
    except ValueError:
        return str(value)


def _oldest_open(session: Session, *, now: datetime, limit: int = OLDEST_OPEN) -> list[dict[str, Any]]:
    """The oldest tickets open now (when the report is made)."""
    table = measures.store.table_for(session.get_bind().dialect.name, "open")
    ids = [int(i) for i in session.execute(text(
        f"SELECT ticket_id FROM {table} WHERE is_open = 1 ORDER BY created_us, ticket_id LIMIT {int(limit)}")).scalars()]
    if not ids:
        return []
    t, u = Base.metadata.tables["tickets"], Base.metadata.tables["users"]
    rows = {r[0]: r for r in session.execute(
        select(t.c.id, t.c.summary, t.c.priority, t.c.status, t.c.created_at, u.c.name)
        .outerjoin(u, u.c.id == t.c.assignee_id).where(t.c.id.in_(ids)))}
    prefix = get_settings().ticket_prefix
    out = []
    for tid in ids:
        if tid not in rows:  # deleted meanwhile
            continue
        _, summary, prio, status, created, assignee = rows[tid]
        out.append({"ticket_id": tid, "ref": ticket_ref(tid, prefix), "summary": summary,
                    "priority": Priority(prio).label, "status": _status_label(status), "assignee": assignee,
                    "created_at": _local(created), "age_days": round((now - created).total_seconds() / 86400, 1)})
    return out


def _repeats(session: Session, f: MetricFilter) -> list[dict[str, Any]]:
    days = window_days(session)
    df = measures.repeat_issues(session, f, days=days)
    prefix = get_settings().ticket_prefix
    return [{"kind": r.kind, "key": r.key, "count": int(r.count), "window_days": days,
             "ticket_ids": [int(i) for i in r.ticket_ids], "tickets": [ticket_ref(int(i), prefix) for i in r.ticket_ids],
             "latest": _local(r.latest)} for r in df.itertuples()]


def _preventive_steps(session: Session, f: MetricFilter) -> list[dict[str, Any]]:
    """Preventive steps recorded in the week (the rows lib.followups.preventive_steps_between lists)."""
    tables = Base.metadata.tables
    if "preventive_steps" not in tables:  # pragma: no cover - the follow-ups tables are part of the schema
        return []
    zone = f.zone
    p, t, c, u, fu = (tables[n] for n in ("preventive_steps", "tickets", "categories", "users", "follow_ups"))
    rows = session.execute(
        select(p.c.ticket_id, t.c.summary, c.c.name, p.c.body, u.c.name, p.c.created_at, fu.c.due_at)
        .join(t, t.c.id == p.c.ticket_id).join(c, c.c.id == t.c.category_id)
        .outerjoin(u, u.c.id == p.c.created_by_id).outerjoin(fu, fu.c.id == p.c.follow_up_id)
        .where(p.c.created_at >= local_midnight(f.start, zone), p.c.created_at < local_midnight(f.end, zone))
        .order_by(p.c.created_at, p.c.id).limit(500))
    prefix = get_settings().ticket_prefix
    return [{"ticket_id": tid, "ref": ticket_ref(tid, prefix), "summary": summary, "category": category,
             "steps": body, "recorded_by": by, "recorded_at": _local(at), "follow_up_due_at": _local(due)}
            for tid, summary, category, body, by, at, due in rows]


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [_plain(r) for r in df.to_dict(orient="records")]


def _num(value: Any) -> float | int | None:
    if value is None:
        return None
    v = float(value)
    if math.isnan(v):
        return None
    return int(v) if v.is_integer() else round(v, 4)


def _plain(value: Any) -> Any:
    """numpy and pandas scalars, dates and NaN as plain JSON values."""
    kind = type(value)
    if kind is str or kind is int or value is None:  # most of a report's values: nothing to convert
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_plain(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        v = float(value)
        return None if math.isnan(v) else v
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


# --- files ----------------------------------------------------------------------------------------------


def headline_table(report: Mapping[str, Any]) -> pd.DataFrame:
    """One row per headline number: this week, the previous week, the 4-week average, and the change."""
    prev, avg = report.get("previous_week") or {}, report.get("four_week_avg") or {}
    rows = []
    for key, label, unit in HEADLINE:
        now, before = report.get(key), prev.get(key)
        change = None if now is None or before is None else now - before
        rows.append({"measure": key, "label": label, "unit": unit, "this_week": _shown(now, unit),
                     "previous_week": _shown(before, unit), "four_week_avg": _shown(avg.get(key), unit, average=True),
                     "change_vs_previous": _shown(change, unit)})
    return pd.DataFrame(rows, dtype=object)  # object: counts stay whole numbers beside the hours


def _shown(value: Any, unit: str, *, average: bool = False) -> Any:
    """A headline value as the table shows it: counts as whole numbers (a 4-week average to 0.01), hours to
    0.01, percentages to 0.1."""
    if value is None:
        return None
    if unit == "hours" or (average and unit != "%"):
        return round(float(value), 2)
    if unit == "%":
        return round(float(value), 1)
    return int(round(value))


def tables(report: Mapping[str, Any]) -> dict[str, pd.DataFrame]:
    """The report's tables by sheet name (the XLSX has one sheet each; HTML shows them below the charts)."""
    names = [p.label for p in sorted(Priority, reverse=True)]
    prev, avg = report.get("previous_week") or {}, report.get("four_week_avg") or {}
    by_priority = pd.DataFrame({"priority": names,
                                "this_week": [report["created_by_priority"].get(n, 0) for n in names],
                                "previous_week": [(prev.get("created_by_priority") or {}).get(n, 0) for n in names],
                                "four_week_avg": [(avg.get("created_by_priority") or {}).get(n, 0) for n in names]})
    cats = sorted(set(report["created_by_category"]) | set(prev.get("created_by_category") or {}),
                  key=lambda c: (-report["created_by_category"].get(c, 0), c))
    by_category = pd.DataFrame({"category": cats, "this_week": [report["created_by_category"].get(c, 0) for c in cats],
                                "previous_week": [(prev.get("created_by_category") or {}).get(c, 0) for c in cats],
                                "four_week_avg": [(avg.get("created_by_category") or {}).get(c, 0) for c in cats]},
                               columns=["category", "this_week", "previous_week", "four_week_avg"])
    trend = report.get("trend") or {}
    weekly = _trend_table(trend)
    repeats = pd.DataFrame([{**{k: v for k, v in r.items() if k not in ("ticket_ids", "tickets")},
                             "tickets": ", ".join(r.get("tickets", []))} for r in report.get("repeat_issues", [])],
                           columns=["kind", "key", "count", "window_days", "latest", "tickets"])
    return {
        "Headline": headline_table(report),
        "Created by priority": by_priority,
        "Created by category": by_category,
        "By technician": _frame(report.get("by_technician"), ["technician", "user_id", "capacity", "open", "resolved"]),
        "Trend": weekly,
        "SLA breaches": _frame(report.get("sla_breaches"),
                               ["ref", "ticket_id", "summary", "priority", "clock", "due_at", "status", "assignee"]),
        "Oldest open": _frame(report.get("oldest_open"),
                              ["ref", "ticket_id", "summary", "priority", "status", "assignee", "created_at", "age_days"]),
        "Repeat issues": repeats,
        "Preventive steps": _frame(report.get("preventive_steps"),
                                   ["ref", "ticket_id", "summary", "category", "steps", "recorded_by", "recorded_at",
                                    "follow_up_due_at"]),
    }


def _frame(rows: Iterable[Mapping[str, Any]] | None, columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(list(rows or []), columns=columns)


def _trend_table(trend: Mapping[str, Any]) -> pd.DataFrame:
    columns = ["week", "created", "resolved", "closed", "closed_other", "reopened", "backlog_end",
               "sla_response_pct", "sla_resolution_pct"]
    flow, backlog, sla = (pd.DataFrame(trend.get(k) or []) for k in ("flow", "backlog", "sla"))
    if flow.empty or backlog.empty:
        return pd.DataFrame(columns=columns)
    counts = flow.groupby("period")[["created", "resolved", "closed", "closed_other", "reopened"]].sum()
    out = counts.join(backlog.set_index("period")["backlog_end"], how="outer")
    for which in ("response", "resolution"):
        part = sla[sla["clock"] == which].set_index("period")
        total = part["met"] + part["breached"]
        out[f"sla_{which}_pct"] = (100.0 * part["met"] / total.where(total > 0)).round(1)
    out = out.reset_index()
    out.insert(0, "week", [iso_week(date.fromisoformat(str(p))) for p in out["period"]])
    return out[columns]


def write_report(session: Session, iso_week_: str, fmt: str, out_path: Path | str, *,
                 now: datetime | None = None) -> Path:
    """Write the week's report to ``out_path`` as json, csv (the headline table), xlsx or html; the file
    appears complete or not at all (written beside it, then moved into place)."""
    fmt = str(fmt).lower()
    if fmt not in FORMATS:
        raise ReportError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    out = Path(out_path)
    if not out.parent.is_dir():
        raise ReportError(f"folder {out.parent} does not exist")
    report = weekly_report(session, iso_week_, now=now)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.part")
    try:
        if fmt == "json":
            tmp.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        elif fmt == "csv":
            neutralise_frame(headline_table(report)).to_csv(tmp, index=False, quoting=CSV_QUOTING)
        elif fmt == "xlsx":
            write_xlsx(tmp, tables(report))
        else:
            tmp.write_text(render_html(report), encoding="utf-8")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


# --- HTML -----------------------------------------------------------------------------------------------


def figures(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The report's charts as plain Plotly specifications (lib.metrics.charts), with a light template."""
    from lib.metrics.charts import weekly_specs

    return weekly_specs(report)


def _cell_html(value: Any) -> str:
    if type(value) is str:  # most cells: the common case first
        return html.escape(value)
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return "—"
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".") if not value.is_integer() else f"{value:,.0f}"
    return html.escape(str(value))


def _table_html(df: pd.DataFrame, empty: str) -> str:
    """The table, every cell escaped (and neutralised like the exports); written directly: pandas' ``to_html``
    took 1.2 s for the report's 6,000 rows, most of the HTML format's time."""
    if df.empty:
        return f"<p class='empty'>{html.escape(empty)}</p>"
    safe = neutralise_frame(df)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in safe.columns)
    rows = "\n".join("<tr>" + "".join(f"<td>{_cell_html(v)}</td>" for v in row) + "</tr>"
                     for row in safe.itertuples(index=False, name=None))
    return f'<table class="data">\n<thead><tr>{head}</tr></thead>\n<tbody>\n{rows}\n</tbody>\n</table>'


def _fmt(value: Any, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "hours":
        return f"{value:,.1f} h"
    if unit == "%":
        return f"{value:.1f}%"
    return f"{value:,.1f}" if isinstance(value, float) and not float(value).is_integer() else f"{value:,.0f}"


def render_html(report: Mapping[str, Any]) -> str:
    """One self-contained page: the headline table, the interactive charts (plotly.js inline) and the tables."""
    t = tables(report)
    head_rows = []
    for _, r in t["Headline"].iterrows():
        head_rows.append(
            "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in (
                r["label"], _fmt(r["this_week"], r["unit"]), _fmt(r["previous_week"], r["unit"]),
                _fmt(r["four_week_avg"], r["unit"]))) + "</tr>")
    import plotly.io as pio

    from lib.metrics.charts import PLOTLY_BUNDLE

    # Written from the plain specifications as they are: no Plotly figure objects are built for the file. The charts
    # are bars and lines: plotly.js's cartesian bundle (1.5 MB, the app's own) draws them, inline, instead of the
    # whole of plotly.js (4.7 MB).
    charts = [f'<script type="text/javascript">{PLOTLY_BUNDLE.read_text(encoding="utf-8")}</script>']
    charts += [pio.to_html(spec, validate=False, full_html=False, include_plotlyjs=False, default_width="100%",
                           config={"displaylogo": False}) for spec in figures(report)]
    sections = [
        ("By technician", "No technicians.", t["By technician"]),
        ("Trend", "No weeks.", t["Trend"]),
        ("SLA breaches", "No SLA target was missed this week.", t["SLA breaches"]),
        ("Oldest open tickets", "No open tickets.", t["Oldest open"]),
        ("Repeat issues", "No repeat issues.", t["Repeat issues"]),
        ("Preventive steps", "No preventive steps were recorded this week.", t["Preventive steps"]),
        ("Created by category", "No tickets.", t["Created by category"]),
    ]
    body = "\n".join(f"<h2>{html.escape(title)}</h2>\n{_table_html(df, empty)}" for title, empty, df in sections)
    last_day = date.fromisoformat(report["end"]) - timedelta(days=1)
    title = f"Help desk weekly report {report['week']}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1200px;
       color: #1f2328; background: #fff; padding: 0 1rem; }}
h1 {{ margin-bottom: .2rem; }} .sub {{ color: #57606a; margin-top: 0; }}
table {{ border-collapse: collapse; margin: .5rem 0 1.5rem; font-size: .92rem; }}
th, td {{ border-bottom: 1px solid #d0d7de; padding: .3rem .7rem; text-align: left; vertical-align: top; }}
th {{ background: #f6f8fa; }} .empty {{ color: #57606a; font-style: italic; }}
.charts > div {{ margin-bottom: 1.2rem; }}
</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p class="sub">{html.escape(report['start'])} to {last_day.isoformat()} ({html.escape(report['timezone'])}) ·
made {html.escape(report['generated_at'])} · definitions: docs/metrics.md</p>
<h2>Headline numbers</h2>
<table><thead><tr><th>Measure</th><th>This week</th><th>Previous week</th><th>4-week average</th></tr></thead>
<tbody>{''.join(head_rows)}</tbody></table>
<div class="charts">
{''.join(charts)}
</div>
{body}
</body></html>
"""


def last_full_week(today: date | None = None) -> str:
    """The ISO week before the current one, in the desk's time zone."""
    today = today or clock.now().astimezone(ZoneInfo(get_settings().timezone)).date()
    return iso_week(today - timedelta(days=today.weekday() + 7))
