"""AppTest for the Metrics and Weekly report pages on a seeded database: who may open them, tiles and
charts, filters, empty periods, queue links, and the report's downloads."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from sqlalchemy.engine import Engine
from streamlit.testing.v1 import AppTest

from lib.metrics.charts import PRIORITY_COLOURS, PRIORITY_ORDER
from lib.seed.demo import seed_demo
from lib.ui.metrics_view import SECTIONS
from lib.workflow import Priority
from tests.app.conftest import page_test
from tests.conftest import Staff

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture
def seeded(app_env: Engine, staff_app: Staff) -> Iterator[Engine]:
    seed_demo(app_env, tickets=500, years=0.5, seed=11, demo_password="correct horse battery")
    yield app_env


def run(page: str, who: str, **kw) -> AppTest:  # type: ignore[no-untyped-def]
    at = page_test(page, who, **kw)
    at.run(timeout=60)
    assert not at.exception, at.exception
    return at


def specs(at: AppTest) -> list[dict]:
    """The figures the page drew (lib.ui.plotly_chart: a component whose data carries the figure's JSON)."""
    return [json.loads(json.loads(c.proto.json)["figure"]) for c in at.get("bidi_component")
            if c.proto.component_name == "helpdesk_plotly_chart"]


def by_title(at: AppTest) -> dict[str, dict]:
    return {s["layout"]["title"]["text"]: s for s in specs(at)}


def links(at: AppTest) -> str:
    return "\n".join(str(m.value) for m in at.markdown)


@pytest.mark.parametrize("page", ["metrics.py", "report.py"])
def test_technicians_are_refused(app_env, staff_app, page: str) -> None:
    at = run(page, "tech")
    assert any("senior technician or above" in e.value for e in at.error)
    assert not at.get("plotly_chart") and not at.get("bidi_component") and not at.metric


@pytest.mark.parametrize("who", ["senior", "lead"])
def test_metrics_page_shows_tiles_and_charts(seeded, who: str) -> None:
    at = run("metrics.py", who)
    labels = [m.label for m in at.metric]
    for label in ("Created", "Resolved", "Closed", "Open at the end", "Resolution, median", "SLA response met"):
        assert label in labels
    charts = by_title(at)
    # The page opens on its first section: its two charts only (the others are not worked out, nor sent).
    assert [t.label for t in at.tabs] == list(SECTIONS)
    assert set(charts) == {"Created per week, by priority", "Created per week, by category"}
    prio = charts["Created per week, by priority"]
    assert [t["name"] for t in prio["data"]] == [p.label for p in PRIORITY_ORDER]
    assert [t["marker"]["color"] for t in prio["data"]] == [PRIORITY_COLOURS[p] for p in PRIORITY_ORDER]
    assert prio["layout"]["yaxis"]["title"]["text"] == "Tickets per week"
    assert len(prio["data"][0]["x"]) == 12  # the last 12 weeks by default, this one (so far) included
    # The tile and the chart count the same tickets.
    created = next(m for m in at.metric if m.label == "Created")
    assert int(created.value.replace(",", "")) == sum(sum(t["y"]) for t in prio["data"])
    at.session_state["section"] = "Response, resolution and SLA"
    at.run()
    box = by_title(at)["Resolution time by priority"]
    for trace in box["data"]:
        colour = trace["marker"]["color"]
        assert colour in PRIORITY_COLOURS.values()
        assert colour == PRIORITY_COLOURS[Priority[trace["x"][0].upper()]]


SECTION_CHARTS = {
    "Volume": {"Created per week, by priority", "Created per week, by category"},
    "Backlog and closures": {"Backlog at the end of each week", "Closures by reason"},
    "Response, resolution and SLA": {"Resolution time by priority", "SLA compliance"},
    "Team": {"Workload against capacity", "Age of open tickets"},
    "Repeat issues": set(),
}


def test_each_section_draws_its_own_charts_only(seeded) -> None:
    assert set(SECTION_CHARTS) == set(SECTIONS)
    at = run("metrics.py", "lead")
    tiles = [m.value for m in at.metric]
    for section, titles in SECTION_CHARTS.items():
        at.session_state["section"] = section  # what a click on the tab sets
        at.run()
        assert not at.exception, at.exception
        assert set(by_title(at)) == titles, section
        assert [m.value for m in at.metric] == tiles  # the tiles above the sections stay
    assert len(at.dataframe) == 1  # "Repeat issues": its table (the seeded desk has repeats)
    at.session_state["section"] = "Response, resolution and SLA"
    at.run()
    assert [str(v) for v in at.dataframe[0].value["Measure"]][:2] == ["Created → acknowledged",
                                                                      "Created → first response"]


def test_the_count_choice_is_kept_while_another_section_is_open(seeded) -> None:
    at = run("metrics.py", "lead")
    at.segmented_control(key="m_measure").set_value("resolved").run()
    assert "Resolved per week, by priority" in by_title(at)
    at.session_state["section"] = "Team"
    at.run()
    at.session_state["section"] = "Volume"
    at.run()
    assert not at.exception
    assert at.segmented_control(key="m_measure").value == "resolved"
    assert "Resolved per week, by priority" in by_title(at)


@pytest.mark.parametrize("section", ["Team", "Backlog and closures"])
def test_a_shared_link_opens_its_section(seeded, section: str) -> None:
    at = run("metrics.py", "lead", query={"section": section})
    assert at.session_state["section"] == section
    assert set(by_title(at)) == SECTION_CHARTS[section]


def test_an_unknown_section_in_the_address_opens_the_first(seeded) -> None:
    at = run("metrics.py", "lead", query={"section": "No such section"})
    assert set(by_title(at)) == SECTION_CHARTS["Volume"]


def test_tiles_link_to_the_filtered_queue(seeded) -> None:
    at = run("metrics.py", "lead")
    text = links(at)
    assert "/?view=All+open" in text and "/?view=All+tickets" in text and "created_from=" in text
    at.multiselect(key="m_prios").set_value([int(Priority.HIGH)]).run()
    text = links(at)
    assert "view=All+open&priority=HIGH" in text


def test_filters_narrow_every_chart(seeded) -> None:
    at = run("metrics.py", "lead")
    at.multiselect(key="m_prios").set_value([int(Priority.CRITICAL)]).run()
    assert not at.exception
    prio = by_title(at)["Created per week, by priority"]
    totals = {t["name"]: sum(t["y"]) for t in prio["data"]}
    assert totals["High"] == totals["Medium"] == totals["Low"] == 0


def test_an_empty_period_says_so(seeded) -> None:
    at = run("metrics.py", "lead")
    at.date_input(key="m_range").set_value((date(2001, 1, 1), date(2001, 3, 31))).run()
    assert not at.exception
    prio = by_title(at)["Created per week, by priority"]
    assert prio["layout"]["annotations"][0]["text"] == "No tickets in this period"
    assert prio["layout"]["xaxis"]["visible"] is False
    assert not prio.get("data")


def test_day_grain(seeded) -> None:
    from lib.ui.metrics_view import weeks_to_date

    at = run("metrics.py", "lead")
    at.segmented_control(key="m_grain").set_value("day").run()
    prio = by_title(at)["Created per day, by priority"]
    assert prio["layout"]["yaxis"]["title"]["text"] == "Tickets per day"
    start, end = weeks_to_date(12)  # the default: 11 full weeks and this one up to today (the test clock's Tuesday)
    assert len(prio["data"][0]["x"]) == (end - start).days + 1 == 7 * 11 + 2


def test_a_selected_bar_becomes_a_queue_link(seeded) -> None:
    from lib.ui import metrics_view as mv

    f = mv.Filters(*mv.last_full_weeks(12))
    flow = _flow(f)
    week = f.periods()[3]
    point = {"customdata": [week.isoformat(), (week + timedelta(days=7)).isoformat(), "HIGH", 0]}
    n, url = mv.flow_selection([point], flow, f, by="priority", names_to_ids={})
    expected = flow[(flow["priority"] == int(Priority.HIGH)) &
                    (flow["period"].map(lambda p: mv.charts.period_start(p)) == week)]["created"].sum()
    assert n == expected
    assert url == (f"/?view=All+tickets&priority=HIGH&created_from={week.isoformat()}"
                   f"&created_to={(week + timedelta(days=7)).isoformat()}")


def _flow(f):  # type: ignore[no-untyped-def]
    from lib.metrics import measures
    from lib.ui import core

    with core.reading() as s:
        return measures.flow(s, f.metric_filter())


def test_queue_opens_with_the_linked_filters(app_env, staff_app) -> None:
    at = run("queue.py", "lead", query={"view": "All open", "priority": "HIGH", "category": "2",
                                         "assignee": str(staff_app.tech), "channel": "email"})
    assert at.session_state["queue_priorities"] == ["HIGH"]
    assert at.session_state["queue_categories"] == [2]
    assert at.session_state["queue_assignees"] == [staff_app.tech]
    assert at.session_state["queue_channels"] == ["email"]


@pytest.mark.parametrize("who", ["senior", "lead"])
def test_report_page_headlines_trends_and_three_downloads(seeded, who: str) -> None:
    from lib.ui.metrics_view import recent_weeks

    at = run("report.py", who)
    assert at.selectbox(key="r_week").value == recent_weeks(1)[0]  # the last full week
    labels = [m.label for m in at.metric]
    assert {"Created", "Resolved", "Closed", "Reopened", "Open at the end"} <= set(labels)
    assert any("4-week average" in c.value for c in at.caption)
    downloads = at.get("download_button")
    assert len(downloads) == 3
    names = sorted(d.proto.label for d in downloads)
    assert names == sorted(["CSV", "Excel (XLSX)", "HTML with charts"])
    titles = set(by_title(at))
    assert {"Created per week, by priority", "Backlog at the end of each week", "SLA compliance"} <= titles


def test_report_files_are_made_on_demand(seeded) -> None:
    from lib.ui import metrics_view as mv

    week = mv.recent_weeks(1)[0]
    csv = mv.report_file(week, "csv")
    xlsx = mv.report_file(week, "xlsx")
    html = mv.report_file(week, "html")
    assert csv and xlsx[:2] == b"PK"  # a zip container
    assert b"<html" in html[:2000].lower() and b"plotly" in html.lower()


def test_a_shared_link_opens_the_same_period(seeded) -> None:
    from lib.ui.metrics_view import last_full_weeks

    start, end = last_full_weeks(4)
    at = run("metrics.py", "lead", query={"from": start.isoformat(), "to": end.isoformat(), "grain": "day"})
    assert at.date_input(key="m_range").value == (start, end)
    prio = by_title(at)["Created per day, by priority"]
    assert len(prio["data"][0]["x"]) == 28


def test_a_shared_link_opens_the_same_week(seeded) -> None:
    from lib.ui.metrics_view import recent_weeks

    week = recent_weeks(3)[2]
    at = run("report.py", "lead", query={"week": week})
    assert at.selectbox(key="r_week").value == week


def test_a_selected_category_becomes_a_queue_link(seeded) -> None:
    from lib.ui import metrics_view as mv

    f = mv.Filters(*mv.last_full_weeks(12))
    flow = _flow(f)
    top = flow.groupby("category")["created"].sum().idxmax()
    cat_id = int(flow.loc[flow["category"] == top, "category_id"].iloc[0])
    weeks = f.periods()[:2]
    points = [{"customdata": [w.isoformat(), (w + timedelta(days=7)).isoformat(), top, 0]} for w in weeks]
    n, url = mv.flow_selection(points, flow, f, by="category", names_to_ids={})
    starts = flow["period"].map(mv.charts.period_start)
    assert n == flow[(flow["category"] == top) & starts.isin(weeks)]["created"].sum()
    assert f"category={cat_id}" in url and f"created_from={weeks[0].isoformat()}" in url
