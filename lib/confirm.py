"""Answers to the signed confirmation links requesters (who never log in) get by mail (lib.confirm_links issues them).

Each reopening starts a new resolution round, so a link from an earlier round records nothing.
The token row records expiry and use. Pressing a button claims the row with one conditional UPDATE
(``used_at IS NULL``), so of two submissions at once, on one app server or two, exactly one records an outcome
and the other is told the link was already used. Opening the page records nothing (mail scanners fetch links).
"""

from __future__ import annotations

import hmac
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from lib import tickets
from lib.config import get_settings
from lib.confirm_links import PURPOSE, sign
from lib.errors import HelpdeskError, ValidationError
from lib.models import ActionToken, Ticket, TicketEvent, ticket_ref
from lib.ticket_core import SystemActor, add_event, lock_ticket, now_utc
from lib.workflow import RESOLVED_STATUSES, ConfirmationVia, EventKind, Status

_NOT_VALID = "This link is not valid. Please use the link from your e-mail exactly as it was sent."


class LinkRefused(HelpdeskError):
    """The link is tampered, expired, used or superseded; the message (fit for a requester) says which."""


class LinkAlreadyUsed(LinkRefused):
    """The link was used before: when, and where the ticket stands now."""


class LinkSuperseded(LinkRefused):
    """The ticket was reopened and resolved again since this link was mailed."""


def _verified(session: Session, token: str) -> tuple[ActionToken, int | None]:
    """The token row and the round the link was mailed in (None for a three-part link); LinkRefused if forged."""
    parts = (token or "").strip().split(".")
    if len(parts) == 4 and parts[0].isdigit() and parts[1].isdigit():
        token_id, round_, nonce, signature = int(parts[0]), int(parts[1]), parts[2], parts[3]
    elif len(parts) == 3 and parts[0].isdigit():
        token_id, round_, nonce, signature = int(parts[0]), None, parts[1], parts[2]
    else:
        raise LinkRefused(_NOT_VALID)
    row = session.get(ActionToken, token_id)
    if row is None or row.purpose != PURPOSE or not hmac.compare_digest(row.nonce, nonce) or not hmac.compare_digest(
        sign(row.id, row.nonce, row.ticket_id, row.purpose, round_), signature
    ):
        raise LinkRefused(_NOT_VALID)
    return row, round_


def _requester_state(ticket: Ticket) -> str:
    """Where the ticket stands, in the requester's words (never who worked on it)."""
    status = Status(ticket.status)
    if status is Status.CLOSED:
        return "closed"
    if ticket.confirmed_at is not None:
        return "confirmed as fixed"
    if status in RESOLVED_STATUSES:
        return "resolved and waiting for your confirmation"
    return "open again, and we are working on it"


def _local(moment: datetime) -> str:
    local = moment.astimezone(ZoneInfo(get_settings().timezone))
    return f"{local.day} {local:%b %Y at %H:%M %Z}"


def _already_used(row: ActionToken, ticket: Ticket) -> LinkAlreadyUsed:
    when = f" on {_local(row.used_at)}" if row.used_at is not None else ""
    return LinkAlreadyUsed(f"This link was already used{when}: the ticket {ticket_ref(ticket.id)} is "
                           f"{_requester_state(ticket)}. If something is still wrong, reply to our e-mail.")


def _earlier_round(session: Session, row: ActionToken, round_: int | None, ticket: Ticket) -> bool:
    if round_ is not None:
        return round_ != (ticket.reopen_count or 0)
    # A three-part link names no round: it is from an earlier one when the ticket was reopened after it was mailed.
    # (Such links were mailed before rounds were signed; they expire within TTL.)
    return bool(session.scalar(select(exists().where(
        TicketEvent.ticket_id == ticket.id, TicketEvent.kind == EventKind.REOPENED.value,
        TicketEvent.recorded_at > row.created_at))))


def _refuse_unless_waiting(session: Session, row: ActionToken, round_: int | None, ticket: Ticket) -> None:
    """LinkRefused unless the link belongs to the ticket's current round and the ticket awaits confirmation."""
    if _earlier_round(session, row, round_, ticket):
        raise LinkSuperseded(f"This link is from an earlier resolution of {ticket_ref(ticket.id)}; "
                             "please use the link in our newest e-mail about it.")
    if Status(ticket.status) not in (Status.RESOLVED, Status.AWAITING_CONFIRMATION):
        raise LinkRefused(f"{ticket_ref(ticket.id)} is no longer waiting for your confirmation: it is "
                          f"{_requester_state(ticket)}.")


def _check(session: Session, token: str, now: datetime) -> tuple[ActionToken, int | None, Ticket]:
    row, round_ = _verified(session, token)
    ticket = session.get(Ticket, row.ticket_id)
    if ticket is None:
        raise LinkRefused(_NOT_VALID)
    if row.used_at is not None:
        raise _already_used(row, ticket)
    if now > row.expires_at:
        raise LinkRefused("This link has expired. Reply to our e-mail and we will get back to you.")
    _refuse_unless_waiting(session, row, round_, ticket)
    return row, round_, ticket


def check(session: Session, token: str, *, now: datetime | None = None) -> tuple[ActionToken, Ticket]:
    """The token row and ticket for a link, or LinkRefused with a clear reason. Records nothing."""
    row, _round, ticket = _check(session, token, now_utc(now))
    return row, ticket


def _claim(session: Session, row: ActionToken, now: datetime) -> None:
    """Mark the link used, atomically: of concurrent claims exactly one succeeds (a PostgreSQL UPDATE waits for
    the other's commit, then finds ``used_at`` set; SQLite's BEGIN IMMEDIATE runs them one after the other)."""
    claimed = session.execute(
        update(ActionToken).where(ActionToken.id == row.id, ActionToken.used_at.is_(None))
        .values(used_at=now).returning(ActionToken.id).execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if claimed is not None:
        return
    used = session.execute(select(ActionToken).where(ActionToken.id == row.id)
                           .execution_options(populate_existing=True)).scalar_one()
    ticket = session.execute(select(Ticket).where(Ticket.id == used.ticket_id)
                             .execution_options(populate_existing=True)).unique().scalar_one()
    raise _already_used(used, ticket)


def answer(session: Session, token: str, *, works: bool, comment: str | None = None, rating: int | None = None,
           now: datetime | None = None) -> Ticket:
    """The requester pressed a button: confirm the fix, or reopen with their comment (public).

    The link is claimed before anything is recorded; a second submission raises LinkAlreadyUsed.
    """
    now = now_utc(now)
    if rating is not None and (isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5):
        raise ValidationError({"rating": "choose 1 to 5 stars"})
    if not works and not (comment or "").strip():
        raise ValidationError({"comment": "tell us what is still not working"})
    row, round_, _ticket = _check(session, token, now)
    _claim(session, row, now)
    ticket = lock_ticket(session, row.ticket_id)
    _refuse_unless_waiting(session, row, round_, ticket)  # a technician may have reopened it meanwhile
    who = ticket.requester.email if ticket.requester and ticket.requester.email else "requester"
    actor = SystemActor(label=f"{who} (signed link)")
    if works:
        tickets.record_confirmation(session, actor=actor, ticket_id=ticket.id, expected_version=ticket.version,
                                    via=ConfirmationVia.LINK, confirmed_by=who, note=comment, now=now)
    else:
        tickets.reopen(session, actor=actor, ticket_id=ticket.id, expected_version=ticket.version,
                       reason=f"Still broken, says the requester: {comment}", now=now)
    if rating is not None:
        ticket.satisfaction = rating
        add_event(session, ticket, EventKind.FIELD_CHANGED, actor=None, actor_label=actor.label, now=now,
                  field="satisfaction", new=rating)
    return ticket
