"""Streamlit helpers for the Metrics and Weekly report pages: filters, cached reads, KPI tiles, queue links.

Reads are cached with ``st.cache_data`` keyed on the filters and the database's change marker
(``lib.queries.change_marker``), never cleared globally: a write anywhere moves the marker, so every
tab and every app server recomputes at its next run.
"""

from __future__ import annotations

import hashlib
import math
import pickle
import tempfile
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import urlencode

import pandas as pd
import streamlit as st
from sqlalchemy import select

from lib import clock, models
from lib.desk_settings import get_weights
from lib.metrics import charts, measures, weekly_report
from lib.metrics.measures import iso_week
from lib.queries import QueueView
from lib.ui import core, plotly_chart, queue_data
from lib.workflow import Channel, Priority

# --- periods -------------------------------------------------------------------------------------------


def local_today() -> date:
    return clock.now().astimezone(core.tz()).date()


def last_full_weeks(n: int = 12, *, today: date | None = None) -> tuple[date, date]:
    """The last ``n`` full ISO weeks before this one: (their first Monday, their last Sunday)."""
    today = today or local_today()
    monday = today - timedelta(days=today.weekday())
    return monday - timedelta(weeks=n), monday - timedelta(days=1)


def recent_weeks(n: int = 26, *, today: date | None = None) -> list[str]:
    """The last ``n`` full ISO weeks, newest first."""
    _, last_sunday = last_full_weeks(1, today=today)
    return [iso_week(last_sunday - timedelta(weeks=i)) for i in range(n)]


def weeks_to_date(n: int = 12, *, today: date | None = None) -> tuple[date, date]:
    """The last ``n`` ISO weeks including this one, so far: (their first Monday, today). The metrics page's default:
    a desk's first days are in it."""
    today = today or local_today()
    monday = today - timedelta(days=today.weekday())
    return monday - timedelta(weeks=n - 1), today


def current_week(*, today: date | None = None) -> str:
    """This ISO week ("2026-W49"), not over yet."""
    return iso_week(today or local_today())


def report_weeks(n: int = 52, *, today: date | None = None) -> list[str]:
    """The report page's weeks, newest first: this week (so far), then the last ``n`` full weeks."""
    return [current_week(today=today), *recent_weeks(n, today=today)]


#: The report's counts: a week where all are zero (or missing) has no ticket to report on.
_WEEK_COUNTS = ("created", "resolved", "closed", "reopened", "closed_other", "backlog_end")


def week_has_tickets(report: Mapping[str, Any]) -> bool:
    """Whether a weekly report has anything in it: tickets created, resolved, closed or reopened in the week, or open
    at its end."""
    return any((_num(report.get(k)) or 0) > 0 for k in _WEEK_COUNTS)


def default_week(change: int, *, today: date | None = None) -> str:
    """The report page opens on the last full week when it has tickets, else on this week so far (a new desk)."""
    last = recent_weeks(1, today=today)[0]
    return last if week_has_tickets(load_report(change, last)) else current_week(today=today)


@st.cache_data(ttl=900, max_entries=20, show_spinner=False)
def desk_has_tickets(change: int) -> bool:
    """Whether the desk has any ticket at all (a new desk's metrics would be zeros everywhere)."""
    with core.reading() as s:
        return s.scalar(select(models.Ticket.id).limit(1)) is not None


def no_tickets_yet(what: str) -> None:
    """The Metrics and Weekly report pages of a desk without a ticket: what will be here, and how tickets come in."""
    st.info(f"**No tickets yet, so nothing to measure.** {what} as soon as the desk has its first ticket.", icon="🌱")
    st.markdown(
        "Tickets come in from:\n"
        "- **➕ New ticket** — a technician logs a phone call, a walk-in or a request on someone's behalf;\n"
        "- **e-mail** to the desk's address, once the mailbox is set up;\n"
        "- **alerts** from monitoring, and **imports** of past tickets (Admin → Import), which also fill in "
        "earlier weeks.")


def valid_week(week: str) -> bool:
    try:
        charts.period_start(week)
    except ValueError:
        return False
    return bool(charts.ISO_WEEK.match(week))


def week_bounds(week: str) -> tuple[date, date]:
    """(Monday, Sunday) of an ISO week such as "2026-W47"."""
    monday = charts.period_start(week)
    return monday, monday + timedelta(days=6)


# --- filters -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    start: date
    end: date  # inclusive
    grain: str = "week"
    category_ids: tuple[int, ...] = ()
    priorities: tuple[int, ...] = ()
    assignee_ids: tuple[int, ...] = ()
    channels: tuple[str, ...] = ()

    @property
    def key(self) -> tuple:
        return (self.start.isoformat(), self.end.isoformat(), self.grain, self.category_ids, self.priorities,
                self.assignee_ids, self.channels)

    @classmethod
    def from_key(cls, key: tuple) -> Filters:
        start, end, grain, cats, prios, people, channels = key
        return cls(date.fromisoformat(start), date.fromisoformat(end), grain, tuple(cats), tuple(prios),
                   tuple(people), tuple(channels))

    def metric_filter(self) -> measures.MetricFilter:
        # lib.metrics.measures takes [start, end): the day after the last day shown. MetricFilter checks the grain.
        grain = cast(Literal["week", "day"], self.grain)
        return measures.MetricFilter(start=self.start, end=self.end + timedelta(days=1), grain=grain,
                            category_ids=self.category_ids, priorities=self.priorities,
                            assignee_ids=self.assignee_ids, channels=self.channels)

    def periods(self) -> list[date]:
        """The first day of every period in the range (weeks start on Monday)."""
        if self.grain == "day":
            return [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]
        first = self.start - timedelta(days=self.start.weekday())
        return [first + timedelta(weeks=i) for i in range((self.end - first).days // 7 + 1)]

    def queue_params(self) -> dict[str, list[str]]:
        """The filters the queue understands, as query parameters."""
        return {"priority": [Priority(p).name for p in self.priorities], "category": [str(c) for c in self.category_ids],
                "assignee": [str(a) for a in self.assignee_ids], "channel": list(self.channels)}


def lookups() -> dict[str, dict[int, str]]:
    look = queue_data.lookups(clock.minute())
    return {"categories": dict(look["categories"]), "people": dict(look["people"])}


def _range_param() -> tuple[date, date] | None:
    try:
        start = date.fromisoformat(st.query_params.get("from", ""))
        end = date.fromisoformat(st.query_params.get("to", ""))
    except ValueError:
        return None
    return (start, end) if start <= end else None


def filter_bar(look: Mapping[str, Mapping[int, str]], *, key: str = "m") -> Filters:
    """Date range, grain and the four filters; the default range is the last 12 weeks, this one included so far."""
    default = weeks_to_date(12)
    if f"{key}_range" not in st.session_state:  # first run: a shared link may carry ?from=...&to=...&grain=...
        st.session_state[f"{key}_range"] = _range_param() or default
        st.session_state[f"{key}_grain"] = "day" if st.query_params.get("grain") == "day" else "week"
    c1, c2, c3 = st.columns([3, 1.4, 5])
    picked = c1.date_input("Period", min_value=date(1990, 1, 1), max_value=local_today(), key=f"{key}_range",
                           help="First and last day, in the desk's time zone. Default: the last 12 weeks, this one "
                                "included (up to today).")
    grain = c2.segmented_control("Per", ["week", "day"], key=f"{key}_grain", format_func=str.capitalize,
                                 required=True) or "week"
    start, end = (picked if isinstance(picked, tuple | list) and len(picked) == 2 else default)
    with c3.expander("Filters", expanded=False):
        f1, f2 = st.columns(2)
        cats = f1.multiselect("Category", list(look["categories"]), key=f"{key}_cats",
                              format_func=lambda i: look["categories"].get(i, str(i)))
        prios = f2.multiselect("Priority", [int(p) for p in sorted(Priority, reverse=True)], key=f"{key}_prios",
                               format_func=lambda v: Priority(v).label)
        f3, f4 = st.columns(2)
        people = f3.multiselect("Technician", list(look["people"]), key=f"{key}_people",
                                format_func=lambda i: look["people"].get(i, str(i)))
        channels = f4.multiselect("Channel", [c.value for c in Channel], key=f"{key}_channels",
                                  format_func=lambda v: Channel(v).label)
    if (end - start).days > 800 and grain == "day":
        st.info("More than two years per day is hard to read: showing weeks.", icon="ℹ️")
        grain = "week"
    return Filters(start, end, grain, tuple(sorted(cats)), tuple(sorted(prios)), tuple(sorted(people)),
                   tuple(sorted(channels)))


# --- cached reads ----------------------------------------------------------------------------------------


def marker() -> int:
    return queue_data.change_marker()


#: The Metrics page's sections (tabs), in order; the open one is in the address as ``?section=``.
SECTIONS = ("Volume", "Backlog and closures", "Response, resolution and SLA", "Team", "Repeat issues")

#: The pieces of :func:`load_metrics` that figures are built from (pages/metrics.py keys each figure on its digest).
CHARTED = ("flow", "backlog", "closures", "resolution", "sla", "workload")


@st.cache_data(ttl=900, max_entries=200, show_spinner=False)
def load_metrics(change: int, key: tuple) -> dict[str, Any]:
    """Every figure of the metrics page for one set of filters (one read session)."""
    f = Filters.from_key(key).metric_filter()
    with core.reading() as s:
        data = {
            "kpis": measures.kpis(s, f),
            "flow": measures.flow(s, f),
            "backlog": measures.backlog(s, f),
            "durations": measures.durations(s, f),
            "resolution": measures.resolution_by_priority(s, f),
            "sla": measures.sla_compliance(s, f),
            "closures": measures.closures_by_reason(s, f),
            "rates": measures.rates(s, f),
            "rates_before": measures.rates(s, f.previous()),
            "workload": measures.workload(s, f),
            "repeat": measures.repeat_issues(s, f),
            "weights": {int(p): int(w) for p, w in get_weights(s).items()},
        }
    # what each figure is built from, as a fingerprint: a write that leaves a figure's data as it was (a note,
    # a reply) reuses the figure already built
    data["digests"] = {name: digest(data[name]) for name in CHARTED}
    data["digests"]["workload"] = digest((data["workload"], data["weights"]))
    return data


def digest(value: Any) -> str:
    """A fingerprint of a value (DataFrames, dicts, numbers): equal values built the same way give the same."""
    return hashlib.blake2b(pickle.dumps(value, protocol=5), digest_size=16).hexdigest()


@st.cache_data(ttl=900, max_entries=100, show_spinner=False)
def load_ageing(change: int, minute: int, key: tuple) -> pd.DataFrame:
    """Open tickets by age now (the filters' priority, category, technician and channel apply; not its dates)."""
    with core.reading() as s:
        return measures.ageing(s, now=datetime.fromtimestamp(minute * 60).astimezone(), f=Filters.from_key(key).metric_filter())


@st.cache_data(ttl=900, max_entries=50, show_spinner=False)
def load_report(change: int, week: str) -> dict[str, Any]:
    with core.reading() as s:
        return weekly_report.weekly_report(s, week)


REPORT_FORMATS = {"csv": ("CSV", "text/csv", "csv"),
                  "xlsx": ("Excel (XLSX)", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"),
                  "html": ("HTML with charts", "text/html", "html")}


def report_file(week: str, fmt: str) -> bytes:
    """The weekly report as a file (written by lib.metrics.weekly_report into a temporary folder)."""
    with tempfile.TemporaryDirectory(prefix="helpdesk-report-") as folder:
        out = Path(folder) / f"helpdesk-{week}.{REPORT_FORMATS[fmt][2]}"
        with core.reading() as s:
            weekly_report.write_report(s, week, fmt, out)
        return out.read_bytes()


@st.cache_data(ttl=900, max_entries=30, show_spinner=False)
def cached_report_file(change: int, week: str, fmt: str) -> bytes:
    return report_file(week, fmt)


def report_download(week: str, fmt: str, change: int) -> Callable[[], bytes]:
    """A callable for st.download_button: the file is made when the button is clicked, not on every run."""
    return lambda: cached_report_file(change, week, fmt)


# --- formatting -----------------------------------------------------------------------------------------


def _num(value: Any) -> float | None:
    if value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def pair(value: Any) -> tuple[float | None, float | None]:
    """A KPI as (this period, previous period); a plain number has no previous value."""
    if isinstance(value, tuple | list) and len(value) == 2:
        return _num(value[0]), _num(value[1])
    if isinstance(value, Mapping):
        return _num(value.get("now", value.get("value"))), _num(value.get("prev", value.get("previous")))
    return _num(value), None


def fmt_count(v: float | None) -> str:
    return "—" if v is None else f"{v:,.0f}" if float(v).is_integer() else f"{v:,.1f}"


def fmt_hours(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v * 60:.0f} min" if v < 1 else f"{v:,.1f} h"


def fmt_local(value: Any) -> str:
    """An ISO time (as lib.metrics.weekly_report writes them) in the desk's time zone, as the rest of the app shows times."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    try:
        moment = pd.Timestamp(value)
    except ValueError:
        return str(value)
    if moment.tzinfo is None:
        moment = moment.tz_localize("UTC")
    return core.fmt_time(moment.to_pydatetime())


def fmt_pct(v: float | None) -> str:
    return "—" if v is None else f"{v:.1f}%"


def as_pct(v: float | None) -> float | None:
    """Rates come as fractions (0–1) or percentages (0–100); show them as percentages."""
    return None if v is None else v * 100 if abs(v) <= 1 else v


@dataclass(frozen=True)
class Kpi:
    key: str
    label: str
    kind: str  # count | hours | pct | rate
    delta_color: Literal["normal", "inverse", "off"]  # normal: up is good; inverse: down is good; off: neither
    help: str


#: The metrics page's tiles, a row per topic: volume, times, quality.
KPI_ROWS: tuple[tuple[Kpi, ...], ...] = (
    (Kpi("created", "Created", "count", "off", "Tickets created in the period."),
     Kpi("resolved", "Resolved", "count", "normal", "Tickets resolved in the period."),
     Kpi("closed", "Closed", "count", "normal",
         "Tickets closed in the period as resolved work (confirmed, or no reply). Duplicates, cancellations "
         "and not-applicable closures are counted apart (Closures by reason)."),
     Kpi("backlog_end", "Open at the end", "count", "inverse",
         "Tickets neither resolved nor closed at the end of the period's last day.")),
    (Kpi("ack_median_h", "Acknowledge, median", "hours", "inverse", "Created → acknowledged, median hours."),
     Kpi("first_response_median_h", "First response, median", "hours", "inverse",
         "Created → first public reply, median hours."),
     Kpi("resolution_median_h", "Resolution, median", "hours", "inverse", "Created → resolved, median hours."),
     Kpi("resolution_p90_h", "Resolution, p90", "hours", "inverse",
         "Created → resolved: 9 tickets in 10 are resolved within this many hours.")),
    (Kpi("sla_response_pct", "SLA response met", "pct", "normal",
         "Met ÷ (met + breached), only tickets a response target applied to."),
     Kpi("sla_resolution_pct", "SLA resolution met", "pct", "normal",
         "Met ÷ (met + breached), only tickets a resolution target applied to."),
     Kpi("reopen_rate", "Reopen rate", "rate", "inverse", "Share of resolved tickets that were reopened."),
     Kpi("first_contact_resolution", "First-contact resolution", "rate", "normal",
         "Share of resolved tickets resolved by the first technician, without a reassignment or an escalation.")),
)


def _delta(now: float | None, prev: float | None, fmt: str, unit: str = "") -> str | None:
    """The change as shown on a tile; "0" (what st.metric draws grey) when it rounds to nothing."""
    if now is None or prev is None:
        return None
    text = format(now - prev, fmt)
    return "0" if float(text.replace(",", "")) == 0 else text + unit


def kpi_value(kpi: Kpi, now: float | None, prev: float | None) -> tuple[str, str | None]:
    if kpi.kind in ("pct", "rate"):
        now, prev = (as_pct(now), as_pct(prev)) if kpi.kind == "rate" else (now, prev)
        return fmt_pct(now), _delta(now, prev, "+.1f", " pts")
    if kpi.kind == "hours":
        return fmt_hours(now), _delta(now, prev, "+,.1f", " h")
    return fmt_count(now), _delta(now, prev, "+,.0f")


def queue_link(view: QueueView | str, **params: Any) -> str:
    """A link to the queue opened pre-filtered (the queue reads these query parameters)."""
    query: list[tuple[str, str]] = [("view", str(QueueView(view).value))]
    for name, value in params.items():
        values = value if isinstance(value, list | tuple) else [value]
        query += [(name, str(v)) for v in values if v not in (None, "")]
    return "/?" + urlencode(query)


def tile_link(kpi: Kpi, f: Filters) -> tuple[str, str] | None:
    """(label, URL) of the queue showing what a tile counts, where the queue can show it."""
    base = f.queue_params()
    if kpi.key == "created":
        return "Open in the queue", queue_link(QueueView.ALL, **base, created_from=f.start.isoformat(),
                                              created_to=(f.end + timedelta(days=1)).isoformat())
    if kpi.key == "backlog_end":
        return "Open now", queue_link(QueueView.ALL_OPEN, **base)
    if kpi.key in ("sla_response_pct", "sla_resolution_pct"):
        return "At risk now", queue_link(QueueView.AT_RISK, **base)
    return None


def kpi_tiles(kpis: Mapping[str, Any], rates: Mapping[str, Any], rates_before: Mapping[str, Any], f: Filters) -> None:
    days = (f.end - f.start).days + 1
    st.caption(f"{f.start:%a %d %b %Y} – {f.end:%a %d %b %Y} ({days} days) · changes against the {days} days before")
    values = {**{k: (v, rates_before.get(k)) for k, v in rates.items() if k not in kpis}, **kpis}
    definitions = rates.get("definitions") or {}
    for row in KPI_ROWS:
        cols = st.columns(len(row))
        for col, kpi in zip(cols, row, strict=True):
            now, prev = pair(values.get(kpi.key))
            value, delta = kpi_value(kpi, now, prev)
            col.metric(kpi.label, value, delta, delta_color=kpi.delta_color,
                       help=definitions.get(kpi.key, kpi.help), border=True)
            link = tile_link(kpi, f)
            if link:
                col.markdown(f"[{link[0]} ↗]({link[1]})")


def rate_tiles(rates: Mapping[str, Any], durations: Mapping[str, Any]) -> None:
    cols = st.columns(3)
    avg, n = _num(rates.get("satisfaction_avg")), int(_num(rates.get("satisfaction_n")) or 0)
    cols[0].metric("Satisfaction", "—" if avg is None else f"{avg:.2f}",
                   help="Average rating given on confirmation.")
    cols[0].caption(f"{n:,} rating(s)")
    conf = durations.get("confirmation_delay") or {}
    cols[1].metric("Confirmation delay, median", fmt_hours(_num(conf.get("median_h"))),
                   help="Resolved → closed, median hours.")
    res = durations.get("resolution") or {}
    cols[2].metric("Resolution, mean", fmt_hours(_num(res.get("mean_h"))),
                   help=f"Created → resolved, mean over {int(_num(res.get('n')) or 0):,} tickets.")


DURATIONS = (("ack", "Created → acknowledged"), ("first_response", "Created → first response"),
             ("resolution", "Created → resolved"), ("confirmation_delay", "Resolved → closed"))


def durations_table(durations: Mapping[str, Any]) -> pd.DataFrame:
    rows = []
    for key, label in DURATIONS:
        d = durations.get(key) or {}
        rows.append({"Measure": label, "Tickets": int(_num(d.get("n")) or 0), "Median": fmt_hours(_num(d.get("median_h"))),
                     "p90": fmt_hours(_num(d.get("p90_h"))), "Mean": fmt_hours(_num(d.get("mean_h")))})
    return pd.DataFrame(rows)


# --- charts and their click-through ------------------------------------------------------------------------


@st.cache_resource(ttl=900, max_entries=300, show_spinner=False)
def _cached_figure(change: Hashable, key: tuple, name: str, options: tuple, _build: Callable[[], Any]) -> Any:
    return _build()


def figure(change: Hashable, key: tuple, name: str, build: Callable[[], Any], *options: Any) -> Any:
    """The figure ``build`` makes, built once per data version (``change``: the change marker, or a
    :func:`digest` of the figure's data), filters (``key``) and ``options``:
    building Plotly figures costs more than drawing them. Shared between sessions, so never modified."""
    return _cached_figure(change, key, name, options, build)


def chart(fig, *, key: str, selectable: bool = False) -> Any:
    """Draw a figure in the app's theme (lib.ui.plotly_chart: plotly.js's cartesian bundle, a third of the size of
    Streamlit's Plotly chart); selectable charts rerun with the selection (a click or a box)."""
    config = {"displaylogo": False, "modeBarButtonsToRemove": ["lasso2d", "autoScale2d"]}
    return plotly_chart.draw(fig, key=key, selectable=selectable and not charts.is_empty(fig), config=config)


def selected(event: Any) -> list[dict]:
    """The selected points that carry the chart's ticket keys (customdata of at least three values)."""
    return [p for p in plotly_chart.selection(event)
            if isinstance(p.get("customdata"), list | tuple) and len(p["customdata"]) >= 3]


def flow_selection(points: Sequence[dict], flow: pd.DataFrame, f: Filters, *, by: str,
                   names_to_ids: Mapping[str, int]) -> tuple[int, str] | None:
    """The tickets behind selected bars of a "created" chart: (how many, queue URL).

    The queue filters a rectangle (a creation range × priorities or categories), so the count is taken
    over that rectangle, which is exactly what the link opens.
    """
    if not points or flow is None or flow.empty:
        return None
    starts = [date.fromisoformat(str(p["customdata"][0])) for p in points]
    ends = [date.fromisoformat(str(p["customdata"][1])) for p in points]
    keys = sorted({str(p["customdata"][2]) for p in points})
    lo, hi = max(min(starts), f.start), min(max(ends), f.end + timedelta(days=1))
    params = f.queue_params()
    df = flow.copy()
    df["_start"] = [charts.period_start(p) for p in df["period"]]
    mask = (df["_start"] >= lo) & (df["_start"] < hi)
    if by == "priority":
        wanted = {int(Priority[k]) for k in keys if k in Priority.__members__}
        mask &= df["priority"].astype(int).isin(wanted)
        params["priority"] = [Priority(p).name for p in sorted(wanted, reverse=True)]
    else:
        if charts.OTHER in keys:
            return None  # several categories grouped: no single queue filter
        if "category_id" in df:
            names_to_ids = {**names_to_ids, **dict(zip(df["category"], df["category_id"], strict=True))}
        ids = sorted({int(names_to_ids[k]) for k in keys if k in names_to_ids})
        if not ids:
            return None
        mask &= df["category"].isin(keys)
        params["category"] = [str(i) for i in ids]
    n = int(df.loc[mask, "created"].sum())
    url = queue_link(QueueView.ALL, **params, created_from=lo.isoformat(), created_to=hi.isoformat())
    return n, url


def show_selection_link(result: tuple[int, str] | None) -> None:
    if result is None:
        return
    n, url = result
    st.markdown(f"**[Open these {n:,} tickets in the queue ↗]({url})**" if n else "No tickets in the selection.")


def workload_selection(points: Sequence[dict]) -> str | None:
    ids = sorted({int(p["customdata"][0]) for p in points if p.get("customdata") and p["customdata"][0] is not None})
    return queue_link(QueueView.ALL_OPEN, assignee=ids) if ids else None


def ticket_ref(ticket_id: Any) -> str:
    try:
        return models.ticket_ref(int(ticket_id))
    except (TypeError, ValueError):
        return str(ticket_id)


def ticket_links(ids: Any, limit: int = 8) -> str:
    values = list(ids) if isinstance(ids, list | tuple) else [i for i in str(ids or "").replace(",", " ").split() if i]
    more = f" … +{len(values) - limit}" if len(values) > limit else ""
    return ", ".join(ticket_ref(i) for i in values[:limit]) + more


def records(value: Any) -> pd.DataFrame:
    if value is None:
        return pd.DataFrame()
    if isinstance(value, pd.DataFrame):
        return value
    if isinstance(value, Mapping):
        return pd.DataFrame([value])
    return pd.DataFrame(list(value))


# --- the weekly report ----------------------------------------------------------------------------------

REPORT_ROWS: tuple[tuple[Kpi, ...], ...] = (
    (Kpi("created", "Created", "count", "off", "Tickets created in the week."),
     Kpi("resolved", "Resolved", "count", "normal", "Tickets resolved in the week (final resolution)."),
     Kpi("closed", "Closed", "count", "normal", "Tickets closed in the week as resolved work (confirmed, or no reply)."),
     Kpi("reopened", "Reopened", "count", "inverse", "Reopenings in the week.")),
    (Kpi("backlog_end", "Open at the end", "count", "inverse", "Tickets open work on Sunday at midnight."),
     Kpi("closed_other", "Closed, not work", "count", "off", "Closed as duplicate, cancelled or not applicable."),
     Kpi("sla_response_pct", "SLA response met", "pct", "normal", "Met ÷ (met + breached), where a target applied."),
     Kpi("sla_resolution_pct", "SLA resolution met", "pct", "normal",
         "Met ÷ (met + breached), where a target applied.")),
    (Kpi("ack_median_hours", "Acknowledge, median", "hours", "inverse", "Created → acknowledged, median hours."),
     Kpi("first_response_median_hours", "First response, median", "hours", "inverse",
         "Created → first public reply, median hours."),
     Kpi("resolution_median_hours", "Resolution, median", "hours", "inverse", "Created → resolved, median hours."),
     Kpi("resolution_p90_hours", "Resolution, p90", "hours", "inverse", "9 in 10 tickets resolved within this.")),
)


def report_tiles(report: Mapping[str, Any]) -> None:
    """Headline numbers: the change against the previous week, the 4-week average beneath."""
    prev = report.get("previous_week") or {}
    avg = report.get("four_week_avg") or {}
    st.caption(f"Changes against the previous week ({prev.get('week', 'the week before')}); the average of the "
               f"four weeks before beneath each.")
    for row in REPORT_ROWS:
        cols = st.columns(len(row))
        for col, kpi in zip(cols, row, strict=True):
            now, before = _num(report.get(kpi.key)), _num(prev.get(kpi.key))
            value, delta = kpi_value(kpi, now, before)
            col.metric(kpi.label, value, delta, delta_color=kpi.delta_color, help=kpi.help,
                       border=True)
            mean = _num(avg.get(kpi.key))
            shown = {"hours": fmt_hours, "pct": fmt_pct}.get(kpi.kind, fmt_count)(mean)
            col.caption(f"4-week average: {shown}")


def ticket_table(value: Any) -> tuple[pd.DataFrame, dict]:
    """A report's list of tickets as a frame whose ticket column links to the ticket page."""
    df = records(value).copy()
    config: dict = {}
    if "tickets" in df and "ticket_ids" in df:  # the references are already there, as text
        df = df.drop(columns=["ticket_ids"])
    for col in df.columns:
        if df[col].map(lambda v: isinstance(v, list | tuple)).any():
            df[col] = df[col].map(lambda v: ticket_links(v) if isinstance(v, list | tuple) else v)
    for col in [c for c in df.columns if str(c).endswith("_at") or c == "latest"]:
        df[col] = [fmt_local(v) for v in df[col]]
    id_col = next((c for c in ("ticket_id", "id") if c in df), None)
    if df.empty or id_col is None:
        return df, config
    refs = df["ref"] if "ref" in df else [ticket_ref(i) for i in df[id_col]]
    df.insert(0, "Ticket", [f"/ticket?id={int(i)}#{r}" for i, r in zip(df[id_col], refs, strict=True)])
    df = df.drop(columns=[c for c in (id_col, "ref") if c in df])
    config["Ticket"] = st.column_config.LinkColumn("Ticket", display_text=r"#([^#]+)$", width="small")
    return df, config


def show_table(value: Any, *, empty: str) -> None:
    if isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value):
        st.markdown("\n".join(f"- {core.escape_md(v)}" for v in value))
        return
    df, config = ticket_table(value)
    if df.empty:
        st.info(empty, icon="✅")
        return
    df.columns = [str(c).replace("_", " ").capitalize() if c != "Ticket" else c for c in df.columns]
    st.dataframe(df, hide_index=True, width="stretch", column_config=config)


def report_trend(report: Mapping[str, Any]) -> dict[str, pd.DataFrame]:
    """The weekly trends the report carries (lib.metrics.weekly_report: flow, backlog and SLA of the weeks up to it)."""
    trend = report.get("trend") or {}
    return {name: records(trend.get(name)) for name in ("flow", "backlog", "sla")}
