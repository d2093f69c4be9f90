"""The help desk's rules as plain data and pure functions (no database, no streamlit).

* ``Status``, ``Priority``, ``Role`` ... the vocabulary.
* ``TRANSITIONS``: the allowed ``(status, action) -> new status`` table; ``next_status`` checks it.
* ``ROLE_RULES``: who may do each action (the matrix in docs/roles.md is generated from it).
* Guards (``closure_missing`` ...) return the list of what is missing, so the UI can show exactly that.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from lib.clock import desk_time


class Status(enum.StrEnum):
    NEW = "new"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    WAITING_USER = "waiting_user"
    WAITING_VENDOR = "waiting_vendor"
    RESOLVED = "resolved"
    AWAITING_CONFIRMATION = "awaiting_confirmation"
    CLOSED = "closed"

    @property
    def label(self) -> str:
        return STATUS_LABELS[self]


@dataclass(frozen=True)
class StatusInfo:
    """What a status means, in one place: every status list, label and icon in the product derives from this."""

    label: str
    icon: str
    open: bool  # open work: in the backlog, the queue's open views and the at-risk view
    resolved: bool  # a fix is recorded and awaits closure
    sla_clock: str  # the resolution clock in this status: "running", "paused" or "stopped"


STATUS_INFO: dict[Status, StatusInfo] = {
    Status.NEW: StatusInfo("New", "🆕", open=True, resolved=False, sla_clock="running"),
    Status.ASSIGNED: StatusInfo("Assigned", "👤", open=True, resolved=False, sla_clock="running"),
    Status.IN_PROGRESS: StatusInfo("In progress", "🛠️", open=True, resolved=False, sla_clock="running"),
    Status.WAITING_USER: StatusInfo("Waiting on user", "⏳", open=True, resolved=False, sla_clock="paused"),
    Status.WAITING_VENDOR: StatusInfo("Waiting on vendor", "🏭", open=True, resolved=False, sla_clock="paused"),
    Status.RESOLVED: StatusInfo("Resolved", "✅", open=False, resolved=True, sla_clock="paused"),
    Status.AWAITING_CONFIRMATION: StatusInfo("Awaiting user confirmation", "📨", open=False, resolved=True,
                                             sla_clock="paused"),
    Status.CLOSED: StatusInfo("Closed", "🔒", open=False, resolved=False, sla_clock="stopped"),
}

STATUS_LABELS: dict[Status, str] = {s: STATUS_INFO[s].label for s in Status}
STATUS_ICONS: dict[Status, str] = {s: STATUS_INFO[s].icon for s in Status}
#: Open work: not resolved, not awaiting confirmation, not closed.
OPEN_STATUSES: tuple[Status, ...] = tuple(s for s in Status if STATUS_INFO[s].open)
RESOLVED_STATUSES: tuple[Status, ...] = tuple(s for s in Status if STATUS_INFO[s].resolved)
#: Statuses in which the resolution clock runs, and in which it is paused.
RUNNING_STATUSES: tuple[Status, ...] = tuple(s for s in Status if STATUS_INFO[s].sla_clock == "running")
PAUSED_STATUSES: tuple[Status, ...] = tuple(s for s in Status if STATUS_INFO[s].sla_clock == "paused")


class Priority(enum.IntEnum):
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return self.name.capitalize()

    @property
    def definition(self) -> str:
        return PRIORITY_DEFINITIONS[self]

    @classmethod
    def parse(cls, value: object) -> Priority:
        if isinstance(value, Priority):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return cls(value)
        if isinstance(value, str):
            key = value.strip().upper()
            if key in cls.__members__:
                return cls[key]
            if key.isdigit():
                return cls(int(key))
        raise ValueError(f"unknown priority {value!r}: use Low, Medium, High or Critical")


PRIORITY_DEFINITIONS: dict[Priority, str] = {
    Priority.LOW: "Minor inconvenience",
    Priority.MEDIUM: "User work is slowed",
    Priority.HIGH: "User or team is blocked",
    Priority.CRITICAL: "System-wide outage",
}


class Channel(enum.StrEnum):
    EMAIL = "email"
    PHONE = "phone"
    WALK_IN = "walk_in"
    ON_BEHALF = "on_behalf"
    ALERT = "alert"
    IMPORT = "import"

    @property
    def label(self) -> str:
        return CHANNEL_LABELS[self]


CHANNEL_LABELS: dict[Channel, str] = {
    Channel.EMAIL: "E-mail",
    Channel.PHONE: "Phone",
    Channel.WALK_IN: "Walk-in",
    Channel.ON_BEHALF: "On behalf of a user",
    Channel.ALERT: "Monitoring alert",
    Channel.IMPORT: "Import",
}


class Role(enum.IntEnum):
    """Ordered: a higher role can do everything a lower one can (lead ⊇ senior ⊇ technician)."""

    TECHNICIAN = 1
    SENIOR = 2
    LEAD = 3

    @property
    def label(self) -> str:
        return {Role.TECHNICIAN: "Technician", Role.SENIOR: "Senior technician", Role.LEAD: "Team lead"}[self]

    @property
    def key(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, value: object) -> Role:
        if isinstance(value, Role):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return cls(value)
        key = str(value).strip().upper().replace(" ", "_")
        aliases = {"TECH": "TECHNICIAN", "SENIOR_TECHNICIAN": "SENIOR", "TEAM_LEAD": "LEAD"}
        key = aliases.get(key, key)
        if key in cls.__members__:
            return cls[key]
        raise ValueError(f"unknown role {value!r}: use technician, senior or lead")


class EscalationLevel(enum.IntEnum):
    TECHNICIAN = 0
    SENIOR = 1
    VENDOR = 2

    @property
    def label(self) -> str:
        return {0: "Technician", 1: "Senior technician", 2: "Vendor"}[int(self)]


class ClosureReason(enum.StrEnum):
    CONFIRMED = "confirmed"
    NO_REPLY = "no_reply"
    DUPLICATE = "duplicate"
    CANCELLED = "cancelled"
    NOT_APPLICABLE = "not_applicable"

    @property
    def label(self) -> str:
        return CLOSURE_LABELS[self]


CLOSURE_LABELS: dict[ClosureReason, str] = {
    ClosureReason.CONFIRMED: "Confirmed by the user",
    ClosureReason.NO_REPLY: "No reply from the user",
    ClosureReason.DUPLICATE: "Duplicate",
    ClosureReason.CANCELLED: "Cancelled by the requester",
    ClosureReason.NOT_APPLICABLE: "Not applicable",
}
#: Closures that count as resolved work in the metrics.
WORK_CLOSURES = (ClosureReason.CONFIRMED, ClosureReason.NO_REPLY)


class ConfirmationVia(enum.StrEnum):
    LINK = "link"
    PHONE = "phone"
    EMAIL = "email"
    IN_PERSON = "in_person"
    CHAT = "chat"


class ActionKind(enum.StrEnum):
    """Kinds of documented troubleshooting actions (seed step 4)."""

    DIAGNOSIS = "diagnosis"
    REPRODUCTION = "reproduction"
    TROUBLESHOOTING = "troubleshooting"
    OTHER = "other"


class EventKind(enum.StrEnum):
    CREATED = "created"
    FIELD_CHANGED = "field_changed"
    ASSIGNED = "assigned"
    ACKNOWLEDGED = "acknowledged"
    ACTION = "action"
    WORKAROUND = "workaround"
    PUBLIC_REPLY = "public_reply"
    INTERNAL_NOTE = "internal_note"
    INFO_REQUESTED = "info_requested"
    ESCALATED = "escalated"
    RESUMED = "resumed"
    RESOLVED = "resolved"
    CONFIRMATION_REQUESTED = "confirmation_requested"
    CONFIRMED = "confirmed"
    CLOSED = "closed"
    REOPENED = "reopened"
    LINKED = "linked"
    STATUS_CHANGED = "status_changed"  # imported history and other plain status moves
    ATTACHMENT = "attachment"
    INBOUND_EMAIL = "inbound_email"
    ALERT = "alert"
    MAIL_SENT = "mail_sent"
    SLA_BREACHED = "sla_breached"
    OVERRIDE = "override"
    KB_LINKED = "kb_linked"  # an article linked to the ticket ("solved with KB-12" when meta.solved)
    KB_DRAFTED = "kb_drafted"  # a KB article drafted from this ticket
    FOLLOW_UP_SCHEDULED = "follow_up_scheduled"
    FOLLOW_UP_REMINDED = "follow_up_reminded"
    FOLLOW_UP_COMPLETED = "follow_up_completed"
    PREVENTIVE_STEPS = "preventive_steps"


class KbStatus(enum.StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"


class FollowUpSource(enum.StrEnum):
    MANUAL = "manual"
    PREVENTIVE = "preventive"  # scheduled with the preventive steps at closure
    REPEAT = "repeat"  # offered by a repeat-issue notice


class Action(enum.StrEnum):
    CREATE = "create"
    UPDATE_FIELDS = "update_fields"
    TAKE = "take"
    ASSIGN = "assign"
    ACKNOWLEDGE = "acknowledge"
    LOG_ACTION = "log_action"
    WORKAROUND = "workaround"
    PUBLIC_REPLY = "public_reply"
    INTERNAL_NOTE = "internal_note"
    REQUEST_INFO = "request_info"
    ESCALATE_SENIOR = "escalate_senior"
    ESCALATE_VENDOR = "escalate_vendor"
    RESUME = "resume"
    RESOLVE = "resolve"
    REQUEST_CONFIRMATION = "request_confirmation"
    RECORD_CONFIRMATION = "record_confirmation"
    CLOSE = "close"
    REOPEN = "reopen"
    LINK = "link"
    BULK_UPDATE = "bulk_update"
    OVERRIDE_GUARD = "override_guard"
    ADMIN = "admin"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").capitalize()


S = Status
_WORKING = (S.ASSIGNED, S.IN_PROGRESS, S.WAITING_USER, S.WAITING_VENDOR)
_NOT_CLOSED = (S.NEW, *_WORKING, S.RESOLVED, S.AWAITING_CONFIRMATION)

#: ``(from status, action) -> to status``; ``None`` as target means "status stays".
#: A pair absent from the table is not allowed.
TRANSITIONS: dict[tuple[Status, Action], Status | None] = {}


def _allow(froms: tuple[Status, ...], action: Action, to: Status | None) -> None:
    for f in froms:
        TRANSITIONS[(f, action)] = to


_allow(_NOT_CLOSED, Action.UPDATE_FIELDS, None)
_allow((S.NEW,), Action.TAKE, S.ASSIGNED)
_allow((S.WAITING_USER, S.WAITING_VENDOR), Action.TAKE, None)  # a ticket unassigned while waiting stays waiting
_allow((S.NEW, S.ASSIGNED, S.IN_PROGRESS), Action.ASSIGN, S.ASSIGNED)
# Reassigning waiting or resolved work keeps its status (someone must still see the confirmation through).
_allow((S.WAITING_USER, S.WAITING_VENDOR, S.RESOLVED, S.AWAITING_CONFIRMATION), Action.ASSIGN, None)
_allow((S.ASSIGNED,), Action.ACKNOWLEDGE, S.IN_PROGRESS)
_allow((S.NEW, *_WORKING, S.RESOLVED, S.AWAITING_CONFIRMATION), Action.LOG_ACTION, None)
_allow(_WORKING, Action.WORKAROUND, None)
_allow(_NOT_CLOSED, Action.PUBLIC_REPLY, None)
_allow((*_NOT_CLOSED, S.CLOSED), Action.INTERNAL_NOTE, None)
_allow((S.NEW, S.ASSIGNED, S.IN_PROGRESS, S.WAITING_VENDOR), Action.REQUEST_INFO, S.WAITING_USER)
_allow((S.NEW, *_WORKING), Action.ESCALATE_SENIOR, S.ASSIGNED)
_allow((S.ASSIGNED, S.IN_PROGRESS, S.WAITING_USER), Action.ESCALATE_VENDOR, S.WAITING_VENDOR)
_allow((S.WAITING_USER, S.WAITING_VENDOR), Action.RESUME, S.IN_PROGRESS)
_allow(_WORKING, Action.RESOLVE, S.RESOLVED)
_allow((S.RESOLVED,), Action.REQUEST_CONFIRMATION, S.AWAITING_CONFIRMATION)
_allow((S.AWAITING_CONFIRMATION,), Action.REQUEST_CONFIRMATION, None)  # a reminder
_allow((S.RESOLVED, S.AWAITING_CONFIRMATION), Action.RECORD_CONFIRMATION, None)
_allow(_NOT_CLOSED, Action.CLOSE, S.CLOSED)
_allow((S.RESOLVED, S.AWAITING_CONFIRMATION, S.CLOSED), Action.REOPEN, S.IN_PROGRESS)
_allow(_NOT_CLOSED, Action.LINK, None)


def allowed_actions(status: Status) -> list[Action]:
    return [a for (s, a) in TRANSITIONS if s == status]


def is_allowed(status: Status, action: Action) -> bool:
    return (status, action) in TRANSITIONS


def next_status(status: Status, action: Action) -> Status:
    """The status after ``action``; raises ``TransitionNotAllowed`` when the table has no such move."""
    from lib.errors import TransitionNotAllowed

    key = (Status(status), action)
    if key not in TRANSITIONS:
        raise TransitionNotAllowed(f"'{action.label}' is not possible while the ticket is {Status(status).label.lower()}")
    target = TRANSITIONS[key]
    return Status(status) if target is None else target


# --- roles -------------------------------------------------------------------------------------


class Who(enum.StrEnum):
    """Who may perform an action on a ticket."""

    ANY_STAFF = "any active staff member"
    WORKER = "the assignee, a senior on an escalated ticket, or a lead"
    ASSIGNEE = "the assignee or a lead"
    LEAD = "a lead"


ROLE_RULES: dict[Action, Who] = {
    Action.CREATE: Who.ANY_STAFF,
    Action.TAKE: Who.ANY_STAFF,  # only unassigned tickets
    Action.INTERNAL_NOTE: Who.ANY_STAFF,
    Action.REOPEN: Who.ANY_STAFF,  # a requester may report it to anyone at the desk
    Action.UPDATE_FIELDS: Who.WORKER,
    Action.ACKNOWLEDGE: Who.ASSIGNEE,  # the time to acknowledge is the assignee's own
    Action.LOG_ACTION: Who.WORKER,
    Action.WORKAROUND: Who.WORKER,
    Action.PUBLIC_REPLY: Who.WORKER,
    Action.REQUEST_INFO: Who.WORKER,
    Action.ESCALATE_SENIOR: Who.WORKER,
    Action.ESCALATE_VENDOR: Who.WORKER,
    Action.RESUME: Who.WORKER,
    Action.RESOLVE: Who.WORKER,
    Action.REQUEST_CONFIRMATION: Who.WORKER,
    Action.RECORD_CONFIRMATION: Who.WORKER,
    Action.CLOSE: Who.WORKER,
    Action.LINK: Who.WORKER,
    Action.ASSIGN: Who.LEAD,  # assigning to or away from someone else; taking is Action.TAKE
    Action.BULK_UPDATE: Who.LEAD,
    Action.OVERRIDE_GUARD: Who.LEAD,
    Action.ADMIN: Who.LEAD,
}


def may(
    action: Action,
    *,
    role: Role,
    actor_id: int,
    assignee_id: int | None,
    escalation: EscalationLevel = EscalationLevel.TECHNICIAN,
) -> bool:
    """Whether a user with ``role`` may perform ``action`` on a ticket (pure; the caller loads the role from the DB)."""
    who = ROLE_RULES[action]
    if role >= Role.LEAD:
        return True
    if who is Who.ANY_STAFF:
        return True
    if who is Who.LEAD:
        return False
    if assignee_id == actor_id:
        return True
    if who is Who.ASSIGNEE:
        return False
    return role >= Role.SENIOR and escalation >= EscalationLevel.SENIOR


class Permission(enum.StrEnum):
    """Desk-wide rights, not tied to one ticket: each needs at least the role in :data:`PERMISSIONS`."""

    VIEW_METRICS = "see the metrics and the weekly report"
    PUBLISH_KB = "publish, unpublish and edit published knowledge-base articles"
    VIEW_BOARD = "see the workload board and reassign from it"
    MANAGE_ACCOUNTS = "create and change accounts, skills and passwords"
    CONFIGURE_ASSIGNMENT = "change the assignment weights and automatic reassignment"
    CONFIGURE_SLA = "edit SLA targets and the business calendar"
    EDIT_CATEGORIES = "edit categories"
    CONFIGURE_REPEATS = "change the repeat-issue window and open a problem ticket for repeat issues"
    LINK_UNDER_OTHERS = ("link a ticket under one assigned to someone else, making theirs a major incident "
                         "(a technician links their own tickets to each other)")
    ADMIN = "open the admin page"

    @property
    def label(self) -> str:
        return self.value


PERMISSIONS: dict[Permission, Role] = {
    Permission.VIEW_METRICS: Role.SENIOR,
    Permission.PUBLISH_KB: Role.SENIOR,
    Permission.VIEW_BOARD: Role.LEAD,
    Permission.MANAGE_ACCOUNTS: Role.LEAD,
    Permission.CONFIGURE_ASSIGNMENT: Role.LEAD,
    Permission.CONFIGURE_SLA: Role.LEAD,
    Permission.EDIT_CATEGORIES: Role.LEAD,
    Permission.CONFIGURE_REPEATS: Role.LEAD,
    Permission.LINK_UNDER_OTHERS: Role.SENIOR,
    Permission.ADMIN: Role.LEAD,
}


def has_permission(role: Role, permission: Permission) -> bool:
    return role >= PERMISSIONS[permission]


def link_permission(*, actor_id: int, parent_assignee_id: int | None) -> Permission | None:
    """The desk-wide permission that linking under a parent needs, besides :data:`ROLE_RULES` on the child.

    A parent becomes a major incident: one assigned to someone else needs :attr:`Permission.LINK_UNDER_OTHERS`.
    The actor's own tickets, and unassigned ones (which anyone may take first), need nothing more.
    """
    if parent_assignee_id is None or parent_assignee_id == actor_id:
        return None
    return Permission.LINK_UNDER_OTHERS


def permission_matrix() -> list[dict[str, str]]:
    """Rows permission × role for the docs."""
    return [{"permission": p.label, **{r.label: "yes" if has_permission(r, p) else "no" for r in Role}}
            for p in PERMISSIONS]


def role_matrix() -> list[dict[str, str]]:
    """Rows action × role for the docs and the admin page."""
    rows = []
    for action, who in ROLE_RULES.items():
        row = {"action": action.label, "who": who.value}
        for role in Role:
            if role >= Role.LEAD or who is Who.ANY_STAFF:
                row[role.label] = "yes"
            elif who is Who.LEAD:
                row[role.label] = "no"
            elif role >= Role.SENIOR and who is Who.WORKER:
                row[role.label] = "own + escalated"
            else:
                row[role.label] = "own"
        rows.append(row)
    return rows


# --- guards ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TicketFacts:
    """What the guards need to know about a ticket, gathered by the service layer."""

    status: Status
    assignee_id: int | None
    resolution_notes: str | None
    root_cause: str | None
    root_cause_unknown_reason: str | None
    confirmed_at: datetime | None
    confirmation_via: str | None
    confirmed_by: str | None
    confirmation_requested_at: datetime | None
    action_count: int
    closed_at: datetime | None = None
    #: The newest message from the requester (e-mail reply, confirmation page comment), if any.
    last_requester_reply_at: datetime | None = None


def _blank(text: str | None) -> bool:
    return text is None or not str(text).strip()


def resolve_missing(facts: TicketFacts, *, resolution_notes: str | None) -> list[str]:
    missing = []
    if facts.assignee_id is None:
        missing.append("an assignee (take or assign the ticket first)")
    if _blank(resolution_notes) and _blank(facts.resolution_notes):
        missing.append("resolution notes: what fixed it")
    return missing


def closure_missing(
    reason: ClosureReason,
    facts: TicketFacts,
    *,
    now: datetime,
    confirmation_wait: timedelta,
    duplicate_of: int | None = None,
    ticket_id: int | None = None,
    note: str | None = None,
) -> list[str]:
    """What is still missing before the ticket may be closed with ``reason`` (empty list: allowed)."""
    missing: list[str] = []
    if reason is ClosureReason.CONFIRMED:
        if facts.status not in RESOLVED_STATUSES:
            missing.append("the ticket must be resolved first")
        if facts.confirmed_at is None:
            missing.append("the user's confirmation (signed link, or recorded by a technician with how it was given)")
        if _blank(facts.resolution_notes):
            missing.append("resolution notes")
        if facts.action_count < 1:
            missing.append("at least one documented action (diagnosis, reproduction or troubleshooting step)")
        if _blank(facts.root_cause) and _blank(facts.root_cause_unknown_reason):
            missing.append("a root cause, or 'not identified' with a reason")
    elif reason is ClosureReason.NO_REPLY:
        if facts.status not in RESOLVED_STATUSES:
            missing.append("the ticket must be resolved first")
        if facts.confirmation_requested_at is None:
            missing.append("a confirmation request sent to the user")
        elif now < facts.confirmation_requested_at + confirmation_wait:
            days = confirmation_wait.total_seconds() / 86400
            until = facts.confirmation_requested_at + confirmation_wait
            missing.append(f"the {days:g}-day wait for the user's reply (ends {desk_time(until)})")
        if (facts.confirmation_requested_at is not None and facts.last_requester_reply_at is not None
                and facts.last_requester_reply_at >= facts.confirmation_requested_at):
            missing.append(f"no reply from the user, but they replied on {desk_time(facts.last_requester_reply_at)}: "
                           "read it, then record their confirmation or reopen")
        if _blank(facts.resolution_notes):
            missing.append("resolution notes")
    elif reason is ClosureReason.DUPLICATE:
        if duplicate_of is None:
            missing.append("the ticket this one duplicates (its number)")
        elif ticket_id is not None and duplicate_of == ticket_id:
            missing.append("a different ticket: a ticket cannot duplicate itself")
    elif reason in (ClosureReason.CANCELLED, ClosureReason.NOT_APPLICABLE):
        if _blank(note):
            missing.append("a note saying why" + (" the requester cancelled" if reason is ClosureReason.CANCELLED else ""))
    return missing


def reopen_missing(facts: TicketFacts, *, now: datetime, window: timedelta) -> list[str]:
    if facts.status is Status.CLOSED and facts.closed_at is not None and now > facts.closed_at + window:
        days = window.total_seconds() / 86400
        return [f"closed more than {days:g} days ago: open a new ticket linked to this one instead"]
    return []
