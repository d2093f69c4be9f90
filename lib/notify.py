"""The notification seam: who hears of a ticket event, and by which channel, decided in one place.

:func:`on_event` is called by :func:`lib.ticket_core.add_event` for every event a service records, and reads
:data:`ROUTES` (event kind -> audience, channel, template). Each channel writes its rows (an outbox mail, a
webhook delivery) in the caller's transaction: a change and what it announces are committed together, and
nothing is written for a change that rolls back. The worker sends them later (lib.mail.outbound,
lib.webhooks). Adding a channel is a module with a ``send(session, ticket, event, route)`` function and an entry
in :data:`CHANNELS` (docs/notifications.md).

Templates are plain text with ``{placeholders}``; a lead edits them on the admin page (stored in the settings
table). Imported history and demo data do not go through ``add_event`` and send nothing.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from lib import confirm_links, staff_notify, webhooks
from lib.config import get_settings
from lib.errors import ValidationError
from lib.models import (
    PUBLIC_URL_MARK,
    Notification,
    OutboxMail,
    Setting,
    Ticket,
    TicketEvent,
    User,
    setting_row,
    ticket_ref,
)
from lib.workflow import ClosureReason, EventKind, Status

TEMPLATES_KEY = "mail_templates"

DEFAULT_TEMPLATES: dict[str, dict[str, str]] = {
    "created": {
        "subject": "[{ref}] We received your request: {summary}",
        "body": "Hello {name},\n\nWe received your request and logged it as {ref}.\n"
        "A technician will be in touch. Reply to this mail to add information; keep {ref} in the subject.\n\n{desk}",
    },
    "info_requested": {
        "subject": "[{ref}] We need more information: {summary}",
        "body": "Hello {name},\n\nTo continue with {ref} we need a little more information:\n\n{message}\n\n"
        "Just reply to this mail.\n\n{desk}",
    },
    "workaround": {
        "subject": "[{ref}] A workaround is available: {summary}",
        "body": "Hello {name},\n\nWhile we work on {ref}, this should get you going:\n\n{message}\n\n{desk}",
    },
    "public_reply": {
        "subject": "[{ref}] Update on your request: {summary}",
        "body": "Hello {name},\n\n{message}\n\n{desk}",
    },
    "resolved": {
        "subject": "[{ref}] Resolved: {summary}",
        "body": "Hello {name},\n\nWe have resolved {ref}:\n\n{message}\n\n"
        "We will ask you to confirm that everything works.\n\n{desk}",
    },
    "confirmation_requested": {
        "subject": "[{ref}] Please confirm the fix: {summary}",
        "body": "Hello {name},\n\nWe believe {ref} is fixed. Please tell us whether it works for you.\n\n{message}\n\n{desk}",
    },
    "reopened": {
        "subject": "[{ref}] Reopened: {summary}",
        "body": "Hello {name},\n\nWe have reopened {ref}.\n\n{message}\n\nA technician will pick it up again; "
        "reply to this mail to add anything.\n\n{desk}",
    },
    "status_update": {
        "subject": "[{ref}] Update: {summary}",
        "body": "Hello {name},\n\n{message}\n\nIts status is now: {status}.\n\n{desk}",
    },
    "closed": {
        "subject": "[{ref}] Closed: {summary}",
        "body": "Hello {name},\n\nWe have closed {ref}. {message}\n"
        "If the problem comes back, reply to this mail within a few days and we will reopen it.\n\n{desk}",
    },
    # To the staff member who owns a follow-up (lib.followups), not to the requester: {name} is the owner.
    "follow_up_due": {
        "subject": "[{ref}] Follow-up due: {summary}",
        "body": "Hello {name},\n\nA follow-up you own on {ref} ({summary}) is due:\n\n{message}\n\n"
        "Open the ticket, check, and complete the follow-up with its outcome.",
    },
    # To a staff member (lib.staff_notify), one per notification when they chose "each" on My account:
    # {name} is theirs, {message} the notification, {link} the ticket's page.
    "staff_notification": {
        "subject": "{ref}: {message}",
        "body": "Hello {name},\n\n{message}\n\nOpen the ticket: {link}\n\n"
        "You get a mail for each notification; choose a daily digest or none on My account.",
    },
    # The daily digest of a staff member's unread notifications: {count} of them, listed in {message}.
    "staff_digest": {
        "subject": "{count} unread notification(s) on the help desk",
        "body": "Hello {name},\n\nThese notifications are waiting for you:\n\n{message}\n\n"
        "See them all: {link}\n\nYou get this digest once a day; choose a mail for each or none on My account.",
    },
}

REQUESTER, DESK, FOLLOW_UP_OWNER = "requester", "desk", "follow_up_owner"
MAIL, WEBHOOK = "mail", "webhook"
#: Staff notifications (lib.staff_notify): the in-app inbox, mailed as each person chose.
INBOX = "inbox"
#: meta key of an event whose requester must not be mailed, with the reason (spam, list mail, an auto-reply). On a
#: ticket's created event it also stops the later automatic mails (:data:`AUTOMATIC`) to that requester; what a
#: technician sends (a reply, a question, the resolution...) still goes: they have judged the sender genuine.
QUIET = "no_requester_mail"
AUTOMATIC = ("created", "status_update")
UPDATES_KEY = "requester_updates"
#: Status updates a lead may send to requesters (Admin), and the ones sent until they choose.
UPDATE_CHOICES: dict[str, str] = {
    EventKind.ASSIGNED.value: "a technician takes the ticket on",
    EventKind.ACKNOWLEDGED.value: "the technician acknowledges it",
    EventKind.ESCALATED.value: "it is escalated to a senior technician or a vendor",
    EventKind.RESUMED.value: "work resumes after waiting on the user or a vendor",
}
DEFAULT_UPDATES = (EventKind.ASSIGNED.value, EventKind.ESCALATED.value, EventKind.RESUMED.value)


@dataclass(frozen=True)
class Route:
    """One notification of an event: to whom, by which channel, with which template (mail)."""

    audience: str
    channel: str
    template: str | None = None


def _requester(template: str) -> tuple[Route, ...]:
    return (Route(REQUESTER, MAIL, template),)


#: Event kind -> its notifications. The webhook route is on every kind a lead can choose for it; the webhook's own
#: settings say which it sends.
ROUTES: dict[str, tuple[Route, ...]] = {
    EventKind.CREATED.value: _requester("created"),
    EventKind.INFO_REQUESTED.value: _requester("info_requested"),
    EventKind.WORKAROUND.value: _requester("workaround"),
    EventKind.PUBLIC_REPLY.value: _requester("public_reply"),
    EventKind.RESOLVED.value: _requester("resolved"),
    EventKind.CONFIRMATION_REQUESTED.value: _requester("confirmation_requested"),
    EventKind.CLOSED.value: _requester("closed"),
    EventKind.REOPENED.value: _requester("reopened"),
    **{kind: _requester("status_update") for kind in UPDATE_CHOICES},
    EventKind.FOLLOW_UP_REMINDED.value: (Route(FOLLOW_UP_OWNER, MAIL, "follow_up_due"),),
}
for _kind in webhooks.EVENT_CHOICES:
    ROUTES[_kind] = (*ROUTES.get(_kind, ()), Route(DESK, WEBHOOK))
#: Staff notifications: the person who must act (lib.staff_notify.RULES says who that is for each audience).
for _kind, _audience in ((EventKind.ASSIGNED, staff_notify.NEW_ASSIGNEE), (EventKind.ESCALATED, staff_notify.SENIOR),
                         (EventKind.INBOUND_EMAIL, staff_notify.ASSIGNEE),
                         (EventKind.SLA_BREACHED, staff_notify.ASSIGNEE),
                         (EventKind.FOLLOW_UP_REMINDED, staff_notify.FOLLOW_UP_OWNER),
                         (EventKind.INTERNAL_NOTE, staff_notify.MENTIONED)):
    ROUTES[_kind.value] = (*ROUTES.get(_kind.value, ()), Route(_audience, INBOX, "staff_notification"))


def templates(session: Session) -> dict[str, dict[str, str]]:
    row = setting_row(session, TEMPLATES_KEY)
    merged = {k: dict(v) for k, v in DEFAULT_TEMPLATES.items()}
    for key, value in ((row.value if row else None) or {}).items():
        if key in merged and isinstance(value, dict):
            merged[key].update({k: str(v) for k, v in value.items() if k in ("subject", "body")})
    return merged


def requester_updates(session: Session) -> tuple[str, ...]:
    """The status updates requesters get (a lead chooses them on Admin)."""
    row = setting_row(session, UPDATES_KEY)
    if row is None or not isinstance(row.value, list):
        return DEFAULT_UPDATES
    return tuple(k for k in row.value if k in UPDATE_CHOICES)


def set_requester_updates(session: Session, kinds: list[str], *, actor: int) -> None:
    """The status updates requesters get (a lead chooses them)."""
    from lib.audit_log import audit
    from lib.desk_settings import lead_actor

    lead = lead_actor(session, actor, "choose the requesters' status updates")
    unknown = [k for k in kinds if k not in UPDATE_CHOICES]
    if unknown:
        raise ValidationError({"updates": f"unknown status update(s): {', '.join(unknown)}"})
    row = session.get(Setting, UPDATES_KEY, with_for_update=True)
    if row is None:
        session.add(Setting(key=UPDATES_KEY, value=list(kinds)))
    else:
        row.value = list(kinds)
    audit(session, actor=lead.username, action="requester_updates_saved", detail=", ".join(kinds) or "none")


def mail_domain() -> str:
    return get_settings().mail_domain


def new_message_id(ticket_id: int | None) -> str:
    token = secrets.token_hex(8)
    return f"<hd-{ticket_id or 0}-{token}@{mail_domain()}>"


def render(session: Session, template: str, values: dict[str, str]) -> tuple[str, str]:
    """(subject, body) of a template; an edited template that no longer formats falls back to the default."""
    tpl = templates(session)[template]
    try:
        return tpl["subject"].format(**values), tpl["body"].format(**values)
    except (KeyError, IndexError, ValueError, AttributeError):
        default = DEFAULT_TEMPLATES[template]
        return default["subject"].format(**values), default["body"].format(**values)


def outbox_mail(session: Session, ticket: Ticket, template: str, *, to_address: str, name: str, message: str = "",
                event: TicketEvent | None = None, extra_body: str = "", in_reply_to: str | None = None) -> OutboxMail:
    """Render ``template`` for one recipient and put it in the outbox (in the caller's transaction)."""
    values = {
        "ref": ticket_ref(ticket.id),
        "summary": ticket.summary,
        "name": name,
        "message": message or "",
        "status": Status(ticket.status).label,
        "desk": get_settings().desk_signature,
    }
    subject, body = render(session, template, values)
    if extra_body:
        body = body.rstrip() + "\n\n" + extra_body
    session.flush()
    mail = OutboxMail(ticket_id=ticket.id, event_id=event.id if event is not None else None,
                      message_id=new_message_id(ticket.id), to_address=to_address,
                      subject=" ".join(subject.split())[:300], body=body, in_reply_to=in_reply_to)
    session.add(mail)
    return mail


def queue_mail(session: Session, ticket: Ticket, moment: str, *, message: str = "",
               event: TicketEvent | None = None, extra_body: str = "") -> OutboxMail | None:
    """Mail the requester with a template. No requester e-mail: nothing to send."""
    requester = ticket.requester
    if requester is None or not requester.email:
        return None
    return outbox_mail(session, ticket, moment, to_address=requester.email, name=requester.name or requester.email,
                       message=message, event=event, extra_body=extra_body,
                       in_reply_to=ticket.external_ref if ticket.external_source == "email" else None)


# --- the seam ------------------------------------------------------------------------------------------------


def _status_message(ticket: Ticket, event: TicketEvent) -> str:
    kind = event.kind
    if kind == EventKind.ASSIGNED.value:
        return f"A technician has taken on {ticket_ref(ticket.id)} and will be in touch."
    if kind == EventKind.ACKNOWLEDGED.value:
        return f"A technician is now working on {ticket_ref(ticket.id)}."
    if kind == EventKind.ESCALATED.value:
        if event.to_status == Status.WAITING_VENDOR.value:
            return (f"{ticket_ref(ticket.id)} needs the help of an outside supplier; we are waiting on them and will "
                    "tell you when we hear back.")
        return f"{ticket_ref(ticket.id)} has been passed to a senior technician."
    return f"Work on {ticket_ref(ticket.id)} has resumed."


def _requester_mail(session: Session, ticket: Ticket, event: TicketEvent, route: Route) -> None:
    template = route.template or ""
    kind = event.kind
    meta = event.meta or {}
    if kind == EventKind.CLOSED.value and meta.get("reason") in (
            ClosureReason.NOT_APPLICABLE.value, ClosureReason.DUPLICATE.value):
        return
    if template == "status_update":
        if kind not in requester_updates(session):
            return
        if kind == EventKind.ASSIGNED.value and event.occurred_at == ticket.created_at:
            return  # assigned as it was logged: the receipt says it all
        queue_mail(session, ticket, template, message=_status_message(ticket, event), event=event)
        return
    extra = confirm_links.links_text(session, ticket) if template == "confirmation_requested" else ""
    queue_mail(session, ticket, template, message=event.body or "", event=event, extra_body=extra)


def _owner_mail(session: Session, ticket: Ticket, event: TicketEvent, route: Route) -> None:
    owner_id = (event.meta or {}).get("owner_id")
    owner = session.get(User, owner_id) if owner_id is not None else None
    if owner is None or not owner.active or not owner.email:
        return
    outbox_mail(session, ticket, route.template or "", to_address=owner.email, name=owner.name,
                message=(event.meta or {}).get("note") or "(no note)", event=event)


def _mail(session: Session, ticket: Ticket, event: TicketEvent, route: Route) -> None:
    if route.audience == REQUESTER:
        _requester_mail(session, ticket, event, route)
    elif route.audience == FOLLOW_UP_OWNER:
        _owner_mail(session, ticket, event, route)


def _webhook(session: Session, ticket: Ticket, event: TicketEvent, route: Route) -> None:
    webhooks.enqueue(session, ticket, event)


def mail_staff(session: Session, note: Notification, user: User, ticket: Ticket | None,
               template: str = "staff_notification") -> OutboxMail | None:
    """Mail one notification to its staff member (their choice "each"), and mark it mailed. The mail is not tied to
    the ticket (``ticket_id`` NULL): it is not part of the requester's correspondence, and a reply to it is not
    threaded onto the ticket."""
    if not user.email or not user.active:
        return None
    ref = ticket_ref(ticket.id) if ticket is not None else ""
    values = {"name": user.name, "message": note.text, "ref": ref or "Help desk",
              "summary": ticket.summary if ticket is not None else "",
              "link": f"{PUBLIC_URL_MARK}{note.link or '/inbox'}", "desk": get_settings().desk_signature}
    subject, body = render(session, template, values)
    mail = OutboxMail(ticket_id=None, event_id=None, message_id=new_message_id(None), to_address=user.email,
                      subject=" ".join(subject.split())[:300], body=body)
    session.add(mail)
    note.mailed_at = note.created_at
    return mail


def _inbox(session: Session, ticket: Ticket, event: TicketEvent, route: Route) -> None:
    for note, user in staff_notify.for_event(session, ticket, event, route.audience):
        if note.mailed_at is None and staff_notify.email_mode(session, user.id) is staff_notify.EmailMode.EACH:
            mail_staff(session, note, user, ticket, route.template or "staff_notification")


#: channel -> what writes its rows
CHANNELS: dict[str, Callable[[Session, Ticket, TicketEvent, Route], None]] = {MAIL: _mail, WEBHOOK: _webhook,
                                                                             INBOX: _inbox}


def quiet_ticket(session: Session, ticket: Ticket) -> bool:
    """The ticket was opened by mail that must never be answered (its created event carries :data:`QUIET`)."""
    return quiet_ticket_id(session, ticket.id, ticket.channel)


def quiet_ticket_id(session: Session, ticket_id: int | None, channel: str) -> bool:
    """:func:`quiet_ticket` by the ticket's id and channel (fixed when the ticket was opened)."""
    if channel != "email" or ticket_id is None:
        return False
    meta = session.scalar(select(TicketEvent.meta).where(TicketEvent.ticket_id == ticket_id,
                                                         TicketEvent.kind == EventKind.CREATED.value).limit(1))
    return bool((meta or {}).get(QUIET))


def on_event(session: Session, ticket: Ticket, event: TicketEvent) -> None:
    """Write every notification ``event`` calls for (see :data:`ROUTES`), in the caller's transaction."""
    routes = ROUTES.get(event.kind)
    if not routes:
        return
    quiet_event = bool((event.meta or {}).get(QUIET))
    quiet: bool | None = None
    for route in routes:
        if route.audience == REQUESTER:
            if quiet_event:
                continue  # spam, list mail, an auto-reply: nothing is mailed back (the event says why)
            if route.template in AUTOMATIC:
                if quiet is None:
                    quiet = quiet_ticket(session, ticket)
                if quiet:
                    continue  # no automatic mail to such a sender; what a technician sends by hand still goes
        CHANNELS[route.channel](session, ticket, event, route)


# --- what the requester gets: the ticket page's preview and list -----------------------------------------------


@dataclass(frozen=True)
class MailPreview:
    """What an action would mail the requester: ``subject`` and ``body`` as rendered, or None and ``reason``."""

    subject: str | None
    body: str = ""
    to: str = ""
    reason: str = ""


#: How a kind that mails nobody is named in "No mail: ..."
_NO_MAIL_NAMES = {EventKind.INTERNAL_NOTE.value: "internal note", EventKind.ACTION.value: "documented action",
                  EventKind.LINKED.value: "a link to a major incident", EventKind.FIELD_CHANGED.value: "a field change"}


def requester_preview(session: Session, ticket: Ticket, kind: str, *, message: str = "",
                      to_status: Status | None = None, meta: dict | None = None,
                      quiet: bool | None = None) -> MailPreview:
    """What recording an event of ``kind`` would mail the requester, by the same rules as :func:`on_event`
    (:data:`ROUTES`, the quiet tickets, the chosen status updates, the closures that send nothing), rendered with
    :func:`render` and the desk's templates. Writes nothing. ``quiet``: :func:`quiet_ticket`, when known."""
    route = next((r for r in ROUTES.get(kind, ()) if r.audience == REQUESTER and r.channel == MAIL), None)
    if route is None or not route.template:
        return MailPreview(None, reason=f"No mail: {_NO_MAIL_NAMES.get(kind, kind.replace('_', ' '))}")
    requester = ticket.requester
    if requester is None or not requester.email:
        return MailPreview(None, reason="No mail: the requester has no e-mail address")
    if bool((meta or {}).get(QUIET)) or (quiet_ticket(session, ticket) if quiet is None else quiet):
        return MailPreview(None, reason="No mail: this ticket came from mail that is never answered")
    template = route.template
    if kind == EventKind.CLOSED.value and (meta or {}).get("reason") in (
            ClosureReason.NOT_APPLICABLE.value, ClosureReason.DUPLICATE.value):
        return MailPreview(None, reason=f"No mail: closed as {ClosureReason((meta or {})['reason']).label.lower()}")
    if template == "status_update":
        if kind not in requester_updates(session):
            return MailPreview(None, reason="No mail: requesters are not sent this status update (Admin → "
                                            "Notifications)")
        message = _status_message(ticket, TicketEvent(kind=kind, to_status=(to_status or ticket.status)))
    values = {"ref": ticket_ref(ticket.id), "summary": ticket.summary, "name": requester.name or requester.email,
              "message": message or "", "status": Status(to_status or ticket.status).label,
              "desk": get_settings().desk_signature}
    subject, body = render(session, template, values)
    if template == "confirmation_requested":
        body = body.rstrip() + "\n\n(the one-time confirmation link is added here)"
    return MailPreview(" ".join(subject.split())[:300], body, requester.email)


def requester_mails(session: Session, ticket_id: int, *, limit: int = 50,
                    ticket: Ticket | None = None) -> list[OutboxMail]:
    """The mails written for the ticket's requester, newest first, each with its delivery state (``state``
    pending, sent, failed or cancelled; ``last_error``): those of an event that mails the requester (ROUTES),
    and those of no event sent to the requester's address; staff mail about the ticket is left out."""
    from sqlalchemy import func

    kinds = [k for k, routes in ROUTES.items() if any(r.audience == REQUESTER and r.channel == MAIL for r in routes)]
    ticket = ticket if ticket is not None and ticket.id == ticket_id else session.get(Ticket, ticket_id)
    address = (ticket.requester.email or "").lower() if ticket is not None and ticket.requester else ""
    rows = session.execute(
        select(OutboxMail).outerjoin(TicketEvent, TicketEvent.id == OutboxMail.event_id)
        .where(OutboxMail.ticket_id == ticket_id,
               TicketEvent.kind.in_(kinds) | (OutboxMail.event_id.is_(None) & (func.lower(OutboxMail.to_address)
                                                                                == address)))
        .order_by(OutboxMail.created_at.desc(), OutboxMail.id.desc()).limit(limit)).scalars().all()
    return list(rows)
