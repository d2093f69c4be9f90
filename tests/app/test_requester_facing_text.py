"""What people read, on SQLite and PostgreSQL: bidirectional controls in summaries and requester names show as
visible markers (ticket page, queue, confirmation page), and a confirmation link answers once, then tells the
requester calmly that it was used, or that it belongs to an earlier resolution."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import streamlit as st
from sqlalchemy import update
from sqlalchemy.engine import Engine
from streamlit.testing.v1 import AppTest

from lib import confirm_links, tickets
from lib.config import get_settings
from lib.db import read_session, transaction
from lib.directory import RequesterInput
from lib.models import User
from lib.tickets import TicketDraft
from lib.ui.core import escape_md
from lib.workflow import EventKind
from tests.app.conftest import PAGES, page_test
from tests.conftest import Staff, awaiting_confirmation, make_staff

TRICK = "invoice\u202egnp.exe"
NAME = "Ann \u202eeoD"
MARKER = "⟦U+202E⟧"
STAFF_NAMES = ("Lena", "Sam", "Tom", "Tara", "Lead", "Senior", "Tech")


@pytest.fixture
def desk(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Engine, Staff]]:
    """The pages on a fresh database of either engine, with the staff the page tests log in as."""
    from streamlit.runtime.pages_manager import PagesManager

    original_init = PagesManager.__init__

    def init(self: PagesManager, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)
    monkeypatch.setenv("HELPDESK_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("HELPDESK_QUEUE_REFRESH_SECONDS", "0")
    get_settings.cache_clear()
    st.cache_data.clear()  # cached reads of an earlier test's database (same change marker) must not show here
    staff = make_staff(engine)
    with transaction(engine) as s:
        s.execute(update(User).where(User.id == staff.tech).values(username="tom"))
        s.execute(update(User).where(User.id == staff.lead).values(username="lena"))
    yield engine, staff
    get_settings.cache_clear()


def _ticket(engine: Engine, staff: Staff) -> int:
    with transaction(engine) as s:
        return tickets.create_ticket(s, actor=staff.tech, draft=TicketDraft(
            summary=TRICK, category="Software", priority="High", channel="email",
            requester=RequesterInput(name=NAME, email="ann@example.com"))).id


def _no_bidi(at: AppTest) -> None:
    shown = [str(getattr(e, "value", "")) for kind in ("title", "subheader", "markdown", "text", "caption", "error")
             for e in at.get(kind)]
    assert not any("\u202e" in s for s in shown), shown


def test_ticket_page_shows_the_marker(desk: tuple[Engine, Staff]) -> None:
    engine, staff = desk
    tid = _ticket(engine, staff)
    at = page_test("ticket.py", "tech", query={"id": str(tid)})
    at.run()
    assert not at.exception, at.exception
    assert any(h.value.endswith(" · " + escape_md(f"invoice{MARKER}gnp.exe")) for h in at.subheader)
    assert any(s.value.startswith("#### 👤 Requester") and escape_md(f"Ann {MARKER}eoD") in s.value
               for s in at.markdown)  # the requester panel
    _no_bidi(at)


def test_queue_shows_the_marker(desk: tuple[Engine, Staff]) -> None:
    engine, staff = desk
    _ticket(engine, staff)
    at = page_test("queue.py", "lead")
    at.session_state["queue_view"] = "All tickets"
    at.run()
    assert not at.exception, at.exception
    frame = at.dataframe[0].value
    assert list(frame["Summary"]) == [f"invoice{MARKER}gnp.exe"]
    assert list(frame["Requester"]) == [f"Ann {MARKER}eoD"]


def _link(engine: Engine, tid: int) -> str:
    with transaction(engine) as s:
        return confirm_links.issue(s, tickets.get_ticket(s, tid))


def _confirm_page(token: str) -> AppTest:
    at = AppTest.from_file(str(PAGES / "confirm.py"), default_timeout=30)
    at.query_params["t"] = token
    return at


def test_confirmation_page_shows_the_marker(desk: tuple[Engine, Staff]) -> None:
    engine, staff = desk
    tid = awaiting_confirmation(engine, staff, summary=TRICK)
    at = _confirm_page(_link(engine, tid))
    at.run()
    assert not at.exception, at.exception
    assert any(escape_md(f"invoice{MARKER}gnp.exe") in m.value for m in at.markdown)
    _no_bidi(at)


def _outcomes(engine: Engine, tid: int) -> int:
    from lib.queries import timeline

    with read_session(engine) as s:
        return sum(e.kind in (EventKind.CONFIRMED.value, EventKind.REOPENED.value) for e in timeline(s, tid))


@pytest.mark.parametrize("second", ["yes", "no"])
def test_second_submission_from_an_open_page_is_told_calmly(desk: tuple[Engine, Staff], second: str) -> None:
    """A double click, or the link open in two tabs: both pages rendered, the first press records, the second
    gets a message for the requester (when it was used, where the ticket stands), no exception, no staff name."""
    engine, staff = desk
    tid = awaiting_confirmation(engine, staff)
    token = _link(engine, tid)
    first, other = _confirm_page(token), _confirm_page(token)
    first.run()
    other.run()
    next(b for b in first.button if "Yes" in b.label).click().run()
    assert any("Thank you" in s.value for s in first.success)
    if second == "no":
        other.text_area(key="confirm_comment").input("It drops again")
    next(b for b in other.button if ("Yes" if second == "yes" else "No") in b.label).click().run()
    assert not other.exception, other.exception
    errors = [e.value for e in other.error]
    assert any(e.startswith("This link was already used on ") and "confirmed as fixed" in e for e in errors), errors
    assert not any(name in e for e in errors for name in STAFF_NAMES), errors
    assert _outcomes(engine, tid) == 1


def test_link_from_an_earlier_resolution_on_the_page(desk: tuple[Engine, Staff]) -> None:
    engine, staff = desk
    tid = awaiting_confirmation(engine, staff)
    old = _link(engine, tid)
    with transaction(engine) as s:
        t = tickets.get_ticket(s, tid)
        t = tickets.reopen(s, actor=staff.tech, ticket_id=tid, expected_version=t.version, reason="Drops again")
        t = tickets.resolve(s, actor=staff.tech, ticket_id=tid, expected_version=t.version,
                            resolution_notes="Replaced the access point")
        tickets.request_confirmation(s, actor=staff.tech, ticket_id=tid, expected_version=t.version)
    at = _confirm_page(old)
    at.run()
    assert not at.exception, at.exception
    assert any("earlier resolution" in e.value and "newest" in e.value for e in at.error)
    assert not at.button  # nothing to press
    assert _outcomes(engine, tid) == 1  # the technician's reopening only
