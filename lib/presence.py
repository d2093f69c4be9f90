"""Presence: who has a ticket open right now, and whether they are writing something on it.

Each open ticket page sends a heartbeat every few seconds: one upsert of the row (user, ticket) in
``ticket_presence`` with the time and the state (``viewing``, or ``writing:`` and the draft fields the person
holds on that ticket, see lib/drafts.py). A row whose heartbeat is older than ``presence_stale_seconds`` is not
shown: a closed tab disappears within that time plus one refresh. Rows are never added per heartbeat; rows
untouched for :data:`PURGE_AFTER` are deleted by a later heartbeat. Everything lives in the database (nothing
in the process), so every app server sees every other's visitors.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from lib import clock
from lib.config import get_settings
from lib.drafts import DraftField
from lib.models import TicketPresence, User

VIEWING = "viewing"
_WRITING = "writing:"
#: Rows untouched this long are deleted (by the first heartbeat of a page view).
PURGE_AFTER = timedelta(hours=12)


STATE_MAX = 200  # ticket_presence.state


def state_for(writing: Iterable[DraftField | str]) -> str:
    """The stored state: ``viewing``, or ``writing:reply,note`` for the draft fields being written."""
    fields = list(dict.fromkeys(DraftField(f).value for f in writing))
    state = _WRITING
    for name in fields:  # as many as the column holds (200 characters): what is shown is "writing" anyway
        if len(state) + len(name) + 1 > STATE_MAX:
            break
        state += ("," if state != _WRITING else "") + name
    return state if fields else VIEWING


def parse_state(state: str) -> tuple[DraftField, ...]:
    """The draft fields of a stored state (none for ``viewing``; unknown names are skipped)."""
    if not state.startswith(_WRITING):
        return ()
    return tuple(DraftField(f) for f in state[len(_WRITING):].split(",") if f in DraftField._value2member_map_)


@dataclass(frozen=True)
class Present:
    user_id: int
    name: str
    writing: tuple[DraftField, ...]
    last_seen: datetime

    @property
    def doing(self) -> str:
        """``is viewing`` or ``is writing a reply and an internal note``."""
        if not self.writing:
            return "is viewing"
        labels = list(dict.fromkeys(f.label for f in self.writing))  # one "a vendor escalation" for its fields
        return "is writing " + (labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1])


def stale_after() -> timedelta:
    """A heartbeat older than this no longer counts (the ``presence_stale_seconds`` setting)."""
    return timedelta(seconds=get_settings().presence_stale_seconds)


def heartbeat(session: Session, *, user_id: int, ticket_id: int, writing: Sequence[DraftField | str] = (),
              now: datetime | None = None, purge: bool = False) -> None:
    """Record that the user has the ticket open now, viewing or writing ``writing`` (one upsert). With
    ``purge``, also delete every presence row untouched for :data:`PURGE_AFTER`."""
    now = now or clock.now()
    values = {"user_id": user_id, "ticket_id": ticket_id, "state": state_for(writing), "last_seen": now}
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(TicketPresence).values(**values)
    stmt = stmt.on_conflict_do_update(index_elements=["user_id", "ticket_id"],
                                      set_={"state": stmt.excluded.state, "last_seen": stmt.excluded.last_seen})
    session.execute(stmt)
    if purge:
        session.execute(delete(TicketPresence).where(TicketPresence.last_seen < now - PURGE_AFTER))


def leave(session: Session, *, user_id: int, ticket_id: int) -> None:
    """The user closed the ticket (e.g. signed out): forget their presence at once."""
    session.execute(delete(TicketPresence).where(TicketPresence.user_id == user_id,
                                                 TicketPresence.ticket_id == ticket_id))


def on_tickets(session: Session, *, ticket_ids: Iterable[int], now: datetime | None = None,
               exclude_user: int | None = None) -> dict[int, list[Present]]:
    """Who is on each of the tickets now (fresh heartbeats only), writers first, then by name."""
    ids = sorted(set(ticket_ids))
    if not ids:
        return {}
    since = (now or clock.now()) - stale_after()
    stmt = (select(TicketPresence.ticket_id, TicketPresence.user_id, User.name, TicketPresence.state,
                   TicketPresence.last_seen)
            .join(User, User.id == TicketPresence.user_id)
            .where(TicketPresence.ticket_id.in_(ids), TicketPresence.last_seen >= since))
    if exclude_user is not None:
        stmt = stmt.where(TicketPresence.user_id != exclude_user)
    found: dict[int, list[Present]] = {}
    for ticket_id, user_id, name, state, seen in session.execute(stmt):
        found.setdefault(ticket_id, []).append(Present(user_id, name, parse_state(state), seen))
    for people in found.values():
        people.sort(key=lambda p: (not p.writing, p.name.casefold(), p.user_id))
    return found


def on_ticket(session: Session, *, ticket_id: int, now: datetime | None = None,
              exclude_user: int | None = None) -> list[Present]:
    """Who is on the ticket now, besides ``exclude_user`` (usually the person looking)."""
    return on_tickets(session, ticket_ids=[ticket_id], now=now, exclude_user=exclude_user).get(ticket_id, [])
