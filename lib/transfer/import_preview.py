"""What an import will make of a file, before anything is written: the header, what each column becomes, and the
first tickets as they will read in the desk, with each one's problems.

The first items are run through the layout's own ``handle`` in a transaction that is rolled back, and the
tickets they make are read back: the values shown are the parsed ones (a priority label, a status, a time in
UTC, the category found), by the very code the import runs, for every layout alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session, aliased

from lib.db import transaction
from lib.errors import HelpdeskError
from lib.models import Category, Requester, Ticket, User
from lib.transfer import importer_generic
from lib.transfer.import_rows import Item, Refused
from lib.transfer.importer import open_layout, read_header
from lib.workflow import Channel, ClosureReason, Priority, Status

#: How many tickets the preview shows.
PREVIEW_ITEMS = 20
OUTCOMES = {"created": "would be created", "updated": "would be updated", "unchanged": "unchanged"}
REFUSED = "refused"


@dataclass
class PreviewRow:
    """One ticket of the file (generic layout: a row; ServiceNow: an incident's rows)."""

    where: str  # "row 17", "INC0000045 (rows 2, 3, 4, ...)"
    outcome: str  # would be created / would be updated / unchanged / refused
    values: dict[str, object] = field(default_factory=dict)  # as the ticket reads once imported
    problems: list[str] = field(default_factory=list)


@dataclass
class Preview:
    layout: str
    header: list[str]
    mapping: list[tuple[str, str]]  # (file column, what it becomes)
    rows: list[PreviewRow]
    total_rows: int


class _RollBack(Exception):
    pass


def preview(engine: Engine, path: Path, *, layout: str = "auto", mapping_toml: str | None = None,
            limit: int = PREVIEW_ITEMS) -> Preview:
    """The preview of ``path`` (ValidationError when the file, its header or the mapping is wrong)."""
    path = Path(path)
    chosen, found = open_layout(path, layout, mapping_toml)
    header = read_header(path, getattr(found, "delimiter", ","))  # an event log may be split on another character
    items = list(islice(found.items(path), limit))  # read before the transaction: it holds the write lock
    rows: list[PreviewRow] = []
    try:
        with transaction(engine) as session:
            for item in items:
                rows.append(_one(session, found.handle, item, source=getattr(found, "source", importer_generic.SOURCE)))
            raise _RollBack
    except _RollBack:
        pass
    return Preview(layout=chosen, header=header, mapping=found.columns(header), rows=rows,
                   total_rows=found.count_rows(path))


def _one(session: Session, handle: Callable[[Session, Item], str], item: Item, *, source: str) -> PreviewRow:
    newest = session.scalar(select(func.max(Ticket.id))) or 0
    try:
        with session.begin_nested():
            outcome = handle(session, item)
    except Refused as exc:
        return PreviewRow(where=item.where, outcome=REFUSED, problems=_problems(str(exc)))
    except (HelpdeskError, ValueError, IntegrityError, StatementError) as exc:
        return PreviewRow(where=item.where, outcome=REFUSED, problems=[str(getattr(exc, "orig", None) or exc)])
    if outcome == "created":
        ticket_id = session.scalar(select(func.max(Ticket.id)).where(Ticket.id > newest))
    else:
        ticket_id = session.scalar(select(Ticket.id).where(Ticket.external_source == source,
                                                           Ticket.external_ref == item.key))
    return PreviewRow(where=item.where, outcome=OUTCOMES.get(outcome, outcome),
                      values=_values(session, ticket_id) if ticket_id else {})


def _problems(message: str) -> list[str]:
    """``row 17: a; b`` → ``[a, b]``."""
    _, _, rest = message.partition(": ")
    return [p.strip() for p in (rest or message).split("; ") if p.strip()]


def _values(session: Session, ticket_id: int) -> dict[str, object]:
    assignee = aliased(User)
    row = session.execute(
        select(Ticket.external_source, Ticket.external_ref, Ticket.summary, Category.name, Ticket.priority,
               Ticket.status, Ticket.channel, Requester.name, Requester.email, assignee.name, Ticket.created_at,
               Ticket.resolved_at, Ticket.closed_at, Ticket.closure_reason, Ticket.reopen_count, Ticket.version)
        .join(Category, Category.id == Ticket.category_id)
        .outerjoin(Requester, Requester.id == Ticket.requester_id)
        .outerjoin(assignee, assignee.id == Ticket.assignee_id)
        .where(Ticket.id == ticket_id)).one()
    (source, ref, summary, category, priority, status, channel, req_name, req_email, who, created, resolved, closed,
     reason, reopens, version) = row
    requester = " ".join(x for x in (req_name, f"<{req_email}>" if req_email else None) if x) or None
    return {"Reference": f"{source}:{ref}", "Summary": summary, "Category": category,
            "Priority": Priority(priority).label, "Status": Status(status).label, "Channel": _label(Channel, channel),
            "Requester": requester, "Assignee": who, "Created": created, "Resolved": resolved, "Closed": closed,
            "Closure reason": _label(ClosureReason, reason), "Reopened": reopens,
            "Timeline events": version}


def _label(kind: type[Channel] | type[ClosureReason], value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return str(kind(value).label)
    except ValueError:
        return value
