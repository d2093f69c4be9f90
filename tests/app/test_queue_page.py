"""The queue page: filters in the URL (a reload keeps them, bad values get a note), saved views, word search,
the CSV download, the wide table's columns and the phone cards."""

from __future__ import annotations

import csv
import io

from lib import saved_views, tickets
from lib.db import read_session, transaction
from lib.directory import RequesterInput
from lib.tickets import TicketDraft
from tests.app.conftest import page_test


def make_tickets(engine, staff) -> dict[str, int]:  # type: ignore[no-untyped-def]
    ids = {}
    with transaction(engine) as s:
        for key, summary, priority in (("paging", "Ticket 07 paging fails", "High"),
                                       ("printer", "Printer jams on tray 2", "Low"),
                                       ("vpn", "VPN drops every hour", "Critical")):
            ids[key] = tickets.create_ticket(s, actor=staff.tech2, draft=TicketDraft(
                summary=summary, category="Printing", priority=priority, channel="walk_in",
                requester=RequesterInput(name="Cy Young", email="cy@example.com"))).id
    return ids


def url(at) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    return {k: at.query_params[k] if isinstance(at.query_params[k], list) else [at.query_params[k]]
            for k in at.query_params}


def test_the_url_sets_the_filters_and_a_reload_keeps_them(app_env, staff_app) -> None:
    ids = make_tickets(app_env, staff_app)
    query = {"view": "all", "priority": "High", "q": "paging 07", "sort": "newest"}
    at = page_test("queue.py", "tech", query=query)
    at.run()
    assert not at.exception, at.exception
    assert at.segmented_control(key="queue_view").value == "All tickets"
    assert at.multiselect(key="queue_priorities").value == ["HIGH"]
    assert at.text_input(key="queue_text").value == "paging 07"
    assert at.selectbox(key="queue_sort").value == "Newest first"
    frame = at.dataframe[0].value
    assert list(frame["Summary"]) == ["Ticket 07 paging fails"]
    assert list(frame.columns) == ["Ticket", "Summary", "Status", "Priority", "Requester", "Assignee", "Age",
                                   "Due / SLA", "Open by"]
    assert url(at) == {k: [v] for k, v in query.items()}
    # a reload: a new session with the same URL shows the same ticket
    again = page_test("queue.py", "tech", query=query)
    again.run()
    assert list(again.dataframe[0].value["Ticket"]) == [f"/ticket?id={ids['paging']}#HD-{ids['paging']:06d}"]


def test_changing_a_filter_writes_the_url(app_env, staff_app) -> None:
    make_tickets(app_env, staff_app)
    at = page_test("queue.py", "lead")
    at.run()
    assert url(at) == {}  # the lead's default: all open, no filter
    at.multiselect(key="queue_priorities").set_value(["CRITICAL", "LOW"]).run()
    at.text_input(key="queue_text").set_value("drops vpn").run()
    assert not at.exception, at.exception
    assert url(at) == {"priority": ["Critical", "Low"], "q": ["drops vpn"]}
    assert list(at.dataframe[0].value["Summary"]) == ["VPN drops every hour"]
    at.segmented_control(key="queue_view").set_value("Unassigned").run()
    assert url(at)["view"] == ["unassigned"]


def test_bad_url_values_get_a_note_not_an_error(app_env, staff_app) -> None:
    make_tickets(app_env, staff_app)
    at = page_test("queue.py", "lead", query={"view": "bogus", "priority": "urgent", "page": "-1", "category": "999",
                                               "status": "new"})
    at.run()
    assert not at.exception, at.exception
    notes = " ".join(c.value for c in at.caption)
    assert "view" in notes and "urgent" in notes and "page" in notes and "category that does not exist" in notes
    assert at.multiselect(key="queue_statuses").value == ["new"]
    assert len(at.dataframe[0].value) == 3
    assert url(at) == {"status": ["new"]}  # the URL now says only what applies


def test_a_ticket_number_jumps_to_it(app_env, staff_app) -> None:
    ids = make_tickets(app_env, staff_app)
    at = page_test("queue.py", "tech", query={"q": f"HD-{ids['vpn']:06d}"})  # "My open": vpn is not mine
    at.run()
    assert not at.exception, at.exception
    assert list(at.dataframe[0].value["Summary"]) == ["VPN drops every hour"]
    assert any(f"HD-{ids['vpn']:06d}" in s.value for s in at.success)


def test_save_and_apply_a_view(app_env, staff_app) -> None:
    make_tickets(app_env, staff_app)
    at = page_test("queue.py", "tech", query={"view": "all", "q": "printer"})
    at.run()
    at.text_input(key="queue_save_name").set_value("Printers").run()
    at.button(key="queue_save").click().run()
    assert not at.exception, at.exception
    with read_session(app_env) as s:
        views = saved_views.list_views(s, user_id=staff_app.tech)
    assert [(v.name, v.params) for v in views] == [("Printers", {"view": ["all"], "q": ["printer"]})]
    at.text_input(key="queue_text").set_value("").run()
    assert len(at.dataframe[0].value) == 3
    at.button(key="queue_view_apply_0").click().run()
    assert not at.exception, at.exception
    assert at.text_input(key="queue_text").value == "printer"
    assert list(at.dataframe[0].value["Summary"]) == ["Printer jams on tray 2"]
    assert any("[Printers](/?view=all&q=printer)" in m.value for m in at.markdown)
    # a technician cannot share; the checkbox is the lead's
    assert not [c for c in at.checkbox if c.key == "queue_save_shared"]


def test_csv_download_holds_the_whole_view(app_env, staff_app, monkeypatch) -> None:
    make_tickets(app_env, staff_app)
    from lib.queries import QueueView
    from lib.queue_state import QueueState
    from lib.ui import queue_data

    text = queue_data.queue_csv(QueueState(view=QueueView.ALL, text="cy@example.com"), me=staff_app.tech)
    rows = list(csv.reader(io.StringIO(text)))
    assert len(rows) == 4 and rows[0][0] == "Ticket"
    at = page_test("queue.py", "tech", query={"view": "all"})
    at.run()
    assert [b for b in at.get("download_button") if b.proto.label == "CSV"]


def test_phone_cards_and_compact_counters_are_rendered(app_env, staff_app) -> None:
    ids = make_tickets(app_env, staff_app)
    at = page_test("queue.py", "tech", query={"view": "all", "sort": "oldest"})
    at.run()
    cards = [m.value for m in at.markdown if m.value.startswith("**[HD-")]
    assert cards[0] == f"**[HD-{ids['paging']:06d}](/ticket?id={ids['paging']})** Ticket 07 paging fails"
    assert len(cards) == 3
    assert any(":orange-badge[🟠 High] :gray-badge[New]" in m.value for m in at.markdown)
    assert any(m.value.startswith("🆕") and "**3**" in m.value for m in at.markdown)  # counters on one line
