"""Staff notifications: tell the person who must act, in the app (the ``notifications`` table, read on the
🔔 Notifications page and counted in the sidebar) and by mail as they chose on My account.

The rules, one per audience of the notification seam (lib.notify routes them on the "inbox" channel):

* **assigned to you** (assigned): the new assignee, unless they assigned it to themselves;
* **escalated to you** (escalated to a senior): the senior, unless they escalated it to themselves;
* **the requester replied** (inbound e-mail, the confirmation page's message): the ticket's assignee;
* **SLA target breached** (sla_breached): the assignee; **at risk**: lib.staff_jobs finds assigned tickets newly at
  risk and notifies once per ticket per SLA clock;
* **follow-up due** (follow_up_reminded): its owner (who is also mailed by the follow-up's own route, so the
  notification counts as mailed);
* **mentioned** (``@username`` in an internal note): each active staff member named, never the note's author.

Nobody inactive is ever notified. Rows are written in the caller's transaction, like every channel of the seam.
This module imports no other notification code (lib.notify imports it); the mails are lib.notify's
(:func:`lib.notify.mail_staff`) and lib.staff_jobs' (the daily digest).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from lib import clock
from lib.config import get_settings
from lib.errors import ValidationError
from lib.models import Notification, StaffNotifyPref, Ticket, TicketEvent, User, ticket_ref

# --- what and to whom -------------------------------------------------------------------------------------


class NoticeKind(enum.StrEnum):
    ASSIGNED = "assigned"
    ESCALATED = "escalated"
    REQUESTER_REPLIED = "requester_replied"
    SLA_AT_RISK = "sla_at_risk"
    SLA_BREACHED = "sla_breached"
    FOLLOW_UP_DUE = "follow_up_due"
    MENTIONED = "mentioned"

    @property
    def label(self) -> str:
        return {"assigned": "Assigned to you", "escalated": "Escalated to you",
                "requester_replied": "The requester replied", "sla_at_risk": "SLA at risk",
                "sla_breached": "SLA breached", "follow_up_due": "Follow-up due",
                "mentioned": "You were mentioned"}[self.value]

    @property
    def icon(self) -> str:
        return {"assigned": "👤", "escalated": "⏫", "requester_replied": "💬", "sla_at_risk": "🟧",
                "sla_breached": "🟥", "follow_up_due": "⏰", "mentioned": "📣"}[self.value]


class EmailMode(enum.StrEnum):
    """How a staff member hears of their notifications by mail (their choice on My account)."""

    EACH = "each"
    DIGEST = "digest"
    NONE = "none"

    @property
    def label(self) -> str:
        return {"each": "A mail for each notification", "digest": "One mail a day of the unread ones (digest)",
                "none": "No mail: only in the app"}[self.value]


#: Audiences of the "inbox" channel (lib.notify.ROUTES): whose notification an event is.
NEW_ASSIGNEE, SENIOR, ASSIGNEE, MENTIONED = "new_assignee", "senior", "assignee", "mentioned"
FOLLOW_UP_OWNER = "follow_up_owner"  # the same audience lib.notify mails the follow_up_due template to
TEXT_MAX = 500


def ticket_link(ticket_id: int) -> str:
    return f"/ticket?id={ticket_id}"


# ``@name`` where the @ does not follow a letter, digit or one of . @ / - (so ``ann@tom.com`` and URLs are not
# mentions); names are usernames: letters, digits, dots, dashes, underscores. A trailing dot or dash is punctuation.
_MENTION = re.compile(r"(?<![\w.@/\-])@([a-z0-9_][a-z0-9._\-]*)", re.IGNORECASE)


def mentions(text: str | None) -> list[str]:
    """The usernames mentioned in ``text`` (lower case, each once, in order of appearance)."""
    found: list[str] = []
    for match in _MENTION.finditer(text or ""):
        name = match.group(1).rstrip(".-").lower()
        if name and name not in found:
            found.append(name)
    return found


def _short(text: str, n: int = TEXT_MAX) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= n else text[: n - 1] + "…"


def add(session: Session, *, user: User | None, kind: NoticeKind, text: str, ticket: Ticket | None = None,
        event: TicketEvent | None = None, dedupe_key: str | None = None, mailed: bool = False,
        now: datetime | None = None) -> Notification | None:
    """One notification for ``user`` (in the caller's transaction); None for nobody or an inactive account."""
    if user is None or not user.active:
        return None
    now = now or clock.now()
    note = Notification(user_id=user.id, ticket_id=ticket.id if ticket is not None else None,
                        event_id=event.id if event is not None else None, kind=kind.value, text=_short(text),
                        link=ticket_link(ticket.id) if ticket is not None and ticket.id is not None else None,
                        dedupe_key=dedupe_key, created_at=now, mailed_at=now if mailed else None)
    session.add(note)
    return note


def _actor_name(session: Session, event: TicketEvent) -> str:
    if event.actor_id is not None:
        actor = session.get(User, event.actor_id)
        if actor is not None:
            return actor.name
    return "The desk" if event.actor_label in (None, "system", "worker") else str(event.actor_label)


def _assignee(session: Session, ticket: Ticket, event: TicketEvent) -> User | None:
    """The ticket's assignee, unless they made the change themselves."""
    if ticket.assignee_id is None or ticket.assignee_id == event.actor_id:
        return None
    return session.get(User, ticket.assignee_id)


def _new_assignee(session: Session, ticket: Ticket, event: TicketEvent) -> list[tuple[User | None, NoticeKind, str]]:
    ref = ticket_ref(ticket.id)
    return [(_assignee(session, ticket, event), NoticeKind.ASSIGNED,
             f"{_actor_name(session, event)} assigned {ref} to you: {ticket.summary}")]


def _senior(session: Session, ticket: Ticket, event: TicketEvent) -> list[tuple[User | None, NoticeKind, str]]:
    if (event.meta or {}).get("level") != "senior":
        return []  # escalated to a vendor: nobody new must act
    ref = ticket_ref(ticket.id)
    why = f" — {event.body}" if event.body else ""
    return [(_assignee(session, ticket, event), NoticeKind.ESCALATED,
             f"{_actor_name(session, event)} escalated {ref} to you: {ticket.summary}{why}")]


def _ticket_assignee(session: Session, ticket: Ticket, event: TicketEvent) -> list[tuple[User | None, NoticeKind, str]]:
    ref = ticket_ref(ticket.id)
    user = _assignee(session, ticket, event)
    if event.kind == "inbound_email":
        who = event.actor_label or "The requester"
        return [(user, NoticeKind.REQUESTER_REPLIED, f"{who} replied on {ref}: {ticket.summary}")]
    if event.kind == "sla_breached":
        which = (event.meta or {}).get("clock", "SLA")
        return [(user, NoticeKind.SLA_BREACHED, f"{ref} missed its {which} target: {ticket.summary}")]
    return []


def _follow_up_owner(session: Session, ticket: Ticket, event: TicketEvent) -> list[tuple[User | None, NoticeKind, str]]:
    meta = event.meta or {}
    owner = session.get(User, meta["owner_id"]) if meta.get("owner_id") is not None else None
    note = meta.get("note") or ticket.summary
    return [(owner, NoticeKind.FOLLOW_UP_DUE, f"A follow-up you own on {ticket_ref(ticket.id)} is due: {note}")]


def _mentioned(session: Session, ticket: Ticket, event: TicketEvent) -> list[tuple[User | None, NoticeKind, str]]:
    names = mentions(event.body)
    if not names:
        return []
    people = session.scalars(select(User).where(User.username.in_(names), User.active.is_(True))).all()
    who = _actor_name(session, event)
    text = f"{who} mentioned you on {ticket_ref(ticket.id)}: {_short(event.body or '', 300)}"
    return [(p, NoticeKind.MENTIONED, text) for p in sorted(people, key=lambda u: names.index(u.username.lower()))
            if p.id != event.actor_id]


RULES: dict[str, Callable[[Session, Ticket, TicketEvent], list[tuple[User | None, NoticeKind, str]]]] = {
    NEW_ASSIGNEE: _new_assignee,
    SENIOR: _senior,
    ASSIGNEE: _ticket_assignee,
    FOLLOW_UP_OWNER: _follow_up_owner,
    MENTIONED: _mentioned,
}


def for_event(session: Session, ticket: Ticket, event: TicketEvent, audience: str) -> list[tuple[Notification, User]]:
    """Write the notifications ``event`` calls for in ``audience``; returns them with their recipients."""
    rule = RULES.get(audience)
    if rule is None:
        return []
    found = [(user, kind, text) for user, kind, text in rule(session, ticket, event) if user is not None]
    if not found:
        return []
    session.flush()  # the event's id, for the link back to it
    written: list[tuple[Notification, User]] = []
    for user, kind, text in found:
        note = add(session, user=user, kind=kind, text=text, ticket=ticket, event=event,
                   mailed=kind is NoticeKind.FOLLOW_UP_DUE, now=event.recorded_at or clock.now())
        if note is not None and user is not None:  # None: an inactive account
            written.append((note, user))
    return written


# --- e-mail choice -----------------------------------------------------------------------------------------


def default_mode() -> EmailMode:
    return EmailMode(get_settings().staff_mail_default)


def email_mode(session: Session, user_id: int) -> EmailMode:
    """The person's choice, or the configured default (``staff_mail_default``) until they make one."""
    row = session.get(StaffNotifyPref, user_id)
    if row is None:
        return default_mode()
    try:
        return EmailMode(row.email_mode)
    except ValueError:
        return default_mode()


def set_email_mode(session: Session, *, user_id: int, mode: EmailMode | str, now: datetime | None = None) -> EmailMode:
    """Store a person's choice of notification mail (they make it for themselves on My account)."""
    try:
        chosen = EmailMode(mode)
    except ValueError:
        raise ValidationError({"email_mode": f"{mode!r} is not one of each, digest, none"}) from None
    user = session.get(User, user_id)
    if user is None or not user.active:
        raise ValidationError({"email_mode": "no such active account"})
    now = now or clock.now()
    row = session.get(StaffNotifyPref, user_id)
    if row is None:
        session.add(StaffNotifyPref(user_id=user_id, email_mode=chosen.value, updated_at=now))
    else:
        row.email_mode, row.updated_at = chosen.value, now
    return chosen


# --- the inbox ---------------------------------------------------------------------------------------------


def unread_count(session: Session, user_id: int) -> int:
    """Unread notifications of one person: one COUNT on the (user_id, read_at) index."""
    return int(session.scalar(select(func.count()).select_from(Notification)
                              .where(Notification.user_id == user_id, Notification.read_at.is_(None))) or 0)


def unread_count_for(session: Session, username: str) -> int:
    """:func:`unread_count` by username (the sidebar knows the signed-in person by name)."""
    return int(session.scalar(select(func.count()).select_from(Notification)
                              .join(User, User.id == Notification.user_id)
                              .where(User.username == username, Notification.read_at.is_(None))) or 0)


def list_for(session: Session, user_id: int, *, unread_only: bool = False, limit: int = 200) -> list[Notification]:
    """A person's notifications, newest first."""
    stmt = select(Notification).where(Notification.user_id == user_id)
    if unread_only:
        stmt = stmt.where(Notification.read_at.is_(None))
    return list(session.scalars(stmt.order_by(Notification.id.desc()).limit(limit)))


def mark_read(session: Session, *, user_id: int, notification_id: int, now: datetime | None = None) -> bool:
    """Mark one of the person's own notifications read; False when it is not theirs or was read already."""
    result = session.execute(update(Notification)
                             .where(Notification.id == notification_id, Notification.user_id == user_id,
                                    Notification.read_at.is_(None))
                             .values(read_at=now or clock.now()))
    return bool(result.rowcount)  # type: ignore[attr-defined]  # a CursorResult for an UPDATE


def mark_all_read(session: Session, *, user_id: int, now: datetime | None = None) -> int:
    """Mark every unread notification of the person read; returns how many."""
    result = session.execute(update(Notification)
                             .where(Notification.user_id == user_id, Notification.read_at.is_(None))
                             .values(read_at=now or clock.now()))
    return int(result.rowcount)  # type: ignore[attr-defined]  # a CursorResult for an UPDATE
