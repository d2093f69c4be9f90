"""The queue as a CSV file: every row of the current view (not only the page shown), bounded, formula-safe.

Cells go through :mod:`lib.transfer.safe_cells` (summaries and requester names come from inbound mail);
times are in the desk's time zone. At most :data:`lib.queries.EXPORT_MAX_ROWS` rows: the caller says so
when the view holds more (:func:`export_note`).
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from lib import sla
from lib.models import ticket_ref
from lib.queries import EXPORT_MAX_ROWS, QueueFilter, Sort, iter_queue
from lib.transfer.safe_cells import CSV_QUOTING, neutralise_row
from lib.workflow import OPEN_STATUSES

COLUMNS = ("Ticket", "Summary", "Status", "Priority", "Category", "Channel", "Requester", "Assignee", "Created",
           "Updated", "Resolution due", "SLA")


def _when(value: datetime | None, zone: ZoneInfo) -> str:
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M") if value is not None else ""


def queue_csv(session: Session, f: QueueFilter, *, sort: Sort, zone: ZoneInfo, now: datetime,
              limit: int = EXPORT_MAX_ROWS) -> str:
    """The CSV text of the view ``f`` in the order ``sort``: a header row, then one row per ticket."""
    out = io.StringIO()
    writer = csv.writer(out, quoting=CSV_QUOTING, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for r in iter_queue(session, f, sort=sort, limit=limit):
        state = sla.state(r, now=now)
        writer.writerow(neutralise_row((
            ticket_ref(r.id), r.summary, r.status.label, r.priority.label, r.category, r.channel.label,
            r.requester or "", r.assignee or "", _when(r.created_at, zone), _when(r.updated_at, zone),
            _when(r.resolution_due_at, zone) if r.status in OPEN_STATUSES else "",
            state.label if state is not sla.SlaState.NONE else "",
        )))
    return out.getvalue()


def export_note(total: int, limit: int = EXPORT_MAX_ROWS) -> str | None:
    """What to tell the user when the view holds more rows than one file takes."""
    if total <= limit:
        return None
    return f"The download holds the first {limit:,} of {total:,} tickets, in this order: narrow the filters for the rest."
