"""Deactivating an account hands on its open tickets (users.deactivate), on SQLite and PostgreSQL.

An account may not leave the desk while it holds open tickets: the lead returns them to the unassigned queue
or reassigns them to one active person, in the same transaction, through the assignment services (so every
ticket's timeline records the change and its SLA clock follows).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from lib import queries, tickets, users
from lib.assignment import open_counts_by_assignee
from lib.db import transaction
from lib.directory import RequesterInput
from lib.errors import PermissionDenied, ValidationError
from lib.models import AuditLog, LoginSession, Ticket, TicketEvent, User
from lib.tickets import TicketDraft
from lib.users import OpenTickets
from lib.workflow import ActionKind, ClosureReason, EventKind, Status
from tests.conftest import Staff

#: The security review's case: a technician leaves holding 23 open tickets.
HELD = 23


@dataclass(frozen=True)
class Desk:
    """The technician's tickets by status, and two that are not open (they stay where they are)."""

    in_progress: list[int]
    assigned: list[int]
    waiting_user: list[int]
    waiting_vendor: list[int]
    resolved: int
    closed: int

    @property
    def open(self) -> list[int]:
        return sorted(self.in_progress + self.assigned + self.waiting_user + self.waiting_vendor)


def _draft(n: int) -> TicketDraft:
    return TicketDraft(summary=f"Docking station {n} flickers", category="Hardware", priority="Medium",
                       channel="phone", requester=RequesterInput(name="Ann Smith", email="ann@example.com"))


def tom_s_desk(engine, staff: Staff, clock) -> Desk:
    """23 open tickets held by the technician Tom (10 in progress, 5 assigned, 4 waiting on the user, 4 on a
    vendor), one resolved and one closed."""
    made: dict[str, list[int]] = {"in_progress": [], "assigned": [], "waiting_user": [], "waiting_vendor": [],
                                  "resolved": [], "closed": []}
    plan = ["in_progress"] * 10 + ["assigned"] * 5 + ["waiting_user"] * 4 + ["waiting_vendor"] * 4 \
        + ["resolved", "closed"]
    with transaction(engine) as s:
        for n, kind in enumerate(plan):
            t = tickets.create_ticket(s, actor=staff.lead, draft=_draft(n))
            t = tickets.assign(s, actor=staff.lead, ticket_id=t.id, assignee_id=staff.tech, expected_version=t.version)
            if kind != "assigned":
                t = tickets.acknowledge(s, actor=staff.tech, ticket_id=t.id, expected_version=t.version)
            if kind == "waiting_user":
                tickets.request_info(s, actor=staff.tech, ticket_id=t.id, expected_version=t.version,
                                     text="Which dock model is it?")
            elif kind == "waiting_vendor":
                tickets.escalate_to_vendor(s, actor=staff.tech, ticket_id=t.id, expected_version=t.version,
                                           vendor_name="Acme Docks", case_ref="AD-1", promised_at=None)
            elif kind == "resolved":
                tickets.resolve(s, actor=staff.tech, ticket_id=t.id, expected_version=t.version,
                                resolution_notes="Firmware update")
            elif kind == "closed":
                tickets.close(s, actor=staff.tech, ticket_id=t.id, expected_version=t.version,
                              reason=ClosureReason.CANCELLED, note="Withdrawn by the requester")
            made[kind].append(t.id)
    clock.advance(timedelta(hours=1))
    desk = Desk(in_progress=made["in_progress"], assigned=made["assigned"], waiting_user=made["waiting_user"],
                waiting_vendor=made["waiting_vendor"], resolved=made["resolved"][0], closed=made["closed"][0])
    assert len(desk.open) == HELD
    return desk


def snapshot(engine, ids: list[int]) -> dict[int, tuple]:
    """What a ticket's hand-over must not disturb or must change: status, assignee, SLA due moments, events."""
    with transaction(engine) as s:
        out = {}
        for t in s.scalars(select(Ticket).where(Ticket.id.in_(ids))).unique():
            n_events = len(s.scalars(select(TicketEvent.id).where(TicketEvent.ticket_id == t.id)).all())
            out[t.id] = (Status(t.status), t.assignee_id, t.response_due_at, t.resolution_due_at, n_events)
        return out


def handover_events(engine, tid: int) -> list[TicketEvent]:
    with transaction(engine) as s:
        return list(s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == tid,
                                                        TicketEvent.kind == EventKind.ASSIGNED.value)
                              .order_by(TicketEvent.id)).unique())


def user_row(engine, user_id: int) -> User:
    with transaction(engine) as s:
        user = s.get(User, user_id)
        assert user is not None
        return user


def held_by(engine, user_id: int) -> list[int]:
    with transaction(engine) as s:
        return users.open_ticket_ids(s, user_id)


def audit_actions(engine, target: str) -> list[tuple[str, str | None]]:
    with transaction(engine) as s:
        return [(a.action, a.detail) for a in s.scalars(select(AuditLog).where(AuditLog.target == target)
                                                         .order_by(AuditLog.id))]


# --- refused without a choice ------------------------------------------------------------------


def test_deactivation_is_refused_while_open_tickets_remain(engine, staff, clock) -> None:
    desk = tom_s_desk(engine, staff, clock)
    before = snapshot(engine, [*desk.open, desk.resolved, desk.closed])
    with pytest.raises(ValidationError) as err:
        with transaction(engine) as s:
            users.deactivate(s, actor=staff.lead, user_id=staff.tech)
    assert f"{HELD} still assigned to Tom Tech" in err.value.fields["open_tickets"]
    assert "queue" in err.value.fields["open_tickets"] and "reassign" in err.value.fields["open_tickets"]
    # The older path (the CLI's, a plain account edit) is refused the same way.
    with pytest.raises(ValidationError, match=f"{HELD} still assigned to Tom Tech"):
        with transaction(engine) as s:
            users.update_user(s, actor=staff.lead, user_id=staff.tech, active=False)
    assert user_row(engine, staff.tech).active
    assert held_by(engine, staff.tech) == desk.open
    assert snapshot(engine, [*desk.open, desk.resolved, desk.closed]) == before
    assert audit_actions(engine, "tech") == []


def test_an_account_without_open_tickets_is_deactivated_without_a_choice(engine, staff) -> None:
    with transaction(engine) as s:
        users.deactivate(s, actor=staff.lead, user_id=staff.tech2)
    assert not user_row(engine, staff.tech2).active
    assert audit_actions(engine, "tech2") == [("user_changed", "deactivated")]


# --- back to the queue -------------------------------------------------------------------------


def test_return_to_the_queue(engine, staff, clock) -> None:
    desk = tom_s_desk(engine, staff, clock)
    before = snapshot(engine, [*desk.open, desk.resolved, desk.closed])
    with transaction(engine) as s:
        from lib import sessions

        sessions.start(s, user_id=staff.tech)
    now = clock.now()
    with transaction(engine) as s:
        user = users.deactivate(s, actor=staff.lead, user_id=staff.tech, open_tickets="queue", now=now)
        assert not user.active
    assert not user_row(engine, staff.tech).active
    assert held_by(engine, staff.tech) == []
    after = snapshot(engine, [*desk.open, desk.resolved, desk.closed])
    for tid in desk.open:
        status, assignee, response_due, resolution_due, n_events = after[tid]
        was = before[tid][0]
        assert assignee is None
        # Work in hand goes back to New; waiting tickets keep waiting (their clock stays paused).
        assert status is (Status.NEW if was in (Status.ASSIGNED, Status.IN_PROGRESS) else was), tid
        assert (response_due, resolution_due) == before[tid][2:4], "the SLA clock is neither reset nor moved"
        assert n_events == before[tid][4] + 1
        ev = handover_events(engine, tid)[-1]
        assert (ev.actor_id, ev.field, ev.old_value, ev.new_value) == (staff.lead, "assignee", "Tom Tech", None)
        assert (ev.from_status, ev.to_status) == (was.value, status.value)
        assert ev.body == "Tom Tech's account was deactivated: back to the unassigned queue"
        assert ev.occurred_at == now
    # Not open work: the resolved and the closed ticket stay as they were.
    assert after[desk.resolved] == before[desk.resolved] and after[desk.closed] == before[desk.closed]
    with transaction(engine) as s:
        page = queries.list_queue(s, queries.QueueFilter(view=queries.QueueView.UNASSIGNED, now=now))
        assert sorted(r.id for r in page.rows) == desk.open
        assert staff.tech not in open_counts_by_assignee(s)
        assert s.scalar(select(LoginSession.revoked_reason).where(LoginSession.user_id == staff.tech)) \
            == "account changed"
    assert audit_actions(engine, "tech") == [("open_tickets_handed_on", f"{HELD} open ticket(s) returned to the queue"),
                                             ("user_changed", "deactivated")]


# --- to a named person -------------------------------------------------------------------------


def test_reassign_to_an_active_person(engine, staff, clock) -> None:
    desk = tom_s_desk(engine, staff, clock)
    before = snapshot(engine, desk.open)
    now = clock.now()
    with transaction(engine) as s:
        users.deactivate(s, actor=staff.lead, user_id=staff.tech, open_tickets=OpenTickets.REASSIGN,
                         to=staff.tech2, now=now)
    assert not user_row(engine, staff.tech).active
    assert held_by(engine, staff.tech) == []
    assert held_by(engine, staff.tech2) == desk.open
    after = snapshot(engine, desk.open)
    for tid in desk.open:
        status, assignee, response_due, resolution_due, _n = after[tid]
        was = before[tid][0]
        assert assignee == staff.tech2
        # Tara acknowledges what was in hand; waiting tickets keep waiting.
        assert status is (Status.ASSIGNED if was in (Status.ASSIGNED, Status.IN_PROGRESS) else was), tid
        assert (response_due, resolution_due) == before[tid][2:4]
        ev = handover_events(engine, tid)[-1]
        assert (ev.actor_id, ev.old_value, ev.new_value) == (staff.lead, "Tom Tech", "Tara Tech")
        assert ev.body == "Tom Tech's account was deactivated: reassigned to Tara Tech"
        assert (ev.meta or {}).get("explanation"), "the assignment explanation is recorded as for any reassignment"
    with transaction(engine) as s:
        counts = open_counts_by_assignee(s)
        assert staff.tech not in counts and sum(counts[staff.tech2].values()) == HELD
        # Tara can work them: the first one acknowledges as usual.
        first = s.get(Ticket, desk.in_progress[0])
        assert first is not None
        tickets.acknowledge(s, actor=staff.tech2, ticket_id=first.id, expected_version=first.version)
    assert audit_actions(engine, "tech")[0] == ("open_tickets_handed_on", f"{HELD} open ticket(s) reassigned to tech2")


def test_leftovers_of_an_account_already_inactive_are_handed_on(engine, staff, clock) -> None:
    """Accounts closed before this rule may still hold open tickets: the same service hands them on."""
    desk = tom_s_desk(engine, staff, clock)
    with transaction(engine) as s:
        s.execute(update(User).where(User.id == staff.tech).values(active=False))
    with transaction(engine) as s:
        users.deactivate(s, actor=staff.lead, user_id=staff.tech, open_tickets="reassign", to=staff.senior)
    assert held_by(engine, staff.tech) == [] and held_by(engine, staff.senior) == desk.open


# --- refusals: nothing changes -----------------------------------------------------------------


@pytest.mark.parametrize(("choice", "to", "field", "message"), [
    ("reassign", None, "reassign_to", "active person"),
    ("reassign", "a name", "reassign_to", "number of an existing record"),
    ("reassign", "unknown", "reassign_to", "active person"),
    ("reassign", "self", "reassign_to", "other than the one being deactivated"),
    ("reassign", "inactive", "reassign_to", "active person"),
    ("queue", "tech2", "reassign_to", "'reassign' only"),
    ("delete", None, "open_tickets", "unknown choice 'delete'"),
], ids=["no-one", "a-name", "unknown", "self", "inactive", "queue-with-a-person", "unknown-choice"])
def test_bad_choices_are_refused_and_change_nothing(engine, staff, clock, choice, to, field, message) -> None:
    desk = tom_s_desk(engine, staff, clock)
    with transaction(engine) as s:
        gone = users.create_user(s, actor=staff.lead, username="gone", name="Gone Away", email=None,
                                 password="a long enough password", role="technician").id
        users.deactivate(s, actor=staff.lead, user_id=gone)
    target = {None: None, "a name": "tech2", "unknown": 999_999, "self": staff.tech, "inactive": gone,
              "tech2": staff.tech2}[to]
    before = snapshot(engine, desk.open)
    with pytest.raises(ValidationError) as err:
        with transaction(engine) as s:
            users.deactivate(s, actor=staff.lead, user_id=staff.tech, open_tickets=choice, to=target)
    assert message in err.value.fields[field]
    assert user_row(engine, staff.tech).active and held_by(engine, staff.tech) == desk.open
    assert snapshot(engine, desk.open) == before


def test_only_a_lead_deactivates(engine, staff, clock) -> None:
    desk = tom_s_desk(engine, staff, clock)
    for actor in (staff.senior, staff.tech2):
        with pytest.raises(PermissionDenied, match="only a team lead may deactivate accounts"):
            with transaction(engine) as s:
                users.deactivate(s, actor=actor, user_id=staff.tech, open_tickets="queue")
    assert user_row(engine, staff.tech).active and held_by(engine, staff.tech) == desk.open


def test_the_last_lead_is_refused_before_any_ticket_moves(engine, staff) -> None:
    with transaction(engine) as s:
        t = tickets.create_ticket(s, actor=staff.lead, draft=_draft(1))
        tickets.take(s, actor=staff.lead, ticket_id=t.id)
        tickets.log_action(s, actor=staff.lead, ticket_id=t.id, kind=ActionKind.DIAGNOSIS, text="Checked the cable")
        tid = t.id
    with pytest.raises(ValidationError, match="at least one active lead"):
        with transaction(engine) as s:
            users.deactivate(s, actor=staff.lead, user_id=staff.lead, open_tickets="queue")
    assert user_row(engine, staff.lead).active and held_by(engine, staff.lead) == [tid]
