"""One demo ticket's life, written the way the services write it (pure: no database).

``TicketLife`` holds a ticket's state and its events. Each step changes the state as the matching
service in ``lib.tickets`` does (status, version bump with ``meta["v"]``, acknowledgement, first public
response, resolution, confirmation, closure, reopening ...) and appends the same event. Times are epoch
seconds. A step later than ``now`` stops the life there, so recent tickets stay open where their story
has got to; ``stall`` stops a story on purpose (the backlog of older open tickets).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from lib.seed.business_seconds import FastClock, Seconds
from lib.workflow import OPEN_STATUSES, ClosureReason, ConfirmationVia, EventKind, Status

NEW, ASSIGNED, IN_PROGRESS = Status.NEW.value, Status.ASSIGNED.value, Status.IN_PROGRESS.value
WAITING_USER, WAITING_VENDOR = Status.WAITING_USER.value, Status.WAITING_VENDOR.value
RESOLVED, AWAITING, CLOSED = Status.RESOLVED.value, Status.AWAITING_CONFIRMATION.value, Status.CLOSED.value
OPEN = frozenset(s.value for s in OPEN_STATUSES)
# event kinds as plain strings: this runs millions of times
E_ACKNOWLEDGED = EventKind.ACKNOWLEDGED.value
E_ACTION = EventKind.ACTION.value
E_ASSIGNED = EventKind.ASSIGNED.value
E_CLOSED = EventKind.CLOSED.value
E_CONFIRMATION_REQUESTED = EventKind.CONFIRMATION_REQUESTED.value
E_CONFIRMED = EventKind.CONFIRMED.value
E_CREATED = EventKind.CREATED.value
E_ESCALATED = EventKind.ESCALATED.value
E_INBOUND_EMAIL = EventKind.INBOUND_EMAIL.value
E_INFO_REQUESTED = EventKind.INFO_REQUESTED.value
E_INTERNAL_NOTE = EventKind.INTERNAL_NOTE.value
E_LINKED = EventKind.LINKED.value
E_PUBLIC_REPLY = EventKind.PUBLIC_REPLY.value
E_REOPENED = EventKind.REOPENED.value
E_RESOLVED = EventKind.RESOLVED.value
E_RESUMED = EventKind.RESUMED.value
E_WORKAROUND = EventKind.WORKAROUND.value
HOUR = 3600
DAY = 86400


class Stop(Exception):
    """The story reached ``now`` (or a deliberate stall): the ticket stays as it is."""


@dataclass(frozen=True, slots=True)
class Person:
    id: int
    name: str


@dataclass(slots=True)
class Spec:
    """What intake knows about a ticket, chosen before its life is played."""

    tid: int
    created: Seconds
    priority: int
    category_id: int
    category: str
    channel: str
    clock: FastClock  # the clock of its SLA policy (business hours, or around the clock)
    response_secs: Seconds
    resolution_secs: Seconds
    summary: str = ""
    body: str = ""
    requester: tuple[int, str, str | None] | None = None  # id, name, e-mail
    device_id: int | None = None
    outcome: str = "normal"  # normal, duplicate, cancelled, false_alarm
    stall: str | None = None  # a status to stop in, for the backlog
    duplicate_of: int | None = None
    parent_id: int | None = None


@dataclass(slots=True)
class World:
    """What every story shares: the team, the desk's clock, the rules' time windows, one random stream."""

    rng: random.Random
    now: Seconds
    lead: Person
    seniors: list[Person]
    pick_tech: Callable[[int], Person]  # category_id -> the assignee
    desk: FastClock
    confirmation_wait: Seconds
    reopen_window: int  # whole seconds (randrange bounds)


@dataclass(slots=True)
class TicketLife:
    tid: int
    created: Seconds
    now: Seconds
    status: str = NEW
    t: Seconds = 0
    version: int = 0
    updated: Seconds = 0
    assignee: Person | None = None
    acknowledged: Seconds | None = None
    first_response: Seconds | None = None
    resolved: Seconds | None = None
    closed: Seconds | None = None
    closure: str | None = None
    closure_note: str | None = None
    duplicate_of: int | None = None
    reopens: int = 0
    conf_requested: Seconds | None = None
    confirmed: Seconds | None = None
    conf_via: str | None = None
    conf_by: str | None = None
    satisfaction: int | None = None
    escalation: int = 0
    vendor: str | None = None
    vendor_ref: str | None = None
    vendor_promised: Seconds | None = None
    notes: str | None = None
    root_cause: str | None = None
    root_unknown: str | None = None
    workaround: str | None = None
    actions: int = 0
    events: list[tuple] = field(default_factory=list)
    history: list[tuple[Seconds, str]] = field(default_factory=list)

    # -- the event writer (lib.ticket_core.add_event / bump / move) -----------------------------------

    def ev(self, t: Seconds, kind: str, actor: Person | None, label: str | None = None, *, to: str | None = None,
           fld: str | None = None, old: str | None = None, new: str | None = None, body: str | None = None,
           public: bool = False, minutes: int | None = None, meta: dict | None = None, bump: bool = False) -> Seconds:
        t = int(t)  # whole seconds, like a clock on the wall
        if t > self.now:
            raise Stop
        if t < self.t:
            t = self.t
        self.t = t
        frm = None
        if to is not None:
            frm, self.status = self.status, to
            self.history.append((t, to))
        if bump:
            self.version += 1
            self.updated = t
            meta = {**(meta or {}), "v": self.version}
        self.events.append((t, kind, actor.id if actor else None, None if actor else (label or "system"),
                            frm, to, fld, old, new, body, public, minutes, meta))
        return t

    def _responded(self, t: Seconds) -> None:
        if self.first_response is None:
            self.first_response = t

    # -- one method per service --------------------------------------------------------------------------

    def create(self, t: Seconds, actor: Person | None, label: str | None, body: str, meta: dict) -> None:
        self.t = self.updated = t
        self.version = 1
        self.history.append((t, NEW))
        self.events.append((t, E_CREATED, actor.id if actor else None, None if actor else label,
                            None, NEW, None, None, None, body or None, True, None, {**meta, "v": 1}))

    def assign(self, t: Seconds, actor: Person | None, target: Person) -> None:
        to = ASSIGNED if self.status in (NEW, ASSIGNED, IN_PROGRESS) else self.status
        old = self.assignee.name if self.assignee else None
        self.ev(t, E_ASSIGNED, actor, to=to, fld="assignee", old=old, new=target.name, bump=True)
        self.assignee = target

    def acknowledge(self, t: Seconds, actor: Person) -> None:
        t = self.ev(t, E_ACKNOWLEDGED, actor, to=IN_PROGRESS, bump=True)
        if self.acknowledged is None:
            self.acknowledged = t

    def action(self, t: Seconds, actor: Person, kind: str, text: str, minutes: int) -> None:
        self.ev(t, E_ACTION, actor, body=text, minutes=minutes, meta={"action": kind})
        self.actions += 1

    def reply(self, t: Seconds, actor: Person, text: str, minutes: int | None = None) -> None:
        self._responded(self.ev(t, E_PUBLIC_REPLY, actor, body=text, public=True, minutes=minutes))

    def give_workaround(self, t: Seconds, actor: Person, text: str) -> None:
        self._responded(self.ev(t, E_WORKAROUND, actor, body=text, public=True))
        self.workaround = text

    def note(self, t: Seconds, actor: Person, text: str) -> None:
        self.ev(t, E_INTERNAL_NOTE, actor, body=text)

    def request_info(self, t: Seconds, actor: Person, text: str) -> None:
        self._responded(self.ev(t, E_INFO_REQUESTED, actor, to=WAITING_USER, body=text, public=True, bump=True))

    def user_reply(self, t: Seconds, label: str, text: str) -> None:
        self.ev(t, E_INBOUND_EMAIL, None, label, to=IN_PROGRESS, body=text, public=True, bump=True)

    def resume(self, t: Seconds, actor: Person, text: str | None) -> None:
        self.ev(t, E_RESUMED, actor, to=IN_PROGRESS, body=text, bump=True)

    def escalate_senior(self, t: Seconds, actor: Person, senior: Person, reason: str) -> None:
        old = self.assignee.name if self.assignee else None
        self.ev(t, E_ESCALATED, actor, to=ASSIGNED, body=reason, bump=True,
                meta={"level": "senior", "from": old, "to": senior.name})
        self.assignee, self.escalation = senior, max(self.escalation, 1)

    def escalate_vendor(self, t: Seconds, actor: Person, vendor: str, case: str, promised_iso: str,
                        promised: Seconds) -> None:
        self.ev(t, E_ESCALATED, actor, to=WAITING_VENDOR, bump=True,
                meta={"level": "vendor", "vendor": vendor, "case_ref": case, "promised_at": promised_iso})
        self.escalation, self.vendor, self.vendor_ref, self.vendor_promised = 2, vendor, case, promised

    def resolve(self, t: Seconds, actor: Person, notes: str, cause: str | None, unknown: str | None,
                minutes: int) -> None:
        t = self.ev(t, E_RESOLVED, actor, to=RESOLVED, body=notes, public=True, minutes=minutes, bump=True)
        self.resolved, self.notes = t, notes
        self.root_cause = cause or self.root_cause
        self.root_unknown = unknown or self.root_unknown
        self._responded(t)

    def request_confirmation(self, t: Seconds, actor: Person) -> None:
        t = self.ev(t, E_CONFIRMATION_REQUESTED, actor, to=AWAITING, public=True, bump=True)
        self.conf_requested = t
        self._responded(t)

    def confirm(self, t: Seconds, actor: Person | None, via: str, who: str) -> None:
        label = f"{who} (signed link)" if via == ConfirmationVia.LINK.value else None
        t = self.ev(t, E_CONFIRMED, actor, label, to=self.status, body=f"Confirmed by {who} ({via.replace('_', ' ')})",
                    meta={"via": via, "by": who}, bump=True)
        self.confirmed, self.conf_via, self.conf_by = t, via, who

    def close(self, t: Seconds, actor: Person | None, reason: ClosureReason, note: str | None = None,
              duplicate_of: int | None = None, label: str | None = None) -> None:
        public = reason is not ClosureReason.NOT_APPLICABLE
        t = self.ev(t, E_CLOSED, actor, label, to=CLOSED, body=note, public=public, bump=True,
                    meta={"reason": reason.value, "duplicate_of": duplicate_of, "override": False})
        self.closed, self.closure, self.closure_note = t, reason.value, note
        if reason is ClosureReason.DUPLICATE:
            self.duplicate_of = duplicate_of
        if public:
            self._responded(t)

    def reopen(self, t: Seconds, actor: Person, reason: str) -> None:
        self.reopens += 1
        to = IN_PROGRESS if self.assignee is not None else NEW
        self.ev(t, E_REOPENED, actor, to=to, body=reason, public=True, bump=True, meta={"reopen_count": self.reopens})
        self.resolved = self.closed = self.confirmed = self.conf_requested = None
        self.closure = self.conf_via = self.conf_by = self.closure_note = None
        self.satisfaction = None

    def link(self, t: Seconds, actor: Person, parent_id: int) -> None:
        self.ev(t, E_LINKED, actor, fld="parent", old=None, new=str(parent_id))
