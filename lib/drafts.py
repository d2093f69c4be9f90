"""Drafts: the text a person is writing on a ticket and has not sent yet, kept in the database.

One row per user, ticket and field (``ticket_drafts``, unique on the three), upserted whenever the text changes,
so a draft survives a panel switch, a reload, a closed tab, a crash and a move to another app server. Sending
deletes the drafts it used in the same transaction; "Discard draft" deletes one. Nothing is kept in the process:
every function reads and writes through the session it is given (the caller opens the transaction).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from lib import clock
from lib.errors import ValidationError
from lib.models import DraftText

#: A draft longer than this is refused (the text stays in the box): far beyond any reply or note.
MAX_CHARS = 100_000


class DraftField(enum.StrEnum):
    """Every free text of the ticket page, by what it is (never by widget key)."""

    REPLY = "reply"
    NOTE = "note"
    ACTION = "action"
    INFO_REQUEST = "info_request"
    ESCALATION_REASON = "escalation_reason"
    VENDOR_NOTE = "vendor_note"
    VENDOR_NAME = "vendor_name"
    VENDOR_CASE = "vendor_case"
    RESOLUTION_NOTES = "resolution_notes"
    ROOT_CAUSE = "root_cause"
    ROOT_CAUSE_UNKNOWN = "root_cause_unknown"
    CLOSE_NOTE = "close_note"
    CLOSE_OVERRIDE = "close_override"
    PREVENTIVE_STEPS = "preventive_steps"
    REOPEN_REASON = "reopen_reason"
    ASSIGN_NOTE = "assign_note"
    CONFIRMATION_NOTE = "confirmation_note"
    CONFIRMED_BY = "confirmed_by"
    DUPLICATE_OF = "duplicate_of"
    LINK_PARENT = "link_parent"
    SUMMARY = "summary"
    DESCRIPTION = "description"
    DEVICE_DETAILS = "device_details"

    @property
    def label(self) -> str:
        """What the person is writing, as in "Ben is writing a reply"."""
        return _LABELS[self]


_LABELS: dict[DraftField, str] = {
    DraftField.REPLY: "a reply",
    DraftField.NOTE: "an internal note",
    DraftField.ACTION: "an action log",
    DraftField.INFO_REQUEST: "a request for information",
    DraftField.ESCALATION_REASON: "an escalation reason",
    DraftField.VENDOR_NOTE: "a vendor escalation",
    DraftField.VENDOR_NAME: "a vendor escalation",
    DraftField.VENDOR_CASE: "a vendor escalation",
    DraftField.RESOLUTION_NOTES: "resolution notes",
    DraftField.ROOT_CAUSE: "a root cause",
    DraftField.ROOT_CAUSE_UNKNOWN: "why no root cause was found",
    DraftField.CLOSE_NOTE: "a closing note",
    DraftField.CLOSE_OVERRIDE: "a closure override reason",
    DraftField.PREVENTIVE_STEPS: "preventive steps",
    DraftField.REOPEN_REASON: "a reopening reason",
    DraftField.ASSIGN_NOTE: "an assignment note",
    DraftField.CONFIRMATION_NOTE: "a confirmation note",
    DraftField.CONFIRMED_BY: "a confirmation note",
    DraftField.DUPLICATE_OF: "a closing note",
    DraftField.LINK_PARENT: "a link to a major incident",
    DraftField.SUMMARY: "a new summary",
    DraftField.DESCRIPTION: "a new description",
    DraftField.DEVICE_DETAILS: "new device details",
}


@dataclass(frozen=True)
class Draft:
    field: DraftField
    text: str
    updated_at: datetime


def _field(value: DraftField | str) -> DraftField:
    try:
        return DraftField(value)
    except ValueError:
        raise ValidationError({"field": f"{value!r} is not a draft field"}) from None


def save(session: Session, *, user_id: int, ticket_id: int, field: DraftField | str, text: str,
         now: datetime | None = None) -> Draft | None:
    """Keep ``text`` as the user's draft of ``field`` on the ticket (one upsert). Blank text deletes the draft
    (nothing to keep) and returns None. Text over :data:`MAX_CHARS` is refused with a ValidationError."""
    f = _field(field)
    if len(text) > MAX_CHARS:
        raise ValidationError({f.value: f"is {len(text):,} characters; a draft keeps at most {MAX_CHARS:,}"})
    if not text.strip():
        discard(session, user_id=user_id, ticket_id=ticket_id, fields=[f])
        return None
    now = now or clock.now()
    values = {"user_id": user_id, "ticket_id": ticket_id, "field": f.value, "text": text, "updated_at": now}
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(DraftText).values(**values)
    stmt = stmt.on_conflict_do_update(index_elements=["user_id", "ticket_id", "field"],
                                      set_={"text": stmt.excluded.text, "updated_at": stmt.excluded.updated_at})
    session.execute(stmt)
    return Draft(f, text, now)


def discard(session: Session, *, user_id: int, ticket_id: int, fields: list[DraftField] | list[str] | None = None) -> int:
    """Delete the user's drafts on the ticket: the ``fields`` given, or all of them. Returns how many went."""
    stmt = delete(DraftText).where(DraftText.user_id == user_id, DraftText.ticket_id == ticket_id)
    if fields is not None:
        stmt = stmt.where(DraftText.field.in_([_field(f).value for f in fields]))
    return session.execute(stmt).rowcount or 0  # type: ignore[attr-defined]  # a DELETE's result has rowcount


def for_ticket(session: Session, *, user_id: int, ticket_id: int) -> dict[DraftField, Draft]:
    """The user's drafts on the ticket, by field (fields no longer known are skipped)."""
    rows = session.execute(
        select(DraftText.field, DraftText.text, DraftText.updated_at)
        .where(DraftText.user_id == user_id, DraftText.ticket_id == ticket_id)
    ).all()
    return {DraftField(f): Draft(DraftField(f), text, at) for f, text, at in rows if f in DraftField._value2member_map_}


def writing(drafts: dict[DraftField, Draft]) -> list[DraftField]:
    """The fields a person is writing, in a stable order (what presence reports)."""
    return [f for f in DraftField if f in drafts]
