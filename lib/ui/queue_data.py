"""Cached reads for the queue, keyed on the database's change marker (never cleared globally).

Every tab and every app server sees a write at its next refresh: the key includes the newest event id,
read cheaply from the database on each run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import streamlit as st
from sqlalchemy.orm import Session

from lib import clock, queries
from lib.config import get_settings
from lib.queries import QueuePage, QueueView, Sort
from lib.queue_state import QueueState, to_filter, to_params
from lib.saved_views import SavedView
from lib.ui.core import per_run, reading, reveal_bidi
from lib.workflow import Channel, Priority, Status


def change_marker() -> int:
    """The database's change marker (lib.queries.change_marker), read once per page run."""
    def read() -> int:
        with reading() as s:
            return queries.change_marker(s)

    return per_run("change_marker", read)


@st.cache_data(ttl=600, max_entries=500, show_spinner=False)
def queue_page(marker: int, minute: int, me: int, state: QueueState, page_size: int) -> QueuePage:
    """One page of the queue for ``state`` (its ``page`` counts from 1)."""
    f = to_filter(state, me=me, now=datetime.fromtimestamp(minute * 60, UTC), zone=ZoneInfo(get_settings().timezone))
    with reading() as s:
        found = queries.list_queue(s, f, sort=state.sort, page=state.page - 1, page_size=page_size)
    # Rows for display: bidirectional controls in summaries and requester names shown as visible markers.
    rows = [replace(r, summary=reveal_bidi(r.summary), requester=reveal_bidi(r.requester) if r.requester else None)
            for r in found.rows]
    return replace(found, rows=rows)


def queue_csv(state: QueueState, *, me: int) -> str:
    """The whole view as CSV (lib.queue_export); built when the download button is pressed, never cached."""
    from lib.queue_export import queue_csv as build

    zone = ZoneInfo(get_settings().timezone)
    now = clock.now()
    with reading() as s:
        return build(s, to_filter(state, me=me, now=now, zone=zone), sort=state.sort, zone=zone, now=now)


def saved_views(user_id: int) -> list[SavedView]:
    """Not cached: a small settings read, and a view saved in another tab shows at once."""
    from lib.saved_views import list_views

    with reading() as s:
        return list_views(s, user_id=user_id)


def describe_range(first: str, end: str) -> str:
    lo, hi = date.fromisoformat(first), date.fromisoformat(end) - timedelta(days=1)
    return f"on {lo:%a %d %b %Y}" if lo == hi else f"from {lo:%a %d %b %Y} to {hi:%a %d %b %Y}"


def here_now(ticket_ids: tuple[int, ...], *, me: int) -> dict[int, str]:
    """Who else has each of these tickets open right now (docs/workspace.md): "✍️ Ann, 👀 Ben". Not cached:
    presence moves every few seconds, and it is one indexed read for the page's rows."""
    from lib import presence

    with reading() as s:
        found = presence.on_tickets(s, ticket_ids=ticket_ids, exclude_user=me)
    return {tid: ", ".join(("✍️ " if p.writing else "👀 ") + reveal_bidi(p.name) for p in people)
            for tid, people in found.items()}


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


# --- the page's widgets <-> lib.queue_state ------------------------------------------------------------
# The widget keys hold what the widgets show (names and values their options use); QueueState is the typed
# value the URL, saved views and the query speak.

#: Wide table or phone cards: both are rendered, CSS shows one by the screen's width (containers with a key
#: carry the class ``st-key-<key>``). The sidebar folds away below 768 px; cards below 700 px. On wider screens
#: the queue takes narrower side margins than other pages, so every column fits at 1440 px with the sidebar open.
NARROW_PX = 700
RESPONSIVE_CSS = f"""<style>
@media (max-width: {NARROW_PX}px) {{ .st-key-queue_wide, .st-key-queue_wide_counts {{ display: none !important; }} }}
@media (min-width: {NARROW_PX + 1}px) {{ .st-key-queue_narrow, .st-key-queue_narrow_counts {{ display: none !important; }} }}
@media (min-width: {NARROW_PX + 1}px) {{ [data-testid="stMainBlockContainer"] {{ padding-left: 2rem; padding-right: 2rem; }} }}
.st-key-queue_narrow [class*="st-key-queue_card_"] p {{ margin-bottom: 0.1rem; }}
.st-key-queue_narrow_counts p {{ font-size: 0.9rem; }}
</style>"""


def load_widgets(state: QueueState, *, keep_existing: bool, categories: Iterable[int] = (),
                 people: Iterable[int] = ()) -> list[str]:
    """Put ``state`` into the widgets' session-state keys (before the widgets are drawn). ``keep_existing``
    leaves keys already set alone (a first run without URL parameters). Returns notes for categories and
    staff the URL names that do not exist (they are left out)."""
    notes: list[str] = []
    cats, staff = set(categories), set(people)
    category_ids = [c for c in state.category_ids if not cats or c in cats]
    assignees = [a for a in state.assignee_ids if not staff or a in staff]
    if len(category_ids) < len(state.category_ids):
        notes.append("Ignored a category that does not exist.")
    if len(assignees) < len(state.assignee_ids):
        notes.append("Ignored an assignee who is not an active member of staff.")
    values = {
        "queue_view": state.view.value,
        "queue_statuses": [s.value for s in state.statuses],
        "queue_priorities": [p.name for p in state.priorities],
        "queue_categories": category_ids,
        "queue_assignees": assignees + ([0] if state.include_unassigned else []),
        "queue_channels": [c.value for c in state.channels],
        "queue_sort": state.sort.value,
        "queue_text": state.text,
        "queue_page": state.page,
        "queue_created": state.created,
    }
    for key, value in values.items():
        if keep_existing and key in st.session_state:
            continue
        st.session_state[key] = value
    return notes


def state_from_widgets(fallback_view: QueueView) -> QueueState:
    ss = st.session_state
    view = str(ss.get("queue_view"))
    sort = str(ss.get("queue_sort"))
    assignees = list(ss.get("queue_assignees") or [])
    created = ss.get("queue_created")
    return QueueState(
        view=QueueView(view) if view in QueueView._value2member_map_ else fallback_view,
        statuses=tuple(Status(s) for s in ss.get("queue_statuses") or []),
        priorities=tuple(sorted((Priority[p] for p in ss.get("queue_priorities") or []), reverse=True)),
        category_ids=tuple(int(c) for c in ss.get("queue_categories") or []),
        assignee_ids=tuple(int(a) for a in assignees if a),
        include_unassigned=0 in assignees,
        channels=tuple(Channel(c) for c in ss.get("queue_channels") or []),
        text=ss.get("queue_text") or "",
        sort=Sort(sort) if sort in Sort._value2member_map_ else Sort.PRIORITY,
        page=max(1, int(ss.get("queue_page") or 1)),
        created=(str(created[0]), str(created[1])) if created else None,
    )


def save_view(session: Session, *, actor: int, name: str, state: QueueState, shared: bool) -> SavedView:
    from lib.saved_views import save_view as save

    return save(session, actor=actor, name=name, params=to_params(state.filters_only(), fallback_view=None),
                shared=shared)


def rename_view(session: Session, *, actor: int, view: SavedView, new_name: str) -> SavedView:
    from lib.saved_views import rename_view as rename

    return rename(session, actor=actor, name=view.name, new_name=new_name, shared=view.shared)


def delete_view(session: Session, *, actor: int, view: SavedView) -> bool:
    from lib.saved_views import delete_view as delete

    delete(session, actor=actor, name=view.name, shared=view.shared)
    return True
