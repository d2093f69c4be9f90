"""Linking under a parent makes it a major incident: under someone else's ticket it needs a senior technician
or a lead (Permission.LINK_UNDER_OTHERS); a technician links their own tickets to each other. Both engines."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from lib import tickets
from lib.db import transaction
from lib.directory import RequesterInput
from lib.errors import PermissionDenied
from lib.models import Ticket, TicketEvent, ticket_ref
from lib.tickets import TicketDraft
from lib.workflow import EventKind


def held_by(engine, worker: int, summary: str) -> int:
    """A ticket in progress, held by ``worker``."""
    with transaction(engine) as s:
        t = tickets.create_ticket(s, actor=worker, draft=TicketDraft(
            summary=summary, category="Networking", priority="High", channel="phone",
            requester=RequesterInput(name="Ann Smith", email="ann@example.com")))
        t = tickets.take(s, actor=worker, ticket_id=t.id)
        return tickets.acknowledge(s, actor=worker, ticket_id=t.id, expected_version=t.version).id


def state(engine, tid: int) -> tuple[int | None, bool, int]:
    """(parent, is a major incident, number of link events)."""
    with transaction(engine) as s:
        t = s.get(Ticket, tid)
        assert t is not None
        links = s.scalars(select(TicketEvent.id).where(TicketEvent.ticket_id == tid,
                                                       TicketEvent.kind == EventKind.LINKED.value)).all()
        return t.parent_id, t.is_major_incident, len(links)


def link(engine, actor: int, child: int, parent: int | None) -> Ticket:
    with transaction(engine) as s:
        return tickets.link(s, actor=actor, ticket_id=child, parent_id=parent)


def test_a_technician_may_not_make_someone_else_s_ticket_a_major_incident(engine, staff) -> None:
    theirs = held_by(engine, staff.tech2, "Wi-Fi down on floor 3")
    mine = held_by(engine, staff.tech, "No Wi-Fi at desk 3.14")
    with pytest.raises(PermissionDenied) as err:
        link(engine, staff.tech, mine, theirs)
    message = str(err.value)
    assert message.startswith("only a senior technician may link a ticket under")
    assert ticket_ref(theirs) in message and "Tara Tech" in message and "major incident" in message
    assert state(engine, theirs) == (None, False, 0)
    assert state(engine, mine) == (None, False, 0)


def test_a_technician_may_not_join_someone_else_s_major_incident_either(engine, staff) -> None:
    incident = held_by(engine, staff.senior, "Mail server down")
    first = held_by(engine, staff.senior, "Cannot send mail")
    link(engine, staff.senior, first, incident)  # the senior's own tickets
    assert state(engine, incident)[1]
    mine = held_by(engine, staff.tech, "Outlook offline")
    with pytest.raises(PermissionDenied, match="Sam Senior"):
        link(engine, staff.tech, mine, incident)
    assert state(engine, mine) == (None, False, 0)


@pytest.mark.parametrize("who", ["senior", "lead"])
def test_a_senior_or_a_lead_may_link_under_someone_else_s_ticket(engine, staff, who: str) -> None:
    actor = getattr(staff, who)
    theirs = held_by(engine, staff.tech2, "Wi-Fi down on floor 3")
    own = held_by(engine, actor, "No Wi-Fi in the meeting room")
    t = link(engine, actor, own, theirs)
    assert t.parent_id == theirs
    assert state(engine, theirs)[1] and state(engine, own) == (theirs, False, 1)


def test_a_technician_links_their_own_tickets_to_each_other(engine, staff) -> None:
    parent = held_by(engine, staff.tech, "Printer floor 2 offline")
    child = held_by(engine, staff.tech, "Cannot print the payroll")
    t = link(engine, staff.tech, child, parent)
    assert t.parent_id == parent
    assert state(engine, parent)[1] and state(engine, child) == (parent, False, 1)
    assert link(engine, staff.tech, child, None).parent_id is None  # and unlinks them


def test_a_technician_still_links_only_their_own_child(engine, staff) -> None:
    parent = held_by(engine, staff.tech, "Printer floor 2 offline")
    theirs = held_by(engine, staff.tech2, "Cannot print the invoices")
    with pytest.raises(PermissionDenied, match="only the assignee"):
        link(engine, staff.tech, theirs, parent)
    assert state(engine, parent) == (None, False, 0)
