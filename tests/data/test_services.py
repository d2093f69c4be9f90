"""Every ticket service on SQLite and PostgreSQL: its event, timestamps, version, mail and guards."""

from __future__ import annotations

import hashlib
import inspect
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from lib import queries, tickets
from lib.config import get_settings
from lib.db import transaction
from lib.directory import DeviceInput, RequesterInput
from lib.errors import GuardFailed, NotFound, PermissionDenied, TransitionNotAllowed, ValidationError
from lib.models import ActionToken, Attachment, OutboxMail, Ticket, TicketEvent
from lib.tickets import DuplicateExternalRef, NewAttachment, TicketDraft
from lib.workflow import ActionKind, ClosureReason, ConfirmationVia, EscalationLevel, EventKind, Priority, Status

# --- helpers -----------------------------------------------------------------------------------


def draft(**kw) -> TicketDraft:
    base = dict(summary="Printer jams on tray 2", category="Printing", priority="High", channel="email",
                description="It jams every second page.",
                requester=RequesterInput(name="Ann Smith", email="ann@example.com"))
    base.update(kw)
    return TicketDraft(**base)  # type: ignore[arg-type]


def create(engine, actor, **kw) -> int:
    now = kw.pop("now", None)
    with transaction(engine) as s:
        return tickets.create_ticket(s, actor=actor, draft=draft(**kw), now=now).id


def do(engine, fn, tid: int, **kw) -> Ticket:
    """One service call in its own transaction, as a page makes it; the version is the current one
    unless the test passes ``expected_version`` (staleness has its own tests)."""
    with transaction(engine) as s:
        if "expected_version" in inspect.signature(fn).parameters and "expected_version" not in kw:
            kw["expected_version"] = s.get(Ticket, tid).version
        return fn(s, ticket_id=tid, **kw)


def get(engine, tid: int) -> Ticket:
    with transaction(engine) as s:
        return s.get(Ticket, tid)


def events(engine, tid: int, kind: EventKind | None = None) -> list[TicketEvent]:
    with transaction(engine) as s:
        stmt = select(TicketEvent).where(TicketEvent.ticket_id == tid).order_by(TicketEvent.id)
        if kind is not None:
            stmt = stmt.where(TicketEvent.kind == kind.value)
        return list(s.scalars(stmt).unique())


def mails(engine, tid: int) -> list[OutboxMail]:
    with transaction(engine) as s:
        return list(s.scalars(select(OutboxMail).where(OutboxMail.ticket_id == tid).order_by(OutboxMail.id)))


def count(engine, model) -> int:
    with transaction(engine) as s:
        return s.scalar(select(func.count()).select_from(model))


def in_progress(engine, staff, **kw) -> int:
    tid = create(engine, staff.tech, **kw)
    do(engine, tickets.take, tid, actor=staff.tech)
    do(engine, tickets.acknowledge, tid, actor=staff.tech)
    return tid


def resolved(engine, staff, **kw) -> int:
    tid = in_progress(engine, staff, **kw)
    do(engine, tickets.log_action, tid, actor=staff.tech, kind=ActionKind.DIAGNOSIS, text="Worn roller", minutes=10)
    do(engine, tickets.resolve, tid, actor=staff.tech, resolution_notes="Replaced the pickup roller",
       root_cause="Worn pickup roller")
    return tid


def confirmed(engine, staff, **kw) -> int:
    tid = resolved(engine, staff, **kw)
    do(engine, tickets.record_confirmation, tid, actor=staff.tech, via=ConfirmationVia.PHONE, confirmed_by="Ann Smith")
    return tid


def aware(dt: datetime | None) -> bool:
    return dt is not None and dt.tzinfo is not None and dt.utcoffset() == timedelta(0)


# --- create ------------------------------------------------------------------------------------


def test_create_ticket(engine, staff):
    tid = create(engine, staff.tech)
    t = get(engine, tid)
    assert (t.status, t.is_open, t.version, t.assignee_id) == (Status.NEW, True, 1, None)
    assert t.priority == Priority.HIGH and t.category.name == "Printing" and t.channel == "email"
    assert aware(t.created_at) and t.acknowledged_at is None and t.first_response_at is None
    assert t.sla_policy and t.response_due_at is not None and t.resolution_due_at is not None
    [ev] = events(engine, tid)
    assert (ev.kind, ev.from_status, ev.to_status, ev.public, ev.actor_id) == (
        EventKind.CREATED, None, Status.NEW, True, staff.tech)
    assert ev.body == "It jams every second page." and aware(ev.occurred_at) and aware(ev.recorded_at)
    [mail] = mails(engine, tid)  # an e-mail request is acknowledged by mail
    assert mail.to_address == "ann@example.com" and "We received your request" in mail.subject
    assert "HD-" in mail.subject


def test_create_finds_the_requester_again_by_email(engine, staff):
    a = create(engine, staff.tech, requester=RequesterInput(name="Ann Smith", email="Ann@Example.COM"))
    b = create(engine, staff.tech, channel="phone", requester=RequesterInput(email="ann@example.com", phone="555-1"))
    ta, tb = get(engine, a), get(engine, b)
    assert ta.requester_id == tb.requester_id and tb.requester.phone == "555-1"
    # every channel gets the receipt when the requester has an address, a phone call too
    assert ["We received your request" in m.subject for m in mails(engine, b)] == [True]


def test_create_with_device_and_assignee(engine, staff):
    tid = create(engine, staff.tech, assignee_id=staff.tech, device=DeviceInput(asset_tag="LAP-0042", make_model="X1"))
    t = get(engine, tid)
    assert t.status == Status.ASSIGNED and t.assignee_id == staff.tech and t.device.asset_tag == "LAP-0042"
    assert [e.kind for e in events(engine, tid)] == [EventKind.CREATED, EventKind.ASSIGNED]
    with pytest.raises(ValidationError) as err:  # only a lead puts a new ticket on someone else's desk
        create(engine, staff.tech, assignee_id=staff.tech2)
    assert "assignee" in err.value.fields
    assert get(engine, create(engine, staff.lead, assignee_id=staff.tech2)).assignee_id == staff.tech2


def test_create_needs_a_requester_except_for_alerts(engine, staff):
    with pytest.raises(ValidationError) as err:
        create(engine, staff.tech, requester=None)
    assert "requester" in err.value.fields
    tid = create(engine, staff.tech, requester=None, channel="alert")
    assert get(engine, tid).requester_id is None and mails(engine, tid) == []


# --- fields ------------------------------------------------------------------------------------


def test_update_fields(engine, staff):
    tid = in_progress(engine, staff)
    before = get(engine, tid)
    t = do(engine, tickets.update_fields, tid, actor=staff.tech,
           changes={"summary": "Printer jams on every tray", "category": "Hardware", "priority": "Critical"})
    assert t.version == before.version + 1  # one save, one version, however many fields
    evs = events(engine, tid, EventKind.FIELD_CHANGED)
    assert {(e.field, e.old_value, e.new_value) for e in evs} == {
        ("summary", "Printer jams on tray 2", "Printer jams on every tray"),
        ("category", "Printing", "Hardware"),
        ("priority", "High", "Critical"),
    }
    assert all(e.meta["v"] == t.version and e.actor_id == staff.tech and not e.public for e in evs)
    after = get(engine, tid)
    assert after.priority == Priority.CRITICAL and after.sla_policy["priority"] == int(Priority.CRITICAL)
    assert after.resolution_due_at < before.resolution_due_at  # re-targeted with Critical's clock


def test_update_fields_unchanged_values_write_nothing(engine, staff):
    tid = in_progress(engine, staff)
    v = get(engine, tid).version
    t = do(engine, tickets.update_fields, tid, actor=staff.tech, changes={"summary": "  Printer jams on tray 2 ",
                                                                         "priority": Priority.HIGH})
    assert t.version == v and events(engine, tid, EventKind.FIELD_CHANGED) == []


def test_update_fields_refuses_unknown_fields_and_closed_tickets(engine, staff):
    tid = in_progress(engine, staff)
    with pytest.raises(ValidationError) as err:
        do(engine, tickets.update_fields, tid, actor=staff.tech, changes={"status": "closed", "version": 99})
    assert set(err.value.fields) == {"status", "version"}
    with pytest.raises(ValidationError):
        do(engine, tickets.update_fields, tid, actor=staff.tech, changes={"summary": "x"}, expected_version=None)
    do(engine, tickets.close, tid, actor=staff.tech, reason=ClosureReason.CANCELLED, note="User withdrew it")
    with pytest.raises(TransitionNotAllowed):
        do(engine, tickets.update_fields, tid, actor=staff.tech, changes={"summary": "late edit"})


# --- assignment --------------------------------------------------------------------------------


def test_take(engine, staff):
    tid = create(engine, staff.tech)
    t = do(engine, tickets.take, tid, actor=staff.tech)
    assert (t.status, t.assignee_id, t.version) == (Status.ASSIGNED, staff.tech, 2)
    ev = events(engine, tid, EventKind.ASSIGNED)[-1]
    assert (ev.from_status, ev.to_status, ev.field, ev.old_value, ev.new_value) == (
        Status.NEW, Status.ASSIGNED, "assignee", None, "Tom Tech")
    assert do(engine, tickets.take, tid, actor=staff.tech).version == 2  # taking your own again: nothing
    with pytest.raises(PermissionDenied, match="already taken by Tom Tech"):
        do(engine, tickets.take, tid, actor=staff.tech2)


def test_assign_reassign_and_unassign(engine, staff):
    tid = in_progress(engine, staff)
    t = do(engine, tickets.assign, tid, actor=staff.lead, assignee_id=staff.tech2, note="Tom is out today")
    assert (t.status, t.assignee_id) == (Status.ASSIGNED, staff.tech2)  # the new assignee acknowledges again
    ev = events(engine, tid, EventKind.ASSIGNED)[-1]
    assert (ev.from_status, ev.to_status, ev.old_value, ev.new_value, ev.body, ev.actor_id) == (
        Status.IN_PROGRESS, Status.ASSIGNED, "Tom Tech", "Tara Tech", "Tom is out today", staff.lead)
    t = do(engine, tickets.assign, tid, actor=staff.lead, assignee_id=None)
    assert (t.status, t.assignee_id) == (Status.NEW, None)
    with pytest.raises(ValidationError):
        do(engine, tickets.assign, tid, actor=staff.lead, assignee_id=99999)
    t = do(engine, tickets.assign, tid, actor=staff.tech2, assignee_id=staff.tech2)  # to oneself: a take
    assert t.assignee_id == staff.tech2
    with pytest.raises(PermissionDenied):
        do(engine, tickets.assign, tid, actor=staff.tech2, assignee_id=staff.tech)


def test_lead_can_hand_over_a_ticket_awaiting_confirmation(engine, staff):
    tid = resolved(engine, staff)
    do(engine, tickets.request_confirmation, tid, actor=staff.tech)
    t = do(engine, tickets.assign, tid, actor=staff.lead, assignee_id=staff.tech2, note="Tom is on leave")
    assert (t.status, t.assignee_id) == (Status.AWAITING_CONFIRMATION, staff.tech2)
    do(engine, tickets.record_confirmation, tid, actor=staff.tech2, via=ConfirmationVia.PHONE, confirmed_by="Ann")
    assert do(engine, tickets.close, tid, actor=staff.tech2, reason=ClosureReason.CONFIRMED).status == Status.CLOSED


def test_a_ticket_unassigned_while_waiting_can_be_taken_and_keeps_waiting(engine, staff):
    tid = in_progress(engine, staff)
    do(engine, tickets.request_info, tid, actor=staff.tech, text="Which printer?")
    t = do(engine, tickets.assign, tid, actor=staff.lead, assignee_id=None)
    assert (t.status, t.assignee_id) == (Status.WAITING_USER, None)
    t = do(engine, tickets.take, tid, actor=staff.tech2)
    assert (t.status, t.assignee_id) == (Status.WAITING_USER, staff.tech2)


def test_acknowledge(engine, staff):
    tid = create(engine, staff.tech)
    do(engine, tickets.take, tid, actor=staff.tech)
    with pytest.raises(PermissionDenied):
        do(engine, tickets.acknowledge, tid, actor=staff.tech2)
    t = do(engine, tickets.acknowledge, tid, actor=staff.tech)
    assert t.status == Status.IN_PROGRESS and aware(t.acknowledged_at)
    first = t.acknowledged_at
    ev = events(engine, tid, EventKind.ACKNOWLEDGED)[-1]
    assert (ev.from_status, ev.to_status, ev.public) == (Status.ASSIGNED, Status.IN_PROGRESS, False)
    do(engine, tickets.assign, tid, actor=staff.lead, assignee_id=staff.tech2)
    t = do(engine, tickets.acknowledge, tid, actor=staff.tech2)
    assert t.acknowledged_at == first  # the first acknowledgement counts
    with pytest.raises(TransitionNotAllowed):
        do(engine, tickets.acknowledge, tid, actor=staff.tech2)


# --- appends -----------------------------------------------------------------------------------


def test_log_action(engine, staff):
    tid = in_progress(engine, staff)
    v = get(engine, tid).version
    t = do(engine, tickets.log_action, tid, actor=staff.tech, kind="reproduction", text="Jams with A4 80 g",
           minutes="15")
    assert t.version == v
    [ev] = events(engine, tid, EventKind.ACTION)
    assert (ev.body, ev.minutes, ev.public, ev.meta["action"], ev.from_status) == (
        "Jams with A4 80 g", 15, False, "reproduction", None)
    with pytest.raises(ValidationError) as err:
        do(engine, tickets.log_action, tid, actor=staff.tech, kind="guesswork", text="x")
    assert "kind" in err.value.fields
    # only the receipt and "a technician has taken it on": actions are not mailed
    assert [m.subject.split("] ", 1)[1].split(":")[0] for m in mails(engine, tid)] == [
        "We received your request", "Update"]


def test_workaround(engine, staff):
    tid = in_progress(engine, staff)
    v = get(engine, tid).version
    t = do(engine, tickets.provide_workaround, tid, actor=staff.tech, text="Use tray 1 for now")
    assert t.version == v and t.workaround == "Use tray 1 for now" and aware(t.first_response_at)
    [ev] = events(engine, tid, EventKind.WORKAROUND)
    assert ev.public and ev.body == "Use tray 1 for now"
    assert "workaround is available" in mails(engine, tid)[-1].subject
    assert "Use tray 1 for now" in mails(engine, tid)[-1].body


def test_public_reply_sets_first_response_once(engine, staff):
    tid = in_progress(engine, staff)
    t = do(engine, tickets.public_reply, tid, actor=staff.tech, text="Looking at it now", minutes=5)
    first = t.first_response_at
    assert aware(first)
    t = do(engine, tickets.public_reply, tid, actor=staff.tech, text="Parts ordered",
           now=first + timedelta(hours=2))
    assert t.first_response_at == first
    evs = events(engine, tid, EventKind.PUBLIC_REPLY)
    assert [(e.body, e.public, e.minutes) for e in evs] == [("Looking at it now", True, 5), ("Parts ordered", True, None)]
    assert [m.subject.split(": ")[0] for m in mails(engine, tid)[2:]] == [f"[HD-{tid:06d}] Update on your request"] * 2


def test_internal_note_anyone_anywhere_no_mail_no_version(engine, staff):
    tid = in_progress(engine, staff)
    v = get(engine, tid).version
    t = do(engine, tickets.internal_note, tid, actor=staff.tech2, text="Same model failed last week", minutes=3)
    assert t.version == v and t.first_response_at is None
    [ev] = events(engine, tid, EventKind.INTERNAL_NOTE)
    assert (ev.public, ev.actor_id, ev.minutes) == (False, staff.tech2, 3)
    do(engine, tickets.close, tid, actor=staff.tech, reason=ClosureReason.CANCELLED, note="Withdrawn")
    do(engine, tickets.internal_note, tid, actor=staff.tech2, text="Note on a closed ticket")
    assert len(events(engine, tid, EventKind.INTERNAL_NOTE)) == 2
    assert not any("Same model" in m.body for m in mails(engine, tid))


# --- waiting, escalation -----------------------------------------------------------------------


def test_request_info_and_requester_reply(engine, staff):
    tid = in_progress(engine, staff)
    v = get(engine, tid).version
    t = do(engine, tickets.request_info, tid, actor=staff.tech, text="Which tray number is it?")
    assert (t.status, t.version, t.is_open) == (Status.WAITING_USER, v + 1, True) and aware(t.first_response_at)
    ev = events(engine, tid, EventKind.INFO_REQUESTED)[-1]
    assert (ev.from_status, ev.to_status, ev.public, ev.body) == (
        Status.IN_PROGRESS, Status.WAITING_USER, True, "Which tray number is it?")
    assert "need more information" in mails(engine, tid)[-1].subject
    t = do(engine, tickets.requester_reply, tid, from_label="ann@example.com", text="Tray 2")
    assert (t.status, t.version) == (Status.IN_PROGRESS, v + 2)
    ev = events(engine, tid, EventKind.INBOUND_EMAIL)[-1]
    assert (ev.from_status, ev.to_status, ev.public, ev.actor_id, ev.actor_label) == (
        Status.WAITING_USER, Status.IN_PROGRESS, True, None, "ann@example.com")


def test_requester_reply_never_confirms(engine, staff):
    tid = resolved(engine, staff)
    do(engine, tickets.request_confirmation, tid, actor=staff.tech)
    v = get(engine, tid).version
    t = do(engine, tickets.requester_reply, tid, from_label="ann@example.com", text="Yes thanks, all good!")
    assert (t.status, t.version, t.confirmed_at) == (Status.AWAITING_CONFIRMATION, v, None)
    with pytest.raises(GuardFailed):
        do(engine, tickets.close, tid, actor=staff.tech, reason=ClosureReason.CONFIRMED)


def test_escalate_to_senior(engine, staff):
    tid = in_progress(engine, staff)
    with pytest.raises(ValidationError) as err:
        do(engine, tickets.escalate_to_senior, tid, actor=staff.tech, senior_id=staff.tech2, reason="Need help")
    assert "senior" in err.value.fields
    with pytest.raises(ValidationError):
        do(engine, tickets.escalate_to_senior, tid, actor=staff.tech, senior_id=staff.senior, reason=" ")
    t = do(engine, tickets.escalate_to_senior, tid, actor=staff.tech, senior_id=staff.senior,
           reason="Fuser error beyond me")
    assert (t.status, t.assignee_id, t.escalation_level) == (Status.ASSIGNED, staff.senior, EscalationLevel.SENIOR)
    ev = events(engine, tid, EventKind.ESCALATED)[-1]
    assert (ev.from_status, ev.to_status, ev.body, ev.meta["level"], ev.meta["from"], ev.meta["to"]) == (
        Status.IN_PROGRESS, Status.ASSIGNED, "Fuser error beyond me", "senior", "Tom Tech", "Sam Senior")
    assert do(engine, tickets.acknowledge, tid, actor=staff.senior).status == Status.IN_PROGRESS


def test_escalate_to_vendor_and_resume(clock, engine, staff):
    tid = in_progress(engine, staff)
    promised = clock.now() + timedelta(days=2)
    with pytest.raises(ValidationError) as err:
        do(engine, tickets.escalate_to_vendor, tid, actor=staff.tech, vendor_name="Acme", case_ref="C-1",
           promised_at="tomorrow")
    assert "promised_at" in err.value.fields
    t = do(engine, tickets.escalate_to_vendor, tid, actor=staff.tech, vendor_name="Acme Printers",
           case_ref="CASE-881", promised_at=promised, note="Fuser part on order")
    assert (t.status, t.escalation_level, t.vendor_name, t.vendor_case_ref) == (
        Status.WAITING_VENDOR, EscalationLevel.VENDOR, "Acme Printers", "CASE-881")
    assert t.vendor_promised_at == promised
    ev = events(engine, tid, EventKind.ESCALATED)[-1]
    assert (ev.to_status, ev.meta["vendor"], ev.meta["case_ref"], ev.public) == (
        Status.WAITING_VENDOR, "Acme Printers", "CASE-881", False)
    t = do(engine, tickets.resume, tid, actor=staff.tech, note="Part arrived")
    assert t.status == Status.IN_PROGRESS
    ev = events(engine, tid, EventKind.RESUMED)[-1]
    assert (ev.from_status, ev.to_status, ev.body) == (Status.WAITING_VENDOR, Status.IN_PROGRESS, "Part arrived")


# --- resolution and confirmation ---------------------------------------------------------------


def test_resolve(engine, staff):
    tid = in_progress(engine, staff)
    with pytest.raises(GuardFailed) as err:
        do(engine, tickets.resolve, tid, actor=staff.tech, resolution_notes="  ")
    assert err.value.missing == ["resolution notes: what fixed it"]
    t = do(engine, tickets.resolve, tid, actor=staff.tech, resolution_notes="Replaced the roller",
           root_cause_unknown_reason="Could not tell why it wore out early", minutes=30)
    assert (t.status, t.is_open, t.resolution_notes) == (Status.RESOLVED, False, "Replaced the roller")
    assert t.root_cause is None and t.root_cause_unknown_reason.startswith("Could not")
    assert aware(t.resolved_at) and t.first_response_at == t.resolved_at  # telling the user counts
    ev = events(engine, tid, EventKind.RESOLVED)[-1]
    assert (ev.from_status, ev.to_status, ev.public, ev.minutes, ev.body) == (
        Status.IN_PROGRESS, Status.RESOLVED, True, 30, "Replaced the roller")
    assert "Resolved" in mails(engine, tid)[-1].subject


def test_resolve_needs_an_assignee(engine, staff):
    tid = create(engine, staff.tech)
    with pytest.raises(TransitionNotAllowed):  # a new ticket cannot be resolved at all
        do(engine, tickets.resolve, tid, actor=staff.lead, resolution_notes="x")
    do(engine, tickets.take, tid, actor=staff.tech)
    do(engine, tickets.request_info, tid, actor=staff.tech, text="Which tray?")
    do(engine, tickets.assign, tid, actor=staff.lead, assignee_id=None)
    with pytest.raises(GuardFailed, match="assignee"):
        do(engine, tickets.resolve, tid, actor=staff.lead, resolution_notes="x")


def test_request_confirmation_mails_a_link(engine, staff):
    tid = resolved(engine, staff)
    t = do(engine, tickets.request_confirmation, tid, actor=staff.tech, message="Please print a test page")
    assert t.status == Status.AWAITING_CONFIRMATION and aware(t.confirmation_requested_at)
    ev = events(engine, tid, EventKind.CONFIRMATION_REQUESTED)[-1]
    assert (ev.from_status, ev.to_status, ev.public) == (Status.RESOLVED, Status.AWAITING_CONFIRMATION, True)
    mail = mails(engine, tid)[-1]
    assert "Please confirm" in mail.subject and "/confirm?t=" in mail.body and "test page" in mail.body
    assert count(engine, ActionToken) == 1
    first = t.confirmation_requested_at
    t = do(engine, tickets.request_confirmation, tid, actor=staff.tech, now=first + timedelta(days=3))
    assert t.status == Status.AWAITING_CONFIRMATION and t.confirmation_requested_at == first + timedelta(days=3)
    assert count(engine, ActionToken) == 2  # a reminder carries a fresh link


def test_record_confirmation(engine, staff):
    tid = resolved(engine, staff)
    with pytest.raises(ValidationError) as err:
        do(engine, tickets.record_confirmation, tid, actor=staff.tech, via="carrier pigeon", confirmed_by="Ann")
    assert "via" in err.value.fields
    with pytest.raises(ValidationError):  # only the signed link records a link confirmation
        do(engine, tickets.record_confirmation, tid, actor=staff.tech, via=ConfirmationVia.LINK, confirmed_by="Ann")
    v = get(engine, tid).version
    t = do(engine, tickets.record_confirmation, tid, actor=staff.tech, via="in_person", confirmed_by="Ann Smith")
    assert (t.status, t.confirmation_via, t.confirmed_by, t.version) == (Status.RESOLVED, "in_person", "Ann Smith", v + 1)
    assert aware(t.confirmed_at)
    ev = events(engine, tid, EventKind.CONFIRMED)[-1]
    assert (ev.public, ev.meta["via"], ev.meta["by"]) == (False, "in_person", "Ann Smith")


# --- closure -----------------------------------------------------------------------------------


def test_close_confirmed_end_to_end(engine, staff):
    tid = confirmed(engine, staff)
    t = do(engine, tickets.close, tid, actor=staff.tech, reason="confirmed")
    assert (t.status, t.is_open, t.closure_reason) == (Status.CLOSED, False, "confirmed") and aware(t.closed_at)
    ev = events(engine, tid, EventKind.CLOSED)[-1]
    assert (ev.from_status, ev.to_status, ev.public, ev.meta["reason"], ev.meta["override"]) == (
        Status.RESOLVED, Status.CLOSED, True, "confirmed", False)
    assert "Closed" in mails(engine, tid)[-1].subject


def test_close_confirmed_lists_what_is_missing(engine, staff):
    tid = in_progress(engine, staff)
    do(engine, tickets.resolve, tid, actor=staff.tech, resolution_notes="Rebooted")
    with pytest.raises(GuardFailed) as err:
        do(engine, tickets.close, tid, actor=staff.tech, reason=ClosureReason.CONFIRMED)
    assert len(err.value.missing) == 3  # confirmation, a documented action, a root cause
    assert get(engine, tid).status == Status.RESOLVED


def test_close_no_reply_only_after_the_wait(clock, engine, staff):
    tid = resolved(engine, staff)
    asked = clock.now()
    do(engine, tickets.request_confirmation, tid, actor=staff.tech, now=asked)
    wait = timedelta(days=get_settings().confirmation_wait_days)
    with pytest.raises(GuardFailed, match="wait"):
        do(engine, tickets.close, tid, actor=staff.tech, reason=ClosureReason.NO_REPLY, now=asked + wait / 2)
    t = do(engine, tickets.close, tid, actor=staff.tech, reason=ClosureReason.NO_REPLY, now=asked + wait)
    assert (t.status, t.closure_reason) == (Status.CLOSED, "no_reply")
    assert "Closed" in mails(engine, tid)[-1].subject


def test_close_no_reply_refused_when_the_user_replied(clock, engine, staff):
    tid = resolved(engine, staff)
    asked = clock.now()
    do(engine, tickets.request_confirmation, tid, actor=staff.tech, now=asked)
    do(engine, tickets.requester_reply, tid, from_label="ann@example.com", text="Still jams sometimes",
       now=asked + timedelta(days=1))
    with pytest.raises(GuardFailed, match="replied"):
        do(engine, tickets.close, tid, actor=staff.tech, reason=ClosureReason.NO_REPLY, now=asked + timedelta(days=30))


def test_close_duplicate(engine, staff):
    original = create(engine, staff.tech)
    tid = create(engine, staff.tech, summary="Printer jam again")
    do(engine, tickets.take, tid, actor=staff.tech)
    with pytest.raises(GuardFailed, match="duplicates \\(its number\\)"):
        do(engine, tickets.close, tid, actor=staff.tech, reason=ClosureReason.DUPLICATE)
    with pytest.raises(GuardFailed, match="itself"):
        do(engine, tickets.close, tid, actor=staff.tech, reason=ClosureReason.DUPLICATE, duplicate_of=tid)
    with pytest.raises(ValidationError):
        do(engine, tickets.close, tid, actor=staff.tech, reason=ClosureReason.DUPLICATE, duplicate_of=987654)
    sent = len(mails(engine, tid))
    t = do(engine, tickets.close, tid, actor=staff.tech, reason=ClosureReason.DUPLICATE, duplicate_of=original)
    assert (t.status, t.closure_reason, t.duplicate_of_id) == (Status.CLOSED, "duplicate", original)
    assert events(engine, tid, EventKind.CLOSED)[-1].meta["duplicate_of"] == original
    assert len(mails(engine, tid)) == sent  # the requester hears about the original instead
    do(engine, tickets.take, original, actor=staff.tech)
    with pytest.raises(ValidationError, match="duplicate of this one"):
        do(engine, tickets.close, original, actor=staff.tech, reason=ClosureReason.DUPLICATE, duplicate_of=tid)


def test_close_cancelled(engine, staff):
    tid = create(engine, staff.tech)
    do(engine, tickets.take, tid, actor=staff.tech)
    with pytest.raises(GuardFailed, match="cancelled"):
        do(engine, tickets.close, tid, actor=staff.tech, reason=ClosureReason.CANCELLED)
    t = do(engine, tickets.close, tid, actor=staff.tech, reason=ClosureReason.CANCELLED, note="Found it was unplugged")
    assert (t.status, t.closure_reason, t.closure_note, t.resolved_at) == (
        Status.CLOSED, "cancelled", "Found it was unplugged", None)
    assert "Closed" in mails(engine, tid)[-1].subject


def test_close_not_applicable(engine, staff):
    tid = create(engine, staff.tech, channel="alert", requester=None, summary="Disk 91% on fs01")
    do(engine, tickets.take, tid, actor=staff.tech)
    t = do(engine, tickets.close, tid, actor=staff.tech, reason=ClosureReason.NOT_APPLICABLE,
           note="Alert cleared by itself")
    assert t.closure_reason == "not_applicable"
    assert events(engine, tid, EventKind.CLOSED)[-1].public is False
    assert mails(engine, tid) == []


def test_close_unknown_reason(engine, staff):
    tid = in_progress(engine, staff)
    with pytest.raises(ValidationError) as err:
        do(engine, tickets.close, tid, actor=staff.tech, reason="fixed itself")
    assert "reason" in err.value.fields


def test_lead_override_with_a_written_reason(engine, staff):
    tid = in_progress(engine, staff)
    do(engine, tickets.resolve, tid, actor=staff.tech, resolution_notes="Rebooted the print server")
    n_events = len(events(engine, tid))
    with pytest.raises(PermissionDenied, match="lead"):  # a technician may not override
        do(engine, tickets.close, tid, actor=staff.tech, reason=ClosureReason.CONFIRMED,
           override_reason="I am sure it works")
    with pytest.raises(PermissionDenied):
        do(engine, tickets.close, tid, actor=staff.senior, reason=ClosureReason.CONFIRMED, override_reason="Sure")
    with pytest.raises(GuardFailed):  # a lead without a written reason
        do(engine, tickets.close, tid, actor=staff.lead, reason=ClosureReason.CONFIRMED, override_reason="  \n ")
    assert len(events(engine, tid)) == n_events and get(engine, tid).status == Status.RESOLVED
    t = do(engine, tickets.close, tid, actor=staff.lead, reason=ClosureReason.CONFIRMED,
           override_reason="User confirmed in the weekly meeting; Tom is on leave")
    assert t.status == Status.CLOSED
    [ov] = events(engine, tid, EventKind.OVERRIDE)
    assert ov.actor_id == staff.lead and ov.body.startswith("User confirmed in the weekly meeting")
    assert ov.meta["action"] == "close" and ov.meta["reason"] == "confirmed" and len(ov.meta["skipped"]) == 3
    assert events(engine, tid, EventKind.CLOSED)[-1].meta["override"] is True


@pytest.mark.parametrize("reason", list(ClosureReason))
def test_every_closure_reason_end_to_end(clock, engine, staff, reason):
    tid = resolved(engine, staff)
    asked = clock.now()
    do(engine, tickets.request_confirmation, tid, actor=staff.tech, now=asked)
    kw: dict = {"now": asked + timedelta(days=get_settings().confirmation_wait_days, minutes=1)}
    if reason is ClosureReason.CONFIRMED:
        do(engine, tickets.record_confirmation, tid, actor=staff.tech, via="email", confirmed_by="Ann")
    elif reason is ClosureReason.DUPLICATE:
        kw["duplicate_of"] = create(engine, staff.tech)
    elif reason in (ClosureReason.CANCELLED, ClosureReason.NOT_APPLICABLE):
        kw["note"] = "Not needed any more"
    t = do(engine, tickets.close, tid, actor=staff.tech, reason=reason, **kw)
    assert (t.status, t.closure_reason) == (Status.CLOSED, reason.value)
    ev = events(engine, tid, EventKind.CLOSED)[-1]
    assert (ev.from_status, ev.meta["reason"], ev.meta["override"]) == (Status.AWAITING_CONFIRMATION, reason.value, False)
    told = "Closed" in mails(engine, tid)[-1].subject
    assert told is (reason not in (ClosureReason.DUPLICATE, ClosureReason.NOT_APPLICABLE))


# --- reopen ------------------------------------------------------------------------------------


def test_reopen_within_the_window(clock, engine, staff):
    tid = confirmed(engine, staff)
    closed_at = clock.now()
    do(engine, tickets.close, tid, actor=staff.tech, reason=ClosureReason.CONFIRMED, now=closed_at)
    with pytest.raises(ValidationError):
        do(engine, tickets.reopen, tid, actor=staff.tech2, reason="  ")
    t = do(engine, tickets.reopen, tid, actor=staff.tech2, reason="Jams again since Monday",
           now=closed_at + timedelta(days=get_settings().reopen_window_days))
    assert (t.status, t.is_open, t.reopen_count, t.assignee_id) == (Status.IN_PROGRESS, True, 1, staff.tech)
    assert (t.closed_at, t.resolved_at, t.confirmed_at, t.closure_reason, t.confirmation_requested_at) == (
        None, None, None, None, None)
    ev = events(engine, tid, EventKind.REOPENED)[-1]
    assert (ev.from_status, ev.to_status, ev.public, ev.actor_id, ev.meta["reopen_count"]) == (
        Status.CLOSED, Status.IN_PROGRESS, True, staff.tech2, 1)
    with pytest.raises(GuardFailed):  # it has to be confirmed again
        do(engine, tickets.close, tid, actor=staff.tech, reason=ClosureReason.CONFIRMED)


def test_reopen_refused_after_the_window(clock, engine, staff):
    tid = confirmed(engine, staff)
    closed_at = clock.now()
    do(engine, tickets.close, tid, actor=staff.tech, reason=ClosureReason.CONFIRMED, now=closed_at)
    late = closed_at + timedelta(days=get_settings().reopen_window_days, seconds=1)
    with pytest.raises(GuardFailed, match="new ticket"):
        do(engine, tickets.reopen, tid, actor=staff.tech, reason="Back again", now=late)
    assert get(engine, tid).status == Status.CLOSED


def test_reopen_resolved_and_unassigned(engine, staff):
    tid = resolved(engine, staff)
    t = do(engine, tickets.reopen, tid, actor=staff.tech, reason="Still jams")
    assert (t.status, t.reopen_count) == (Status.IN_PROGRESS, 1)
    cancelled = create(engine, staff.tech)
    do(engine, tickets.close, cancelled, actor=staff.lead, reason=ClosureReason.CANCELLED, note="Withdrawn")
    t = do(engine, tickets.reopen, cancelled, actor=staff.tech, reason="Not withdrawn after all")
    assert (t.status, t.assignee_id) == (Status.NEW, None)
    with pytest.raises(TransitionNotAllowed):
        do(engine, tickets.reopen, cancelled, actor=staff.tech, reason="again")


def test_reopen_puts_a_departed_colleague_s_ticket_back_in_the_queue(engine, staff):
    from lib import users

    tid = confirmed(engine, staff)
    do(engine, tickets.close, tid, actor=staff.tech, reason=ClosureReason.CONFIRMED)
    with transaction(engine) as s:
        users.update_user(s, actor=staff.lead, user_id=staff.tech, active=False)
    t = do(engine, tickets.reopen, tid, actor=staff.tech2, reason="Jams again")
    assert (t.status, t.assignee_id) == (Status.NEW, None)
    meta = events(engine, tid, EventKind.REOPENED)[-1].meta
    assert (meta["unassigned"], meta["reopen_count"]) == ("Tom Tech", 1)
    with transaction(engine) as s:
        unassigned = queries.list_queue(s, queries.QueueFilter(view=queries.QueueView.UNASSIGNED)).rows
    assert [r.id for r in unassigned] == [tid]


def test_reopened_duplicate_is_no_longer_a_duplicate(engine, staff):
    original = create(engine, staff.tech)
    tid = create(engine, staff.tech, summary="Printer jam again")
    do(engine, tickets.close, tid, actor=staff.lead, reason=ClosureReason.DUPLICATE, duplicate_of=original)
    t = do(engine, tickets.reopen, tid, actor=staff.tech, reason="Different printer after all")
    assert (t.status, t.closure_reason, t.duplicate_of_id) == (Status.NEW, None, None)


# --- links -------------------------------------------------------------------------------------


def test_link_to_parent_marks_a_major_incident(engine, staff):
    parent = create(engine, staff.tech, summary="Wi-Fi down on floor 3")
    child = in_progress(engine, staff, summary="No Wi-Fi at desk 3.14")
    v = get(engine, child).version
    t = do(engine, tickets.link, child, actor=staff.tech, parent_id=parent)
    assert t.parent_id == parent and t.version == v
    assert get(engine, parent).is_major_incident
    ev = events(engine, child, EventKind.LINKED)[-1]
    assert (ev.field, ev.old_value, ev.new_value) == ("parent", None, str(parent))
    assert [r.id for r in queries_child(engine, parent)] == [child]
    with pytest.raises(ValidationError, match="own parent"):
        do(engine, tickets.link, child, actor=staff.tech, parent_id=child)
    with pytest.raises(ValidationError):
        do(engine, tickets.link, child, actor=staff.tech, parent_id=999999)
    assert do(engine, tickets.link, child, actor=staff.tech, parent_id=None).parent_id is None


def test_link_refuses_loops(engine, staff):
    a, b, c = (in_progress(engine, staff, summary=f"ticket {n}") for n in "abc")
    do(engine, tickets.link, a, actor=staff.tech, parent_id=b)
    do(engine, tickets.link, b, actor=staff.tech, parent_id=c)
    with pytest.raises(ValidationError, match="below"):
        do(engine, tickets.link, c, actor=staff.tech, parent_id=b)
    with pytest.raises(ValidationError, match="below"):
        do(engine, tickets.link, c, actor=staff.tech, parent_id=a)


def test_create_under_a_parent(engine, staff):
    parent = create(engine, staff.tech, summary="Mail server down")
    child = create(engine, staff.tech, parent_id=parent, summary="Cannot send mail")
    assert get(engine, child).parent_id == parent and get(engine, parent).is_major_incident


def queries_child(engine, parent: int):
    with transaction(engine) as s:
        return queries.child_tickets(s, parent)


# --- idempotent intake, attachments, bulk ------------------------------------------------------


def test_external_ref_is_idempotent(engine, staff):
    first = create(engine, tickets.SYSTEM, external_source="email", external_ref="<abc@mail.example>")
    n = count(engine, Ticket), count(engine, TicketEvent), count(engine, OutboxMail)
    with pytest.raises(DuplicateExternalRef) as err:
        create(engine, tickets.SYSTEM, external_source="email", external_ref="<abc@mail.example>")
    assert err.value.ticket_id == first
    assert (count(engine, Ticket), count(engine, TicketEvent), count(engine, OutboxMail)) == n
    other = create(engine, tickets.SYSTEM, external_source="alert", external_ref="<abc@mail.example>")
    assert other != first  # unique per source
    with pytest.raises(ValidationError):
        create(engine, tickets.SYSTEM, external_ref="no-source")


@pytest.fixture
def small_attachments(monkeypatch):
    monkeypatch.setenv("HELPDESK_ATTACHMENT_MAX_BYTES", "1000")
    get_settings.cache_clear()
    yield 1000
    monkeypatch.delenv("HELPDESK_ATTACHMENT_MAX_BYTES")
    get_settings.cache_clear()


def test_attachments_within_and_over_the_limit(engine, staff, small_attachments):
    ok = NewAttachment("error log.txt", "text/plain", b"x" * small_attachments)
    tid = create(engine, staff.tech, attachments=[ok])
    with transaction(engine) as s:
        [att] = queries.attachments(s, tid)
        row, data = queries.attachment_bytes(s, att.id)
    assert (row.filename, row.size, row.sha256, data) == (
        "error log.txt", 1000, hashlib.sha256(ok.data).hexdigest(), ok.data)
    assert events(engine, tid, EventKind.ATTACHMENT)[0].meta["attachment_id"] == att.id
    big = NewAttachment("photo.jpg", "image/jpeg", b"y" * (small_attachments + 1))
    n = count(engine, Ticket), count(engine, Attachment)
    with pytest.raises(ValidationError) as err:
        create(engine, staff.tech, attachments=[big])
    assert "attachments" in err.value.fields and "photo.jpg" in str(err.value)
    with pytest.raises(ValidationError):
        with transaction(engine) as s:
            tickets.add_attachment(s, actor=staff.tech2, ticket_id=tid, attachment=big)
    assert (count(engine, Ticket), count(engine, Attachment)) == n
    with transaction(engine) as s:  # anyone may attach, like a note
        tickets.add_attachment(s, actor=staff.tech2, ticket_id=tid,
                               attachment=NewAttachment("../../etc/passwd", "text/plain", b"root"))
    with transaction(engine) as s:
        assert [a.filename for a in queries.attachments(s, tid)] == ["error log.txt", "passwd"]


def test_no_mail_without_a_requester_email(engine, staff):
    tid = in_progress(engine, staff, channel="phone",
                      requester=RequesterInput(name="Bob Phone", phone="+44 20 7946 0000"))
    do(engine, tickets.request_info, tid, actor=staff.tech, text="Which floor?")
    do(engine, tickets.public_reply, tid, actor=staff.tech, text="On my way")
    do(engine, tickets.resume, tid, actor=staff.tech)
    do(engine, tickets.resolve, tid, actor=staff.tech, resolution_notes="Reseated the cable")
    do(engine, tickets.request_confirmation, tid, actor=staff.tech)
    assert mails(engine, tid) == []


def test_mail_at_each_communication_moment(engine, staff):
    tid = in_progress(engine, staff)
    do(engine, tickets.internal_note, tid, actor=staff.tech, text="Internal only")
    do(engine, tickets.log_action, tid, actor=staff.tech, kind="diagnosis", text="Worn roller")
    do(engine, tickets.request_info, tid, actor=staff.tech, text="Which tray?")
    do(engine, tickets.requester_reply, tid, from_label="ann@example.com", text="Tray 2")
    do(engine, tickets.provide_workaround, tid, actor=staff.tech, text="Use tray 1")
    do(engine, tickets.public_reply, tid, actor=staff.tech, text="Part ordered")
    do(engine, tickets.resolve, tid, actor=staff.tech, resolution_notes="New roller", root_cause="Wear")
    do(engine, tickets.request_confirmation, tid, actor=staff.tech)
    do(engine, tickets.record_confirmation, tid, actor=staff.tech, via="phone", confirmed_by="Ann")
    do(engine, tickets.close, tid, actor=staff.tech, reason=ClosureReason.CONFIRMED)
    subjects = [m.subject.split("] ", 1)[1].split(":")[0] for m in mails(engine, tid)]
    assert subjects == ["We received your request", "Update", "We need more information", "A workaround is available",
                        "Update on your request", "Resolved", "Please confirm the fix", "Closed"]
    assert all(m.to_address == "ann@example.com" and m.state == "pending" for m in mails(engine, tid))
    assert not any("Internal only" in m.body or "Worn roller" in m.body for m in mails(engine, tid))


def test_bulk_update(engine, staff):
    ids = [create(engine, staff.tech, summary=f"Bulk {i}") for i in range(3)]
    with pytest.raises(PermissionDenied):
        with transaction(engine) as s:
            tickets.bulk_update(s, actor=staff.senior, ticket_ids=ids, priority="Low")
    with transaction(engine) as s:
        tickets.bulk_update(s, actor=staff.lead, ticket_ids=ids, priority="Low", assignee_id=staff.tech2)
    for tid in ids:
        t = get(engine, tid)
        assert (t.priority, t.assignee_id, t.status, t.version) == (Priority.LOW, staff.tech2, Status.ASSIGNED, 3)


def test_unknown_ticket(engine, staff):
    with pytest.raises(NotFound, match="HD-"):
        do(engine, tickets.internal_note, 424242, actor=staff.tech, text="hello")
