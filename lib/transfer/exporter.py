"""CSV exports: ``export-csv`` (one row per ticket) and ``export-events`` (one row per timeline event).

Rows are streamed from the database (``yield_per``: a server-side cursor on PostgreSQL) and written
as they come, so a million tickets and their ~9 million events never sit in memory. Times are UTC in
ISO-8601 to the second with a ``Z`` (``2024-03-01T09:15:00Z``); empty cells are missing values.
The file is written beside the target and moved into place at the end, so a failed export never
leaves half a file under the requested name. Cells are formula-safe (lib.transfer.safe_cells): text that begins
with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading ``'``, and every text cell is
quoted; numbers are written bare.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import Engine

from lib.config import get_settings
from lib.models import Category, Requester, Ticket, TicketEvent, User, ticket_ref
from lib.transfer.safe_cells import CSV_QUOTING, neutralise_row
from lib.workflow import Priority

TICKET_HEADER = [
    "number", "id", "created_at", "priority", "category", "status", "channel", "assignee", "requester",
    "acknowledged_at", "first_response_at", "resolved_at", "closed_at", "closure_reason", "reopen_count",
    "response_due_at", "resolution_due_at", "response_breached", "resolution_breached", "summary",
]
EVENT_HEADER = [
    "ticket", "event_id", "kind", "from_status", "to_status", "field", "old", "new", "occurred_at", "recorded_at",
    "actor", "public", "minutes", "detail",
]
BATCH = 5000
Progress = Callable[[int, int | None], None] | None


def iso(moment: datetime | None) -> str:
    """``2024-03-01T09:15:00Z`` (UTC, to the second), or an empty cell."""
    if moment is None:
        return ""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _labels(engine: Engine) -> tuple[dict[int, str], dict[int, str]]:
    with engine.connect() as conn:
        users = dict(conn.execute(select(User.id, User.name)).all())
        categories = dict(conn.execute(select(Category.id, Category.name)).all())
    return users, categories


def _write(path: Path, header: list[str], rows: Iterable[list[object]]) -> int:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    count = 0
    try:
        with tmp.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, quoting=CSV_QUOTING)
            writer.writerow(neutralise_row(header))
            for row in rows:
                writer.writerow(neutralise_row(row))
                count += 1
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return count


def export_tickets_csv(engine: Engine, path: Path, *, progress: Progress = None) -> int:
    """Write one row per ticket (by id) to ``path``; return the number of tickets."""
    users, categories = _labels(engine)
    prefix = get_settings().ticket_prefix
    labels = {int(p): p.label for p in Priority}
    stmt = (
        select(Ticket.id, Ticket.created_at, Ticket.priority, Ticket.category_id, Ticket.status, Ticket.channel,
               Ticket.assignee_id, Requester.name, Ticket.acknowledged_at, Ticket.first_response_at,
               Ticket.resolved_at, Ticket.closed_at, Ticket.closure_reason, Ticket.reopen_count,
               Ticket.response_due_at, Ticket.resolution_due_at, Ticket.response_breached_at,
               Ticket.resolution_breached_at, Ticket.summary)
        .outerjoin(Requester, Requester.id == Ticket.requester_id)
        .order_by(Ticket.id)
    )

    def rows() -> Iterable[list[object]]:
        with engine.connect() as conn:
            result = conn.execution_options(yield_per=BATCH).execute(stmt)
            for n, (tid, created, prio, cat, status, channel, assignee, requester, ack, first, resolved, closed,
                    reason, reopens, r_due, z_due, r_breach, z_breach, summary) in enumerate(result, 1):
                yield [ticket_ref(tid, prefix), tid, iso(created), labels.get(prio, prio), categories.get(cat, cat),
                       status, channel, users.get(assignee, "") if assignee else "", requester or "", iso(ack),
                       iso(first), iso(resolved), iso(closed), reason or "", reopens, iso(r_due), iso(z_due),
                       "yes" if r_breach else "no", "yes" if z_breach else "no", summary]
                if progress and n % BATCH == 0:
                    progress(n, None)

    return _write(path, TICKET_HEADER, rows())


def export_events_csv(engine: Engine, path: Path, *, progress: Progress = None) -> int:
    """Write one row per event (by ticket, then in the order recorded) to ``path``; return the number of events."""
    users, _ = _labels(engine)
    prefix = get_settings().ticket_prefix
    stmt = (
        select(TicketEvent.ticket_id, TicketEvent.id, TicketEvent.kind, TicketEvent.from_status,
               TicketEvent.to_status, TicketEvent.field, TicketEvent.old_value, TicketEvent.new_value,
               TicketEvent.occurred_at, TicketEvent.recorded_at, TicketEvent.actor_id, TicketEvent.actor_label,
               TicketEvent.public, TicketEvent.minutes, TicketEvent.meta)
        .order_by(TicketEvent.ticket_id, TicketEvent.id)
    )

    def rows() -> Iterable[list[object]]:
        last_tid, number = None, ""
        with engine.connect() as conn:
            result = conn.execution_options(yield_per=BATCH).execute(stmt)
            for n, (tid, eid, kind, frm, to, fld, old, new, occurred, recorded, actor_id, actor_label, public,
                    minutes, meta) in enumerate(result, 1):
                if tid != last_tid:
                    last_tid, number = tid, ticket_ref(tid, prefix)
                actor = users.get(actor_id, "") if actor_id else (actor_label or "system")
                yield [number, eid, kind, frm or "", to or "", fld or "", old if old is not None else "",
                       new if new is not None else "", iso(occurred), iso(recorded), actor,
                       "yes" if public else "no", "" if minutes is None else minutes,
                       json.dumps(meta, sort_keys=True, separators=(",", ":"), default=str) if meta else ""]
                if progress and n % BATCH == 0:
                    progress(n, None)

    return _write(path, EVENT_HEADER, rows())
