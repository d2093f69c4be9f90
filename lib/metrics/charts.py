"""Plotly figures for the metrics page and the weekly report (no streamlit here).

House rules for every chart:

* one fixed colour per priority (``PRIORITY_COLOURS``), used wherever priorities appear;
* every axis titled with its unit ("Tickets per week", "Hours", "% met");
* a ``hovertemplate`` on every trace that shows the exact values;
* transparent backgrounds and no font colour, so the chart follows Streamlit's light or dark theme
  (the standalone HTML report gets a light template with ``for_export``);
* a period without data gives a figure with a "No tickets in this period" note and hidden axes.

Inputs are the small frames of ``lib.metrics.measures``: a ``period`` column holds the first day of a week or a
day (a date, a timestamp or an ISO week such as ``"2026-W47"``). Bars carry ``customdata`` =
``[first day, day after the last, key]`` (ISO dates) so a page can turn a selected bar into a queue link.

Every figure is written as plain dicts and lists (traces with a ``"type"``, the layout as one dict) of plain
Python values, and wrapped once with ``go.Figure(..., _validate=False)``: Plotly's property-by-property
validation costs more than the rest of a page's charts together, and these specifications are known to be valid
(tests/unit/test_charts.py checks that a validated copy of every figure is identical). A ``go.Figure`` is what
Streamlit draws without validating again (a raw dict it would validate). Each chart function (``@Chart``) also
gives its plain specification, ``flow_by_priority.spec(...)``: the standalone HTML report writes those as they
are, without building Plotly's objects at all (each ``go.Figure`` copies the default template into itself).
"""

from __future__ import annotations

import functools
import json
import math
import pkgutil
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Generic, ParamSpec, cast

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from lib.desk_settings import DEFAULT_WEIGHTS  # pages pass the configured weights
from lib.workflow import CLOSURE_LABELS, WORK_CLOSURES, ClosureReason, Priority

PRIORITY_COLOURS: dict[Priority, str] = {
    Priority.CRITICAL: "#d62728",
    Priority.HIGH: "#ff7f0e",
    Priority.MEDIUM: "#1f77b4",
    Priority.LOW: "#7f7f7f",
}
#: Stacking order (bottom first) and legend order: the most urgent first.
PRIORITY_ORDER: tuple[Priority, ...] = (Priority.CRITICAL, Priority.HIGH, Priority.MEDIUM, Priority.LOW)
#: Series that are not priorities never use a priority colour.
CATEGORY_PALETTE: tuple[str, ...] = ("#2ca02c", "#9467bd", "#17becf", "#e377c2", "#bcbd22", "#8c564b",
                                     "#66c2a5", "#e6ab02", "#a6761d")
OTHER_COLOUR = "#b5b5d8"
CLOCK_COLOURS = {"response": "#17becf", "resolution": "#9467bd"}
TARGET_COLOUR = "#2ca02c"
BACKLOG_COLOUR = "#9467bd"
WORKLOAD_COLOUR = "#17becf"
CAPACITY_COLOUR = "#e6ab02"
WORK_CLOSURE_COLOUR = "#2ca02c"
OTHER_CLOSURE_COLOUR = "#b5b5d8"
AGEING_COLOUR = "#9467bd"

NO_DATA = "No tickets in this period"
#: The smaller categories grouped into one series (a real category may well be called "Other").
OTHER = "(other categories)"
HEIGHT = 360
ISO_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
MEASURE_LABELS = {"created": "Created", "resolved": "Resolved", "closed": "Closed", "closed_other": "Closed, not work"}
#: The template of the standalone HTML report (there is no app theme to follow there).
EXPORT_TEMPLATE = "plotly_white"

Trace = dict[str, Any]
Layout = dict[str, Any]
Spec = dict[str, Any]  # {"data": [traces], "layout": layout}
P = ParamSpec("P")


# --- shared layout -------------------------------------------------------------------------------------


def _spec(data: list[Trace], layout: Layout) -> Spec:
    return {"data": data, "layout": layout}


class Chart(Generic[P]):
    """A chart function: called, it gives a ``go.Figure`` (what the pages draw); ``.spec(...)`` gives the same
    figure as plain dicts (what a standalone file writes).

    The one place a figure is made: plain dicts of plain values, wrapped without Plotly's validation. The default
    template is filled in by Plotly as for any new figure (Streamlit's own when it is loaded)."""

    def __init__(self, build: Callable[P, Spec]) -> None:
        self.spec = build
        functools.update_wrapper(self, build)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> go.Figure:
        return go.Figure(self.spec(*args, **kwargs), _validate=False)


#: plotly.js's cartesian bundle (bars, lines, box plots: every chart here), 1.5 MB against the whole of plotly.js's
#: 4.7 MB: the app's chart pages draw with it (lib.ui.plotly_chart) and the weekly report's HTML file carries it.
#: plotly.js 4.1.1, the version the Python ``plotly`` package ships; its MIT licence is beside it.
PLOTLY_BUNDLE = Path(__file__).with_name("assets") / "plotly-cartesian.min.js"


def _layout(*, title: str, x_title: str | None, y_title: str | None, height: int = HEIGHT,
            legend: bool = True) -> Layout:
    """The layout every chart shares: title at the top left, transparent backgrounds, legend below."""
    return {
        "title": {"text": title, "x": 0, "xanchor": "left", "y": 0.97, "yanchor": "top"},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "height": height,
        "margin": {"l": 10, "r": 10, "t": 48, "b": 10},
        "showlegend": legend,
        # Below the chart, however many rows it wraps to: a legend above would run into the title.
        "legend": {"orientation": "h", "yref": "container", "y": 0, "yanchor": "bottom", "xanchor": "left", "x": 0,
                   "title": {"text": ""}, "traceorder": "normal"},
        "hoverlabel": {"namelength": -1},
        "xaxis": {"title": {"text": x_title or ""}, "automargin": True},
        "yaxis": {"title": {"text": y_title or ""}, "automargin": True, "rangemode": "tozero"},
    }


@Chart
def empty_figure(title: str, message: str = NO_DATA, *, height: int = 220) -> Spec:
    """A chart with nothing to draw: the title, a clear note, no axes or gridlines."""
    layout = _layout(title=title, x_title=None, y_title=None, height=height, legend=False)
    layout["annotations"] = [{"text": message, "x": 0.5, "y": 0.5, "xref": "paper", "yref": "paper",
                              "showarrow": False, "font": {"size": 16}, "name": "empty"}]
    layout["xaxis"]["visible"] = False
    layout["yaxis"]["visible"] = False
    layout["meta"] = {"empty": True}
    return _spec([], layout)


def is_empty(fig: go.Figure) -> bool:
    return bool(isinstance(fig.layout.meta, dict) and fig.layout.meta.get("empty"))


@functools.cache
def _export_template() -> dict[str, Any]:
    """The light template as plain dicts, read from Plotly's own file (what ``pio.templates`` loads, without
    building Plotly's template object)."""
    raw = pkgutil.get_data("plotly", f"package_data/templates/{EXPORT_TEMPLATE}.json")
    return json.loads(raw) if raw else pio.templates[EXPORT_TEMPLATE].to_plotly_json()


def for_export(fig: go.Figure | Spec) -> Spec:
    """The same figure for a standalone file, as plain dicts: a light template (there is no app theme to follow).

    The figure given is never changed (it may be cached and shared): a ``go.Figure`` is copied whole, a
    specification's layout at its top level, which is all this sets."""
    # A specification is tested for first: asking whether it is a go.Figure would import Plotly's figure classes
    # (a tenth of a second of the report CLI, which never builds one).
    spec = {**fig, "layout": dict(fig["layout"])} if isinstance(fig, dict) else fig.to_dict()
    spec["layout"].update(template=_export_template(), paper_bgcolor="white", plot_bgcolor="white")
    return spec


# --- periods ---------------------------------------------------------------------------------------------


def period_start(value: Any) -> date:
    """The first day of a period given as a date, a timestamp or an ISO week ("2026-W47")."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, pd.Timestamp):
        return value.date()
    text = str(value).strip()
    m = ISO_WEEK.match(text)
    if m:
        return date.fromisocalendar(int(m.group(1)), int(m.group(2)), 1)
    return pd.Timestamp(text).date()


def _step(grain: str) -> timedelta:
    return timedelta(days=1 if grain == "day" else 7)


def _unit(grain: str) -> str:
    return "day" if grain == "day" else "week"


def _x_title(grain: str) -> str:
    return "Day" if grain == "day" else "Week starting (Monday)"


def _date_axis(layout: Layout, grain: str) -> None:
    layout["xaxis"].update(type="date", tickformat="%d %b<br>%Y",
                           hoverformat="%a %d %b %Y" if grain == "day" else "week of %d %b %Y")


def _frame(data: pd.DataFrame | Iterable[Mapping[str, Any]] | None) -> pd.DataFrame:
    if data is None:
        return pd.DataFrame()
    return data.copy() if isinstance(data, pd.DataFrame) else pd.DataFrame(list(data))


def _with_starts(df: pd.DataFrame, periods: Sequence[Any] | None) -> tuple[pd.DataFrame, list[date]]:
    df = df.copy()
    df["_start"] = [period_start(p) for p in df["period"]] if len(df) else []
    starts = sorted({period_start(p) for p in periods} if periods is not None else set(df["_start"]))
    return df, starts


def _customdata(starts: Sequence[date], grain: str, key: Any) -> list[list[Any]]:
    step = _step(grain)
    return [[s.isoformat(), (s + step).isoformat(), key] for s in starts]


def _py(value: Any) -> Any:
    """A plain Python value for a numpy scalar (the figure's JSON and its validated copy must agree)."""
    return value.item() if isinstance(value, np.generic) else value


def _priority(value: Any) -> Priority:
    value = _py(value)  # numpy scalars from Series.unique()
    return Priority.parse(int(value) if isinstance(value, float) and not math.isnan(value) else value)


# --- flow: created / resolved / closed per period ---------------------------------------------------------


@Chart
def flow_by_priority(flow: pd.DataFrame | None, *, measure: str = "created", grain: str = "week",
                     periods: Sequence[Any] | None = None, title: str | None = None) -> Spec:
    """Stacked bars: ``measure`` per period, one colour per priority (Critical at the bottom)."""
    unit = _unit(grain)
    title = title or f"{MEASURE_LABELS.get(measure, measure.capitalize())} per {unit}, by priority"
    df = _frame(flow)
    if df.empty or measure not in df or df[measure].fillna(0).sum() == 0:
        return empty_figure.spec(title)
    df, starts = _with_starts(df, periods)
    codes = {v: int(_priority(v)) for v in df["priority"].unique()}  # a few distinct values, many rows
    df["_p"] = df["priority"].map(codes)
    table = df.pivot_table(index="_start", columns="_p", values=measure, aggfunc="sum", fill_value=0)
    table = table.reindex(starts, fill_value=0)  # the index is now ``starts``
    totals = [int(t) for t in table.sum(axis=1)]
    data = []
    for p in PRIORITY_ORDER:
        values = [int(v) for v in table[int(p)]] if int(p) in table else [0] * len(starts)
        data.append({
            "type": "bar", "x": list(starts), "y": values, "name": p.label, "marker": {"color": PRIORITY_COLOURS[p]},
            "customdata": [[*cd, t] for cd, t in zip(_customdata(starts, grain, p.name), totals, strict=True)],
            "hovertemplate": f"{p.label}: %{{y:,}} tickets (of %{{customdata[3]:,}})<extra></extra>",
        })
    layout = _layout(title=title, x_title=_x_title(grain), y_title=f"Tickets per {unit}")
    _date_axis(layout, grain)
    layout.update(barmode="stack", bargap=0.15, hovermode="x unified")
    return _spec(data, layout)


def category_colours(names: Iterable[str]) -> dict[str, str]:
    """A colour per category name, given in alphabetical order (so a category keeps its colour from one
    chart to the next as long as the set of categories shown is the same); the grouped rest is pale."""
    out: dict[str, str] = {}
    i = 0
    for name in sorted(set(names), key=str.casefold):
        if name == OTHER:
            out[name] = OTHER_COLOUR
        elif name not in out:
            out[name] = CATEGORY_PALETTE[i % len(CATEGORY_PALETTE)]
            i += 1
    return out


@Chart
def flow_by_category(flow: pd.DataFrame | None, *, measure: str = "created", grain: str = "week",
                     periods: Sequence[Any] | None = None, top: int = 8, title: str | None = None,
                     colours: Mapping[str, str] | None = None) -> Spec:
    """Stacked bars: ``measure`` per period by category (the ``top`` largest; the rest grouped as ``OTHER``)."""
    unit = _unit(grain)
    title = title or f"{MEASURE_LABELS.get(measure, measure.capitalize())} per {unit}, by category"
    df = _frame(flow)
    if df.empty or measure not in df or df[measure].fillna(0).sum() == 0:
        return empty_figure.spec(title)
    df, starts = _with_starts(df, periods)
    ranking = df.groupby("category")[measure].sum().sort_values(ascending=False)
    ranking = ranking[ranking > 0]
    keep = [_py(c) for c in ranking.index[:top]]
    df["_c"] = [c if c in keep else OTHER for c in df["category"]]
    table = df.pivot_table(index="_start", columns="_c", values=measure, aggfunc="sum", fill_value=0)
    table = table.reindex(starts, fill_value=0)  # the index is now ``starts``
    totals = [int(t) for t in table.sum(axis=1)]
    names = keep + ([OTHER] if OTHER in table.columns and table[OTHER].sum() > 0 else [])
    colours = {**category_colours(names), **(colours or {})}
    data = [{
        "type": "bar", "x": list(starts), "y": [int(v) for v in table[name]], "name": name,
        "marker": {"color": colours[name]},
        "customdata": [[*cd, t] for cd, t in zip(_customdata(starts, grain, name), totals, strict=True)],
        "hovertemplate": f"{_escape(name)}: %{{y:,}} tickets (of %{{customdata[3]:,}})<extra></extra>",
    } for name in names]
    layout = _layout(title=title, x_title=_x_title(grain), y_title=f"Tickets per {unit}")
    _date_axis(layout, grain)
    layout.update(barmode="stack", bargap=0.15, hovermode="x unified")
    return _spec(data, layout)


def _escape(text: str) -> str:
    """Plotly templates treat %{...} as variables and <...> as markup: keep names literal."""
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("%{", "%&#123;"))


# --- backlog --------------------------------------------------------------------------------------------


@Chart
def backlog_line(backlog: pd.DataFrame | None, *, grain: str = "week", periods: Sequence[Any] | None = None,
                 title: str | None = None) -> Spec:
    """Open tickets at the end of each period (a line)."""
    unit = _unit(grain)
    title = title or f"Backlog at the end of each {unit}"
    df = _frame(backlog)
    if df.empty or "backlog_end" not in df:
        return empty_figure.spec(title)
    df, starts = _with_starts(df, periods)
    series = df.groupby("_start")["backlog_end"].sum().reindex(starts)
    if series.fillna(0).sum() == 0:
        return empty_figure.spec(title, "No open tickets in this period")
    data = [{
        "type": "scatter", "x": list(starts), "y": [None if pd.isna(v) else int(v) for v in series],
        "mode": "lines+markers", "name": "Open at the end", "line": {"color": BACKLOG_COLOUR, "width": 3},
        "marker": {"size": 7}, "customdata": _customdata(starts, grain, "backlog"),
        "hovertemplate": f"Open at the end of the {unit}: %{{y:,}} tickets<extra></extra>",
    }]
    layout = _layout(title=title, x_title=_x_title(grain), y_title="Open tickets", legend=False)
    _date_axis(layout, grain)
    layout["hovermode"] = "x unified"
    return _spec(data, layout)


# --- resolution time distribution ---------------------------------------------------------------------------

_MIN_HOURS = 0.1  # shown at 6 minutes on the log axis; the hover keeps the exact value
#: Ticks of the log hours axis, in words (the axis unit is hours; the labels say 30 min, 1 d ...).
HOUR_TICKS: tuple[tuple[float, str], ...] = (
    (0.1, "6 min"), (0.25, "15 min"), (0.5, "30 min"), (1, "1 h"), (2, "2 h"), (4, "4 h"), (8, "8 h"),
    (24, "1 d"), (48, "2 d"), (96, "4 d"), (168, "1 wk"), (336, "2 wk"), (720, "30 d"), (2160, "90 d"),
    (8760, "1 yr"))


def resolution_stats(hours: Iterable[float]) -> dict[str, float] | None:
    s = pd.Series([h for h in hours if h is not None], dtype="float64").dropna()
    if s.empty:
        return None
    q = s.quantile([0.1, 0.25, 0.5, 0.75, 0.9])
    return {"n": int(len(s)), "p10": float(q[0.1]), "q1": float(q[0.25]), "median": float(q[0.5]),
            "q3": float(q[0.75]), "p90": float(q[0.9]), "mean": float(s.mean()), "max": float(s.max())}


@Chart
def resolution_box(data: pd.DataFrame | None, *, title: str = "Resolution time by priority") -> Spec:
    """Resolution hours per priority: box = quartiles, whiskers = 10th–90th percentile, log scale.

    ``data`` has one row per resolved ticket (``priority``, ``hours``); only five numbers per priority
    reach the browser, however many tickets there are.
    """
    df = _frame(data)
    if df.empty or "hours" not in df or df["hours"].dropna().empty:
        return empty_figure.spec(title)
    sampled = bool(getattr(data, "attrs", {}).get("sampled"))
    codes = {v: int(_priority(v)) for v in df["priority"].unique()}  # a few distinct values, many rows
    df["_p"] = df["priority"].map(codes)
    traces: list[Trace] = []
    fences: list[float] = []
    for p in PRIORITY_ORDER:
        stats = resolution_stats(df.loc[df["_p"] == int(p), "hours"])
        if stats is None:
            continue
        shown = {k: max(v, _MIN_HOURS) for k, v in stats.items() if k != "n"}
        fences += [shown["p10"], shown["p90"]]
        colour = PRIORITY_COLOURS[p]
        traces.append({
            "type": "box", "x": [p.label], "q1": [shown["q1"]], "median": [shown["median"]], "q3": [shown["q3"]],
            "lowerfence": [shown["p10"]], "upperfence": [shown["p90"]], "name": p.label, "marker": {"color": colour},
            "line": {"color": colour}, "fillcolor": _alpha(colour, 0.35), "hoverinfo": "skip", "showlegend": False,
        })
        traces.append({
            "type": "scatter", "x": [p.label], "y": [shown["median"]], "mode": "markers",
            "name": f"{p.label} (median)", "showlegend": False,
            "marker": {"symbol": "line-ew-open", "size": 28, "color": colour, "line": {"width": 3, "color": colour}},
            "customdata": [[stats["n"], stats["median"], stats["p90"], stats["mean"], stats["q1"], stats["q3"],
                            stats["p10"]]],
            "hovertemplate": (f"<b>{p.label}</b> · %{{customdata[0]:,}} resolved{' (a sample)' if sampled else ''}"
                              "<br>median %{customdata[1]:,.1f} h · p90 %{customdata[2]:,.1f} h · "
                              "mean %{customdata[3]:,.1f} h<br>middle half %{customdata[4]:,.1f}–"
                              "%{customdata[5]:,.1f} h · p10 %{customdata[6]:,.1f} h<extra></extra>"),
        })
    if not traces:
        return empty_figure.spec(title)
    layout = _layout(title=title, x_title="Priority", y_title="Hours (log scale)", legend=False)
    lo, hi = min(fences), max(fences)
    ticks = [(h, label) for h, label in HOUR_TICKS if lo / 1.6 <= h <= hi * 1.6]
    layout["yaxis"].update(type="log", rangemode="normal", tickvals=[h for h, _ in ticks],
                           ticktext=[t for _, t in ticks])
    layout["xaxis"].update(categoryorder="array", categoryarray=[p.label for p in PRIORITY_ORDER])
    layout["annotations"] = [{"text": "box: middle half · whiskers: 10th–90th percentile", "xref": "paper",
                              "yref": "paper", "x": 1, "y": 1.0, "xanchor": "right", "yanchor": "bottom",
                              "showarrow": False, "font": {"size": 11}, "opacity": 0.8}]
    return _spec(traces, layout)


def _alpha(hex_colour: str, alpha: float) -> str:
    h = hex_colour.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


# --- SLA compliance ---------------------------------------------------------------------------------------


@Chart
def sla_trend(sla: pd.DataFrame | None, *, grain: str = "week", target_pct: float | None = 90.0,
              periods: Sequence[Any] | None = None, title: str = "SLA compliance") -> Spec:
    """% of targets met per period, one line per clock (response, resolution), with the target line."""
    df = _frame(sla)
    if df.empty or "pct" not in df or (df.get("met", 0) + df.get("breached", 0)).sum() == 0:
        return empty_figure.spec(title, "No SLA targets applied in this period")
    df, starts = _with_starts(df, periods)
    data: list[Trace] = []
    lows: list[float] = []
    for clock in ("response", "resolution"):
        part = df[df["clock"] == clock].groupby("_start")[["met", "breached"]].sum().reindex(starts)
        if part.empty or part.fillna(0).to_numpy().sum() == 0:
            continue
        total = part["met"] + part["breached"]
        pct = (100.0 * part["met"] / total.where(total > 0)).round(1)
        lows += [float(v) for v in pct if pd.notna(v)]
        data.append({
            "type": "scatter", "x": list(starts), "y": [None if pd.isna(v) else float(v) for v in pct],
            "mode": "lines+markers", "name": f"{clock.capitalize()} target met", "connectgaps": False,
            "line": {"color": CLOCK_COLOURS[clock], "width": 3}, "marker": {"size": 7},
            "customdata": [[int(m) if pd.notna(m) else 0, int(t) if pd.notna(t) else 0]
                           for m, t in zip(part["met"], total, strict=True)],
            "hovertemplate": (f"{clock.capitalize()}: %{{y:.1f}}% met "
                              "(%{customdata[0]:,} of %{customdata[1]:,})<extra></extra>"),
        })
    if not data:
        return empty_figure.spec(title, "No SLA targets applied in this period")
    if target_pct is not None:  # a trace, not a shape: named in the legend and the hover, never over the data
        target = _py(target_pct)
        data.append({"type": "scatter", "x": list(starts), "y": [target] * len(starts), "mode": "lines",
                     "name": f"Target {target_pct:g}%", "line": {"color": TARGET_COLOUR, "dash": "dash", "width": 2},
                     "hovertemplate": "Target: %{y:g}%<extra></extra>"})
        lows.append(float(target_pct))
    low = max(0.0, math.floor((min(lows) - 5) / 10) * 10) if lows else 0.0
    layout = _layout(title=title, x_title=_x_title(grain), y_title="% met")
    _date_axis(layout, grain)
    layout["yaxis"].update(range=[low, 101], ticksuffix="%", rangemode="normal")
    layout["hovermode"] = "x unified"
    return _spec(data, layout)


# --- workload -------------------------------------------------------------------------------------------


@Chart
def workload_bars(workload: pd.DataFrame | None, *, weights: Mapping[Any, int] | None = None,
                  title: str = "Workload against capacity") -> Spec:
    """Per technician: open tickets weighted by priority (stacked, one colour per priority) against capacity.

    ``workload`` is lib.metrics.measures.workload: ``open_critical`` ... ``open_low`` counts and ``capacity``, which
    is measured in the same weighted units (lib.assignment). Technicians over capacity are labelled.
    """
    df = _frame(workload)
    if df.empty or "technician" not in df:
        return empty_figure.spec(title, "No active technicians")
    w = {p: int(DEFAULT_WEIGHTS[p]) for p in Priority}
    for k, v in (weights or {}).items():
        w[_priority(k)] = int(v)
    columns = {p: f"open_{p.name.lower()}" for p in Priority}
    for col in columns.values():
        df[col] = pd.to_numeric(df[col], errors="coerce").fillna(0).astype(int) if col in df else 0
    df["_load"] = sum(df[columns[p]] * w[p] for p in Priority)
    df = df.sort_values(["_load", "technician"], ascending=[True, False]).reset_index(drop=True)
    names = [str(t) for t in df["technician"]]
    loads = [int(v) for v in df["_load"]]
    caps = [None if c is None or pd.isna(c) else float(c) for c in df.get("capacity", [None] * len(df))]
    resolved = [int(r) if pd.notna(r) else 0 for r in df.get("resolved_in_range", [0] * len(df))]
    users = [int(u) if pd.notna(u) else None for u in df.get("user_id", [None] * len(df))]
    data: list[Trace] = []
    for p in PRIORITY_ORDER:
        counts = [int(n) for n in df[columns[p]]]
        data.append({
            "type": "bar", "y": names, "x": [n * w[p] for n in counts], "orientation": "h", "name": p.label,
            "marker": {"color": PRIORITY_COLOURS[p]},
            "customdata": [[u, n, w[p], load, cap, r] for u, n, load, cap, r in
                           zip(users, counts, loads, caps, resolved, strict=True)],
            "hovertemplate": (f"<b>%{{y}}</b> · {p.label}: %{{customdata[1]:,}} open × weight %{{customdata[2]}} = "
                              "%{x:,}<br>load %{customdata[3]:,} of capacity %{customdata[4]:,} · "
                              "resolved in the period: %{customdata[5]:,}<extra></extra>"),
        })
    if any(c is not None for c in caps):
        data.append({
            "type": "scatter", "y": names, "x": caps, "mode": "markers", "name": "Capacity",
            "marker": {"symbol": "line-ns-open", "size": 18, "color": CAPACITY_COLOUR,
                       "line": {"width": 4, "color": CAPACITY_COLOUR}},
            "hovertemplate": "<b>%{y}</b>: capacity %{x:,}<extra></extra>",
        })
    over = [(n, load, c) for n, load, c in zip(names, loads, caps, strict=True) if c is not None and load > c]
    if over:
        data.append({
            "type": "scatter", "y": [n for n, _, _ in over], "x": [max(load, c) for _, load, c in over],
            "mode": "text", "name": "Over capacity", "text": [f"  over: {load} / {c:g}" for _, load, c in over],
            "textposition": "middle right", "showlegend": False, "customdata": [[load, c] for _, load, c in over],
            "hovertemplate": "<b>%{y}</b>: load %{customdata[0]:,} over capacity %{customdata[1]:,}<extra></extra>",
        })
    weights_text = ", ".join(f"{p.label} {w[p]}" for p in PRIORITY_ORDER)
    layout = _layout(title=title, x_title=f"Load: open tickets × priority weight ({weights_text})",
                     y_title="Technician", height=max(HEIGHT, 130 + 32 * len(df)))
    layout.update(barmode="stack", bargap=0.3)
    layout["xaxis"]["range"] = [0, max([*(load * 1.25 for load in loads), *[c * 1.1 for c in caps if c is not None],
                                        1])]
    return _spec(data, layout)


# --- closures, ageing ------------------------------------------------------------------------------------


def closure_label(reason: Any) -> str:
    try:
        return CLOSURE_LABELS[ClosureReason(str(reason))]
    except ValueError:
        return str(reason).replace("_", " ").capitalize()


@Chart
def closures_bar(closures: pd.DataFrame | None, *, title: str = "Closures by reason") -> Spec:
    """Closed tickets per closure reason; resolved work apart from duplicates, cancellations, not applicable."""
    df = _frame(closures)
    if df.empty or "count" not in df or df["count"].sum() == 0:
        return empty_figure.spec(title, "No tickets closed in this period")
    df = df[df["count"] > 0].sort_values("count").reset_index(drop=True)
    work = {r.value for r in WORK_CLOSURES}
    df["_label"] = [str(lab) if "label" in df and isinstance(lab, str) and lab else closure_label(r)
                    for r, lab in zip(df["reason"], df.get("label", [None] * len(df)), strict=True)]
    df["_work"] = [bool(w) if "counts_as_work" in df else str(r) in work
                   for r, w in zip(df["reason"], df.get("counts_as_work", [None] * len(df)), strict=True)]
    total = int(df["count"].sum())
    data: list[Trace] = []
    for is_work, name, colour in ((True, "Resolved work", WORK_CLOSURE_COLOUR),
                                  (False, "Not counted as resolved work", OTHER_CLOSURE_COLOUR)):
        part = df[df["_work"] == is_work]
        if part.empty:
            continue
        data.append({
            "type": "bar", "y": [str(lab) for lab in part["_label"]], "x": [int(c) for c in part["count"]],
            "orientation": "h", "name": name, "marker": {"color": colour},
            "customdata": [[str(r), total] for r in part["reason"]],
            "hovertemplate": "%{y}: %{x:,} tickets (of %{customdata[1]:,} closed)<extra></extra>",
        })
    layout = _layout(title=title, x_title="Tickets closed", y_title="Closure reason",
                     height=max(260, 120 + 34 * len(df)))
    layout["yaxis"].update(categoryorder="array", categoryarray=[str(lab) for lab in df["_label"]])
    layout["barmode"] = "stack"
    return _spec(data, layout)


@Chart
def ageing_bar(ageing: pd.DataFrame | None, *, title: str = "Age of open tickets") -> Spec:
    """Open tickets by age bucket (buckets in the order given)."""
    df = _frame(ageing)
    if df.empty or "count" not in df or df["count"].sum() == 0:
        return empty_figure.spec(title, "No open tickets")
    data = [{
        "type": "bar", "x": [str(b) for b in df["bucket"]], "y": [int(c) for c in df["count"]],
        "name": "Open tickets", "marker": {"color": AGEING_COLOUR}, "customdata": [[str(b)] for b in df["bucket"]],
        "hovertemplate": "Open for %{x}: %{y:,} tickets<extra></extra>",
    }]
    layout = _layout(title=title, x_title="Age since creation", y_title="Open tickets", legend=False, height=300)
    layout["xaxis"]["type"] = "category"
    return _spec(data, layout)


# --- the weekly report -------------------------------------------------------------------------------------


def _priority_counts(value: Any) -> dict[Priority, int]:
    """{"Critical": 3, ...} or {4: 3} or [{"priority": ..., "count": ...}] -> {Priority: count}."""
    out: dict[Priority, int] = {}
    if isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, Iterable) and not isinstance(value, str | bytes):
        items = [(row.get("priority"), row.get("count", row.get("created", 0))) for row in value]
    else:
        return out
    for k, v in items:
        try:
            out[_priority(k)] = out.get(_priority(k), 0) + int(v or 0)
        except (TypeError, ValueError):
            continue
    return out


def _name_counts(value: Any, key: str = "category") -> dict[str, int]:
    if isinstance(value, Mapping):
        return {str(k): int(v or 0) for k, v in value.items()}
    if isinstance(value, Iterable) and not isinstance(value, str | bytes):
        return {str(r.get(key, r.get("name"))): int(r.get("count", r.get("created", 0)) or 0) for r in value}
    return {}


@Chart
def week_priority_bars(report: Mapping[str, Any]) -> Spec:
    """Created this week by priority, beside the previous week and the 4-week average."""
    title = f"Created in {report.get('week', 'the week')} by priority"
    columns = [("This week", report.get("created_by_priority")),
               ("Previous week", (report.get("previous_week") or {}).get("created_by_priority")),
               ("4-week average", (report.get("four_week_avg") or {}).get("created_by_priority"))]
    counts = [(label, _priority_counts(v)) for label, v in columns if v is not None]
    if not counts or sum(sum(c.values()) for _, c in counts) == 0:
        return empty_figure.spec(title)
    data = [{
        "type": "bar", "x": [label for label, _ in counts], "y": [c.get(p, 0) for _, c in counts], "name": p.label,
        "marker": {"color": PRIORITY_COLOURS[p]},
        "hovertemplate": f"{p.label}, %{{x}}: %{{y:,.1f}} tickets<extra></extra>",
    } for p in PRIORITY_ORDER]
    layout = _layout(title=title, x_title="Week", y_title="Tickets per week")
    layout.update(barmode="stack", bargap=0.35)
    return _spec(data, layout)


@Chart
def week_category_bars(report: Mapping[str, Any], *, top: int = 10,
                       colours: Mapping[str, str] | None = None) -> Spec:
    title = f"Created in {report.get('week', 'the week')} by category"
    counts = {k: v for k, v in _name_counts(report.get("created_by_category")).items() if v > 0}
    if not counts:
        return empty_figure.spec(title)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    if len(ranked) > top:
        ranked = ranked[:top - 1] + [(OTHER, sum(v for _, v in ranked[top - 1:]))]
    ranked.reverse()
    colours = {**category_colours(k for k, _ in ranked), **(colours or {})}
    data = [{"type": "bar", "y": [k for k, _ in ranked], "x": [v for _, v in ranked], "orientation": "h",
             "name": "Created", "marker": {"color": [colours[k] for k, _ in ranked]},
             "hovertemplate": "%{y}: %{x:,} tickets<extra></extra>"}]
    layout = _layout(title=title, x_title="Tickets created in the week", y_title="Category", legend=False,
                     height=max(260, 110 + 30 * len(ranked)))
    return _spec(data, layout)


@Chart
def week_headline_bars(report: Mapping[str, Any]) -> Spec:
    """Created, resolved, closed and backlog: this week, the previous week and the 4-week average."""
    title = f"{report.get('week', 'The week')} against the previous week and the 4-week average"
    keys = [("created", "Created"), ("resolved", "Resolved"), ("closed", "Closed"), ("backlog_end", "Open at the end")]
    series = [("This week", report, "#9467bd"), ("Previous week", report.get("previous_week") or {}, "#17becf"),
              ("4-week average", report.get("four_week_avg") or {}, "#bcbd22")]
    if all(not (src.get(k) or 0) for _, src, _ in series for k, _ in keys):
        return empty_figure.spec(title)
    data = [{"type": "bar", "x": [name for _, name in keys], "y": [float(src.get(k) or 0) for k, _ in keys],
             "name": label, "marker": {"color": colour},
             "hovertemplate": f"{label}, %{{x}}: %{{y:,.1f}} tickets<extra></extra>"}
            for label, src, colour in series]
    layout = _layout(title=title, x_title="Measure", y_title="Tickets")
    layout.update(barmode="group", bargap=0.25)
    return _spec(data, layout)


@Chart
def week_technician_bars(report: Mapping[str, Any]) -> Spec:
    rows = report.get("by_technician") or []
    if isinstance(rows, Mapping):
        rows = [{"technician": k, **(v if isinstance(v, Mapping) else {})} for k, v in rows.items()]
    df = pd.DataFrame(list(rows))
    title = "Per technician: open at the end of the week and resolved in it"
    if df.empty:
        return empty_figure.spec(title, "No technicians")
    name_col = next((c for c in ("technician", "name", "username") if c in df), None)
    if name_col is None:
        return empty_figure.spec(title, "No technicians")
    for col in ("open", "resolved"):  # a count missing from every row is none
        df[col] = pd.to_numeric(df[col], errors="coerce").fillna(0) if col in df else 0
    if (df["open"] + df["resolved"]).sum() == 0:
        return empty_figure.spec(title, "No open or resolved tickets")
    df = df.sort_values(["open", name_col], ascending=[True, False])
    names = [_py(n) for n in df[name_col]]
    data = [{"type": "bar", "y": names, "x": [int(v) for v in df[col]], "orientation": "h", "name": label,
             "marker": {"color": colour}, "hovertemplate": f"%{{y}}: %{{x:,}} {label.lower()}<extra></extra>"}
            for col, label, colour in (("open", "Open", WORKLOAD_COLOUR), ("resolved", "Resolved in the week", "#2ca02c"))]
    layout = _layout(title=title, x_title="Tickets", y_title="Technician", height=max(HEIGHT, 120 + 44 * len(df)))
    layout["barmode"] = "group"
    return _spec(data, layout)


def _trend_figures(report: Mapping[str, Any], colours: Mapping[str, str]) -> list[Spec]:
    """Weekly trends when the report carries them (a ``trend`` mapping of lib.metrics.measures frames or row lists)."""
    trend = report.get("trend") or report.get("trends")
    if not isinstance(trend, Mapping):
        return []
    figs = []
    if trend.get("flow") is not None:
        flow = _frame(trend["flow"])
        figs += [flow_by_priority.spec(flow, measure="created"),
                 flow_by_category.spec(flow, measure="created", colours=colours)]
    if trend.get("backlog") is not None:
        figs.append(backlog_line.spec(_frame(trend["backlog"])))
    if trend.get("sla") is not None:
        figs.append(sla_trend.spec(_frame(trend["sla"])))
    return figs


def weekly_figures(report: Mapping[str, Any]) -> list[go.Figure]:
    """The charts of the weekly report with a light template, as figures (see :func:`weekly_specs`)."""
    return [go.Figure(spec, _validate=False) for spec in weekly_specs(report)]


def weekly_specs(report: Mapping[str, Any]) -> list[Spec]:
    """The charts of the weekly report as plain dicts, with a light template: what the self-contained HTML file
    writes."""
    # One colour per category across the report's charts.
    trend = cast(Mapping[str, Any], report.get("trend")) if isinstance(report.get("trend"), Mapping) else {}
    names = set(_name_counts(report.get("created_by_category")))
    names |= {str(r.get("category")) for r in (trend.get("flow") or []) if isinstance(r, Mapping)} - {"None"}
    colours = category_colours(names)
    figs = [week_headline_bars.spec(report), week_priority_bars.spec(report),
            week_category_bars.spec(report, colours=colours)]
    figs += _trend_figures(report, colours)
    figs.append(week_technician_bars.spec(report))
    return [for_export(f) for f in figs]
