"""Mail to the requester at the workflow's communication moments, written to the outbox.

The outbox row is written in the same transaction as the change it reports, so a change and its mail
are committed together; the worker sends the outbox over SMTP later (lib.mail.outbound). Templates are plain
text with ``{placeholders}``; a lead edits them on the admin page (stored in the settings table).
"""

from __future__ import annotations

import secrets

from sqlalchemy.orm import Session

from lib import confirm_links
from lib.config import get_settings
from lib.models import OutboxMail, Setting, Ticket, TicketEvent, ticket_ref
from lib.workflow import ClosureReason, EventKind

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
}
_EVENT_MOMENTS = {
    EventKind.INFO_REQUESTED.value: "info_requested",
    EventKind.WORKAROUND.value: "workaround",
    EventKind.PUBLIC_REPLY.value: "public_reply",
    EventKind.RESOLVED.value: "resolved",
    EventKind.CONFIRMATION_REQUESTED.value: "confirmation_requested",
    EventKind.CLOSED.value: "closed",
}


def templates(session: Session) -> dict[str, dict[str, str]]:
    row = session.get(Setting, TEMPLATES_KEY)
    merged = {k: dict(v) for k, v in DEFAULT_TEMPLATES.items()}
    for key, value in ((row.value if row else None) or {}).items():
        if key in merged and isinstance(value, dict):
            merged[key].update({k: str(v) for k, v in value.items() if k in ("subject", "body")})
    return merged


def mail_domain() -> str:
    return get_settings().mail_domain


def new_message_id(ticket_id: int | None) -> str:
    token = secrets.token_hex(8)
    return f"<hd-{ticket_id or 0}-{token}@{mail_domain()}>"


def queue_mail(session: Session, ticket: Ticket, moment: str, *, message: str = "",
               event: TicketEvent | None = None, extra_body: str = "") -> OutboxMail | None:
    """Render a template and put it in the outbox. No requester e-mail: nothing to send."""
    requester = ticket.requester
    if requester is None or not requester.email:
        return None
    tpl = templates(session)[moment]
    values = {
        "ref": ticket_ref(ticket.id),
        "summary": ticket.summary,
        "name": requester.name or requester.email,
        "message": message or "",
        "status": ticket.status.replace("_", " "),
        "desk": get_settings().desk_signature,
    }
    try:
        subject = tpl["subject"].format(**values)
        body = tpl["body"].format(**values)
    except (KeyError, IndexError, ValueError):  # a broken edited template falls back to the default
        subject = DEFAULT_TEMPLATES[moment]["subject"].format(**values)
        body = DEFAULT_TEMPLATES[moment]["body"].format(**values)
    if extra_body:
        body = body.rstrip() + "\n\n" + extra_body
    session.flush()
    mail = OutboxMail(
        ticket_id=ticket.id,
        event_id=event.id if event is not None else None,
        message_id=new_message_id(ticket.id),
        to_address=requester.email,
        subject=" ".join(subject.split())[:300],
        body=body,
        in_reply_to=(ticket.external_ref if ticket.external_source == "email" else None),
    )
    session.add(mail)
    return mail


def ticket_created(session: Session, ticket: Ticket) -> None:
    if ticket.channel == "email":
        queue_mail(session, ticket, "created")


def ticket_event(session: Session, ticket: Ticket, event: TicketEvent) -> None:
    moment = _EVENT_MOMENTS.get(event.kind)
    if moment is None:
        return
    if moment == "closed" and (event.meta or {}).get("reason") in (
        ClosureReason.NOT_APPLICABLE.value, ClosureReason.DUPLICATE.value
    ):
        return
    session.flush()
    extra = ""
    if moment == "confirmation_requested":
        extra = confirm_links.links_text(session, ticket)
    queue_mail(session, ticket, moment, message=event.body or "", event=event, extra_body=extra)
