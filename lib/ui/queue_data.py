"""Cached reads for the queue, keyed on the database's change marker (never cleared globally).

Every tab and every app server sees a write at its next refresh: the key includes the newest event id,
read cheaply from the database on each run.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import streamlit as st

from lib import queries
from lib.config import get_settings
from lib.queries import QueueFilter, QueuePage, QueueView, Sort
from lib.ui.core import reading, reveal_bidi
from lib.workflow import Channel, Priority, Status


def change_marker() -> int:
    with reading() as s:
        return queries.change_marker(s)


@st.cache_data(ttl=600, max_entries=500, show_spinner=False)
def queue_page(marker: int, minute: int, key: tuple, sort: str, page: int, page_size: int) -> QueuePage:
    (view, me, statuses, priorities, categories, assignees, unassigned, channels, text, created) = key
    created_from, created_to = _local_bounds(created)
    f = QueueFilter(
        view=QueueView(view), me=me, statuses=[Status(s) for s in statuses],
        priorities=[Priority(p) for p in priorities], category_ids=list(categories), assignee_ids=list(assignees),
        include_unassigned=unassigned, channels=[Channel(c) for c in channels], text=text,
        created_from=created_from, created_to=created_to, now=datetime.fromtimestamp(minute * 60, UTC),
    )
    with reading() as s:
        found = queries.list_queue(s, f, sort=Sort(sort), page=page, page_size=page_size)
    # Rows for display: bidirectional controls in summaries and requester names shown as visible markers.
    rows = [replace(r, summary=reveal_bidi(r.summary), requester=reveal_bidi(r.requester) if r.requester else None)
            for r in found.rows]
    return replace(found, rows=rows)


def created_range(first: str | None, end: str | None) -> tuple[str, str] | None:
    """A creation-date range from query parameters (ISO days; ``end`` excluded), or None when absent or bad."""
    try:
        lo, hi = date.fromisoformat(first or ""), date.fromisoformat(end or "")
    except ValueError:
        return None
    return (lo.isoformat(), hi.isoformat()) if lo < hi else None


def describe_range(first: str, end: str) -> str:
    lo, hi = date.fromisoformat(first), date.fromisoformat(end) - timedelta(days=1)
    return f"on {lo:%a %d %b %Y}" if lo == hi else f"from {lo:%a %d %b %Y} to {hi:%a %d %b %Y}"


def _local_bounds(created: tuple) -> tuple[datetime | None, datetime | None]:
    """Local midnights of the range's days, in the desk's time zone, as aware datetimes."""
    if not created:
        return None, None
    zone = ZoneInfo(get_settings().timezone)
    lo, hi = (date.fromisoformat(d) for d in created)
    return datetime.combine(lo, time(), zone), datetime.combine(hi, time(), zone)


@st.cache_data(ttl=600, max_entries=50, show_spinner=False)
def open_counts(marker: int) -> dict[str, int]:
    with reading() as s:
        return {k.value: v for k, v in queries.open_counts(s).items()}


@st.cache_data(ttl=60, max_entries=20, show_spinner=False)
def lookups(marker: int) -> dict[str, list[tuple[int, str]]]:
    """Categories and staff for the filters (small)."""
    from lib.directory import list_categories

    with reading() as s:
        cats = [(c.id, c.name) for c in list_categories(s, include_inactive=True)]
        people = [(u.id, u.name) for u in queries.list_users(s, include_inactive=False)]
    return {"categories": cats, "people": people}


@st.cache_data(ttl=60, show_spinner=False)
def seniors(marker: int) -> dict[int, str]:
    from lib.directory import active_staff
    from lib.workflow import Role

    with reading() as s:
        return {u.id: u.name for u in active_staff(s, min_role=Role.SENIOR)}
