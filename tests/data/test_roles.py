"""The role matrix through the services, and roles read from the database at each call."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from lib import tickets, users
from lib.db import transaction
from lib.directory import RequesterInput
from lib.errors import HelpdeskError, PermissionDenied
from lib.models import Ticket, User
from lib.tickets import TicketDraft
from lib.workflow import Action, ClosureReason, EscalationLevel, Role, may


def draft(summary: str = "Laptop will not boot") -> TicketDraft:
    return TicketDraft(summary=summary, category="Hardware", priority="Medium", channel="phone",
                       requester=RequesterInput(name="Ann Smith", email="ann@example.com"))


def one_call(action: Action, s, actor: int, tid: int, staff, spare: int) -> None:
    """Call the service behind ``action`` with plausible arguments."""
    v = s.get(Ticket, tid).version
    other = staff.tech2 if actor != staff.tech2 else staff.senior
    calls: dict[Action, Callable[[], object]] = {
        Action.CREATE: lambda: tickets.create_ticket(s, actor=actor, draft=draft()),
        Action.UPDATE_FIELDS: lambda: tickets.update_fields(s, actor=actor, ticket_id=tid, expected_version=v,
                                                            changes={"summary": "Permission check"}),
        Action.TAKE: lambda: tickets.take(s, actor=actor, ticket_id=tid),
        Action.ASSIGN: lambda: tickets.assign(s, actor=actor, ticket_id=tid, assignee_id=other, expected_version=v),
        Action.ACKNOWLEDGE: lambda: tickets.acknowledge(s, actor=actor, ticket_id=tid, expected_version=v),
        Action.LOG_ACTION: lambda: tickets.log_action(s, actor=actor, ticket_id=tid, kind="diagnosis", text="x"),
        Action.WORKAROUND: lambda: tickets.provide_workaround(s, actor=actor, ticket_id=tid, text="x"),
        Action.PUBLIC_REPLY: lambda: tickets.public_reply(s, actor=actor, ticket_id=tid, text="x"),
        Action.INTERNAL_NOTE: lambda: tickets.internal_note(s, actor=actor, ticket_id=tid, text="x"),
        Action.REQUEST_INFO: lambda: tickets.request_info(s, actor=actor, ticket_id=tid, expected_version=v, text="x"),
        Action.ESCALATE_SENIOR: lambda: tickets.escalate_to_senior(s, actor=actor, ticket_id=tid, expected_version=v,
                                                                   senior_id=staff.senior, reason="x"),
        Action.ESCALATE_VENDOR: lambda: tickets.escalate_to_vendor(s, actor=actor, ticket_id=tid, expected_version=v,
                                                                   vendor_name="Acme", case_ref=None, promised_at=None),
        Action.RESUME: lambda: tickets.resume(s, actor=actor, ticket_id=tid, expected_version=v),
        Action.RESOLVE: lambda: tickets.resolve(s, actor=actor, ticket_id=tid, expected_version=v,
                                                resolution_notes="x"),
        Action.REQUEST_CONFIRMATION: lambda: tickets.request_confirmation(s, actor=actor, ticket_id=tid,
                                                                         expected_version=v),
        Action.RECORD_CONFIRMATION: lambda: tickets.record_confirmation(s, actor=actor, ticket_id=tid,
                                                                        expected_version=v, via="phone",
                                                                        confirmed_by="Ann"),
        Action.CLOSE: lambda: tickets.close(s, actor=actor, ticket_id=tid, expected_version=v,
                                            reason=ClosureReason.CANCELLED, note="x"),
        Action.REOPEN: lambda: tickets.reopen(s, actor=actor, ticket_id=tid, expected_version=v, reason="x"),
        Action.LINK: lambda: tickets.link(s, actor=actor, ticket_id=tid, parent_id=spare),
        Action.BULK_UPDATE: lambda: tickets.bulk_update(s, actor=actor, ticket_ids=[tid], priority="Low"),
        # closing as confirmed while the guard fails: only the override can let it through
        Action.OVERRIDE_GUARD: lambda: tickets.close(s, actor=actor, ticket_id=tid, expected_version=v,
                                                     reason=ClosureReason.CONFIRMED, override_reason="x"),
        Action.ADMIN: lambda: users.update_user(s, actor=actor, user_id=other, capacity=7),
    }
    calls[action]()


def denied_in(s, action: Action, actor: int, tid: int, staff, spare: int) -> bool:
    """Whether the service refuses ``actor`` with PermissionDenied. Nothing is kept either way (savepoint)."""
    sp = s.begin_nested()
    try:
        one_call(action, s, actor, tid, staff, spare)
    except PermissionDenied:
        return True
    except HelpdeskError:  # another rule (status, guard, input) answered: permission was granted
        return False
    finally:
        sp.rollback()
    return False


def denied(engine, action: Action, actor: int, tid: int, staff, spare: int) -> bool:
    with transaction(engine) as s:
        return denied_in(s, action, actor, tid, staff, spare)


def ticket_in_progress(engine, staff, worker: int) -> int:
    with transaction(engine) as s:
        tid = tickets.create_ticket(s, actor=staff.lead, draft=draft()).id
        tickets.assign(s, actor=staff.lead, ticket_id=tid, assignee_id=worker, expected_version=1)
        tickets.acknowledge(s, actor=staff.lead, ticket_id=tid, expected_version=2)
    return tid


def test_services_follow_the_role_matrix(engine, staff):
    """Every action × role × (own / other's / escalated to a senior / at a vendor / unassigned)."""
    own = {who: ticket_in_progress(engine, staff, who) for who in (staff.tech, staff.senior, staff.lead)}
    others = ticket_in_progress(engine, staff, staff.tech2)
    escalated = ticket_in_progress(engine, staff, staff.tech2)
    at_vendor = ticket_in_progress(engine, staff, staff.tech2)
    with transaction(engine) as s:
        tickets.escalate_to_senior(s, actor=staff.tech2, ticket_id=escalated, expected_version=3,
                                   senior_id=staff.lead, reason="Needs a senior")
        tickets.escalate_to_vendor(s, actor=staff.tech2, ticket_id=at_vendor, expected_version=3,
                                   vendor_name="Acme", case_ref="C-1", promised_at=None)
        unassigned = tickets.create_ticket(s, actor=staff.tech, draft=draft()).id
        spare = tickets.create_ticket(s, actor=staff.tech, draft=draft("Parent")).id
    roles = {staff.tech: Role.TECHNICIAN, staff.senior: Role.SENIOR, staff.lead: Role.LEAD}
    mismatches = []
    for actor, role in roles.items():
        situations = {"own": own[actor], "other's": others, "escalated": escalated, "at vendor": at_vendor,
                      "unassigned": unassigned}
        for name, tid in situations.items():
            with transaction(engine) as s:
                t = s.get(Ticket, tid)
                assignee, level = t.assignee_id, EscalationLevel(t.escalation_level)
                for action in Action:
                    expect = not may(action, role=role, actor_id=actor, assignee_id=assignee, escalation=level)
                    if action is Action.TAKE and assignee not in (None, actor):
                        expect = True  # the matrix lets anyone take, but only an unassigned ticket
                    got = denied_in(s, action, actor, tid, staff, spare)
                    if got != expect:
                        mismatches.append(f"{role.key} on {name}: {action.value} denied={got}, "
                                          f"expected denied={expect}")
    assert mismatches == []


def test_spot_checks(engine, staff):
    others = ticket_in_progress(engine, staff, staff.tech2)
    spare = ticket_in_progress(engine, staff, staff.tech)
    assert denied(engine, Action.RESOLVE, staff.tech, others, staff, spare)
    assert not denied(engine, Action.INTERNAL_NOTE, staff.tech, others, staff, spare)  # notes anywhere
    assert denied(engine, Action.RESOLVE, staff.senior, others, staff, spare)  # not escalated
    assert denied(engine, Action.ASSIGN, staff.senior, others, staff, spare)
    assert not denied(engine, Action.ASSIGN, staff.lead, others, staff, spare)
    with pytest.raises(PermissionDenied, match="only a lead may assign"):
        with transaction(engine) as s:
            tickets.assign(s, actor=staff.tech, ticket_id=others, assignee_id=staff.tech, expected_version=3)
    with pytest.raises(PermissionDenied, match="only the assignee, a senior on an escalated ticket, or a lead"):
        with transaction(engine) as s:
            tickets.resolve(s, actor=staff.tech, ticket_id=others, expected_version=3, resolution_notes="x")


def test_system_actors_are_not_limited_by_roles(engine, staff):
    tid = ticket_in_progress(engine, staff, staff.tech)
    with transaction(engine) as s:
        tickets.public_reply(s, actor=tickets.SYSTEM, ticket_id=tid, text="Automatic notice")
        tickets.request_info(s, actor=tickets.SYSTEM, ticket_id=tid, expected_version=3, text="Still there?")
    with transaction(engine) as s:
        unassigned = tickets.create_ticket(s, actor=tickets.SYSTEM, draft=draft()).id
    with pytest.raises(PermissionDenied, match="staff member"):  # taking needs someone to take it
        with transaction(engine) as s:
            tickets.take(s, actor=tickets.SYSTEM, ticket_id=unassigned)


# --- roles come from the database at each call -------------------------------------------------


def test_demoted_senior_loses_escalated_tickets_at_once(engine, staff):
    escalated = ticket_in_progress(engine, staff, staff.tech2)
    with transaction(engine) as s:
        tickets.escalate_to_vendor(s, actor=staff.tech2, ticket_id=escalated, expected_version=3,
                                   vendor_name="Acme", case_ref=None, promised_at=None)
    with transaction(engine) as s:
        tickets.public_reply(s, actor=staff.senior, ticket_id=escalated, text="Vendor chased")
    with transaction(engine) as s:
        users.update_user(s, actor=staff.lead, user_id=staff.senior, role="technician")
    with pytest.raises(PermissionDenied):
        with transaction(engine) as s:
            tickets.public_reply(s, actor=staff.senior, ticket_id=escalated, text="Chased again")
    with transaction(engine) as s:  # and promoted back, it works again
        users.update_user(s, actor=staff.lead, user_id=staff.senior, role=Role.SENIOR)
    with transaction(engine) as s:
        tickets.public_reply(s, actor=staff.senior, ticket_id=escalated, text="Chased again")


def test_demoted_lead_cannot_assign(engine, staff):
    tid = ticket_in_progress(engine, staff, staff.tech)
    with transaction(engine) as s:
        users.update_user(s, actor=staff.lead, user_id=staff.senior, role=Role.LEAD)
    with transaction(engine) as s:
        users.update_user(s, actor=staff.senior, user_id=staff.lead, role=Role.SENIOR)
    with pytest.raises(PermissionDenied):
        with transaction(engine) as s:
            tickets.assign(s, actor=staff.lead, ticket_id=tid, assignee_id=staff.tech2, expected_version=3)
    with transaction(engine) as s:
        tickets.assign(s, actor=staff.senior, ticket_id=tid, assignee_id=staff.tech2, expected_version=3)


def test_deactivated_user_is_refused_at_once(engine, staff):
    tid = ticket_in_progress(engine, staff, staff.tech)
    with transaction(engine) as s:
        tickets.internal_note(s, actor=staff.tech, ticket_id=tid, text="Before")
    with transaction(engine) as s:
        users.deactivate(s, actor=staff.lead, user_id=staff.tech, open_tickets="queue")
    for call in (
        lambda s: tickets.internal_note(s, actor=staff.tech, ticket_id=tid, text="After"),
        lambda s: tickets.create_ticket(s, actor=staff.tech, draft=draft()),
        lambda s: tickets.update_fields(s, actor=staff.tech, ticket_id=tid, expected_version=3,
                                        changes={"summary": "x"}),
    ):
        with pytest.raises(PermissionDenied, match="not active"):
            with transaction(engine) as s:
                call(s)


def test_unknown_or_malformed_actor(engine, staff):
    tid = ticket_in_progress(engine, staff, staff.tech)
    for actor in (999999, True, "tech", None):
        with pytest.raises(PermissionDenied):
            with transaction(engine) as s:
                tickets.internal_note(s, actor=actor, ticket_id=tid, text="Who am I?")


def test_last_active_lead_cannot_be_removed(engine, staff):
    with pytest.raises(HelpdeskError):
        with transaction(engine) as s:
            users.update_user(s, actor=staff.lead, user_id=staff.lead, active=False)
    with transaction(engine) as s:
        assert s.get(User, staff.lead).active
