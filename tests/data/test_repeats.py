"""Repeat issues on SQLite and PostgreSQL: notices ("3rd ticket for this printer in 30 days"), the lead's
list, the window setting, and opening a problem ticket that the repeats link to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from lib import followups, repeats, tickets
from lib.db import read_session, transaction
from lib.directory import DeviceInput, RequesterInput
from lib.errors import PermissionDenied, ValidationError
from lib.models import Category, Device, Setting, Ticket, TicketEvent
from lib.repeats import RepeatKind
from lib.tickets import TicketDraft
from lib.workflow import ClosureReason, EventKind, FollowUpSource

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
ANN = RequesterInput(name="Ann Smith", email="ann@example.com")
BOB = RequesterInput(name="Bob Jones", email="bob@example.com")
CAROL = RequesterInput(name="Carol White", email="carol@example.com")
PRN42 = DeviceInput(asset_tag="PRN-0042", device_type="Printer", make_model="HP LaserJet M404")
PRN43 = DeviceInput(asset_tag="PRN-0043", device_type="Printer", make_model="HP LaserJet M404")


def make(engine, staff, *, days_ago: float, requester=ANN, device=None, category: str = "Printing",
         summary: str = "Printer jams") -> int:
    with transaction(engine) as s:
        return tickets.create_ticket(s, actor=staff.tech, now=T0 - timedelta(days=days_ago), draft=TicketDraft(
            summary=summary, category=category, priority="Medium", channel="phone", requester=requester,
            device=device)).id


def ids_of(engine, tag: str) -> tuple[int, int]:
    with read_session(engine) as s:
        d = s.scalar(select(Device).where(Device.asset_tag == tag))
        cat = s.scalar(select(Category.id).where(Category.name == "Printing"))
        return d.id, cat


def test_notices_for_the_third_ticket_on_a_printer(engine, staff) -> None:
    make(engine, staff, days_ago=45, requester=BOB, device=PRN42)  # outside the 30-day window
    make(engine, staff, days_ago=20, requester=BOB, device=PRN42)
    make(engine, staff, days_ago=5, requester=CAROL, device=PRN42)
    third = make(engine, staff, days_ago=0, requester=ANN, device=PRN42)
    with read_session(engine) as s:
        notices = repeats.notices_for_ticket(s, third, now=T0)
    assert [n.message for n in notices] == ["3rd ticket for this printer in 30 days"]
    assert notices[0].kind is RepeatKind.DEVICE and len(notices[0].others) == 2

    device_id, printing = ids_of(engine, "PRN-0042")
    with read_session(engine) as s:  # on intake, before the 4th ticket exists
        draft_notices = repeats.notices_for_draft(s, requester_id=None, device_id=device_id, category_id=printing,
                                                  now=T0 + timedelta(hours=1))
    assert [n.message for n in draft_notices] == ["4th ticket for this printer in 30 days"]


def test_requester_and_model_notices_and_older_tickets(engine, staff) -> None:
    first = make(engine, staff, days_ago=10, requester=ANN, device=PRN42)
    make(engine, staff, days_ago=3, requester=ANN, device=PRN43, summary="Printer jams again")
    make(engine, staff, days_ago=2, requester=ANN, category="Software", summary="Excel crashes")
    with read_session(engine) as s:
        dev43, printing = ids_of(engine, "PRN-0043")
        requester_id = s.scalar(select(Ticket.requester_id).where(Ticket.id == first))
        notices = repeats.notices_for_draft(s, requester_id=requester_id, device_id=dev43, category_id=printing,
                                            now=T0)
        by_kind = {n.kind: n for n in notices}
        assert by_kind[RepeatKind.REQUESTER].message == "4th ticket from this requester in 30 days"
        assert by_kind[RepeatKind.DEVICE].message == "2nd ticket for this printer in 30 days"
        assert by_kind[RepeatKind.MODEL].message == "3rd ticket in Printing on a HP LaserJet M404 in 30 days"
        # a described (not yet registered) device of the same model counts too
        described = repeats.notices_for_draft(s, make_model="HP LaserJet M404", category_id=printing, now=T0)
        assert [n.kind for n in described] == [RepeatKind.MODEL]
        # the older ticket sees the ones that came after it
        older = {n.kind: n for n in repeats.notices_for_ticket(s, first, now=T0)}
        assert older[RepeatKind.REQUESTER].message == "3 tickets from this requester within 30 days"
        assert not older[RepeatKind.REQUESTER].latest


def test_duplicates_do_not_count_and_the_window_is_a_setting(engine, staff) -> None:
    a = make(engine, staff, days_ago=12, requester=BOB, device=PRN42)
    b = make(engine, staff, days_ago=11, requester=BOB, device=PRN42)
    with transaction(engine) as s:
        tickets.close(s, actor=staff.lead, ticket_id=b, expected_version=1, reason=ClosureReason.DUPLICATE,
                      duplicate_of=a, now=T0)
    c = make(engine, staff, days_ago=0, requester=CAROL, device=PRN42)
    with read_session(engine) as s:
        assert [n.message for n in repeats.notices_for_ticket(s, c, now=T0)] == \
            ["2nd ticket for this printer in 30 days"]
        assert repeats.window_days(s) == 30
    with pytest.raises(PermissionDenied), transaction(engine) as s:
        repeats.set_window_days(s, actor=staff.tech, days=7)
    with pytest.raises(ValidationError), transaction(engine) as s:
        repeats.set_window_days(s, actor=staff.lead, days=0)
    with transaction(engine) as s:
        repeats.set_window_days(s, actor=staff.lead, days=7)
    with read_session(engine) as s:
        assert repeats.window_days(s) == 7 and s.get(Setting, "repeat_window_days").value == {"days": 7}
        assert repeats.notices_for_ticket(s, c, now=T0) == []


def test_list_for_the_lead_and_a_problem_ticket(engine, staff) -> None:
    t1 = make(engine, staff, days_ago=20, requester=BOB, device=PRN42)
    t2 = make(engine, staff, days_ago=9, requester=CAROL, device=PRN42)
    t3 = make(engine, staff, days_ago=1, requester=ANN, device=PRN42)
    make(engine, staff, days_ago=1, requester=ANN, device=PRN43)
    make(engine, staff, days_ago=50, requester=BOB, device=PRN43)  # too old
    with transaction(engine) as s:
        tickets.close(s, actor=staff.lead, ticket_id=t1, expected_version=1, reason=ClosureReason.CANCELLED,
                      note="Fixed itself", now=T0 - timedelta(days=19))
    with read_session(engine) as s:
        groups = repeats.list_repeat_issues(s, now=T0)
    summary = [(g.kind.value, g.count) for g in groups]
    # the model group spans both printers (4 tickets), then the printer itself (3); the 50-day-old one is out
    assert summary[:2] == [("model", 4), ("device", 3)]
    device_group = groups[1]
    assert device_group.ticket_ids == [t3, t2, t1] and device_group.open_count == 2
    assert "PRN-0042" in device_group.label and groups[0].category == "Printing"
    kinds = {g.kind for g in groups}
    assert RepeatKind.REQUESTER in kinds and RepeatKind.MODEL in kinds

    with pytest.raises(PermissionDenied), transaction(engine) as s:
        repeats.open_problem_ticket(s, actor=staff.tech, ticket_ids=[t1, t2, t3], summary="PRN-0042 keeps jamming")
    with pytest.raises(ValidationError), transaction(engine) as s:
        repeats.open_problem_ticket(s, actor=staff.lead, ticket_ids=[t1], summary="x")
    with transaction(engine) as s:
        result = repeats.open_problem_ticket(s, actor=staff.lead, ticket_ids=[t1, t2, t3],
                                             summary="PRN-0042 keeps jamming", now=T0)
        pid = result.problem.id
        assert sorted(result.linked) == sorted([t2, t3]) and result.noted == [t1]
    with read_session(engine) as s:
        problem = s.get(Ticket, pid)
        assert problem.is_major_incident and "HD-" in problem.description
        assert {s.get(Ticket, t).parent_id for t in (t2, t3)} == {pid}
        note = s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == t1,
                                                   TicketEvent.kind == EventKind.INTERNAL_NOTE.value)).one()
        assert f"HD-{pid:06d}" in note.body
        regrouped = repeats.list_repeat_issues(s, now=T0)
        assert regrouped[0].problem_id is None  # the closed one stays outside; the open ones share it
        device_notice = [n for n in repeats.notices_for_ticket(s, t3, now=T0) if n.kind is RepeatKind.DEVICE]
        assert device_notice[0].others == (t2, t1)  # the problem ticket itself is no repeat


def test_schedule_a_follow_up_from_a_repeat(engine, staff) -> None:
    t = make(engine, staff, days_ago=0, device=PRN42)
    with transaction(engine) as s:
        fu = followups.schedule(s, actor=staff.lead, ticket_id=t, due_at=T0 + timedelta(days=14), owner_id=staff.tech,
                                note="Check PRN-0042 after the roller swap", source=FollowUpSource.REPEAT, now=T0)
        assert fu.source == "repeat"
