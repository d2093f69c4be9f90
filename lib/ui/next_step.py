"""What the ticket page offers first, and what its header says about escalation (pure: no streamlit, no database).

* :func:`plan` — from the actions allowed now, the **one primary next step** for the ticket's status (New → Take,
  Assigned → Acknowledge, In progress → Resolve, waiting → Resume, Resolved → Request confirmation, Awaiting
  confirmation → Record confirmation, or Close once confirmed, Closed → Reopen) and the other actions, in a
  fixed order, for the "More actions" menu.
* :func:`escalation_now` — whether the ticket is escalated *now*: an escalation ends with the work it was for
  (resolved, closed or reopened), although the ticket keeps its ``escalation_level`` (seniors keep the right to
  work it, docs/roles.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from lib.workflow import STATUS_INFO, Action, EscalationLevel, EventKind, Status

#: Every action the ticket page's action area offers, in the order of the "More actions" menu. Replies, notes and
#: documented actions are written in the composer's tabs below it (lib.ui.ticket_view.composer_panels).
PAGE_ACTIONS: tuple[Action, ...] = (
    Action.TAKE, Action.ACKNOWLEDGE, Action.ASSIGN, Action.REQUEST_INFO, Action.ESCALATE_SENIOR,
    Action.ESCALATE_VENDOR, Action.RESUME, Action.RESOLVE, Action.REQUEST_CONFIRMATION, Action.RECORD_CONFIRMATION,
    Action.CLOSE, Action.REOPEN, Action.LINK,
)

#: Per status, the next step in order of preference: the first one this person may do is the primary button.
PREFERRED: dict[Status, tuple[Action, ...]] = {
    Status.NEW: (Action.TAKE, Action.ASSIGN),
    Status.ASSIGNED: (Action.ACKNOWLEDGE, Action.RESOLVE),
    Status.IN_PROGRESS: (Action.RESOLVE,),
    Status.WAITING_USER: (Action.RESUME,),
    Status.WAITING_VENDOR: (Action.RESUME,),
    Status.RESOLVED: (Action.REQUEST_CONFIRMATION, Action.RECORD_CONFIRMATION, Action.CLOSE),
    Status.AWAITING_CONFIRMATION: (Action.RECORD_CONFIRMATION, Action.CLOSE, Action.REQUEST_CONFIRMATION),
    Status.CLOSED: (Action.REOPEN,),
}

#: Actions done with one click (no form): the primary button does them at once; chosen from the menu, they show
#: their button with a line saying what it does.
IMMEDIATE: frozenset[Action] = frozenset({Action.TAKE, Action.ACKNOWLEDGE, Action.RESUME,
                                          Action.REQUEST_CONFIRMATION})


#: One line on what a one-click action does (the button's help, and the line above it when chosen from the menu).
HELP: dict[Action, str] = {
    Action.TAKE: "Assigns the ticket to you; then acknowledge it when you start.",
    Action.ACKNOWLEDGE: "Confirms you have it and moves it to in progress; stops the acknowledgement clock.",
    Action.RESUME: "Back to in progress: the wait on the user or the vendor is over (the SLA clock runs again).",
    Action.REQUEST_CONFIRMATION: "Mails the requester a link to confirm the fix (or to say it is still broken).",
}

#: The event each action records: what decides the mail the requester gets from it (lib.notify.ROUTES).
ACTION_EVENTS: dict[Action, EventKind] = {
    Action.TAKE: EventKind.ASSIGNED, Action.ASSIGN: EventKind.ASSIGNED, Action.ACKNOWLEDGE: EventKind.ACKNOWLEDGED,
    Action.RESUME: EventKind.RESUMED, Action.RESOLVE: EventKind.RESOLVED,
    Action.REQUEST_CONFIRMATION: EventKind.CONFIRMATION_REQUESTED, Action.RECORD_CONFIRMATION: EventKind.CONFIRMED,
    Action.CLOSE: EventKind.CLOSED, Action.REOPEN: EventKind.REOPENED, Action.REQUEST_INFO: EventKind.INFO_REQUESTED,
    Action.ESCALATE_SENIOR: EventKind.ESCALATED, Action.ESCALATE_VENDOR: EventKind.ESCALATED,
    Action.LINK: EventKind.LINKED, Action.PUBLIC_REPLY: EventKind.PUBLIC_REPLY,
    Action.WORKAROUND: EventKind.WORKAROUND, Action.INTERNAL_NOTE: EventKind.INTERNAL_NOTE,
}


@dataclass(frozen=True)
class NextSteps:
    primary: Action | None
    others: list[Action]

    @property
    def all(self) -> list[Action]:
        return ([self.primary] if self.primary else []) + self.others


def offered(status: Status, allowed: Iterable[Action], *, assigned: bool, confirmed: bool) -> list[Action]:
    """The page's actions this person may do now, in menu order: the workflow and role rules (``allowed``), and
    what only makes sense in this state (taking an unassigned ticket; recording a confirmation not yet given)."""
    ok = set(allowed)
    out = []
    for action in PAGE_ACTIONS:
        if action not in ok:
            continue
        if action is Action.TAKE and assigned:
            continue
        if action is Action.RECORD_CONFIRMATION and confirmed:
            continue
        out.append(action)
    return out


def plan(status: Status, allowed: Iterable[Action], *, assigned: bool, confirmed: bool) -> NextSteps:
    """The primary next step for ``status`` and the rest, from the actions allowed to this person now."""
    actions = offered(status, allowed, assigned=assigned, confirmed=confirmed)
    preferred = PREFERRED.get(status, ())
    if status is Status.AWAITING_CONFIRMATION and confirmed:
        preferred = (Action.CLOSE, *preferred)
    primary = next((a for a in preferred if a in actions), actions[0] if actions else None)
    return NextSteps(primary=primary, others=[a for a in actions if a is not primary])


class _Event(Protocol):
    @property
    def kind(self) -> str: ...

    @property
    def meta(self) -> dict | None: ...


_ENDS_ESCALATION = {EventKind.RESOLVED.value, EventKind.CLOSED.value, EventKind.REOPENED.value}


def escalation_now(status: Status, events: Iterable[_Event], *, level: int = 0) -> EscalationLevel | None:
    """The escalation in force now, from the ticket's events in order: the latest escalation, unless the work it
    was for has since been resolved, closed or reopened; never on a ticket that is not open. ``level`` (the
    ticket's column) is used only when the events say nothing either way (e.g. imported history)."""
    if not STATUS_INFO[Status(status)].open:
        return None
    current: EscalationLevel | None = None
    seen = False
    for e in events:
        if e.kind == EventKind.ESCALATED.value:
            seen = True
            meta: Mapping[str, Any] = e.meta or {}
            current = EscalationLevel.VENDOR if meta.get("level") == "vendor" else EscalationLevel.SENIOR
        elif e.kind in _ENDS_ESCALATION:
            seen = True
            current = None
    if not seen and level:
        return EscalationLevel(level)
    return current
