"""The Admin page's "Add a person" form: empty again after a person is created, kept as typed when refused."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from lib.db import transaction
from lib.models import User
from tests.app.conftest import page_test

pytestmark = pytest.mark.filterwarnings("ignore")

PASSWORD = "a long enough password 1"


def fill(at, username: str, name: str, email: str, capacity: int = 7) -> None:  # type: ignore[no-untyped-def]
    at.text_input(key="nu_username").input(username)
    at.text_input(key="nu_name").input(name)
    at.text_input(key="nu_email").input(email)
    at.selectbox(key="nu_role").set_value("senior")
    at.number_input(key="nu_capacity").set_value(capacity)
    at.text_input(key="nu_pw").input(PASSWORD)


def submit(at):  # type: ignore[no-untyped-def]
    next(b for b in at.button if b.label == "Create account").click().run()
    assert not at.exception, at.exception
    return at


def test_the_form_is_empty_after_a_creation(app_env, staff_app) -> None:
    at = page_test("admin.py", "lead")
    at.run()
    fill(at, "ann", "Ann Analyst", "ann@example.com")
    submit(at)
    with transaction(app_env) as s:
        assert s.scalar(select(User.name).where(User.username == "ann")) == "Ann Analyst"
    for key in ("nu_username", "nu_name", "nu_email", "nu_pw"):
        assert at.text_input(key=key).value == "", key
    assert at.number_input(key="nu_capacity").value == 10
    assert at.selectbox(key="nu_role").value == "technician"
    assert not at.warning  # no "default value and Session State" warning

    # A second person from the empty form: the first one's details are not carried over.
    fill(at, "bob", "Bob Builder", "bob@example.com", capacity=3)
    submit(at)
    with transaction(app_env) as s:
        assert s.scalar(select(User.email).where(User.username == "bob")) == "bob@example.com"
        assert s.scalar(select(User.capacity).where(User.username == "bob")) == 3
    assert at.text_input(key="nu_username").value == ""


def test_a_refused_person_keeps_what_was_typed(app_env, staff_app) -> None:
    at = page_test("admin.py", "lead")
    at.run()
    fill(at, "tom", "Another Tom", "tom2@example.com")  # "tom" is taken
    submit(at)
    assert at.text_input(key="nu_username").value == "tom"
    assert at.text_input(key="nu_name").value == "Another Tom"
    assert at.text_input(key="nu_email").value == "tom2@example.com"
    assert at.number_input(key="nu_capacity").value == 7
    assert any("username" in e.value for e in at.error)
