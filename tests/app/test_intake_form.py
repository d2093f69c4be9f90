"""AppTest: the intake form shows every problem at once (at each field and listed by the button), in the words of
its labels; a long summary is kept and explained, never cut; a channel is always chosen; nothing typed is lost."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from lib.db import transaction
from lib.models import Ticket
from lib.ui import intake_data
from tests.app.conftest import page_test

pytestmark = pytest.mark.filterwarnings("ignore")
LONG = "Outlook freezes when opening shared calendars " * 6  # 276 characters (275 once the end space is gone)


def form() -> AppTest:
    at = page_test("intake.py", "tech")
    at.run()
    assert not at.exception, at.exception
    return at


def submit(at: AppTest) -> AppTest:
    at.button(key="in_submit").click().run()
    assert not at.exception, at.exception
    return at


def errors(at: AppTest) -> list[str]:
    return [str(e.value) for e in at.error]


def summary_box(at: AppTest) -> str:
    found = [e for e in errors(at) if e.startswith("**The ticket was not created")]
    assert len(found) == 1, errors(at)
    return found[0]


def tickets_count(engine) -> int:
    with transaction(engine) as s:
        return s.scalar(select(func.count()).select_from(Ticket)) or 0


def test_every_problem_at_once_at_its_field_and_by_the_button(app_env, staff_app) -> None:
    at = form()
    at.text_area(key="in_description").input("Started this morning")
    submit(at)
    box = summary_box(at)
    assert box.startswith("**The ticket was not created: 3 things to fix**")
    assert "- **Requester**: search for a contact and pick one, or choose **New contact**" in box
    assert "- **Summary**: is required" in box and "- **Category**: choose a category" in box
    # each at its field too, and the list is the last error on the page (by the button)
    assert "Summary: is required" in errors(at) and "Category: choose a category" in errors(at)
    assert any(e.startswith("Requester: search for a contact") for e in errors(at))
    assert errors(at)[-1] == box
    assert at.text_area(key="in_description").value == "Started this morning"
    assert tickets_count(app_env) == 0


def test_a_long_summary_is_kept_and_explained(app_env, staff_app) -> None:
    at = form()
    at.text_input(key="in_summary").input(LONG).run()
    assert at.text_input(key="in_summary").value == LONG  # nothing dropped
    message = "**Summary** is limited to 200 characters and this one has 275 (75 too many)."
    assert any(e.startswith(message) for e in errors(at)), errors(at)
    at.radio(key="in_req_mode").set_value("New contact").run()
    at.text_input(key="in_req_name").input("Ann Smith")
    at.text_input(key="in_req_email").input("ann@example.com")
    at.selectbox(key="in_category").select_index(0)
    submit(at)
    assert "- **Summary**: is limited to 200 characters and this one has 275" in summary_box(at)
    assert at.text_input(key="in_summary").value == LONG
    assert tickets_count(app_env) == 0
    # shortened: created, and the form is empty again
    at.text_input(key="in_summary").input(LONG[:180]).run()
    assert not any("limited to 200" in e for e in errors(at))
    assert any(c.value == "180 / 200 characters" for c in at.caption)
    submit(at)
    assert tickets_count(app_env) == 1
    assert any("created" in str(s.value) for s in at.success)


def test_without_a_channel_the_message_uses_the_labels(app_env, staff_app) -> None:
    at = form()
    assert at.segmented_control(key="in_channel").value == "phone"
    at.segmented_control(key="in_channel").set_value(None).run()
    at.text_input(key="in_summary").input("Printer offline")
    submit(at)
    box = summary_box(at)
    assert "- **How did it reach us?**: choose one: Phone, Walk-in, On behalf of a user, E-mail" in box
    assert "walk_in" not in "\n".join(errors(at)) and "on_behalf" not in "\n".join(errors(at))
    assert at.text_input(key="in_summary").value == "Printer offline"


def test_explain_orders_and_words_the_service_errors() -> None:
    explained = intake_data.explain(
        {"category": "is required", "summary": "is required", "channel": "unknown channel ''; use one of email, "
         "phone, walk_in", "requester_email": "'x' is not an e-mail address"}, summary="", picking_contact=False)
    assert list(explained) == ["channel", "requester_email", "summary", "category"]
    assert intake_data.problem_lines(explained)[:2] == [
        "**How did it reach us?**: choose one: Phone, Walk-in, On behalf of a user, E-mail",
        "**E-mail**: 'x' is not an e-mail address"]
    assert intake_data.summary_too_long("x" * 200) is None
    assert intake_data.summary_too_long("a  " * 100) is None  # 199 characters once the spaces are collapsed
