"""The worker's staff-notification steps: tickets newly at risk, and each person's daily digest.

* **At risk** (:func:`notify_at_risk`): an assigned open ticket the product counts as at risk (lib.board's
  ``at_risk_sql``, the SQL form of ``lib.sla.state``: a running ticket past the at-risk share of a target, and not
  breached) notifies its assignee once per ticket per SLA clock (response, resolution): the notification carries a
  unique key ``sla_at_risk:<ticket>:<clock>``, so later cycles, and a second worker racing this one, add nothing.
  A breach is announced by its own event (lib.sla), so a ticket that is already breached gets no at-risk notice.
* **Digest** (:func:`send_digests`): from ``staff_digest_hour`` (desk time) each day, one mail per person who chose
  the digest, listing their unread notifications not mailed yet. The row ``staff_digests (user, day)`` is the
  claim, written in the same transaction as the mail: two workers never send one person two digests a day.
"""

from __future__ import annotations

import logging
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import and_, not_, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lib import notify, staff_notify
from lib.board import at_risk_sql, breached_sql
from lib.clock import desk_time
from lib.config import get_settings
from lib.db import transaction
from lib.models import PUBLIC_URL_MARK, Notification, OutboxMail, StaffDigest, Ticket, User, ticket_ref
from lib.sla import responded_at
from lib.staff_notify import EmailMode, NoticeKind
from lib.ticket_core import now_utc

log = logging.getLogger(__name__)

DIGEST_LINES = 50  # the digest lists this many; more are counted


def at_risk_key(ticket_id: int, clock: str) -> str:
    return f"sla_at_risk:{ticket_id}:{clock}"


def _clocks_at_risk(ticket: Ticket, now: datetime) -> list[tuple[str, datetime | None]]:
    """The clocks of an at-risk ticket that are past their at-risk moment, with their due times."""
    found: list[tuple[str, datetime | None]] = []
    if responded_at(ticket) is None and ticket.response_risk_at is not None and ticket.response_risk_at <= now:
        found.append(("response", ticket.response_due_at))
    if ticket.resolution_risk_at is not None and ticket.resolution_risk_at <= now:
        found.append(("resolution", ticket.resolution_due_at))
    return found


def notify_at_risk_in(session: Session, *, now: datetime) -> int:
    """:func:`notify_at_risk` in the caller's transaction; returns how many notifications were written."""
    candidates = list(session.scalars(
        select(Ticket).where(Ticket.is_open.is_(True), Ticket.assignee_id.is_not(None), at_risk_sql(now),
                             not_(breached_sql(now)))
        .order_by(Ticket.id)).unique())
    if not candidates:
        return 0
    wanted = {at_risk_key(t.id, c): (t, c, due) for t in candidates for c, due in _clocks_at_risk(t, now)}
    done = set(session.scalars(select(Notification.dedupe_key).where(Notification.dedupe_key.in_(list(wanted)))))
    written = 0
    for key, (ticket, clock, due) in wanted.items():
        if key in done:
            continue
        user = session.get(User, ticket.assignee_id)
        if user is None or not user.active:
            continue
        when = f" (due {desk_time(due, '%a %d %b %H:%M')})" if due is not None else ""
        text = f"{ticket_ref(ticket.id)} is at risk of missing its {clock} target{when}: {ticket.summary}"
        try:
            with session.begin_nested():  # another worker may write the same key first: the unique key decides
                note = staff_notify.add(session, user=user, kind=NoticeKind.SLA_AT_RISK, text=text, ticket=ticket,
                                        dedupe_key=key, now=now)
                session.flush()
        except IntegrityError:
            continue
        if note is None:
            continue
        written += 1
        if staff_notify.email_mode(session, user.id) is EmailMode.EACH:
            notify.mail_staff(session, note, user, ticket)
    return written


def notify_at_risk(engine: Engine, *, now: datetime | None = None) -> int:
    """Notify assignees of their tickets newly at risk, once per ticket per SLA clock (a worker step)."""
    now = now_utc(now)
    with transaction(engine) as session:
        return notify_at_risk_in(session, now=now)


# --- the daily digest ---------------------------------------------------------------------------------------


def digest_day(now: datetime) -> str | None:
    """The desk-local day a digest sent at ``now`` belongs to, or None before ``staff_digest_hour`` that day."""
    settings = get_settings()
    local = now.astimezone(ZoneInfo(settings.timezone))
    return local.date().isoformat() if local.hour >= settings.staff_digest_hour else None


def _pending(session: Session, user_id: int) -> list[Notification]:
    return list(session.scalars(select(Notification).where(
        Notification.user_id == user_id, Notification.read_at.is_(None), Notification.mailed_at.is_(None))
        .order_by(Notification.id)))


def digest_text(notes: list[Notification]) -> str:
    lines = []
    for note in notes[:DIGEST_LINES]:
        label = NoticeKind(note.kind).label if note.kind in NoticeKind._value2member_map_ else note.kind
        link = f" — {PUBLIC_URL_MARK}{note.link}" if note.link else ""
        lines.append(f"- {label}: {note.text}{link}")
    if len(notes) > DIGEST_LINES:
        lines.append(f"… and {len(notes) - DIGEST_LINES} more.")
    return "\n".join(lines)


def send_digest(session: Session, user: User, *, day: str, now: datetime) -> OutboxMail | None:
    """Claim (user, day) and queue the person's digest, in the caller's transaction; None when there is nothing to
    send or the day's digest is already claimed (another worker, an earlier cycle)."""
    if not user.active or not user.email or staff_notify.email_mode(session, user.id) is not EmailMode.DIGEST:
        return None
    if session.get(StaffDigest, (user.id, day)) is not None:
        return None
    notes = _pending(session, user.id)
    if not notes:
        return None
    try:
        with session.begin_nested():
            session.add(StaffDigest(user_id=user.id, day=day, sent_at=now, items=len(notes)))
            session.flush()
    except IntegrityError:
        return None  # another worker claimed it first
    values = {"name": user.name, "count": str(len(notes)), "message": digest_text(notes),
              "link": f"{PUBLIC_URL_MARK}/inbox", "desk": get_settings().desk_signature}
    subject, body = notify.render(session, "staff_digest", values)
    mail = OutboxMail(ticket_id=None, event_id=None, message_id=notify.new_message_id(None), to_address=user.email,
                      subject=" ".join(subject.split())[:300], body=body)
    session.add(mail)
    for note in notes:
        note.mailed_at = now
    return mail


def send_digests(engine: Engine, *, now: datetime | None = None) -> int:
    """Queue today's digest for each person who chose it and has unread notifications not mailed yet (a worker
    step; nothing before ``staff_digest_hour``). Returns how many digests were queued."""
    now = now_utc(now)
    day = digest_day(now)
    if day is None:
        return 0
    with transaction(engine) as session:
        user_ids = list(session.scalars(
            select(Notification.user_id).distinct()
            .join(User, and_(User.id == Notification.user_id, User.active.is_(True), User.email.is_not(None)))
            .where(Notification.read_at.is_(None), Notification.mailed_at.is_(None))
            .where(~select(StaffDigest.user_id).where(StaffDigest.user_id == Notification.user_id,
                                                      StaffDigest.day == day).exists())))
    sent = 0
    for user_id in user_ids:
        with transaction(engine) as session:
            user = session.get(User, user_id)
            if user is not None and send_digest(session, user, day=day, now=now) is not None:
                sent += 1
    return sent
