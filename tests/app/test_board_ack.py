"""AppTest: the workload board's acknowledgement line agrees with the per-person "Not acknowledged" column."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from lib import tickets
from lib.db import transaction
from lib.directory import RequesterInput
from lib.tickets import TicketDraft
from tests.app.conftest import page_test

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(autouse=True)
def fresh_caches() -> None:
    st.cache_data.clear()  # each test has its own database; the caches are keyed on its change marker


def new_ticket(engine, actor: int, *, priority: str, assignee: int, now: datetime) -> None:
    with transaction(engine) as s:
        tickets.create_ticket(s, actor=actor, now=now, draft=TicketDraft(
            summary=f"{priority} network trouble", category="Networking", priority=priority, channel="phone",
            requester=RequesterInput(name="Ann Smith", email="ann@example.com"), assignee_id=assignee))


def board_text(at: AppTest) -> str:
    return "\n".join(str(x.value) for x in [*at.markdown, *at.success, *at.caption])


def tom_row(at: AppTest) -> dict:
    frame = next(d.value for d in at.dataframe if "Not acknowledged" in d.value.columns)
    return frame[frame["Technician"] == "Tom Tech"].iloc[0].to_dict()


def test_waiting_but_not_late_is_said_and_counted_alike(clock, app_env, staff_app) -> None:
    for _ in range(2):
        new_ticket(app_env, staff_app.lead, priority="Low", assignee=staff_app.tech, now=clock.now())
    at = page_test("board.py", "lead")
    at.run()
    assert not at.exception, at.exception
    text = board_text(at)
    assert "No High or Critical ticket is at risk, breached or past its acknowledgement target." in text
    assert "2 tickets waiting for an acknowledgement, none past its target (so none is flagged)." in text
    assert tom_row(at)["Not acknowledged"] == "2"


def test_late_high_ticket_is_flagged_and_counted(clock, app_env, staff_app) -> None:
    new_ticket(app_env, staff_app.lead, priority="Low", assignee=staff_app.tech, now=clock.now())
    new_ticket(app_env, staff_app.lead, priority="High", assignee=staff_app.tech, now=clock.now() - timedelta(days=5))
    at = page_test("board.py", "lead")
    at.run()
    assert not at.exception, at.exception
    text = board_text(at)
    assert "2 tickets waiting for an acknowledgement: 1 past its target (all High or Critical, so flagged above)." \
        in text
    assert tom_row(at)["Not acknowledged"] == "2 (1 late)"
    assert any("Flagged to you (1)" in h.value for h in at.subheader)
