"""The queue page with a control character in its search text: a warning naming the character, the typed text
kept in the search box, no exception; from a link's ``?text=`` too."""

from __future__ import annotations

from lib import tickets
from lib.db import transaction
from lib.directory import RequesterInput
from lib.tickets import TicketDraft
from tests.app.conftest import page_test


def make_tickets(engine, staff) -> None:  # type: ignore[no-untyped-def]
    with transaction(engine) as s:
        for summary in ("Printer jams on tray 2", "VPN drops every hour"):
            tickets.create_ticket(s, actor=staff.tech2, draft=TicketDraft(
                summary=summary, category="Printing", priority="Low", channel="walk_in",
                requester=RequesterInput(name="Cy", email="cy@example.com")))


def test_queue_warns_about_a_nul_and_keeps_the_text(app_env, staff_app) -> None:
    make_tickets(app_env, staff_app)
    at = page_test("queue.py", "tech")
    at.session_state["queue_view"] = "All tickets"
    at.session_state["queue_text"] = "printer\x00"
    at.run()
    assert not at.exception, at.exception
    warnings = [w.value for w in at.warning]
    assert any("Search text contains a control character (U+0000); remove it and try again." in w
               for w in warnings), warnings
    assert not at.dataframe  # no list that ignores the filter
    box = at.text_input(key="queue_text")
    assert box.value == "printer\x00"
    box.set_value("printer").run()  # fixed: the list comes back filtered
    assert not at.exception
    assert not any("control character" in w.value for w in at.warning)
    assert at.dataframe and len(at.dataframe[0].value) == 1


def test_queue_link_with_a_control_character(app_env, staff_app) -> None:
    make_tickets(app_env, staff_app)
    at = page_test("queue.py", "tech", query={"view": "All tickets", "text": "vpn\x1b"})
    at.run()
    assert not at.exception, at.exception
    assert any("(U+001B)" in w.value for w in at.warning)
    assert at.text_input(key="queue_text").value == "vpn\x1b"
