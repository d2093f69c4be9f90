"""The Admin page: unticking "Active" for someone holding open tickets asks where the tickets go, refuses to
save without an answer (keeping the lead's input), and hands them on when saved."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import NumberInput

from lib import tickets, users
from lib.db import transaction
from lib.directory import RequesterInput
from lib.models import User
from lib.tickets import TicketDraft
from tests.app.conftest import page_test
from tests.conftest import Staff

HELD = 23


def give_tom_open_tickets(engine: Engine, staff: Staff, n: int = HELD) -> list[int]:
    with transaction(engine) as s:
        ids = []
        for i in range(n):
            t = tickets.create_ticket(s, actor=staff.tech, draft=TicketDraft(
                summary=f"Monitor {i} flickers", category="Hardware", priority="Low", channel="walk_in",
                requester=RequesterInput(name="Cy", email="cy@example.com")))
            ids.append(tickets.take(s, actor=staff.tech, ticket_id=t.id).id)
        return ids


def texts(at: AppTest) -> str:
    kinds = ("markdown", "caption", "error", "warning", "success", "info", "toast")
    return "\n".join(str(getattr(e, "value", "")) for kind in kinds for e in at.get(kind))


def open_tom(staff: Staff) -> AppTest:
    at = page_test("admin.py", "lead")
    at.run()
    assert not at.exception, at.exception
    at.selectbox(key="edit_user_pick").set_value(staff.tech).run()
    return at


def capacity(at: AppTest) -> NumberInput:
    return next(n for n in at.number_input if n.label == "Capacity")  # the edit form's, not the new account's


def save(at: AppTest) -> None:
    next(b for b in at.button if b.label == "Save").click().run()
    assert not at.exception, at.exception


def state(engine: Engine, staff: Staff) -> tuple[bool, list[int], list[int]]:
    with transaction(engine) as s:
        tom = s.get(User, staff.tech)
        assert tom is not None
        return tom.active, users.open_ticket_ids(s, staff.tech), users.open_ticket_ids(s, staff.tech2)



def hand_on(at):  # type: ignore[no-untyped-def]
    """The People tab's "where do the open tickets go" choices (other tabs have radios of their own)."""
    return [r for r in at.radio if (r.key or "").startswith("eu_hand_on_")]


def test_unticking_active_asks_where_the_open_tickets_go(app_env, staff_app) -> None:
    ids = give_tom_open_tickets(app_env, staff_app)
    at = open_tom(staff_app)
    assert not hand_on(at)  # nothing to choose while the account stays active
    at.checkbox(key=f"eu_active_{staff_app.tech}").uncheck().run()
    assert not at.exception, at.exception
    assert f"Tom Tech holds **{HELD}** open ticket(s)" in texts(at)
    choice = at.radio(key=f"eu_hand_on_{staff_app.tech}")
    assert choice.options == ["Return them to the queue", "Reassign to …"]  # as shown
    assert set(at.selectbox(key=f"eu_hand_to_{staff_app.tech}").options) == {
        "Lena Lead (team lead, 0 open)", "Sam Senior (senior technician, 0 open)",
        "Tara Tech (technician, 0 open)"}  # active people, not Tom himself

    # Saving without a choice is refused: a clear message, nothing changed, the lead's input kept.
    capacity(at).set_value(12)
    save(at)
    assert any(f"{HELD} still assigned to Tom Tech" in e.value for e in at.error), [e.value for e in at.error]
    assert state(app_env, staff_app) == (True, ids, [])
    assert at.checkbox(key=f"eu_active_{staff_app.tech}").value is False
    assert capacity(at).value == 12

    # Reassign to Tara: saved, the account closed, every ticket hers, and the page says so.
    at.radio(key=f"eu_hand_on_{staff_app.tech}").set_value("reassign")
    at.selectbox(key=f"eu_hand_to_{staff_app.tech}").set_value(staff_app.tech2)
    save(at)
    assert state(app_env, staff_app) == (False, [], ids)
    with transaction(app_env) as s:
        tom = s.get(User, staff_app.tech)
        assert tom is not None and tom.capacity == 12
    assert f"their {HELD} open ticket(s) were reassigned to Tara Tech" in texts(at)
    assert not at.error


def test_return_them_to_the_queue_from_the_page(app_env, staff_app) -> None:
    ids = give_tom_open_tickets(app_env, staff_app, 3)
    at = open_tom(staff_app)
    at.checkbox(key=f"eu_active_{staff_app.tech}").uncheck().run()
    at.radio(key=f"eu_hand_on_{staff_app.tech}").set_value("queue")
    save(at)
    assert not at.error, [e.value for e in at.error]
    assert state(app_env, staff_app) == (False, [], [])
    with transaction(app_env) as s:
        assert all(tickets.get_ticket(s, tid).assignee_id is None for tid in ids)
    assert "returned to the unassigned queue" in texts(at)


def test_an_account_without_open_tickets_is_deactivated_as_before(app_env, staff_app) -> None:
    at = open_tom(staff_app)
    at.checkbox(key=f"eu_active_{staff_app.tech}").uncheck().run()
    assert not hand_on(at) and "open ticket" not in texts(at)
    save(at)
    assert not at.error, [e.value for e in at.error]
    assert state(app_env, staff_app) == (False, [], [])
    assert "Tom Tech is deactivated" in texts(at)
