"""AppTest: where the Metrics and Weekly report pages open. A desk on its first day sees its tickets (this week so
far), a desk with none an explanation instead of zero charts; the report opens on the last full week when it had
tickets. The test clock's today is Tuesday 1 December 2026 (ISO week 2026-W49)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from lib import tickets
from lib.db import transaction
from lib.directory import RequesterInput
from lib.tickets import TicketDraft
from lib.ui import metrics_view as mv
from tests.app.conftest import page_test

pytestmark = pytest.mark.filterwarnings("ignore")
TODAY = date(2026, 12, 1)


@pytest.fixture(autouse=True)
def fresh_caches() -> None:
    st.cache_data.clear()  # each test has its own database; the caches are keyed on its change marker


def new_ticket(engine, actor: int, now: datetime) -> None:
    with transaction(engine) as s:
        tickets.create_ticket(s, actor=actor, now=now, draft=TicketDraft(
            summary="Printer offline", category="Printing", priority="Medium", channel="phone",
            requester=RequesterInput(name="Ann Smith", email="ann@example.com")))


def run(page: str) -> AppTest:
    at = page_test(page, "lead")
    at.run(timeout=60)
    assert not at.exception, at.exception
    return at


def texts(at: AppTest) -> str:
    return "\n".join(str(x.value) for x in [*at.info, *at.markdown, *at.caption])


def tile(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_the_periods(clock) -> None:
    assert mv.local_today() == TODAY
    assert mv.weeks_to_date(12) == (date(2026, 9, 14), TODAY)  # 11 full weeks and this one so far
    assert mv.current_week() == "2026-W49"
    assert mv.report_weeks(3) == ["2026-W49", "2026-W48", "2026-W47", "2026-W46"]
    assert mv.week_has_tickets({"created": 0, "backlog_end": 2.0})
    assert not mv.week_has_tickets({"created": 0, "resolved": None, "backlog_end": 0})


@pytest.mark.parametrize("page", ["metrics.py", "report.py"])
def test_a_desk_without_tickets_is_told_why_there_is_nothing(app_env, staff_app, page: str) -> None:
    at = run(page)
    assert "No tickets yet, so nothing to measure." in texts(at)
    assert "New ticket" in texts(at)
    assert not at.get("bidi_component") and not at.metric  # no zero charts, no zero tiles


def test_metrics_on_the_first_day_show_the_first_tickets(clock, app_env, staff_app) -> None:
    new_ticket(app_env, staff_app.tech, clock.now() - timedelta(minutes=30))
    new_ticket(app_env, staff_app.tech, clock.now() - timedelta(minutes=20))
    at = run("metrics.py")
    assert at.date_input(key="m_range").value == (date(2026, 9, 14), TODAY)
    assert tile(at, "Created") == "2"
    assert tile(at, "Open at the end") == "2"


def test_report_of_a_new_desk_opens_on_this_week_and_says_it_is_not_over(clock, app_env, staff_app) -> None:
    new_ticket(app_env, staff_app.tech, clock.now() - timedelta(minutes=30))
    at = run("report.py")
    assert at.selectbox(key="r_week").value == "2026-W49"
    assert "The week is not over" in texts(at)
    assert tile(at, "Created") == "1"


def test_report_opens_on_the_last_full_week_when_it_had_tickets(clock, app_env, staff_app) -> None:
    new_ticket(app_env, staff_app.tech, clock.now() - timedelta(days=5))  # Thursday of 2026-W48
    at = run("report.py")
    assert at.selectbox(key="r_week").value == "2026-W48"
    assert "The week is not over" not in texts(at)
    assert tile(at, "Created") == "1"
    at.selectbox(key="r_week").set_value("2026-W49").run()
    assert not at.exception, at.exception
    assert "**The week is not over**: these are its numbers up to today, Tue 01 Dec." in texts(at)  # one still open
