"""Write actions on tickets: one function per action, shared by every caller (pages, e-mail, alerts, CLI).

Each function takes the caller's ``Session`` (the caller opens and commits the transaction, see
``lib.db.transaction``), checks the actor's role from the database, validates its input, checks the
transition table, writes the change and appends its event. Field edits and status changes need the
``expected_version`` the caller rendered and raise ``StaleTicket`` when it moved on; notes, replies and
action logs are appends and are never refused for staleness.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lib import followups, sla
from lib.config import get_settings
from lib.directory import DeviceInput, RequesterInput, find_or_create_device, find_or_create_requester, resolve_category
from lib.errors import GuardFailed, HelpdeskError, NotFound, PermissionDenied, ValidationError
from lib.followups import FollowUpRequest
from lib.models import Attachment, Device, Requester, Ticket, User
from lib.sniff import sniff
from lib.ticket_core import (
    SYSTEM,
    ActorArg,
    SystemActor,
    add_event,
    bump,
    check_version,
    clean_id,
    clean_line,
    clean_minutes,
    clean_text,
    facts,
    load_actor,
    lock_ticket,
    move,
    now_utc,
    ref,
    require,
    require_permission,
)
from lib.workflow import (
    Action,
    ActionKind,
    Channel,
    ClosureReason,
    ConfirmationVia,
    EscalationLevel,
    EventKind,
    Priority,
    Role,
    Status,
    closure_missing,
    link_permission,
    next_status,
    reopen_missing,
    resolve_missing,
)

__all__ = ["SYSTEM", "SystemActor"]


class DuplicateExternalRef(HelpdeskError):
    """A ticket with this external reference (Message-ID, alert fingerprint, imported id) exists."""

    def __init__(self, ticket_id: int) -> None:
        super().__init__(f"already recorded as ticket {ticket_id}")
        self.ticket_id = ticket_id


@dataclass(frozen=True)
class NewAttachment:
    filename: str
    content_type: str
    data: bytes


@dataclass
class TicketDraft:
    """What intake collects. Used by the intake page, e-mail, alerts and the CLI alike."""

    summary: str
    category: int | str
    priority: Priority | int | str
    channel: Channel | str
    description: str = ""
    requester_id: int | None = None
    requester: RequesterInput | None = None
    device_id: int | None = None
    device: DeviceInput | None = None
    device_details: str | None = None
    assignee_id: int | None = None
    parent_id: int | None = None
    external_source: str | None = None
    external_ref: str | None = None
    attachments: list[NewAttachment] = field(default_factory=list)
    event_meta: dict[str, object] | None = None  # added to the created event's meta (e.g. lib.notify.QUIET)


def _parse_channel(value: Channel | str) -> Channel:
    try:
        return Channel(value)
    except ValueError:
        labels = ", ".join(c.value for c in Channel)
        raise ValidationError({"channel": f"unknown channel {value!r}; use one of {labels}"}) from None


def _parse_priority(value: object) -> Priority:
    try:
        return Priority.parse(value)
    except ValueError as exc:
        raise ValidationError({"priority": str(exc)}) from None


def find_external(session: Session, source: str | None, ref: str) -> Ticket | None:
    return session.scalar(select(Ticket).where(Ticket.external_source == source, Ticket.external_ref == ref))


def create_ticket(session: Session, *, actor: ActorArg, draft: TicketDraft, now: datetime | None = None) -> Ticket:
    """Create a ticket from a draft. Idempotent per external reference: raises DuplicateExternalRef."""
    now = now_utc(now)
    user = load_actor(session, actor)
    require(Action.CREATE, user)
    errors: dict[str, str] = {}

    def attempt(fn, *args, **kwargs):  # collect every field error at once, so the form can show them all
        try:
            return fn(*args, **kwargs)
        except ValidationError as exc:
            errors.update(exc.fields or {"form": str(exc)})
            return None

    summary = attempt(clean_line, draft.summary, "summary")
    description = attempt(clean_text, draft.description, "description") or ""
    channel = attempt(_parse_channel, draft.channel)
    priority = attempt(_parse_priority, draft.priority)
    category = attempt(resolve_category, session, draft.category)
    device_details = attempt(clean_text, draft.device_details, "device_details", max_len=2000)
    if draft.external_ref is not None and not draft.external_source:
        errors["external_source"] = "is required with an external reference"
    for name in ("external_source", "external_ref"):
        if getattr(draft, name) is not None and not isinstance(getattr(draft, name), str):
            errors[name] = f"must be text, not {type(getattr(draft, name)).__name__}"
    limit = get_settings().attachment_max_bytes
    for att in draft.attachments:
        if len(att.data) > limit:
            errors["attachments"] = f"{att.filename} is {len(att.data):,} bytes; the limit is {limit:,}"
    requester_id = attempt(clean_id, draft.requester_id, "requester")
    device_id = attempt(clean_id, draft.device_id, "device")
    assignee_id = attempt(clean_id, draft.assignee_id, "assignee")
    parent_id = attempt(clean_id, draft.parent_id, "parent")
    if requester_id is None and draft.requester is not None and "requester" not in errors:
        req = attempt(find_or_create_requester, session, draft.requester)
        requester_id = req.id if req is not None else None
    elif requester_id is not None and session.get(Requester, requester_id) is None:
        errors["requester"] = f"contact {requester_id} does not exist"
    if channel is not None and channel not in (Channel.ALERT, Channel.IMPORT) and requester_id is None:
        errors.setdefault("requester", "choose a contact or enter a new one (alerts and imports may have none)")
    if device_id is None and draft.device is not None and "device" not in errors:
        dev = attempt(find_or_create_device, session, draft.device, owner_id=requester_id)
        device_id = dev.id if dev is not None else None
    elif device_id is not None and session.get(Device, device_id) is None:
        errors["device"] = f"device {device_id} does not exist"
    assignee: User | None = None
    if assignee_id is not None:
        assignee = session.get(User, assignee_id)
        if assignee is None or not assignee.active:
            errors["assignee"] = "choose an active technician"
        elif user is not None and assignee.id != user.id and Role(user.role) < Role.LEAD:
            errors["assignee"] = "only a lead may assign a ticket to someone else; leave it unassigned or take it"
    parent = None
    if parent_id is not None:
        parent = session.get(Ticket, parent_id)
        if parent is None:
            errors["parent"] = f"ticket {parent_id} does not exist"
    if errors:
        raise ValidationError(errors)
    if draft.external_ref is not None:
        existing = find_external(session, draft.external_source, draft.external_ref)
        if existing is not None:
            raise DuplicateExternalRef(existing.id)

    ticket = Ticket(
        summary=summary,
        description=description,
        channel=channel.value,
        requester_id=requester_id,
        device_id=device_id,
        device_details=device_details,
        category_id=category.id,
        priority=int(priority),
        status=Status.NEW.value,
        is_open=True,
        created_by_id=user.id if user else None,
        parent_id=parent.id if parent else None,
        external_source=draft.external_source,
        external_ref=draft.external_ref,
        created_at=now,
        updated_at=now,
        version=1,
    )
    if draft.external_ref is None:
        session.add(ticket)
        session.flush()
    else:
        # Two ingesters may record the same message at once: the unique key decides, the loser is told.
        try:
            with session.begin_nested():
                session.add(ticket)
                session.flush()
        except IntegrityError:
            existing = find_external(session, draft.external_source, draft.external_ref)
            if existing is None:
                raise
            raise DuplicateExternalRef(existing.id) from None
    if parent is not None:
        parent.is_major_incident = True
    add_event(
        session, ticket, EventKind.CREATED, actor=user, actor_label=_label(actor), now=now,
        to_status=Status.NEW, body=description or None, public=True, version=1,
        meta={"channel": ticket.channel, "priority": ticket.priority, "category": category.name,
              **(draft.event_meta or {})},
    )
    for att in draft.attachments:
        _store_attachment(session, ticket, att, user=user, now=now)
    if assignee is not None:
        move(ticket, Status.ASSIGNED)
        ticket.assignee_id = assignee.id
        add_event(session, ticket, EventKind.ASSIGNED, actor=user, actor_label=_label(actor), now=now,
                  from_status=Status.NEW, to_status=Status.ASSIGNED, field="assignee", new=assignee.name)
    sla.attach_policy(session, ticket)
    sla.refresh(session, ticket, now=now)
    return ticket


def _label(actor: ActorArg) -> str | None:
    return actor.label if isinstance(actor, SystemActor) else None


def _store_attachment(session: Session, ticket: Ticket, att: NewAttachment, *, user: User | None, now: datetime) -> Attachment:
    settings = get_settings()
    if len(att.data) > settings.attachment_max_bytes:
        raise ValidationError({"attachments": f"{att.filename} is larger than {settings.attachment_max_bytes:,} bytes"})
    name = clean_line(Path(att.filename or "attachment").name, "filename", max_len=255) or "attachment"
    digest = hashlib.sha256(att.data).hexdigest()
    row = Attachment(ticket_id=ticket.id, filename=name, content_type=sniff(att.data, att.content_type, name)[:127],
                     size=len(att.data), sha256=digest, uploaded_by_id=user.id if user else None, created_at=now)
    if settings.attachment_dir:
        folder = Path(settings.attachment_dir) / digest[:2]
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / digest
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(att.data)
            tmp.replace(path)
        row.storage_path = str(path)
    else:
        row.data = att.data
    session.add(row)
    session.flush()
    add_event(session, ticket, EventKind.ATTACHMENT, actor=user, actor_label=None if user else "system", now=now,
              body=f"{name} ({len(att.data):,} bytes)", meta={"attachment_id": row.id})
    return row


def add_attachment(session: Session, *, actor: ActorArg, ticket_id: int, attachment: NewAttachment,
                   now: datetime | None = None) -> Attachment:
    now = now_utc(now)
    user = load_actor(session, actor)
    ticket = lock_ticket(session, ticket_id)
    require(Action.INTERNAL_NOTE, user, ticket)
    return _store_attachment(session, ticket, attachment, user=user, now=now)


# --- fields ------------------------------------------------------------------------------------

EDITABLE_FIELDS = ("summary", "description", "category", "priority", "device_id", "device_details", "requester_id",
                   "root_cause", "root_cause_unknown_reason", "resolution_notes")


def update_fields(session: Session, *, actor: ActorArg, ticket_id: int, expected_version: int | None,
                  changes: dict[str, object], now: datetime | None = None) -> Ticket:
    """Edit ticket fields. Each changed field gets its own event; unchanged values are ignored."""
    now = now_utc(now)
    user = load_actor(session, actor)
    ticket = lock_ticket(session, ticket_id)
    require(Action.UPDATE_FIELDS, user, ticket)
    next_status(Status(ticket.status), Action.UPDATE_FIELDS)
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValidationError({k: "cannot be edited here" for k in sorted(unknown)})
    check_version(session, ticket, expected_version)
    new_values: dict[str, tuple[object, object, str | None, str | None]] = {}  # attr -> (old, new, old label, new label)
    for name, value in changes.items():
        if name == "summary":
            v: str | None = clean_line(value, "summary")
            new_values["summary"] = (ticket.summary, v, ticket.summary, v)
        elif name in ("description", "root_cause", "root_cause_unknown_reason", "resolution_notes", "device_details"):
            v = clean_text(value, name)
            if name == "description":
                v = v or ""
            old = getattr(ticket, name)
            new_values[name] = (old, v, _short(old), _short(v))
        elif name == "category":
            cat = resolve_category(session, value)
            new_values["category_id"] = (ticket.category_id, cat.id, ticket.category.name, cat.name)
        elif name == "priority":
            p = _parse_priority(value)
            new_values["priority"] = (ticket.priority, int(p), Priority(ticket.priority).label, p.label)
        elif name == "device_id":
            value = clean_id(value, "device")
            if value is not None and session.get(Device, value) is None:
                raise ValidationError({"device": f"device {value} does not exist"})
            new_values["device_id"] = (ticket.device_id, value, str(ticket.device_id or "—"), str(value or "—"))
        elif name == "requester_id":
            value = clean_id(value, "requester")
            if value is not None and session.get(Requester, value) is None:
                raise ValidationError({"requester": f"contact {value} does not exist"})
            new_values["requester_id"] = (ticket.requester_id, value, str(ticket.requester_id or "—"), str(value or "—"))
    changed = {k: v for k, v in new_values.items() if v[0] != v[1]}
    if not changed:
        return ticket
    version = bump(ticket, now)
    for attr, (_old, new, old_label, new_label) in changed.items():
        setattr(ticket, attr, new)
        field_name = attr.removesuffix("_id") if attr in ("category_id",) else attr
        add_event(session, ticket, EventKind.FIELD_CHANGED, actor=user, now=now, field=field_name,
                  old=old_label, new=new_label, version=version)
    if "priority" in changed:
        sla.attach_policy(session, ticket, reason="priority changed")
    sla.refresh(session, ticket, now=now)
    return ticket


def _short(text: object, n: int = 80) -> str | None:
    if text is None:
        return None
    s = " ".join(str(text).split())
    return s if len(s) <= n else s[: n - 1] + "…"


# --- assignment --------------------------------------------------------------------------------


def take(session: Session, *, actor: int, ticket_id: int, now: datetime | None = None) -> Ticket:
    """A technician takes an unassigned ticket."""
    now = now_utc(now)
    user = load_actor(session, actor)
    if user is None:
        raise PermissionDenied("only a staff member can take a ticket")
    ticket = lock_ticket(session, ticket_id)
    require(Action.TAKE, user, ticket)
    if ticket.assignee_id is not None:
        who = ticket.assignee.name if ticket.assignee else "someone"
        if ticket.assignee_id == actor:
            return ticket
        raise PermissionDenied(f"already taken by {who}")
    return _set_assignee(session, ticket, user, user, Action.TAKE, now=now)


def assign(session: Session, *, actor: ActorArg, ticket_id: int, assignee_id: int | None,
           expected_version: int | None, note: str | None = None, explanation: str | None = None,
           now: datetime | None = None) -> Ticket:
    """Assign (or unassign, with None). Assigning to someone else is a lead's action; to oneself, a take."""
    now = now_utc(now)
    user = load_actor(session, actor)
    ticket = lock_ticket(session, ticket_id)
    assignee_id = clean_id(assignee_id, "assignee")
    if user is not None and assignee_id == user.id and ticket.assignee_id is None:
        require(Action.TAKE, user, ticket)
    else:
        require(Action.ASSIGN, user, ticket)
    check_version(session, ticket, expected_version)
    target: User | None = None
    if assignee_id is not None:
        target = session.get(User, assignee_id)
        if target is None or not target.active:
            raise ValidationError({"assignee": "choose an active technician"})
    if target is not None and ticket.assignee_id == target.id:
        return ticket
    return _set_assignee(session, ticket, user, target, Action.ASSIGN, now=now, note=note, explanation=explanation)


def _set_assignee(session: Session, ticket: Ticket, user: User | None, target: User | None, action: Action, *,
                  now: datetime, note: str | None = None, explanation: str | None = None) -> Ticket:
    before = Status(ticket.status)
    after = next_status(before, action)
    if target is None:
        after = Status.NEW if before in (Status.ASSIGNED, Status.IN_PROGRESS, Status.NEW) else before
    old_name = ticket.assignee.name if ticket.assignee else None
    ticket.assignee_id = target.id if target else None
    move(ticket, after)
    version = bump(ticket, now)
    body = clean_text(note, "note")
    add_event(session, ticket, EventKind.ASSIGNED, actor=user, actor_label=None if user else "system", now=now,
              from_status=before, to_status=after, field="assignee", old=old_name,
              new=target.name if target else None, body=body, version=version,
              meta={"explanation": explanation} if explanation else None)
    sla.refresh(session, ticket, now=now)
    return ticket


def acknowledge(session: Session, *, actor: int, ticket_id: int, expected_version: int | None,
                now: datetime | None = None) -> Ticket:
    """The assignee acknowledges the ticket: the time to acknowledge is recorded, work is in progress."""
    now = now_utc(now)
    user = load_actor(session, actor)
    ticket = lock_ticket(session, ticket_id)
    require(Action.ACKNOWLEDGE, user, ticket)
    check_version(session, ticket, expected_version)
    return _transition(session, ticket, user, Action.ACKNOWLEDGE, EventKind.ACKNOWLEDGED, now=now,
                       before_change=lambda t: _first(t, "acknowledged_at", now))


def _first(ticket: Ticket, attr: str, now: datetime) -> None:
    if getattr(ticket, attr) is None:
        setattr(ticket, attr, now)


def _transition(session: Session, ticket: Ticket, user: User | None, action: Action, kind: EventKind, *,
                now: datetime, body: str | None = None, public: bool = False, minutes: int | None = None,
                meta: dict | None = None, before_change=None, actor_label: str | None = None) -> Ticket:
    before = Status(ticket.status)
    after = next_status(before, action)
    if before_change is not None:
        before_change(ticket)
    move(ticket, after)
    version = bump(ticket, now)
    add_event(session, ticket, kind, actor=user, actor_label=actor_label or (None if user else "system"), now=now,
                   from_status=before, to_status=after, body=body, public=public, minutes=minutes, meta=meta,
                   version=version)
    if public:
        _first(ticket, "first_response_at", now)
    sla.refresh(session, ticket, now=now)
    return ticket


# --- appends: never refused for staleness ------------------------------------------------------


def log_action(session: Session, *, actor: int, ticket_id: int, kind: ActionKind | str, text: str,
               minutes: int | None = None, now: datetime | None = None) -> Ticket:
    """Document a troubleshooting action (diagnosis, reproduction, a step, other) with the minutes spent."""
    now = now_utc(now)
    user = load_actor(session, actor)
    ticket = lock_ticket(session, ticket_id)
    require(Action.LOG_ACTION, user, ticket)
    next_status(Status(ticket.status), Action.LOG_ACTION)
    try:
        action_kind = ActionKind(kind)
    except ValueError:
        raise ValidationError({"kind": f"unknown action kind {kind!r}"}) from None
    body = clean_text(text, "text", required=True)
    add_event(session, ticket, EventKind.ACTION, actor=user, now=now, body=body, minutes=clean_minutes(minutes),
              meta={"action": action_kind.value})
    return ticket


def provide_workaround(session: Session, *, actor: int, ticket_id: int, text: str,
                       now: datetime | None = None) -> Ticket:
    """A public workaround: kept on the ticket and told to the requester."""
    now = now_utc(now)
    user = load_actor(session, actor)
    ticket = lock_ticket(session, ticket_id)
    require(Action.WORKAROUND, user, ticket)
    next_status(Status(ticket.status), Action.WORKAROUND)
    body = clean_text(text, "text", required=True)
    ticket.workaround = body
    add_event(session, ticket, EventKind.WORKAROUND, actor=user, now=now, body=body, public=True)
    _first(ticket, "first_response_at", now)
    sla.refresh(session, ticket, now=now)
    return ticket


def public_reply(session: Session, *, actor: int, ticket_id: int, text: str, minutes: int | None = None,
                 now: datetime | None = None) -> Ticket:
    now = now_utc(now)
    user = load_actor(session, actor)
    ticket = lock_ticket(session, ticket_id)
    require(Action.PUBLIC_REPLY, user, ticket)
    next_status(Status(ticket.status), Action.PUBLIC_REPLY)
    body = clean_text(text, "text", required=True)
    add_event(session, ticket, EventKind.PUBLIC_REPLY, actor=user, now=now, body=body, public=True,
                   minutes=clean_minutes(minutes))
    _first(ticket, "first_response_at", now)
    sla.refresh(session, ticket, now=now)
    return ticket


def internal_note(session: Session, *, actor: ActorArg, ticket_id: int, text: str, minutes: int | None = None,
                  now: datetime | None = None) -> Ticket:
    """Any staff member may add an internal note to any ticket, closed ones included."""
    now = now_utc(now)
    user = load_actor(session, actor)
    ticket = lock_ticket(session, ticket_id)
    require(Action.INTERNAL_NOTE, user, ticket)
    body = clean_text(text, "text", required=True)
    add_event(session, ticket, EventKind.INTERNAL_NOTE, actor=user, now=now, body=body, minutes=clean_minutes(minutes))
    return ticket


def requester_reply(session: Session, *, ticket_id: int, from_label: str, text: str, meta: dict | None = None,
                    now: datetime | None = None) -> Ticket:
    """A reply from the requester (e-mail, confirmation page): public on the timeline; resumes a ticket
    waiting on the user. It never confirms a fix by itself."""
    now = now_utc(now)
    ticket = lock_ticket(session, ticket_id)
    body = clean_text(text, "text") or "(empty message)"
    before = Status(ticket.status)
    if before is Status.WAITING_USER:
        after = next_status(before, Action.RESUME)
        move(ticket, after)
        version = bump(ticket, now)
        add_event(session, ticket, EventKind.INBOUND_EMAIL, actor=None, actor_label=from_label, now=now,
                  from_status=before, to_status=after, body=body, public=True, meta=meta, version=version)
        sla.refresh(session, ticket, now=now)
    else:
        add_event(session, ticket, EventKind.INBOUND_EMAIL, actor=None, actor_label=from_label, now=now,
                  body=body, public=True, meta=meta)
    return ticket


# --- status changes ----------------------------------------------------------------------------


def request_info(session: Session, *, actor: int, ticket_id: int, expected_version: int | None, text: str,
                 now: datetime | None = None) -> Ticket:
    """Ask the user for more information (public); the ticket waits on the user and the clock pauses."""
    now = now_utc(now)
    user = load_actor(session, actor)
    ticket = lock_ticket(session, ticket_id)
    require(Action.REQUEST_INFO, user, ticket)
    body = clean_text(text, "text", required=True)
    check_version(session, ticket, expected_version)
    return _transition(session, ticket, user, Action.REQUEST_INFO, EventKind.INFO_REQUESTED, now=now, body=body,
                       public=True)


def escalate_to_senior(session: Session, *, actor: int, ticket_id: int, expected_version: int | None,
                       senior_id: int, reason: str, now: datetime | None = None) -> Ticket:
    """Hand the ticket to a senior technician with a reason; the senior then acknowledges it."""
    now = now_utc(now)
    user = load_actor(session, actor)
    ticket = lock_ticket(session, ticket_id)
    require(Action.ESCALATE_SENIOR, user, ticket)
    body = clean_text(reason, "reason", required=True)
    senior = session.get(User, senior_id) if isinstance(senior_id, int) else None
    if senior is None or not senior.active or Role(senior.role) < Role.SENIOR:
        raise ValidationError({"senior": "choose an active senior technician or lead"})
    check_version(session, ticket, expected_version)
    old = ticket.assignee.name if ticket.assignee else None

    def change(t: Ticket) -> None:
        t.assignee_id = senior.id
        t.escalation_level = max(t.escalation_level, int(EscalationLevel.SENIOR))

    return _transition(session, ticket, user, Action.ESCALATE_SENIOR, EventKind.ESCALATED, now=now, body=body,
                       meta={"level": "senior", "from": old, "to": senior.name}, before_change=change)


def escalate_to_vendor(session: Session, *, actor: int, ticket_id: int, expected_version: int | None,
                       vendor_name: str, case_ref: str | None, promised_at: datetime | None, note: str | None = None,
                       now: datetime | None = None) -> Ticket:
    """Escalate to a vendor: waiting on the vendor pauses our resolution clock."""
    now = now_utc(now)
    user = load_actor(session, actor)
    ticket = lock_ticket(session, ticket_id)
    require(Action.ESCALATE_VENDOR, user, ticket)
    vendor = clean_line(vendor_name, "vendor_name", max_len=120)
    case = clean_line(case_ref, "case_ref", required=False, max_len=120)
    if promised_at is not None and (not isinstance(promised_at, datetime) or promised_at.tzinfo is None):
        raise ValidationError({"promised_at": "must be a date and time with a time zone"})
    body = clean_text(note, "note")
    check_version(session, ticket, expected_version)

    def change(t: Ticket) -> None:
        t.escalation_level = int(EscalationLevel.VENDOR)
        t.vendor_name, t.vendor_case_ref, t.vendor_promised_at = vendor, case, promised_at

    promised = promised_at.isoformat() if promised_at else None
    return _transition(session, ticket, user, Action.ESCALATE_VENDOR, EventKind.ESCALATED, now=now, body=body,
                       meta={"level": "vendor", "vendor": vendor, "case_ref": case, "promised_at": promised},
                       before_change=change)


def resume(session: Session, *, actor: ActorArg, ticket_id: int, expected_version: int | None,
           note: str | None = None, now: datetime | None = None) -> Ticket:
    now = now_utc(now)
    user = load_actor(session, actor)
    ticket = lock_ticket(session, ticket_id)
    require(Action.RESUME, user, ticket)
    body = clean_text(note, "note")
    check_version(session, ticket, expected_version)
    return _transition(session, ticket, user, Action.RESUME, EventKind.RESUMED, now=now, body=body)


def resolve(session: Session, *, actor: ActorArg, ticket_id: int, expected_version: int | None, resolution_notes: str,
            root_cause: str | None = None, root_cause_unknown_reason: str | None = None,
            minutes: int | None = None, now: datetime | None = None) -> Ticket:
    """Record the fix. The requester is told; closure still needs their confirmation (or another reason)."""
    now = now_utc(now)
    user = load_actor(session, actor)
    ticket = lock_ticket(session, ticket_id)
    require(Action.RESOLVE, user, ticket)
    notes = clean_text(resolution_notes, "resolution_notes")
    cause = clean_text(root_cause, "root_cause")
    unknown = clean_text(root_cause_unknown_reason, "root_cause_unknown_reason")
    next_status(Status(ticket.status), Action.RESOLVE)
    missing = resolve_missing(facts(session, ticket), resolution_notes=notes)
    if missing:
        raise GuardFailed("resolve", missing)
    check_version(session, ticket, expected_version)

    def change(t: Ticket) -> None:
        t.resolution_notes = notes or t.resolution_notes
        if cause:
            t.root_cause = cause
        if unknown:
            t.root_cause_unknown_reason = unknown
        t.resolved_at = now

    return _transition(session, ticket, user, Action.RESOLVE, EventKind.RESOLVED, now=now, body=notes, public=True,
                       minutes=clean_minutes(minutes), before_change=change)


def request_confirmation(session: Session, *, actor: ActorArg, ticket_id: int, expected_version: int | None,
                         message: str | None = None, now: datetime | None = None) -> Ticket:
    """Ask the requester to confirm the fix (the mail carries the signed confirmation links)."""
    now = now_utc(now)
    user = load_actor(session, actor)
    ticket = lock_ticket(session, ticket_id)
    require(Action.REQUEST_CONFIRMATION, user, ticket)
    body = clean_text(message, "message")
    check_version(session, ticket, expected_version)

    def change(t: Ticket) -> None:
        t.confirmation_requested_at = now

    return _transition(session, ticket, user, Action.REQUEST_CONFIRMATION, EventKind.CONFIRMATION_REQUESTED, now=now,
                       body=body, public=True, before_change=change)


def record_confirmation(session: Session, *, actor: ActorArg, ticket_id: int, expected_version: int | None,
                        via: ConfirmationVia | str, confirmed_by: str, note: str | None = None,
                        now: datetime | None = None) -> Ticket:
    """Record that the user confirmed the fix works, how and by whom. A link confirmation is the system's."""
    now = now_utc(now)
    user = load_actor(session, actor)
    ticket = lock_ticket(session, ticket_id)
    require(Action.RECORD_CONFIRMATION, user, ticket)
    try:
        how = ConfirmationVia(via)
    except ValueError:
        raise ValidationError({"via": f"unknown confirmation channel {via!r}"}) from None
    if how is ConfirmationVia.LINK and user is not None:
        raise ValidationError({"via": "a link confirmation is recorded by the requester's signed link"})
    who = clean_line(confirmed_by, "confirmed_by", max_len=200)
    body = clean_text(note, "note")
    check_version(session, ticket, expected_version)

    def change(t: Ticket) -> None:
        t.confirmed_at, t.confirmation_via, t.confirmed_by = now, how.value, who

    return _transition(session, ticket, user, Action.RECORD_CONFIRMATION, EventKind.CONFIRMED, now=now,
                       body=body or f"Confirmed by {who} ({how.value.replace('_', ' ')})",
                       meta={"via": how.value, "by": who}, before_change=change,
                       actor_label=f"{who} (signed link)" if how is ConfirmationVia.LINK else None)


def close(session: Session, *, actor: ActorArg, ticket_id: int, expected_version: int | None,
          reason: ClosureReason | str, duplicate_of: int | None = None, note: str | None = None,
          override_reason: str | None = None, preventive_steps: str | None = None,
          follow_up: FollowUpRequest | None = None, now: datetime | None = None) -> Ticket:
    """Close with a reason; each reason has its own guard. A lead may override a guard with a written reason.
    ``preventive_steps`` (and a ``follow_up`` to check them) are recorded with the closure (lib.followups)."""
    now = now_utc(now)
    user = load_actor(session, actor)
    ticket = lock_ticket(session, ticket_id)
    require(Action.CLOSE, user, ticket)
    try:
        why = ClosureReason(reason)
    except ValueError:
        raise ValidationError({"reason": f"unknown closure reason {reason!r}"}) from None
    next_status(Status(ticket.status), Action.CLOSE)
    body = clean_text(note, "note")
    duplicate_of = clean_id(duplicate_of, "duplicate_of")
    if duplicate_of is not None:
        original = session.get(Ticket, duplicate_of)
        if original is None:
            raise ValidationError({"duplicate_of": f"ticket {duplicate_of} does not exist"})
        if original.duplicate_of_id == ticket.id:
            raise ValidationError({"duplicate_of": f"ticket {duplicate_of} is already closed as a duplicate of this one"})
    missing = closure_missing(why, facts(session, ticket), now=now,
                              confirmation_wait=timedelta(days=get_settings().confirmation_wait_days),
                              duplicate_of=duplicate_of, ticket_id=ticket.id, note=body)
    override = clean_text(override_reason, "override_reason")
    if missing and override is None:
        raise GuardFailed(f"close as '{why.label.lower()}'", missing)
    check_version(session, ticket, expected_version)
    if missing:
        require(Action.OVERRIDE_GUARD, user, ticket)
        add_event(session, ticket, EventKind.OVERRIDE, actor=user, now=now, body=override,
                  meta={"action": "close", "reason": why.value, "skipped": missing})

    def change(t: Ticket) -> None:
        t.closure_reason, t.closure_note, t.closed_at = why.value, body, now
        if why is ClosureReason.DUPLICATE:
            t.duplicate_of_id = duplicate_of

    _transition(session, ticket, user, Action.CLOSE, EventKind.CLOSED, now=now, body=body,
                public=why is not ClosureReason.NOT_APPLICABLE, before_change=change,
                meta={"reason": why.value, "duplicate_of": duplicate_of, "override": bool(missing)})
    followups.at_closure(session, ticket, user=user, preventive_steps=preventive_steps, follow_up=follow_up, now=now)
    return ticket


def reopen(session: Session, *, actor: ActorArg, ticket_id: int, expected_version: int | None, reason: str,
           public: bool = True, now: datetime | None = None) -> Ticket:
    """Reopen a resolved or recently closed ticket; past the window, open a new linked ticket instead."""
    now = now_utc(now)
    user = load_actor(session, actor)
    ticket = lock_ticket(session, ticket_id)
    require(Action.REOPEN, user, ticket)
    body = clean_text(reason, "reason", required=True)
    next_status(Status(ticket.status), Action.REOPEN)
    missing = reopen_missing(facts(session, ticket), now=now,
                             window=timedelta(days=get_settings().reopen_window_days))
    if missing:
        raise GuardFailed("reopen", missing)
    check_version(session, ticket, expected_version)
    before = Status(ticket.status)
    meta: dict[str, object] = {}
    if ticket.assignee is not None and not ticket.assignee.active:
        # the holder has left the desk: back to the unassigned queue, where someone will see it
        meta["unassigned"] = ticket.assignee.name
        ticket.assignee_id = None
    after = Status.IN_PROGRESS if ticket.assignee_id is not None else Status.NEW
    ticket.reopen_count += 1
    meta["reopen_count"] = ticket.reopen_count
    ticket.resolved_at = ticket.closed_at = ticket.confirmed_at = None
    ticket.closure_reason = ticket.confirmation_via = ticket.confirmed_by = ticket.closure_note = None
    ticket.confirmation_requested_at = ticket.duplicate_of_id = None
    move(ticket, after)
    version = bump(ticket, now)
    add_event(session, ticket, EventKind.REOPENED, actor=user, actor_label=None if user else "system", now=now,
                   from_status=before, to_status=after, body=body, public=public, version=version, meta=meta)
    sla.refresh(session, ticket, now=now)
    return ticket


def link(session: Session, *, actor: int, ticket_id: int, parent_id: int | None,
         now: datetime | None = None) -> Ticket:
    """Link a ticket to a parent (a major incident that many tickets of one outage point to); None unlinks."""
    now = now_utc(now)
    user = load_actor(session, actor)
    ticket = lock_ticket(session, ticket_id)
    require(Action.LINK, user, ticket)
    next_status(Status(ticket.status), Action.LINK)
    parent = None
    parent_id = clean_id(parent_id, "parent")
    if parent_id is not None:
        if parent_id == ticket.id:
            raise ValidationError({"parent": "a ticket cannot be its own parent"})
        parent = session.get(Ticket, parent_id)
        if parent is None:
            raise ValidationError({"parent": f"ticket {parent_id} does not exist"})
        needed = link_permission(actor_id=user.id, parent_assignee_id=parent.assignee_id)
        if needed is not None:
            holder = parent.assignee.name if parent.assignee is not None else "someone else"
            require_permission(user, needed, f"link a ticket under {ref(parent)}, assigned to {holder} (that makes "
                                             "it a major incident); link under your own tickets, or ask a senior "
                                             "technician or a lead")
        ancestor: Ticket | None
        ancestor, seen = parent, set()
        while ancestor is not None and ancestor.id not in seen:  # no loops, however long the chain
            if ancestor.parent_id == ticket.id:
                raise ValidationError({"parent": "that ticket is already linked below this one"})
            seen.add(ancestor.id)
            ancestor = session.get(Ticket, ancestor.parent_id) if ancestor.parent_id is not None else None
        parent.is_major_incident = True
    old = ticket.parent_id
    ticket.parent_id = parent_id
    add_event(session, ticket, EventKind.LINKED, actor=user, now=now, field="parent",
              old=old, new=parent_id)
    return ticket


def bulk_update(session: Session, *, actor: int, ticket_ids: list[int], assignee_id: int | None = None,
                priority: Priority | int | str | None = None, unassign: bool = False,
                now: datetime | None = None) -> list[Ticket]:
    """A lead's bulk assign / reprioritise, through the same service calls as single changes."""
    user = load_actor(session, actor)
    require(Action.BULK_UPDATE, user)
    out = []
    for tid in ticket_ids:
        ticket = lock_ticket(session, tid)
        if priority is not None:
            update_fields(session, actor=actor, ticket_id=tid, expected_version=ticket.version,
                          changes={"priority": priority}, now=now)
        if assignee_id is not None or unassign:
            assign(session, actor=actor, ticket_id=tid, assignee_id=None if unassign else assignee_id,
                   expected_version=ticket.version, note="bulk change", now=now)
        out.append(ticket)
    return out


def get_ticket(session: Session, ticket_id: int) -> Ticket:
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        raise NotFound(f"ticket {ticket_id} does not exist")
    return ticket
