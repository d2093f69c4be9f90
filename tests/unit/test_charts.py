"""The chart rules: one colour per priority everywhere, axes titled with units, exact hover text,
a clear empty state, transparent backgrounds that follow the app's theme."""

from __future__ import annotations

import copy
import functools
from datetime import date, timedelta

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import pytest

from lib.metrics import charts
from lib.metrics.charts import PRIORITY_COLOURS
from lib.workflow import Priority

WEEKS = [date(2026, 9, 7) + timedelta(weeks=i) for i in range(6)]
CATEGORIES = ["Hardware", "Software", "Network", "Access", "E-mail", "Printing", "Phones", "Accounts", "VPN",
              "Other things"]


def flow_frame() -> pd.DataFrame:
    rows = []
    for w_i, week in enumerate(WEEKS):
        for p in Priority:
            for c_i, cat in enumerate(CATEGORIES):
                rows.append({"period": week, "priority": int(p), "category": cat, "created": (w_i + c_i + int(p)) % 5,
                             "resolved": (w_i + c_i) % 4, "closed": (c_i + int(p)) % 3, "closed_other": c_i % 2})
    return pd.DataFrame(rows)


def backlog_frame() -> pd.DataFrame:
    return pd.DataFrame({"period": WEEKS, "backlog_end": [40, 44, 39, 51, 48, 45]})


def resolution_frame() -> pd.DataFrame:
    rows = [{"priority": int(p), "hours": h * (5 - int(p))} for p in Priority for h in (0.5, 1, 2, 3, 5, 8, 13, 30)]
    return pd.DataFrame(rows)


def sla_frame() -> pd.DataFrame:
    rows = []
    for i, week in enumerate(WEEKS):
        for clock in ("response", "resolution"):
            met, breached = 40 + i, i % 3
            rows.append({"period": week, "clock": clock, "met": met, "breached": breached,
                         "pct": 100 * met / (met + breached)})
    return pd.DataFrame(rows)


def workload_frame() -> pd.DataFrame:
    """As lib.metrics.measures.workload: open counts per priority; capacity in weighted units."""
    return pd.DataFrame({"technician": ["Ann", "Bob", "Cyd"], "user_id": [3, 4, 5], "capacity": [10, 8, 12],
                         "open": [5, 3, 4], "open_weighted": [16, 4, 6], "resolved_in_range": [30, 22, 17],
                         "open_low": [0, 2, 2], "open_medium": [1, 1, 2], "open_high": [2, 0, 0],
                         "open_critical": [2, 0, 0]})


def report_dict() -> dict:
    return {
        "week": "2026-W47", "created": 50, "resolved": 44, "closed": 41, "reopened": 2, "backlog_end": 61,
        "created_by_priority": {"Critical": 2, "High": 9, "Medium": 21, "Low": 18},
        "created_by_category": {"Hardware": 20, "Software": 17, "Network": 13},
        "previous_week": {"created": 45, "resolved": 40, "closed": 39, "backlog_end": 55,
                          "created_by_priority": {"Critical": 1, "High": 10, "Medium": 20, "Low": 14}},
        "four_week_avg": {"created": 47.5, "resolved": 43.25, "closed": 40.0, "backlog_end": 57.5},
        "by_technician": [{"technician": "Ann", "open": 7, "resolved": 12}, {"technician": "Bob", "open": 3,
                                                                            "resolved": 9}],
    }


@functools.cache
def all_figures() -> dict[str, go.Figure]:
    flow = flow_frame()
    return {
        "priority": charts.flow_by_priority(flow),
        "priority_resolved": charts.flow_by_priority(flow, measure="resolved"),
        "category": charts.flow_by_category(flow),
        "backlog": charts.backlog_line(backlog_frame()),
        "resolution": charts.resolution_box(resolution_frame()),
        "sla": charts.sla_trend(sla_frame()),
        "workload": charts.workload_bars(workload_frame()),
        "closures": charts.closures_bar(pd.DataFrame({"reason": ["confirmed", "no_reply", "duplicate", "cancelled"],
                                                      "count": [90, 12, 4, 1]})),
        "ageing": charts.ageing_bar(pd.DataFrame({"bucket": ["< 1 day", "1–3 days", "3–7 days", "> 30 days"],
                                                  "count": [8, 6, 3, 1]})),
        **{f"weekly_{i}": f for i, f in enumerate(charts.weekly_figures(report_dict()))},
    }


def _colour_of(trace) -> str | None:  # type: ignore[no-untyped-def]
    colour = trace.marker.color if trace.marker is not None else None
    return colour if isinstance(colour, str) else None


def test_priority_colours_are_distinct_and_fixed() -> None:
    assert set(PRIORITY_COLOURS) == set(Priority)
    assert len(set(PRIORITY_COLOURS.values())) == 4
    assert PRIORITY_COLOURS[Priority.CRITICAL] == "#d62728"
    for palette in (charts.CATEGORY_PALETTE, [charts.OTHER_COLOUR, charts.BACKLOG_COLOUR, charts.WORKLOAD_COLOUR,
                                               charts.CAPACITY_COLOUR, charts.TARGET_COLOUR,
                                               *charts.CLOCK_COLOURS.values()]):
        assert not set(palette) & set(PRIORITY_COLOURS.values()), "a non-priority series wears a priority colour"


def test_each_priority_has_the_same_colour_in_every_chart() -> None:
    seen: dict[str, set[str]] = {}
    for fig in all_figures().values():
        for trace in fig.data:
            for p in Priority:
                if trace.name == p.label or (trace.name or "").startswith(f"{p.label} ("):
                    colour = _colour_of(trace) or (trace.line.color if hasattr(trace, "line") else None)
                    seen.setdefault(p.label, set()).add(colour)
    assert seen == {p.label: {PRIORITY_COLOURS[p]} for p in Priority}


def test_stacked_bars_put_critical_at_the_bottom_and_fill_missing_weeks() -> None:
    flow = flow_frame()
    flow = flow[flow["period"] != WEEKS[2]]
    fig = charts.flow_by_priority(flow, periods=WEEKS)
    assert [t.name for t in fig.data] == ["Critical", "High", "Medium", "Low"]
    assert fig.layout.barmode == "stack"
    assert all(len(t.x) == len(WEEKS) for t in fig.data)
    assert all(t.y[2] == 0 for t in fig.data)
    # Exact totals: the stacked bars add up to the frame.
    assert sum(sum(t.y) for t in fig.data) == int(flow["created"].sum())


def test_category_chart_keeps_the_largest_and_groups_the_rest() -> None:
    fig = charts.flow_by_category(flow_frame(), top=4)
    names = [t.name for t in fig.data]
    assert names[-1] == charts.OTHER and len(names) == 5
    assert sum(sum(t.y) for t in fig.data) == int(flow_frame()["created"].sum())


@pytest.mark.parametrize("name", list(all_figures()))
def test_every_axis_is_titled_with_a_unit(name: str) -> None:
    fig = all_figures()[name]
    x_title = fig.layout.xaxis.title.text
    y_title = fig.layout.yaxis.title.text
    assert x_title and y_title, (name, x_title, y_title)
    numeric = y_title if fig.layout.xaxis.type in ("date", "category", None) and not _horizontal(fig) else x_title
    assert any(unit in numeric for unit in ("Tickets", "tickets", "Hours", "% met")), (name, numeric)


def _horizontal(fig: go.Figure) -> bool:
    return any(getattr(t, "orientation", None) == "h" for t in fig.data)


def test_units_follow_the_grain() -> None:
    assert charts.flow_by_priority(flow_frame()).layout.yaxis.title.text == "Tickets per week"
    day_flow = flow_frame().assign(period=lambda d: d["period"].map(lambda w: w + timedelta(days=1)))
    fig = charts.flow_by_priority(day_flow, grain="day")
    assert fig.layout.yaxis.title.text == "Tickets per day"
    assert charts.resolution_box(resolution_frame()).layout.yaxis.title.text.startswith("Hours")
    assert charts.sla_trend(sla_frame()).layout.yaxis.title.text == "% met"


@pytest.mark.parametrize("name", list(all_figures()))
def test_hover_shows_exact_values(name: str) -> None:
    fig = all_figures()[name]
    hovering = [t for t in fig.data if t.hoverinfo != "skip"]
    assert hovering
    for trace in hovering:
        assert trace.hovertemplate, (name, trace.name)
        assert "%{" in trace.hovertemplate and "<extra></extra>" in trace.hovertemplate


def test_resolution_hover_carries_median_p90_and_count() -> None:
    fig = charts.resolution_box(resolution_frame())
    markers = [t for t in fig.data if t.type == "scatter"]
    critical = next(t for t in markers if t.name.startswith("Critical"))
    n, median, p90 = critical.customdata[0][:3]
    hours = resolution_frame().query("priority == 4")["hours"]
    assert n == len(hours)
    assert median == pytest.approx(hours.median())
    assert p90 == pytest.approx(hours.quantile(0.9))
    assert "p90" in critical.hovertemplate and "median" in critical.hovertemplate


def test_sla_trend_has_a_target_line_and_exact_percentages() -> None:
    fig = charts.sla_trend(sla_frame(), target_pct=95)
    target = next(t for t in fig.data if t.name == "Target 95%")
    assert set(target.y) == {95} and target.line.dash == "dash"
    response = next(t for t in fig.data if t.name.startswith("Response"))
    assert response.y[1] == pytest.approx(round(100 * 41 / 42, 1))
    assert response.customdata[1] == [41, 42]


def test_workload_stacks_weighted_load_by_priority_against_capacity() -> None:
    fig = charts.workload_bars(workload_frame(), weights={4: 4, 3: 3, 2: 2, 1: 1})
    bars = {t.name: t for t in fig.data if t.type == "bar"}
    assert list(bars) == ["Critical", "High", "Medium", "Low"]
    assert list(bars["Critical"].y) == ["Bob", "Cyd", "Ann"]  # the most loaded at the top
    load = {name: sum(t.x[i] for t in bars.values()) for i, name in enumerate(bars["Critical"].y)}
    assert load == {"Ann": 16, "Bob": 4, "Cyd": 6}  # = open_weighted
    capacity = next(t for t in fig.data if t.name == "Capacity")
    assert list(capacity.x) == [8.0, 12.0, 10.0]
    over = next(t for t in fig.data if t.name == "Over capacity")
    assert list(over.y) == ["Ann"] and "16 / 10" in over.text[0]
    # Other weights move the load, not the counts in the hover.
    heavy = charts.workload_bars(workload_frame(), weights={"CRITICAL": 10})
    crit = next(t for t in heavy.data if t.name == "Critical")
    assert list(crit.x) == [0, 0, 20] and crit.customdata[2][1] == 2
    assert "Critical 10" in heavy.layout.xaxis.title.text


def test_closures_use_the_metrics_labels_and_work_flag() -> None:
    df = pd.DataFrame({"reason": ["confirmed", "no_reply", "duplicate", "other"],
                       "label": ["Confirmed by the user", "No reply from the user", "Duplicate", "Other"],
                       "count": [50, 7, 3, 1], "counts_as_work": [True, True, False, False]})
    fig = charts.closures_bar(df)
    work, other = fig.data
    assert work.name == "Resolved work" and set(work.y) == {"Confirmed by the user", "No reply from the user"}
    assert set(other.y) == {"Duplicate", "Other"}


#: Every builder on a period without data.
EMPTY_FIGURES = [
    lambda: charts.flow_by_priority(pd.DataFrame(columns=["period", "priority", "category", "created"])),
    lambda: charts.flow_by_priority(None),
    lambda: charts.flow_by_category(flow_frame().assign(created=0)),
    lambda: charts.backlog_line(pd.DataFrame(columns=["period", "backlog_end"])),
    lambda: charts.resolution_box(pd.DataFrame(columns=["priority", "hours"])),
    lambda: charts.sla_trend(pd.DataFrame(columns=["period", "clock", "met", "breached", "pct"])),
    lambda: charts.workload_bars(pd.DataFrame()),
    lambda: charts.closures_bar(pd.DataFrame(columns=["reason", "count"])),
    lambda: charts.ageing_bar(pd.DataFrame(columns=["bucket", "count"])),
    lambda: charts.week_priority_bars({"week": "2026-W47", "created_by_priority": {}}),
]


@pytest.mark.parametrize("make", EMPTY_FIGURES)
def test_empty_period_says_so_and_hides_the_axes(make) -> None:  # type: ignore[no-untyped-def]
    fig = make()
    assert charts.is_empty(fig)
    assert not fig.data
    notes = [a.text for a in fig.layout.annotations]
    assert len(notes) == 1 and notes[0].startswith("No ")
    assert fig.layout.xaxis.visible is False and fig.layout.yaxis.visible is False
    assert fig.layout.title.text


def test_empty_flow_uses_the_standard_message() -> None:
    assert charts.flow_by_priority(None).layout.annotations[0].text == charts.NO_DATA == "No tickets in this period"


@pytest.mark.parametrize("name", list(all_figures()))
def test_backgrounds_are_transparent_and_the_font_colour_is_left_to_the_theme(name: str) -> None:
    fig = all_figures()[name]
    if name.startswith("weekly_"):
        assert fig.layout.paper_bgcolor == "white"  # the standalone HTML report is light
        return
    assert fig.layout.paper_bgcolor == "rgba(0,0,0,0)" and fig.layout.plot_bgcolor == "rgba(0,0,0,0)"
    assert fig.layout.font.color is None
    assert fig.layout.title.font.color is None


def test_bars_carry_the_period_and_key_for_the_queue_link() -> None:
    fig = charts.flow_by_priority(flow_frame())
    critical = fig.data[0]
    first = critical.customdata[0]
    assert first[:3] == [WEEKS[0].isoformat(), (WEEKS[0] + timedelta(days=7)).isoformat(), "CRITICAL"]


def test_periods_as_iso_weeks_and_timestamps() -> None:
    assert charts.period_start("2026-W47") == date(2026, 11, 16)
    assert charts.period_start(pd.Timestamp("2026-11-16 00:00")) == date(2026, 11, 16)
    assert charts.period_start("2026-11-16") == date(2026, 11, 16)
    flow = flow_frame().assign(period=lambda d: d["period"].map(lambda w: f"{w.isocalendar()[0]}-W{w.isocalendar()[1]:02d}"))
    fig = charts.flow_by_priority(flow)
    assert list(fig.data[0].x) == WEEKS


def test_names_from_users_are_not_template_code() -> None:
    flow = flow_frame()
    flow.loc[flow["category"] == "Hardware", "category"] = "<b>%{y}</b>"
    fig = charts.flow_by_category(flow)
    trace = next(t for t in fig.data if t.name == "<b>%{y}</b>")
    assert "<b>" not in trace.hovertemplate.split(":")[0] and "%{y}</b>" not in trace.hovertemplate


def test_weekly_figures_for_the_html_report() -> None:
    figs = charts.weekly_figures(report_dict())
    assert len(figs) >= 4 and all(isinstance(f, go.Figure) for f in figs)
    assert not any(charts.is_empty(f) for f in figs)
    prio = next(f for f in figs if "by priority" in f.layout.title.text)
    assert [t.name for t in prio.data] == ["Critical", "High", "Medium", "Low"]
    assert list(prio.data[0].y) == [2, 1]  # this week, previous week (no 4-week split given)
    empty = charts.weekly_figures({"week": "2026-W01"})
    assert all(charts.is_empty(f) for f in empty)


def test_a_chart_gives_its_plain_specification_and_the_same_figure() -> None:
    spec = charts.flow_by_priority.spec(flow_frame(), measure="created")
    assert isinstance(spec, dict) and set(spec) == {"data", "layout"}
    fig = charts.flow_by_priority(flow_frame(), measure="created")
    assert fig.to_dict()["data"] == go.Figure(spec, _validate=False).to_dict()["data"]
    assert charts.flow_by_priority.__doc__ and charts.flow_by_priority.__name__ == "flow_by_priority"


def test_the_report_file_writes_the_specifications_with_the_light_template_and_changes_nothing() -> None:
    report = {**report_dict(), "trend": {"flow": flow_frame().to_dict("records")}}
    specs = charts.weekly_specs(report)
    assert [s["layout"]["title"]["text"] for s in specs] == [f.layout.title.text for f in charts.weekly_figures(report)]
    white = pio.templates[charts.EXPORT_TEMPLATE].to_plotly_json()
    assert all(s["layout"]["template"] == white and s["layout"]["paper_bgcolor"] == "white" for s in specs)
    # A figure or a specification given for export (it may be cached and shared) is left as it was.
    spec = charts.week_headline_bars.spec(report)
    before = copy.deepcopy(spec)
    fig = charts.week_headline_bars(report)
    fig_before = fig.to_dict()
    assert charts.for_export(spec)["layout"]["template"] == white and spec == before
    assert charts.for_export(fig)["layout"]["template"] == white and fig.to_dict() == fig_before


def test_weekly_figures_include_trends_when_the_report_has_them() -> None:
    report = {**report_dict(), "trend": {"flow": flow_frame().to_dict("records"),
                                         "backlog": backlog_frame().to_dict("records"),
                                         "sla": sla_frame().to_dict("records")}}
    titles = [f.layout.title.text for f in charts.weekly_figures(report)]
    assert "Backlog at the end of each week" in titles and "SLA compliance" in titles


def test_a_category_keeps_its_colour_across_the_report_charts() -> None:
    flow = flow_frame()
    report = {**report_dict(), "created_by_category": {"Software": 9, "Hardware": 20, "Network": 3},
              "trend": {"flow": flow.to_dict("records")}}
    figs = charts.weekly_figures(report)
    week = next(f for f in figs if f.layout.title.text.startswith("Created in") and "category" in f.layout.title.text)
    trend = next(f for f in figs if f.layout.title.text == "Created per week, by category")
    week_colours = dict(zip(week.data[0].y, week.data[0].marker.color, strict=True))
    trend_colours = {t.name: t.marker.color for t in trend.data}
    for name in ("Software", "Hardware", "Network"):
        assert week_colours[name] == trend_colours[name]


def test_the_log_hours_axis_is_labelled_in_words() -> None:
    fig = charts.resolution_box(resolution_frame())
    assert fig.layout.yaxis.type == "log"
    labels = list(fig.layout.yaxis.ticktext)
    assert "1 h" in labels and "1 d" in labels
    assert all(any(u in t for u in ("min", "h", "d", "wk", "yr")) for t in labels)


def test_a_backlog_of_zeros_is_an_empty_state() -> None:
    fig = charts.backlog_line(pd.DataFrame({"period": WEEKS, "backlog_end": [0] * len(WEEKS)}))
    assert charts.is_empty(fig) and fig.layout.annotations[0].text == "No open tickets in this period"


def test_technicians_without_a_resolved_count_have_none() -> None:
    fig = charts.week_technician_bars({"by_technician": [{"technician": "Ann", "open": 3}]})
    assert [list(t.x) for t in fig.data] == [[3], [0]]


# --- the figures are built without Plotly's validation: a validated copy must be identical -------------------


def _trend_report() -> dict:
    return {**report_dict(), "trend": {"flow": flow_frame().to_dict("records"),
                                       "backlog": backlog_frame().to_dict("records"),
                                       "sla": sla_frame().to_dict("records")}}


@functools.cache
def every_figure() -> dict[str, go.Figure]:
    """Each builder on representative data, on edge cases and without data, and the weekly report's figures."""
    flow = flow_frame()
    sampled = resolution_frame()
    sampled.attrs["sampled"] = True
    unknown_capacity = workload_frame().astype({"capacity": "float64"})
    unknown_capacity.loc[1, "capacity"] = None
    named = flow.copy()
    named.loc[named["category"] == "Hardware", "category"] = "<b>%{y}</b> & co"
    figs = {
        **all_figures(),
        "priority_by_day": charts.flow_by_priority(flow.assign(period=flow["period"] + timedelta(days=1)),
                                                   grain="day"),
        "priority_missing_week": charts.flow_by_priority(flow[flow["period"] != WEEKS[2]], periods=WEEKS),
        "priority_as_names": charts.flow_by_priority(flow.assign(priority=flow["priority"].map(lambda p: Priority(p).name))),
        "category_grouped": charts.flow_by_category(flow, top=4, measure="resolved", colours={"Hardware": "#000000"}),
        "category_named_like_code": charts.flow_by_category(named),
        "backlog_gap": charts.backlog_line(pd.DataFrame({"period": WEEKS, "backlog_end": [1.0, None, 3, 4, 5, 6]}),
                                           grain="day"),
        "resolution_sampled": charts.resolution_box(sampled),
        "sla_no_target": charts.sla_trend(sla_frame(), target_pct=None, periods=[*WEEKS, WEEKS[-1] + timedelta(weeks=1)]),
        "workload_weights": charts.workload_bars(workload_frame(), weights={"CRITICAL": 10}),
        "workload_unknown_capacity": charts.workload_bars(unknown_capacity),
        "workload_no_capacity": charts.workload_bars(workload_frame().drop(columns=["capacity", "user_id"])),
        "closures_labelled": charts.closures_bar(pd.DataFrame({
            "reason": ["confirmed", "duplicate", "other"], "label": ["Confirmed by the user", "Duplicate", ""],
            "count": [5, 2, 1], "counts_as_work": [True, False, False]})),
        "week_categories_grouped": charts.week_category_bars(
            {"created_by_category": {c: i + 1 for i, c in enumerate(CATEGORIES)}}, top=5),
        "week_technicians_by_name": charts.week_technician_bars({"by_technician": {"Ann": {"open": 2, "resolved": 1}}}),
        "empty_weekly_technicians": charts.week_technician_bars({}),
        "empty_weekly_headline": charts.week_headline_bars({}),
        **{f"empty_{i}": make() for i, make in enumerate(EMPTY_FIGURES)},
        **{f"weekly_trend_{i}": f for i, f in enumerate(charts.weekly_figures(_trend_report()))},
        **{f"weekly_empty_{i}": f for i, f in enumerate(charts.weekly_figures({"week": "2026-W01"}))},
    }
    return figs


_PLAIN = {str, int, float, bool, type(None), date}


def _not_plain(value: object, path: str = "") -> list[str]:
    """Where the specification holds anything but dicts, lists and plain Python scalars (numpy, pandas ...)."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _not_plain(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _not_plain(v, f"{path}[{i}]")]
    return [] if type(value) in _PLAIN else [f"{path}: {type(value).__name__}"]


@pytest.mark.parametrize("name", list(every_figure()))
def test_plotly_validation_accepts_each_figure_and_changes_nothing(name: str) -> None:
    fig = every_figure()[name]
    assert type(fig) is go.Figure
    spec = fig.to_dict()
    assert go.Figure(spec).to_dict() == spec  # raises on any invalid property or value
    assert not _not_plain(spec), _not_plain(spec)[:5]


def test_the_figures_cover_every_builder() -> None:
    titles = {f.layout.title.text for f in every_figure().values()}
    for title in ("Created per week, by priority", "Created per week, by category", "Backlog at the end of each week",
                  "Resolution time by priority", "SLA compliance", "Workload against capacity", "Closures by reason",
                  "Age of open tickets", "Created in 2026-W47 by priority", "Created in 2026-W47 by category",
                  "2026-W47 against the previous week and the 4-week average",
                  "Per technician: open at the end of the week and resolved in it"):
        assert title in titles
    assert sum(charts.is_empty(f) for f in every_figure().values()) >= len(EMPTY_FIGURES) + 2
