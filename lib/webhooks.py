"""The outbound webhook: ticket events POSTed as JSON to a URL the lead sets (a Teams or Slack workflow, a chat
bot, another system), one channel of the notification seam (lib.notify).

* The delivery row is written in the same transaction as the event (:func:`enqueue`): an event that rolls back
  sends nothing, and a committed one is sent even if the server stops right after.
* The worker (:func:`deliver_due`) claims due rows (``SKIP LOCKED`` on PostgreSQL, a claim time on both) so two
  workers never send one twice, POSTs them with a timeout and records the outcome: 2xx sent; a timeout, a
  refused connection, 408, 425, 429 or 5xx is tried again after a delay that doubles per attempt (up to
  ``webhook_max_attempts``); any other answer (a 3xx, 4xx) fails at once — redirects are not followed.
* Each request is signed: ``X-Helpdesk-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">`` with the
  webhook's secret, so the receiver can check it came from the desk and is fresh (docs/notifications.md shows
  how). ``X-Helpdesk-Event`` is the event kind, ``X-Helpdesk-Delivery`` the delivery's id (the same on a retry,
  so a receiver can drop repeats).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from lib import clock
from lib.audit_log import audit
from lib.config import get_settings
from lib.db import transaction
from lib.desk_settings import lead_actor
from lib.errors import ValidationError
from lib.models import Category, Setting, Ticket, TicketEvent, User, WebhookDelivery, ticket_ref
from lib.workflow import EventKind

log = logging.getLogger(__name__)

SETTING_KEY = "webhook"
PENDING, SENT, FAILED, CANCELLED = "pending", "sent", "failed", "cancelled"
#: The event kinds a lead can choose, and the ones chosen until they do.
EVENT_CHOICES: dict[str, str] = {
    EventKind.CREATED.value: "a ticket is created",
    EventKind.ASSIGNED.value: "a ticket is assigned",
    EventKind.ACKNOWLEDGED.value: "a ticket is acknowledged",
    EventKind.ESCALATED.value: "a ticket is escalated",
    EventKind.INFO_REQUESTED.value: "the requester is asked for information",
    EventKind.PUBLIC_REPLY.value: "a public reply is sent",
    EventKind.INBOUND_EMAIL.value: "the requester writes",
    EventKind.RESOLVED.value: "a ticket is resolved",
    EventKind.CLOSED.value: "a ticket is closed",
    EventKind.REOPENED.value: "a ticket is reopened",
    EventKind.SLA_BREACHED.value: "an SLA target is breached",
    EventKind.ALERT.value: "a monitoring alert fires again on a ticket",
}
DEFAULT_EVENTS = (EventKind.CREATED.value, EventKind.ESCALATED.value, EventKind.SLA_BREACHED.value,
                  EventKind.REOPENED.value)
RETRY_STATUSES = {408, 425, 429}
USER_AGENT = "helpdesk-webhook/1"


@dataclass(frozen=True)
class WebhookConfig:
    url: str
    secret: str
    events: tuple[str, ...]
    active: bool = True


def get_config(session: Session) -> WebhookConfig | None:
    """The webhook the lead set, or None (never set, or removed)."""
    row = session.get(Setting, SETTING_KEY)
    value = row.value if row is not None else None
    if not isinstance(value, dict) or not value.get("url") or not value.get("secret"):
        return None
    events = tuple(e for e in value.get("events", DEFAULT_EVENTS) if e in EVENT_CHOICES)
    return WebhookConfig(url=str(value["url"]), secret=str(value["secret"]), events=events,
                         active=bool(value.get("active", True)))


def check_url(url: str) -> str:
    url = (url or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError({"url": f"{url!r} is not an http:// or https:// address"})
    if parts.username or parts.password:
        raise ValidationError({"url": "put no user name or password in the address; the requests are signed"})
    if len(url) > 2000:
        raise ValidationError({"url": "the address is longer than 2,000 characters"})
    return url


def save_config(session: Session, *, actor: int, url: str, events: list[str] | tuple[str, ...], active: bool = True,
                new_secret: bool = False, now: datetime | None = None) -> WebhookConfig:
    """Set the webhook (a lead). A secret is made on first save and on request."""
    lead = lead_actor(session, actor, "set the webhook")
    url = check_url(url)
    unknown = [e for e in events if e not in EVENT_CHOICES]
    if unknown:
        raise ValidationError({"events": f"unknown event kind(s): {', '.join(unknown)}"})
    if not events:
        raise ValidationError({"events": "choose at least one event, or switch the webhook off"})
    old = get_config(session)
    secret = old.secret if old is not None and not new_secret else secrets.token_urlsafe(32)
    value = {"url": url, "secret": secret, "events": list(dict.fromkeys(events)), "active": bool(active)}
    row = session.get(Setting, SETTING_KEY)
    if row is None:
        session.add(Setting(key=SETTING_KEY, value=value, updated_at=clock.now()))
    else:
        row.value, row.updated_at = value, clock.now()
    audit(session, actor=lead.username, action="webhook_saved", target=urlsplit(url).hostname,
          detail=f"events {', '.join(events)}; {'on' if active else 'off'}"
                 + ("; new secret" if new_secret or old is None else ""), now=now)
    return get_config(session)  # type: ignore[return-value]  # just saved


def remove_config(session: Session, *, actor: int, now: datetime | None = None) -> None:
    lead = lead_actor(session, actor, "remove the webhook")
    row = session.get(Setting, SETTING_KEY)
    if row is not None:
        session.delete(row)
        audit(session, actor=lead.username, action="webhook_removed", now=now)


# --- writing a delivery (in the event's transaction) ------------------------------------------------


def payload(session: Session, ticket: Ticket, event: TicketEvent) -> dict[str, Any]:
    # by id, not through the relationships: a service may have changed assignee_id after loading ticket.assignee
    assignee = session.get(User, ticket.assignee_id) if ticket.assignee_id is not None else None
    category = session.get(Category, ticket.category_id) if ticket.category_id is not None else None
    actor = session.get(User, event.actor_id) if event.actor_id is not None else None
    settings = get_settings()
    base = (settings.public_url or "").rstrip("/")
    public = bool(event.public)
    return {
        "event": event.kind,
        "event_id": event.id,
        "occurred_at": event.occurred_at.isoformat().replace("+00:00", "Z"),
        "actor": actor.name if actor is not None else event.actor_label,
        "ticket": {
            "ref": ticket_ref(ticket.id), "id": ticket.id, "summary": ticket.summary, "status": ticket.status,
            "priority": ticket.priority, "category": category.name if category is not None else None,
            "assignee": assignee.name if assignee is not None else None, "channel": ticket.channel,
            "url": f"{base}/ticket?id={ticket.id}" if base else None,
        },
        "change": {k: v for k, v in (("from_status", event.from_status), ("to_status", event.to_status),
                                     ("field", event.field), ("old", event.old_value), ("new", event.new_value))
                   if v is not None},
        # the text of public entries only: internal notes stay in the desk
        "text": (event.body or "")[:4000] if public else None,
    }


def enqueue(session: Session, ticket: Ticket, event: TicketEvent, config: WebhookConfig | None = None) -> bool:
    """Write the delivery of ``event`` when the webhook is on and wants its kind; True when one was written."""
    config = config if config is not None else get_config(session)
    if config is None or not config.active or event.kind not in config.events:
        return False
    session.flush()  # the event's id
    body = json.dumps(payload(session, ticket, event), ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    session.add(WebhookDelivery(ticket_id=ticket.id, event_id=event.id, kind=event.kind, url=config.url,
                                payload=body, state=PENDING, attempts=0, next_attempt_at=clock.now(),
                                created_at=clock.now()))
    return True


# --- sending (the worker) --------------------------------------------------------------------------------


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``t=<timestamp>,v1=<hex HMAC-SHA256 of b"<timestamp>." + body>``"""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, header: str, body: bytes, *, now: float | None = None, tolerance: float = 300.0) -> bool:
    """What a receiver does (and the tests): the signature matches and is at most ``tolerance`` seconds old."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
    except (ValueError, KeyError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), header)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 3xx is an answer (a failure), not somewhere else to send the event


_OPENER = urllib.request.build_opener(_NoRedirects)


def backoff(attempts: int) -> timedelta:
    s = get_settings()
    return timedelta(seconds=min(s.webhook_retry_base_seconds * 2 ** max(0, attempts - 1), s.webhook_retry_max_seconds))


def claim(engine: Engine, *, now: datetime, limit: int = 50) -> list[tuple[int, str, str, str, int, datetime]]:
    """Claim due deliveries: (id, url, kind, payload, attempts, claimed_until), committed before any is sent."""
    timeout = get_settings().webhook_timeout
    until = now + timedelta(seconds=max(60.0, 3 * timeout))
    with transaction(engine) as session:
        stmt = (select(WebhookDelivery)
                .where(WebhookDelivery.state == PENDING, WebhookDelivery.next_attempt_at <= now,
                       or_(WebhookDelivery.claimed_until.is_(None), WebhookDelivery.claimed_until < now))
                .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id).limit(limit))
        if session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        rows = list(session.scalars(stmt))
        for row in rows:
            row.claimed_until = until
        return [(r.id, r.url, r.kind, r.payload, r.attempts, until) for r in rows]


def post(url: str, kind: str, delivery_id: int, body: bytes, secret: str, *, timeout: float) -> tuple[bool, bool, str]:
    """POST one delivery: (delivered, worth retrying, what happened)."""
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT,
        "X-Helpdesk-Event": kind, "X-Helpdesk-Delivery": str(delivery_id),
        "X-Helpdesk-Signature": sign(secret, int(time.time()), body)})
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return True, False, f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        code = exc.code
        return False, code in RETRY_STATUSES or code >= 500, f"HTTP {code} {exc.reason}"
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return False, True, f"{type(reason).__name__}: {reason}"


def deliver_due(engine: Engine, *, now: datetime | None = None, limit: int = 50) -> int:
    """Send the due deliveries; returns how many were delivered."""
    now = clock.now() if now is None else now
    with transaction(engine) as session:
        config = get_config(session)
    if config is None:
        return 0
    settings = get_settings()
    delivered = 0
    for delivery_id, url, kind, body, attempts, until in claim(engine, now=now, limit=limit):
        if clock.now() + timedelta(seconds=settings.webhook_timeout + 5) > until:
            break  # the claim would lapse during this POST: another worker may take the rest (never twice)
        ok, retry, what = post(url, kind, delivery_id, body.encode(), config.secret, timeout=settings.webhook_timeout)
        with transaction(engine) as session:
            row = session.get(WebhookDelivery, delivery_id, with_for_update=True)
            if row is None or row.state != PENDING or row.claimed_until != until:
                log.warning("webhook delivery %s: claim lost before its result was recorded", delivery_id)
                continue
            row.attempts, row.claimed_until = attempts + 1, None
            if ok:
                row.state, row.sent_at, row.last_error = SENT, now, None
                delivered += 1
            elif retry and row.attempts < settings.webhook_max_attempts:
                row.last_error, row.next_attempt_at = what, now + backoff(row.attempts)
            else:
                row.state, row.last_error = FAILED, what + ("" if not retry else f" (gave up after {row.attempts} tries)")
                log.warning("webhook delivery %s failed: %s", delivery_id, row.last_error)
    return delivered


def retry(session: Session, delivery_id: int, *, actor: int) -> None:
    """A failed (or cancelled) delivery goes back in the queue, due now."""
    lead = lead_actor(session, actor, "send a webhook delivery again")
    row = session.get(WebhookDelivery, delivery_id, with_for_update=True)
    if row is None or row.state not in (FAILED, CANCELLED):
        raise ValidationError({"delivery": f"webhook delivery {delivery_id} has not failed and was not cancelled"})
    row.state, row.attempts, row.next_attempt_at, row.claimed_until = PENDING, 0, clock.now(), None
    audit(session, actor=lead.username, action="webhook_retry", target=str(delivery_id))


def cancel(session: Session, delivery_id: int, *, actor: int) -> None:
    """A waiting delivery is not sent; refused while a worker holds it (it may be on its way)."""
    lead = lead_actor(session, actor, "cancel a webhook delivery")
    row = session.get(WebhookDelivery, delivery_id, with_for_update=True)
    if row is None or row.state != PENDING:
        raise ValidationError({"delivery": f"webhook delivery {delivery_id} is not waiting to be sent"})
    if row.claimed_until is not None and row.claimed_until > clock.now():
        raise ValidationError({"delivery": f"webhook delivery {delivery_id} is being sent right now"})
    row.state = CANCELLED
    audit(session, actor=lead.username, action="webhook_cancel", target=str(delivery_id))
