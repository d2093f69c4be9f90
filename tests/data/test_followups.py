"""Follow-ups and preventive steps on SQLite and PostgreSQL: schedule → due → in the owner's queue view →
reminded once by the worker → completed, all on the timeline; preventive steps recorded at closure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from lib import followups, queries, tickets, worker
from lib.db import read_session, transaction
from lib.directory import RequesterInput
from lib.errors import PermissionDenied, ValidationError
from lib.followups import FollowUpRequest
from lib.models import FollowUp, OutboxMail, PreventiveStep, Ticket, TicketEvent, User
from lib.queries import QueueFilter, QueueView
from lib.tickets import TicketDraft
from lib.workflow import ActionKind, ClosureReason, ConfirmationVia, EventKind, FollowUpSource, Status

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def new_ticket(engine, staff, summary: str = "Printer on floor 2 jams") -> int:
    with transaction(engine) as s:
        return tickets.create_ticket(s, actor=staff.tech, now=T0, draft=TicketDraft(
            summary=summary, category="Printing", priority="Medium", channel="phone",
            requester=RequesterInput(name="Ann Smith", email="ann@example.com"))).id


def kinds(engine, tid: int) -> list[str]:
    with read_session(engine) as s:
        return list(s.scalars(select(TicketEvent.kind).where(TicketEvent.ticket_id == tid).order_by(TicketEvent.id)))


def queue_ids(engine, me: int, now: datetime) -> list[int]:
    with read_session(engine) as s:
        page = queries.list_queue(s, QueueFilter(view=QueueView.FOLLOW_UPS, me=me, now=now))
    return [r.id for r in page.rows]


def test_follow_up_lifecycle(engine, staff) -> None:
    tid = new_ticket(engine, staff)
    due = T0 + timedelta(days=2)
    with transaction(engine) as s:
        fu = followups.schedule(s, actor=staff.lead, ticket_id=tid, due_at=due, owner_id=staff.tech,
                                note="Check the new roller holds", now=T0)
        fid = fu.id
        assert fu.source == FollowUpSource.MANUAL.value and fu.owner_id == staff.tech
    assert kinds(engine, tid)[-1] == EventKind.FOLLOW_UP_SCHEDULED.value

    # not due yet: nothing in the view, nothing reminded
    assert queue_ids(engine, staff.tech, T0 + timedelta(days=1)) == []
    report = worker.run_cycle(engine, smtp=None, imap=None, now=T0 + timedelta(days=1))
    assert report.followups == 0 and not report.errors

    # due: in the owner's "Follow-ups due" view, and only the owner's
    later = due + timedelta(hours=1)
    assert queue_ids(engine, staff.tech, later) == [tid]
    assert queue_ids(engine, staff.tech2, later) == []
    with read_session(engine) as s:
        assert [r.id for r in followups.list_due(s, owner_id=staff.tech, now=later)] == [fid]

    # the worker reminds the owner once: an event on the ticket and a mail to the owner
    report = worker.run_cycle(engine, smtp=None, imap=None, now=later)
    assert report.followups == 1 and not report.errors
    assert worker.run_cycle(engine, smtp=None, imap=None, now=later + timedelta(minutes=5)).followups == 0
    with read_session(engine) as s:
        reminded = s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == tid,
                                                       TicketEvent.kind == EventKind.FOLLOW_UP_REMINDED.value)).all()
        assert len(reminded) == 1 and reminded[0].actor_label == "worker"
        assert "Check the new roller holds" in (reminded[0].body or "")
        owner_mail = s.scalars(select(OutboxMail).where(OutboxMail.to_address == "tech@desk.example")).all()
        assert len(owner_mail) == 1 and "Follow-up due" in owner_mail[0].subject and "HD-" in owner_mail[0].subject
        assert "Tom Tech" in owner_mail[0].body and owner_mail[0].ticket_id == tid
        assert s.get(FollowUp, fid).reminded_at == later

    # completed with an outcome by its owner (not by another technician)
    with pytest.raises(PermissionDenied), transaction(engine) as s:
        followups.complete(s, actor=staff.tech2, follow_up_id=fid, outcome="ok", now=later)
    with pytest.raises(ValidationError), transaction(engine) as s:
        followups.complete(s, actor=staff.tech, follow_up_id=fid, outcome="  ", now=later)
    with transaction(engine) as s:
        followups.complete(s, actor=staff.tech, follow_up_id=fid, outcome="No jams since; user happy", now=later)
    with pytest.raises(ValidationError, match="already completed"), transaction(engine) as s:
        followups.complete(s, actor=staff.lead, follow_up_id=fid, outcome="again", now=later)
    assert queue_ids(engine, staff.tech, later + timedelta(days=1)) == []
    with read_session(engine) as s:
        rows = followups.list_for_ticket(s, tid)
        assert rows[0].outcome == "No jams since; user happy" and rows[0].completed_at == later
        timeline = [e.kind for e in queries.timeline(s, tid)]
    for kind in (EventKind.FOLLOW_UP_SCHEDULED, EventKind.FOLLOW_UP_REMINDED, EventKind.FOLLOW_UP_COMPLETED):
        assert kind.value in timeline


def test_owner_without_email_gets_the_event_only_and_completed_ones_are_not_reminded(engine, staff) -> None:
    tid = new_ticket(engine, staff)
    with transaction(engine) as s:
        s.get(User, staff.tech2).email = None
        followups.schedule(s, actor=staff.tech2, ticket_id=tid, due_at=T0 + timedelta(hours=1), now=T0)
        done = followups.schedule(s, actor=staff.tech, ticket_id=tid, due_at=T0 + timedelta(hours=1), now=T0)
        followups.complete(s, actor=staff.tech, follow_up_id=done.id, outcome="checked early", now=T0)
    with transaction(engine) as s:
        assert followups.send_due_reminders(s, now=T0 + timedelta(hours=2)) == 1
    with read_session(engine) as s:
        assert s.scalars(select(OutboxMail).where(OutboxMail.to_address.like("tech%"))).all() == []


def test_schedule_validation(engine, staff) -> None:
    tid = new_ticket(engine, staff)
    with transaction(engine) as s:
        s.get(User, staff.tech2).active = False
    cases = [
        ({"due_at": T0 - timedelta(days=1)}, "due_at"),
        ({"due_at": T0 + timedelta(days=400)}, "due_at"),
        ({"due_at": T0.replace(tzinfo=None)}, "due_at"),
        ({"due_at": T0 + timedelta(days=1), "owner_id": staff.tech2}, "owner"),
        ({"due_at": T0 + timedelta(days=1), "owner_id": "3"}, "owner"),
        ({"due_at": T0 + timedelta(days=1), "note": "bad\x00note"}, "note"),
    ]
    for kwargs, field in cases:
        with pytest.raises(ValidationError) as err, transaction(engine) as s:
            followups.schedule(s, actor=staff.tech, ticket_id=tid, now=T0, **kwargs)  # type: ignore[arg-type]
        assert field in err.value.fields


def test_closed_tickets_take_follow_ups(engine, staff) -> None:
    tid = new_ticket(engine, staff)
    with transaction(engine) as s:
        tickets.close(s, actor=staff.lead, ticket_id=tid, expected_version=1, reason=ClosureReason.CANCELLED,
                      note="User fixed it", now=T0)
    with transaction(engine) as s:
        followups.schedule(s, actor=staff.tech, ticket_id=tid, due_at=T0 + timedelta(days=7), now=T0)
    assert queue_ids(engine, staff.tech, T0 + timedelta(days=8)) == [tid]


def _resolved_and_confirmed(engine, staff) -> int:
    tid = new_ticket(engine, staff)
    with transaction(engine) as s:
        tickets.take(s, actor=staff.tech, ticket_id=tid, now=T0)
        tickets.log_action(s, actor=staff.tech, ticket_id=tid, kind=ActionKind.DIAGNOSIS, text="Worn roller", now=T0)
    with transaction(engine) as s:
        v = s.get(Ticket, tid).version
        tickets.resolve(s, actor=staff.tech, ticket_id=tid, expected_version=v, resolution_notes="New roller",
                        root_cause="Worn roller", now=T0)
    with transaction(engine) as s:
        v = s.get(Ticket, tid).version
        tickets.record_confirmation(s, actor=staff.tech, ticket_id=tid, expected_version=v,
                                    via=ConfirmationVia.PHONE, confirmed_by="Ann Smith", now=T0)
    return tid


def test_preventive_steps_at_closure_with_a_follow_up(engine, staff) -> None:
    tid = _resolved_and_confirmed(engine, staff)
    with transaction(engine) as s:
        v = s.get(Ticket, tid).version
        tickets.close(s, actor=staff.tech, ticket_id=tid, expected_version=v, reason=ClosureReason.CONFIRMED,
                      preventive_steps="Rollers of all floor printers go on the quarterly maintenance list.",
                      follow_up=FollowUpRequest(due_at=T0 + timedelta(days=90), owner_id=staff.senior), now=T0)
    with read_session(engine) as s:
        t = s.get(Ticket, tid)
        assert Status(t.status) is Status.CLOSED
        step = s.scalars(select(PreventiveStep).where(PreventiveStep.ticket_id == tid)).one()
        fu = s.get(FollowUp, step.follow_up_id)
        assert fu.owner_id == staff.senior and fu.source == FollowUpSource.PREVENTIVE.value
        assert "quarterly maintenance" in fu.note
        week = followups.preventive_steps_between(s, T0 - timedelta(days=1), T0 + timedelta(days=6))
        assert [(r.ticket_id, r.body[:7], r.follow_up_due_at) for r in week] == [(tid, "Rollers", fu.due_at)]
        assert week[0].category == "Printing" and week[0].recorded_by == "Tom Tech"
        assert followups.preventive_steps_between(s, T0 + timedelta(days=1), T0 + timedelta(days=8)) == []
    k = kinds(engine, tid)
    assert k[-3:] == [EventKind.CLOSED.value, EventKind.FOLLOW_UP_SCHEDULED.value, EventKind.PREVENTIVE_STEPS.value]


def test_close_without_preventive_steps_is_unchanged_and_bad_ones_roll_back(engine, staff) -> None:
    tid = _resolved_and_confirmed(engine, staff)
    with pytest.raises(ValidationError), transaction(engine) as s:
        v = s.get(Ticket, tid).version
        tickets.close(s, actor=staff.tech, ticket_id=tid, expected_version=v, reason=ClosureReason.CONFIRMED,
                      preventive_steps="Check rollers", follow_up=FollowUpRequest(due_at=T0 - timedelta(days=3)),
                      now=T0)
    with read_session(engine) as s:
        assert Status(s.get(Ticket, tid).status) is Status.RESOLVED  # nothing of the closure was kept
    with transaction(engine) as s:
        v = s.get(Ticket, tid).version
        tickets.close(s, actor=staff.tech, ticket_id=tid, expected_version=v, reason=ClosureReason.CONFIRMED, now=T0)
    with read_session(engine) as s:
        assert s.scalars(select(PreventiveStep)).all() == [] and s.scalars(select(FollowUp)).all() == []
