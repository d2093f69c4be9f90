"""Monitoring alerts become incident tickets: one open ticket per alert, however often it fires.

``ingest_alerts`` takes the alerts of one webhook post (parsed by ``lib.alerts.parse``) and, in the
caller's transaction:

* a firing alert with no open ticket opens an incident ticket (channel alert, no requester,
  priority from the severity label, category from the labels or the default);
* the same alert firing again while its ticket is open adds one to ``Ticket.occurrences`` and an
  ALERT event ("fired again at ..."); a resolved or awaiting-confirmation ticket is reopened first
  (the fix did not hold); a closed ticket is left alone and a new incident ticket is opened;
* a resolved alert adds an internal note "Recovered at ..." to its ticket, once; with the setting
  ``alert_auto_resolve`` the ticket is also resolved (assigned) or closed as not applicable
  (nobody took it).

Tickets of one alert share ``external_source = "alert"`` and a reference derived from the alert's
fingerprint: the first incident is ``<fingerprint>``, later ones ``<fingerprint>#2``,
``<fingerprint>#3`` ... The unique (external_source, external_ref) constraint is what keeps two
concurrent posts of a new alert from opening two tickets: the loser's insert fails inside a
SAVEPOINT and it looks again. See docs/alerts.md.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lib import tickets
from lib.alerts.parse import DEFAULT_MAPPING, PRIORITIES, AlertMapping, NormalisedAlert
from lib.config import Settings, load_settings
from lib.errors import HelpdeskError, ValidationError
from lib.models import Category, Ticket, TicketEvent, ticket_ref
from lib.ticket_core import SystemActor, add_event, lock_ticket, now_utc, ref
from lib.tickets import DuplicateExternalRef, TicketDraft
from lib.workflow import RESOLVED_STATUSES, Channel, ClosureReason, EventKind, Priority, Status

log = logging.getLogger(__name__)

EXTERNAL_SOURCE = "alert"
FALLBACK_CATEGORY = "Other"
#: Fingerprints longer than this, or holding '#' or control characters, are replaced by their SHA-256.
MAX_KEY_CHARS = 200
DESCRIPTION_MAX_CHARS = 100_000
_SERIES_BATCH = 32  # incident references looked up per query
_ATTEMPTS = 4  # a lost race means one more look; more than a few means something else is wrong
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class AlertIngestError(HelpdeskError):
    """An alert could not be recorded (e.g. no active category to file it under)."""


# --- settings ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertSettings:
    """How alerts become tickets. ``load_alert_settings`` reads it from the environment and secrets.toml."""

    severity_map: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_MAPPING.severity_to_priority))
    default_priority: str = DEFAULT_MAPPING.default_priority
    severity_labels: tuple[str, ...] = DEFAULT_MAPPING.severity_labels
    category_labels: tuple[str, ...] = DEFAULT_MAPPING.category_labels
    default_category: str = DEFAULT_MAPPING.default_category
    auto_resolve: bool = False

    def __post_init__(self) -> None:
        self.mapping()  # unknown priorities are refused here, with the offending value named

    def mapping(self, known_categories: Iterable[str] = (), default_category: str | None = None) -> AlertMapping:
        return AlertMapping(
            severity_to_priority={k.strip().lower(): v.strip().lower() for k, v in self.severity_map.items()},
            default_priority=self.default_priority.strip().lower(),
            severity_labels=self.severity_labels,
            category_labels=self.category_labels,
            default_category=default_category or self.default_category,
            known_categories=tuple(known_categories),
        )


def load_alert_settings(settings: Settings | None = None, env: Mapping[str, str] | None = None) -> AlertSettings:
    """Alert settings from the typed settings (``HELPDESK_ALERT_*``, then ``[helpdesk]`` in secrets.toml).

    Read afresh at each post unless ``settings`` is given, so a changed setting applies without a restart.
    ``alert_severity_map`` entries are merged over the built-in table (so one line changes one severity).
    """
    s = settings or load_settings(dict(env) if env is not None else None)
    unknown = {k: v for k, v in s.alert_severity_map.items() if v.strip().lower() not in PRIORITIES}
    if unknown:
        key, value = next(iter(unknown.items()))
        raise ValueError(f"setting alert_severity_map: {key} = {value!r}; use one of {', '.join(PRIORITIES)}")
    priority = s.alert_default_priority.strip().lower()
    if priority not in PRIORITIES:
        raise ValueError(f"setting alert_default_priority: {s.alert_default_priority!r}; "
                         f"use one of {', '.join(PRIORITIES)}")
    for name in ("alert_severity_labels", "alert_category_labels"):
        if not getattr(s, name):
            raise ValueError(f"setting {name}: the list of label names is empty")
    return AlertSettings(
        severity_map={**DEFAULT_MAPPING.severity_to_priority,
                      **{k.strip().lower(): v.strip().lower() for k, v in s.alert_severity_map.items()}},
        default_priority=priority,
        severity_labels=s.alert_severity_labels,
        category_labels=s.alert_category_labels,
        default_category=s.alert_default_category.strip() or DEFAULT_MAPPING.default_category,
        auto_resolve=s.alert_auto_resolve,
    )


# --- references --------------------------------------------------------------------------------


def alert_key(fingerprint: str) -> str:
    """The part of ``external_ref`` that names the alert: its fingerprint, or the fingerprint's SHA-256
    when it is too long for the column, holds '#' (the incident separator) or control characters."""
    fp = fingerprint.strip()
    if fp and len(fp) <= MAX_KEY_CHARS and "#" not in fp and not _CONTROL.search(fp) and fp == " ".join(fp.split()):
        return fp
    return "sha256:" + hashlib.sha256(fingerprint.encode("utf-8", "surrogatepass")).hexdigest()


def incident_ref(key: str, number: int) -> str:
    """``external_ref`` of the alert's ``number``-th incident ticket: ``key``, ``key#2``, ``key#3`` ..."""
    if number < 1:
        raise ValueError("incident numbers start at 1")
    return key if number == 1 else f"{key}#{number}"


@dataclass(frozen=True)
class Incident:
    number: int
    ticket_id: int
    status: Status


def list_incidents(session: Session, key: str) -> list[Incident]:
    """Every ticket of one alert, oldest first: exact look-ups on the unique (external_source,
    external_ref) index, 32 references a query, so the usual case is one indexed query."""
    found: list[Incident] = []
    start = 1
    while True:
        refs = {incident_ref(key, n): n for n in range(start, start + _SERIES_BATCH)}
        rows = session.execute(
            select(Ticket.external_ref, Ticket.id, Ticket.status).where(
                Ticket.external_source == EXTERNAL_SOURCE, Ticket.external_ref.in_(list(refs))
            )
        ).all()
        # external_ref IN (...) in the query: never NULL here
        found.extend(Incident(refs[cast(str, r)], tid, Status(st)) for r, tid, st in rows)
        # Numbers are handed out one after another and tickets are never deleted: a batch whose
        # last number is unused holds the newest incident.
        if incident_ref(key, start + _SERIES_BATCH - 1) not in {r for r, _, _ in rows}:
            break
        start += _SERIES_BATCH
    return sorted(found, key=lambda inc: inc.number)


def current_incident(incidents: list[Incident]) -> Incident | None:
    """The newest incident ticket that is not closed, if any."""
    return next((inc for inc in reversed(incidents) if inc.status is not Status.CLOSED), None)


def find_alert_ticket(session: Session, fingerprint: str) -> Ticket | None:
    """The ticket the alert's next repeat would go to (newest not closed), else None."""
    inc = current_incident(list_incidents(session, alert_key(fingerprint)))
    return session.get(Ticket, inc.ticket_id) if inc else None


# --- ingestion ---------------------------------------------------------------------------------


@dataclass
class AlertResult:
    """What one post did. ``updated`` counts alerts that changed an existing ticket."""

    ticket_ids: list[int] = field(default_factory=list)
    tickets: list[str] = field(default_factory=list)  # references (HD-000123), in the order first touched
    created: int = 0
    occurrences: int = 0
    reopened: int = 0
    recoveries: int = 0
    auto_resolved: int = 0
    ignored: int = 0

    @property
    def updated(self) -> int:
        return self.occurrences + self.recoveries

    def touch(self, ticket: Ticket) -> None:
        if ticket.id not in self.ticket_ids:
            self.ticket_ids.append(ticket.id)
            self.tickets.append(ref(ticket))

    def add(self, other: AlertResult) -> None:
        """Fold in the result of the next batch of the same post (tickets keep their first-touched order)."""
        for tid, ref_ in zip(other.ticket_ids, other.tickets, strict=True):
            if tid not in self.ticket_ids:
                self.ticket_ids.append(tid)
                self.tickets.append(ref_)
        self.created += other.created
        self.occurrences += other.occurrences
        self.reopened += other.reopened
        self.recoveries += other.recoveries
        self.auto_resolved += other.auto_resolved
        self.ignored += other.ignored

    def as_json(self) -> dict[str, Any]:
        return {
            "tickets": list(self.tickets),
            "created": self.created,
            "updated": self.updated,
            "occurrences": self.occurrences,
            "reopened": self.reopened,
            "recovered": self.recoveries,
            "auto_resolved": self.auto_resolved,
            "ignored": self.ignored,
        }


@dataclass(frozen=True)
class _Context:
    actor: SystemActor
    now: datetime
    config: AlertSettings
    mapping: AlertMapping
    categories: dict[str, Category]  # lower-case name -> active category


def ingest_alerts(
    session: Session,
    alerts: list[NormalisedAlert],
    *,
    source: str,
    now: datetime | None = None,
    config: AlertSettings | None = None,
) -> AlertResult:
    """Record the alerts of one webhook post in the caller's transaction (see the module docstring).

    ``source`` names the sender on the timeline ("alertmanager", "grafana"). Priority and category
    come from ``config`` (default: ``load_alert_settings()``), whatever mapping the alerts were
    parsed with. Alerts are handled in fingerprint order (a fingerprint's own alerts keep their
    order), so concurrent posts lock tickets in the same order.
    """
    config = config or load_alert_settings()
    result = AlertResult()
    if not alerts:
        return result
    ctx = _context(session, config, source, now_utc(now))
    keyed = sorted(((alert_key(a.fingerprint), index, a) for index, a in enumerate(alerts)), key=lambda k: k[0])
    touched: dict[int, Ticket] = {}
    for key, index, alert in keyed:
        if alert.status == "firing":
            touched[index] = _fire(session, ctx, key, alert, result)
        elif alert.status == "resolved":
            ticket = _recover(session, ctx, key, alert, result)
            if ticket is not None:
                touched[index] = ticket
        else:
            raise ValidationError({"status": f"alert status must be firing or resolved, got {alert.status!r}"})
    for index in sorted(touched):  # report tickets in the order of the alerts in the post
        result.touch(touched[index])
    return result


def _context(session: Session, config: AlertSettings, source: str, now: datetime) -> _Context:
    label = " ".join(str(source or "").split())[:200] or "monitoring"
    active = list(session.scalars(select(Category).where(Category.active.is_(True)).order_by(Category.id)))
    if not active:
        raise AlertIngestError("no active category to file alerts under; activate one (e.g. Other)")
    categories = {c.name.lower(): c for c in active}
    default = categories.get(config.default_category.strip().lower()) or categories.get(FALLBACK_CATEGORY.lower())
    default = default or active[0]
    mapping = config.mapping(known_categories=[c.name for c in active], default_category=default.name)
    return _Context(SystemActor(label=label), now, config, mapping, categories)


def _fire(session: Session, ctx: _Context, key: str, alert: NormalisedAlert, result: AlertResult) -> Ticket:
    for _ in range(_ATTEMPTS):
        incidents = list_incidents(session, key)
        current = current_incident(incidents)
        if current is None:
            number = incidents[-1].number + 1 if incidents else 1
            draft = _draft(ctx, key, number, alert, previous=incidents[-1] if incidents else None)
            try:
                with session.begin_nested():
                    ticket = tickets.create_ticket(session, actor=ctx.actor, draft=draft, now=ctx.now)
            except (IntegrityError, DuplicateExternalRef):
                continue  # a concurrent post opened this incident first: add to it instead
            result.created += 1
            return ticket
        ticket = lock_ticket(session, current.ticket_id)
        status = Status(ticket.status)
        if status is Status.CLOSED:
            continue  # closed since we looked: the next look opens a new incident
        if status in RESOLVED_STATUSES:
            tickets.reopen(
                session, actor=ctx.actor, ticket_id=ticket.id, expected_version=ticket.version, public=False,
                reason=f"The alert fired again at {_when(ctx.now)} after the fix was recorded.", now=ctx.now,
            )
            result.reopened += 1
        ticket.occurrences += 1
        ticket.updated_at = ctx.now
        body = f"Alert fired again at {_when(ctx.now)} (occurrence {ticket.occurrences})."
        if alert.starts_at is not None:
            body += f" Firing since {_when(alert.starts_at)}."
        add_event(session, ticket, EventKind.ALERT, actor=None, actor_label=ctx.actor.label, now=ctx.now, body=body,
                  meta=_meta(alert, "fired", occurrence=ticket.occurrences))
        result.occurrences += 1
        return ticket
    raise AlertIngestError(f"could not record alert {alert.name!r} ({alert.fingerprint}): its ticket kept changing")


def _recover(session: Session, ctx: _Context, key: str, alert: NormalisedAlert, result: AlertResult) -> Ticket | None:
    incidents = list_incidents(session, key)
    target = current_incident(incidents) or (incidents[-1] if incidents else None)
    if target is None:
        result.ignored += 1  # recovered before we ever saw it fire: nothing to tell anyone
        return None
    ticket = lock_ticket(session, target.ticket_id)
    if _alert_state(session, ticket.id) == "recovered":
        result.ignored += 1  # a repeated "resolved" notification
        return None
    when = _when(alert.ends_at or ctx.now)
    add_event(session, ticket, EventKind.INTERNAL_NOTE, actor=None, actor_label=ctx.actor.label, now=ctx.now,
              body=f"Recovered at {when}: the monitoring system reports the alert resolved.",
              meta=_meta(alert, "recovered"))
    result.recoveries += 1
    if ctx.config.auto_resolve and ticket.is_open:
        try:
            with session.begin_nested():
                _auto_resolve(session, ctx, ticket, when)
            result.auto_resolved += 1
        except HelpdeskError as exc:  # a rule said no: the recovery note stands, a technician decides
            log.warning("alert recovery on %s not resolved automatically: %s", ref(ticket), exc)
    return ticket


def _auto_resolve(session: Session, ctx: _Context, ticket: Ticket, when: str) -> None:
    """Assigned: resolve it (the technician still closes it). Nobody took it: close it as not applicable."""
    if ticket.assignee_id is None:
        tickets.close(
            session, actor=ctx.actor, ticket_id=ticket.id, expected_version=ticket.version,
            reason=ClosureReason.NOT_APPLICABLE, now=ctx.now,
            note=f"Recovered automatically at {when}, before anyone took the ticket.",
        )
    else:
        tickets.resolve(
            session, actor=ctx.actor,
            ticket_id=ticket.id, expected_version=ticket.version, now=ctx.now,
            resolution_notes=f"Recovered automatically at {when}: the monitoring system reports the alert resolved.",
        )


def _alert_state(session: Session, ticket_id: int) -> str:
    """"recovered" when the newest alert event on the ticket is a recovery note, else "fired"."""
    rows = session.execute(
        select(TicketEvent.kind, TicketEvent.meta)
        .where(
            TicketEvent.ticket_id == ticket_id,
            TicketEvent.kind.in_([EventKind.CREATED.value, EventKind.ALERT.value, EventKind.INTERNAL_NOTE.value]),
        )
        .order_by(TicketEvent.id.desc())
        .limit(20)
    ).all()
    for kind, meta in rows:
        if kind == EventKind.INTERNAL_NOTE.value:
            if (meta or {}).get("alert") == "recovered":
                return "recovered"
            continue  # a technician's note says nothing about the alert
        return "fired"
    return "fired"


def _draft(ctx: _Context, key: str, number: int, alert: NormalisedAlert, previous: Incident | None) -> TicketDraft:
    category = ctx.categories[ctx.mapping.category_for(alert.labels).lower()]
    priority = Priority.parse(ctx.mapping.priority_for(alert.labels))
    summary = " ".join(_CONTROL.sub(" ", alert.summary).split()) or alert.name or "Alert"
    lines = [f"Alert {alert.name!r} from {alert.source}, fingerprint {alert.fingerprint}."]
    if alert.starts_at is not None:
        lines.append(f"Firing since {_when(alert.starts_at)}.")
    if previous is not None:
        lines.append(f"An earlier incident of this alert was ticket {_ticket_ref(previous.ticket_id)}.")
    text = _CONTROL.sub("", alert.description).strip()
    description = ((text + "\n\n") if text else "") + "\n".join(lines)
    if len(description) > DESCRIPTION_MAX_CHARS:
        description = description[: DESCRIPTION_MAX_CHARS - 1] + "…"
    return TicketDraft(
        summary=summary[:200],
        category=category.id,
        priority=priority,
        channel=Channel.ALERT,
        description=description,
        external_source=EXTERNAL_SOURCE,
        external_ref=incident_ref(key, number),
    )


def _ticket_ref(ticket_id: int) -> str:
    return ticket_ref(ticket_id)


def _meta(alert: NormalisedAlert, state: str, **more: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"alert": state, "name": alert.name, "fingerprint": alert.fingerprint,
                            "source": alert.source}
    if alert.starts_at is not None:
        meta["starts_at"] = alert.starts_at.isoformat()
    if alert.ends_at is not None and state == "recovered":
        meta["ends_at"] = alert.ends_at.isoformat()
    meta.update(more)
    return meta


def _when(moment: datetime) -> str:
    return now_utc(moment).strftime("%Y-%m-%d %H:%M:%S UTC")
