"""The smallest end-to-end check of the data layer on each engine: a ticket from intake to closure."""

from lib import tickets
from lib.db import transaction
from lib.directory import RequesterInput
from lib.tickets import TicketDraft
from lib.workflow import ActionKind, ClosureReason, ConfirmationVia, Status


def test_ticket_lifecycle(engine, staff):
    with transaction(engine) as s:
        t = tickets.create_ticket(s, actor=staff.tech, draft=TicketDraft(
            summary="Printer jams on tray 2", category="Printing", priority="High", channel="phone",
            requester=RequesterInput(name="Ann Smith", email="Ann@Example.com")))
        tid = t.id
    with transaction(engine) as s:
        t = tickets.take(s, actor=staff.tech, ticket_id=tid)
        t = tickets.acknowledge(s, actor=staff.tech, ticket_id=tid, expected_version=t.version)
        tickets.log_action(s, actor=staff.tech, ticket_id=tid, kind=ActionKind.DIAGNOSIS, text="Worn roller", minutes=10)
        t = tickets.resolve(s, actor=staff.tech, ticket_id=tid, expected_version=t.version,
                            resolution_notes="Replaced roller", root_cause="Worn pickup roller")
        t = tickets.request_confirmation(s, actor=staff.tech, ticket_id=tid, expected_version=t.version)
        t = tickets.record_confirmation(s, actor=staff.tech, ticket_id=tid, expected_version=t.version,
                                        via=ConfirmationVia.PHONE, confirmed_by="Ann Smith")
        t = tickets.close(s, actor=staff.tech, ticket_id=tid, expected_version=t.version,
                          reason=ClosureReason.CONFIRMED)
    with transaction(engine) as s:
        t = tickets.get_ticket(s, tid)
        assert t.status == Status.CLOSED
        assert t.requester.email == "ann@example.com"
        assert t.closed_at is not None and t.closed_at.tzinfo is not None
