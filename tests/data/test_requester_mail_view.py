"""What the ticket page says the requester gets (lib.notify.requester_preview, same rules as the sending seam) and
what they were sent (lib.notify.requester_mails), on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.engine import Engine

from lib import notify, tickets
from lib.db import transaction
from lib.directory import RequesterInput
from lib.models import OutboxMail, Setting, Ticket, TicketEvent
from lib.tickets import TicketDraft
from lib.workflow import EventKind, Status
from tests.conftest import Staff


def _ticket(engine: Engine, staff: Staff, email: str | None = "bo@example.com") -> int:
    phone = None if email else "+44 20 7946 0002"
    with transaction(engine) as s:
        t = tickets.create_ticket(s, actor=staff.tech, draft=TicketDraft(
            summary="Printer jams", category="Printing", priority="Low", channel="phone",
            requester=RequesterInput(name="Bo", email=email, phone=phone)))
        return tickets.take(s, actor=staff.tech, ticket_id=t.id).id


def test_the_preview_is_what_the_action_then_sends(engine: Engine, staff: Staff) -> None:
    tid = _ticket(engine, staff)
    with transaction(engine) as s:
        t = s.get(Ticket, tid)
        preview = notify.requester_preview(s, t, EventKind.PUBLIC_REPLY.value, message="Try tray 2")
        tickets.public_reply(s, actor=staff.tech, ticket_id=tid, text="Try tray 2")
        sent = s.scalars(select(OutboxMail).where(OutboxMail.ticket_id == tid).order_by(OutboxMail.id.desc())).first()
        assert (preview.subject, preview.body, preview.to) == (sent.subject, sent.body, sent.to_address)
        assert preview.subject == f"[HD-{tid:06d}] Update on your request: Printer jams"
        # a status update, with the status the action moves to
        resumed = notify.requester_preview(s, t, EventKind.RESUMED.value, to_status=Status.IN_PROGRESS)
        assert resumed.subject == f"[HD-{tid:06d}] Update: Printer jams" and "now: In progress" in resumed.body


def test_no_mail_says_why(engine: Engine, staff: Staff) -> None:
    tid = _ticket(engine, staff)
    quiet = _ticket(engine, staff, email=None)
    with transaction(engine) as s:
        t = s.get(Ticket, tid)
        assert notify.requester_preview(s, t, EventKind.INTERNAL_NOTE.value).reason == "No mail: internal note"
        assert notify.requester_preview(s, t, EventKind.ACKNOWLEDGED.value).reason.startswith(
            "No mail: requesters are not sent this status update")
        dup = notify.requester_preview(s, t, EventKind.CLOSED.value, meta={"reason": "duplicate"})
        assert dup.subject is None and dup.reason == "No mail: closed as duplicate"
        assert notify.requester_preview(s, t, EventKind.CLOSED.value, meta={"reason": "cancelled"}).subject
        assert notify.requester_preview(s, s.get(Ticket, quiet), EventKind.PUBLIC_REPLY.value).reason == \
            "No mail: the requester has no e-mail address"
        s.add(Setting(key=notify.UPDATES_KEY, value=[EventKind.ACKNOWLEDGED.value]))
        s.flush()
        assert notify.requester_preview(s, t, EventKind.ACKNOWLEDGED.value).subject


def test_the_requesters_mails_newest_first_without_staff_mail(engine: Engine, staff: Staff) -> None:
    tid = _ticket(engine, staff)
    with transaction(engine) as s:
        tickets.public_reply(s, actor=staff.tech, ticket_id=tid, text="Try tray 2")
        t = s.get(Ticket, tid)
        # mail to staff tied to the ticket (a follow-up reminder to its owner) is not the requester's
        tickets.internal_note(s, actor=staff.tech, ticket_id=tid, text="Remind Tom to check the tray")
        note = s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == tid).order_by(TicketEvent.id.desc())
                         ).first()
        notify.outbox_mail(s, t, "follow_up_due", to_address="tom@desk.example", name="Tom", event=note)
        notify.outbox_mail(s, t, "follow_up_due", to_address="tom@desk.example", name="Tom")
        notify.outbox_mail(s, t, "public_reply", to_address="BO@example.com", name="Bo", message="by hand")
    with transaction(engine) as s:
        mails = notify.requester_mails(s, tid)
        subjects = [m.subject for m in mails]
        assert subjects[-1] == f"[HD-{tid:06d}] We received your request: Printer jams"
        assert subjects[-2] == f"[HD-{tid:06d}] Update: Printer jams"  # "a technician has taken it on"
        assert f"[HD-{tid:06d}] Update on your request: Printer jams" in subjects
        assert all(m.state == "pending" for m in mails)
        assert len(mails) == 4 and "tom@desk.example" not in [m.to_address for m in mails]
