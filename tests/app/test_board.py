"""AppTest: the lead's workload board (access, flags, who is overloaded and why, reassignment, settings),
and assignment suggestions on the intake and ticket pages."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import streamlit as st
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from lib import acknowledge, assignment, tickets
from lib.db import transaction
from lib.directory import RequesterInput
from lib.models import Category, Ticket, TicketEvent, User, UserSkill
from lib.tickets import TicketDraft
from lib.workflow import EventKind, Priority
from tests.app.conftest import page_test

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(autouse=True)
def fresh_caches() -> None:
    st.cache_data.clear()  # each test has its own database; the caches are keyed on its change marker


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [t.value for t in at.title] + [e.value for e in at.error]
    parts += [w.value for w in at.warning] + [i.value for i in at.info] + [s.value for s in at.success]
    parts += [c.value for c in at.caption] + [h.value for h in at.subheader]
    return "\n".join(str(p) for p in parts).replace("\\", "")  # user text is shown Markdown-escaped


def new_ticket(engine, actor: int, *, priority: str = "Low", assignee: int | None = None,
               category: str = "Networking", now: datetime | None = None) -> int:
    with transaction(engine) as s:
        return tickets.create_ticket(s, actor=actor, now=now, draft=TicketDraft(
            summary=f"{priority} network trouble", category=category, priority=priority, channel="phone",
            requester=RequesterInput(name="Ann Smith", email="ann@example.com"), assignee_id=assignee)).id


@pytest.fixture
def desk(clock, app_env, staff_app):
    """Tom: networking expert, overloaded (capacity 4); Tara: basic networking, idle; Sam: senior, no skill."""
    with transaction(app_env) as s:
        net = s.scalar(select(Category.id).where(Category.name == "Networking"))
        s.add(UserSkill(user_id=staff_app.tech, category_id=net, level=3))
        s.add(UserSkill(user_id=staff_app.tech2, category_id=net, level=1))
        s.get(User, staff_app.tech).capacity = 4
    old = clock.now() - timedelta(days=5)  # long enough for every target to pass, whatever today is
    ids = {
        "critical": new_ticket(app_env, staff_app.lead, priority="Critical", assignee=staff_app.tech, now=old),
        "high": new_ticket(app_env, staff_app.lead, priority="High", assignee=staff_app.tech, now=old),
        "low": new_ticket(app_env, staff_app.lead, priority="Low"),
    }
    return ids


@pytest.mark.parametrize("who", ["tech", "senior"])
def test_board_refuses_non_leads(app_env, staff_app, who: str) -> None:
    at = page_test("board.py", who)
    at.run()
    assert not at.exception
    assert any("team lead" in e.value for e in at.error)
    assert "Workload board" not in texts(at)


def test_board_is_in_the_leads_navigation_only() -> None:
    from lib.ui.pages import PAGES
    from lib.workflow import Role

    spec = next(p for p in PAGES if p.file == "board.py")
    assert (spec.url_path, spec.section, spec.min_role) == ("board", "Team", Role.LEAD)


def test_lead_sees_flags_and_who_is_overloaded_and_why(app_env, staff_app, desk) -> None:
    at = page_test("board.py", "lead")
    at.run()
    assert not at.exception, at.exception
    shown = texts(at)
    assert "Flagged to you (2)" in shown  # the Critical and the High, both breached and never acknowledged
    overloaded = [e.value.replace("\\", "") for e in at.error if "overloaded" in e.value]  # shown escaped
    assert overloaded == ["**Tom Tech** is overloaded — over capacity: load 7 of 4 = 1 critical + 1 high; "
                          "2 breached; 2 not acknowledged (2 past target)"]
    assert "1 unassigned" in shown
    assert "critical 4, high 3, medium 2, low 1" in shown
    flags, table = at.dataframe[0].value, at.dataframe[1].value
    assert list(flags["Priority"]) == ["Critical", "High"]
    assert table.iloc[0]["Technician"] == "Tom Tech" and table.iloc[0]["Load of capacity"] == "7 of 4"
    assert table.iloc[0]["Why"].startswith("over capacity: load 7 of 4")
    spec = at.get("plotly_chart")[0].proto.spec
    assert "Capacity" in spec and "Critical" in spec


def test_lead_reassigns_from_the_board_with_the_explanation(app_env, staff_app, desk) -> None:
    at = page_test("board.py", "lead")
    at.run()
    assert at.selectbox(key="board_source").value == staff_app.tech  # the most loaded first
    at.multiselect(key=f"board_tickets_{staff_app.tech}").set_value([desk["high"]]).run()
    target = at.selectbox(key=f"board_target_{desk['high']}")
    assert target.value == staff_app.tech2  # the only other one with the skill
    assert "Networking 1/3; load 0 of 10 = no open tickets; most skilled with room" in str(target.options[0])
    at.button(key="board_move").click().run()
    assert not at.exception, at.exception
    with transaction(app_env) as s:
        t = s.get(Ticket, desk["high"])
        assert t.assignee_id == staff_app.tech2
        ev = s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == t.id,
                                                 TicketEvent.kind == EventKind.ASSIGNED.value)
                       .order_by(TicketEvent.id.desc()).limit(1)).unique().one()
        assert ev.meta["explanation"] == "Networking 1/3; load 0 of 10 = no open tickets; most skilled with room"
        assert ev.body == "Reassigned from the workload board"


def test_lead_moves_several_tickets_each_with_its_reason(app_env, staff_app, desk) -> None:
    at = page_test("board.py", "lead")
    at.run()
    at.multiselect(key=f"board_tickets_{staff_app.tech}").set_value([desk["critical"], desk["high"]]).run()
    shown = texts(at)
    assert "Why, per ticket" in shown
    # each ticket is left out of its holder's load: without the Critical, Tom (3/3) has room for it
    assert "Critical network trouble: Networking 1/3; load 0 of 10 = no open tickets; less skilled than the best " \
           "with room (3/3)" in shown
    assert "High network trouble: Networking 1/3; load 0 of 10 = no open tickets; most skilled with room" in shown
    at.button(key="board_move").click().run()
    assert not at.exception, at.exception
    with transaction(app_env) as s:
        moved = list(s.scalars(select(TicketEvent).where(TicketEvent.kind == EventKind.ASSIGNED.value,
                                                         TicketEvent.new_value == "Tara Tech")).unique())
        assert sorted(e.ticket_id for e in moved) == sorted([desk["critical"], desk["high"]])
        reasons = {e.ticket_id: e.meta["explanation"] for e in moved}
    # worked out at the move, after the first one: Tara now holds the Critical, and Tom has room again
    assert reasons[desk["high"]] == "Networking 1/3; load 4 of 10 = 1 critical; less skilled than the best with " \
                                    "room (3/3)"


def test_lead_changes_the_settings(app_env, staff_app, desk) -> None:
    at = page_test("board.py", "lead")
    at.run()
    at.number_input(key="board_w_CRITICAL").set_value(1)
    at.toggle(key="board_auto").set_value(True)
    next(b for b in at.button if b.label == "Save settings").click().run()
    assert not at.exception, at.exception
    with transaction(app_env) as s:
        assert assignment.get_weights(s)[Priority.CRITICAL] == 1
        assert acknowledge.auto_reassign_enabled(s)
    table = at.dataframe[1].value  # Tom: 1 critical (now 1) + 1 high (3): full, no longer overloaded
    assert table.iloc[0]["Why"].startswith("at capacity: load 4 of 4 = 1 critical + 1 high")
    assert not [e for e in at.error if "overloaded" in e.value]


def test_intake_auto_assign_records_the_explanation(app_env, staff_app, desk) -> None:
    at = page_test("intake.py", "tech")
    at.run()
    at.radio(key="in_req_mode").set_value("New contact").run()
    at.text_input(key="in_req_name").input("Ann Smith")
    at.text_input(key="in_req_email").input("ann@example.com")
    at.text_input(key="in_summary").input("Switch port dead on floor 3")
    cats = at.selectbox(key="in_category")
    cats.select_index(cats.options.index("Networking")).run()
    at.checkbox(key="in_auto").check()
    at.button(key="in_submit").click().run()
    assert not at.exception, at.exception
    with transaction(app_env) as s:
        t = s.scalars(select(Ticket).order_by(Ticket.id.desc()).limit(1)).unique().one()
        assert t.summary == "Switch port dead on floor 3" and t.assignee_id == staff_app.tech2
        ev = s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == t.id,
                                                 TicketEvent.kind == EventKind.ASSIGNED.value)).unique().one()
    # Medium: the least loaded with the skill; Tom (the expert) is over capacity
    assert ev.meta["explanation"] == "Networking 1/3; load 0 of 10 = no open tickets; the only one with the skill and room"
    assert ev.body == "Assigned to the best candidate (asked by Tom Tech)"
    assert "Assigned to **Tara Tech**" in texts(at)


def test_intake_shows_suggestions_after_creation_and_a_lead_assigns_in_one_click(app_env, staff_app, desk) -> None:
    at = page_test("intake.py", "lead")
    at.run()
    at.radio(key="in_req_mode").set_value("New contact").run()
    at.text_input(key="in_req_name").input("Ann Smith")
    at.text_input(key="in_req_email").input("ann@example.com")
    at.text_input(key="in_summary").input("Wi-Fi slow in the canteen")
    cats = at.selectbox(key="in_category")
    cats.select_index(cats.options.index("Networking")).run()
    at.button(key="in_submit").click().run()
    assert not at.exception, at.exception
    shown = texts(at)
    assert "Suggested assignees" in shown
    assert "Networking 1/3; load 0 of 10 = no open tickets; the only one with the skill and room" in shown
    with transaction(app_env) as s:
        tid = s.scalar(select(Ticket.id).order_by(Ticket.id.desc()).limit(1))
    at.button(key=f"in_sugg_{tid}_{staff_app.tech2}").click().run()
    assert not at.exception, at.exception
    with transaction(app_env) as s:
        assert s.get(Ticket, tid).assignee_id == staff_app.tech2


def test_ticket_page_suggestions_and_one_click_assign(app_env, staff_app, desk) -> None:
    tid = desk["low"]
    at = page_test("ticket.py", "lead", query={"id": str(tid)})
    at.run()
    assert not at.exception, at.exception
    shown = texts(at)
    assert "Low: the least loaded person with the skill first" in shown
    assert "Networking 1/3; load 0 of 10 = no open tickets; the only one with the skill and room" in shown
    at.button(key=f"sugg_{tid}_{staff_app.tech2}").click().run()
    assert not at.exception, at.exception
    with transaction(app_env) as s:
        assert s.get(Ticket, tid).assignee_id == staff_app.tech2


def test_technician_sees_suggestions_and_may_ask_for_the_best(app_env, staff_app, desk) -> None:
    tid = desk["low"]
    at = page_test("ticket.py", "tech2", query={"id": str(tid)})
    at.run()
    assert not at.exception, at.exception
    assert not [b for b in at.button if b.key and b.key.startswith(f"sugg_{tid}_")]  # no one-click for others
    at.button(key=f"sugg_auto_{tid}").click().run()
    assert not at.exception, at.exception
    with transaction(app_env) as s:
        assert s.get(Ticket, tid).assignee_id == staff_app.tech2


def test_ticket_page_shows_ack_at_risk_and_the_lead_flag(app_env, staff_app, desk) -> None:
    at = page_test("ticket.py", "tech", query={"id": str(desk["critical"])})
    at.run()
    assert not at.exception, at.exception
    warnings = " ".join(w.value for w in at.warning)
    assert "Acknowledgement at risk" in warnings and "15 min target" in warnings
    assert any("Flagged to the lead" in e.value and "Critical ticket breached" in e.value for e in at.error)
    fresh = new_ticket(app_env, staff_app.lead, priority="Low", assignee=staff_app.tech)
    at = page_test("ticket.py", "tech", query={"id": str(fresh)})
    at.run()
    assert "Waiting for Tom Tech to acknowledge" in texts(at)
    assert not any("Flagged" in e.value for e in at.error)
