"""The queue: views, filters, sort and page kept in the URL, saved views, word search, counts per open status,
live refresh, CSV download, take and bulk actions; a table on wide screens, cards on a phone (docs/queue.md)."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import streamlit as st

from lib import clock, sla, tickets
from lib.config import get_settings
from lib.models import ticket_ref
from lib.queries import SEARCH_NEWEST, QueueRow, QueueView, Sort
from lib.queue_export import export_note
from lib.queue_state import PARAMS, default_view, from_params, query_string, to_params
from lib.search import SearchTextError
from lib.ui import core, kb_view, queue_data
from lib.workflow import OPEN_STATUSES, STATUS_ICONS, Channel, Priority, Role, Status

user = core.require_role(Role.TECHNICIAN)
is_lead = Role(user.role) >= Role.LEAD
home = default_view(is_lead)
core.flash()
st.title("📋 Queue")
st.html(queue_data.RESPONSIVE_CSS)

# --- the URL is the source of the filters: a reload or a shared link shows the same tickets --------------
look = queue_data.lookups(clock.minute())
categories = dict(look["categories"])
people = dict(look["people"])
url_now = {k: st.query_params.get_all(k) for k in st.query_params if k in PARAMS}
if st.session_state.get("_queue_url") != url_now:  # first run, a link followed, a saved view applied
    parsed = from_params(url_now, fallback_view=home)
    first_run = "_queue_url" not in st.session_state
    st.session_state["_queue_notes"] = parsed.problems + queue_data.load_widgets(
        parsed.state, keep_existing=first_run and not url_now, categories=categories, people=people)

view = st.segmented_control("View", [v.value for v in QueueView], key="queue_view", label_visibility="collapsed",
                            required=True) or home.value
search_col, tools_col = st.columns([3, 2], vertical_alignment="bottom")
tools = tools_col.container(horizontal=True, vertical_alignment="center")  # wraps on a phone: one row, not three
search_col.text_input("Search", key="queue_text", placeholder=f"Words in any order, or {ticket_ref(123)}",
                   help="Every word must appear in the number, summary, description or requester's name or "
                        "e-mail, in any order. A ticket number jumps to that ticket.")
with st.expander("Filters and sort", expanded=False):
    c1, c2, c3 = st.columns(3)
    c1.multiselect("Status", [s.value for s in Status], format_func=lambda v: Status(v).label,
                              key="queue_statuses")
    c2.multiselect("Priority", [p.name for p in sorted(Priority, reverse=True)],
                                format_func=lambda n: Priority[n].label, key="queue_priorities")
    c3.multiselect("Category", list(categories), format_func=lambda i: categories.get(i, str(i)),
                          key="queue_categories")
    c4, c5, c6 = st.columns(3)
    c4.multiselect("Assignee", [0, *people],
                               format_func=lambda i: "Unassigned" if i == 0 else people.get(i, str(i)),
                               key="queue_assignees")
    c5.multiselect("Channel", [c.value for c in Channel], format_func=lambda v: Channel(v).label,
                              key="queue_channels")
    c6.selectbox("Sort", [s.value for s in Sort], key="queue_sort")

state = queue_data.state_from_widgets(home)
if st.session_state.get("_queue_filters") != state.filters_only():  # a changed filter starts at page 1
    if "_queue_filters" in st.session_state:
        st.session_state["queue_page"] = 1
    st.session_state["_queue_filters"] = state.filters_only()
    state = queue_data.state_from_widgets(home)
params = to_params(state, fallback_view=home)
if params != url_now:
    st.query_params.from_dict({**{k: st.query_params.get_all(k) for k in st.query_params if k not in PARAMS}, **params})
st.session_state["_queue_url"] = params

for note in st.session_state.get("_queue_notes") or []:
    st.caption("🔗 " + core.escape_md(note))
if state.created:
    c1, c2 = st.columns([5, 1], vertical_alignment="center")
    c1.caption(f"Only tickets created {queue_data.describe_range(*state.created)} (from the metrics page).")
    if c2.button("Show all dates", key="queue_created_clear"):
        st.session_state["queue_created"] = None
        st.rerun()


# --- saved views ---------------------------------------------------------------------------------------
@st.fragment
def views_bar() -> None:
    views = queue_data.saved_views(user.id)
    with st.popover(f"⭐ Saved views ({len(views)})", width="content"):
        if not views:
            st.caption("No saved views yet: set the filters, then save them here under a name.")
        for i, v in enumerate(views):
            a, b = st.columns([4, 1], vertical_alignment="center")
            a.markdown(("👥 " if v.shared else "👤 ") + f"[{core.escape_md(v.name)}]({v.link})")
            if b.button("Apply", key=f"queue_view_apply_{i}"):
                st.query_params.from_dict(v.params)
                st.session_state["_queue_url"] = None
                st.session_state["_queue_filters"] = None
                st.rerun(scope="app")
        st.divider()
        name = st.text_input("Save the current filters as", key="queue_save_name", max_chars=60)
        shared = st.checkbox("Shared with the whole desk", key="queue_save_shared") if is_lead else False
        if st.button("Save view", key="queue_save", type="primary"):
            saved = core.write(lambda s: queue_data.save_view(s, actor=user.id, name=name, state=state,
                                                                 shared=shared))
            if saved is not None:
                st.toast(f"Saved “{saved.name}”")
                st.rerun()
        mine = [v for v in views if not v.shared or is_lead]
        if mine:
            st.divider()
            pick = st.selectbox("Rename or delete", range(len(mine)), key="queue_edit_pick",
                                format_func=lambda i: ("👥 " if mine[i].shared else "👤 ") + mine[i].name)
            new_name = st.text_input("New name", key="queue_edit_name", max_chars=60)
            r1, r2 = st.columns(2)
            chosen = mine[pick] if pick is not None and pick < len(mine) else None
            if chosen is not None and r1.button("Rename", key="queue_rename"):
                if core.write(lambda s: queue_data.rename_view(s, actor=user.id, view=chosen, new_name=new_name)):
                    st.rerun()
            if chosen is not None and r2.button("Delete", key="queue_delete"):
                if core.write(lambda s: queue_data.delete_view(s, actor=user.id, view=chosen)) is not None:
                    st.rerun()


with tools:
    views_bar()
tools.download_button("CSV", lambda: queue_data.queue_csv(state, me=user.id), icon=":material/download:",
                       key="queue_csv", file_name="queue.csv", mime="text/csv", on_click="ignore",
                       help="Every ticket of this view (not only this page), in this order")
tools.markdown(f"[🔗 Link to this view](/{query_string(to_params(state, fallback_view=None))})")

page_size = 50
refresh = get_settings().queue_refresh_seconds


def _due(row: QueueRow, now: datetime) -> str:
    if row.status not in OPEN_STATUSES:
        return "—"
    state_ = sla.state(row, now=now)
    icon = sla.SLA_ICONS[state_]
    when = row.resolution_due_at.astimezone(core.tz()).strftime("%d %b %H:%M") if row.resolution_due_at else "no target"
    return f"{icon} {when}".strip()


@st.fragment(run_every=refresh if refresh > 0 else None)
def live_queue() -> None:
    marker = queue_data.change_marker()
    counts = queue_data.open_counts(marker)
    with st.container(key="queue_wide_counts"):
        cols = st.columns(len(OPEN_STATUSES))
        for col, status in zip(cols, OPEN_STATUSES, strict=True):
            col.metric(f"{STATUS_ICONS[status]} {status.label}", counts.get(status.value, 0))
    with st.container(key="queue_narrow_counts"):
        st.markdown(" · ".join(f"{STATUS_ICONS[s]} {s.label} **{counts.get(s.value, 0)}**" for s in OPEN_STATUSES))
    try:
        result = queue_data.queue_page(marker, clock.minute(), user.id, state, page_size)
    except SearchTextError as exc:  # the typed text stays in the search box
        st.warning(f"{exc}", icon="🔎")
        return
    if view == QueueView.FOLLOW_UPS.value:
        kb_view.my_due_follow_ups(user.id)
    if result.total == 0:
        hints = {
            QueueView.MY_OPEN.value: "Nothing assigned to you. Take one from **Unassigned**, or log a new ticket.",
            QueueView.UNASSIGNED.value: "Every open ticket has an owner.",
            QueueView.FOLLOW_UPS.value: "No follow-ups of yours are due.",
        }
        empty = "No tickets match these words." if state.text.strip() else hints.get(
            view, "No tickets match. Clear a filter, or log a new ticket with **New ticket**.")
        st.info(empty, icon="📭")
        st.markdown("[➕ Log a new ticket](/intake)")
        return
    if result.exact is not None:
        st.success(f"Ticket number {ticket_ref(result.exact)}: [open it]({core.ticket_url(result.exact)}) "
                   "(the other filters are not applied to a number).", icon="🎯")
    now = clock.now()
    page = result.page + 1
    here = queue_data.here_now(tuple(r.id for r in result.rows), me=user.id)  # who else has each ticket open
    st.caption(f"{result.total:,} ticket(s) · page {page} of {result.pages} · refreshes every {refresh} s")
    if result.capped:
        st.caption(f"🔎 More than {SEARCH_NEWEST:,} tickets match these words: these are the newest "
                   f"{SEARCH_NEWEST:,}, in the order chosen. Add a word or a filter to narrow the search.")
    if (too_many := export_note(result.total)) is not None:
        st.caption("⬇️ " + too_many)
    with st.container(key="queue_narrow"):  # a phone: one card per ticket
        for r in result.rows:
            with st.container(border=True, key=f"queue_card_{r.id}"):
                st.markdown(f"**[{ticket_ref(r.id)}]({core.ticket_url(r.id)})** {core.escape_md(r.summary)}")
                colour = core.PRIORITY_COLOURS[r.priority]
                st.markdown(f":{colour}-badge[{core.PRIORITY_ICONS[r.priority]} {r.priority.label}] "
                            f":gray-badge[{r.status.label}] · {core.fmt_age(r.created_at, now=now)} · "
                            f"due {_due(r, now)}")
    chosen = []
    with st.container(key="queue_wide"):
        frame = pd.DataFrame([{
            "Ticket": core.ticket_url(r.id) + f"#{ticket_ref(r.id)}",
            "Summary": r.summary,
            "Status": r.status.label,
            "Priority": f"{core.PRIORITY_ICONS[r.priority]} {r.priority.label}",
            "Requester": r.requester or "—",
            "Assignee": r.assignee or "— unassigned —",
            "Age": core.fmt_age(r.created_at, now=now),
            "Due / SLA": _due(r, now),
            "Open by": here.get(r.id, ""),
        } for r in result.rows])
        event = st.dataframe(
            frame, hide_index=True, width="stretch", key="queue_table", on_select="rerun",
            selection_mode="multi-row", height=min(36 * (len(frame) + 1) + 3, 1200),
            column_config={
                "Ticket": st.column_config.LinkColumn("Ticket", display_text=r"#(HD-\d+)$", width=90),
                "Summary": st.column_config.TextColumn(width=240),
                "Status": st.column_config.TextColumn(width=100),
                "Priority": st.column_config.TextColumn(width=90),
                "Requester": st.column_config.TextColumn(width=120),
                "Assignee": st.column_config.TextColumn(width=110),
                "Age": st.column_config.TextColumn(width=75),
                "Due / SLA": st.column_config.TextColumn(width=110),
                "Open by": st.column_config.TextColumn(width=80),
            },
        )
        chosen = [result.rows[i] for i in event.selection.rows if i < len(result.rows)]
    nav1, nav2, _ = st.columns([1, 1, 4])
    if nav1.button("◀ Previous", disabled=page <= 1 or result.exact is not None, key="queue_prev"):
        st.session_state["queue_page"] = page - 1
        st.rerun(scope="app")
    if nav2.button("Next ▶", disabled=page >= result.pages or result.exact is not None, key="queue_next"):
        st.session_state["queue_page"] = page + 1
        st.rerun(scope="app")
    if not chosen:
        return
    st.write(f"**{len(chosen)} selected**")
    unassigned = [r for r in chosen if r.assignee_id is None and r.status in OPEN_STATUSES]
    if unassigned and st.button(f"Take {len(unassigned)} unassigned", type="primary", key="queue_take"):
        for r in unassigned:
            core.write(lambda s, r=r: tickets.take(s, actor=user.id, ticket_id=r.id))  # type: ignore[misc]  # mypy#15459: r=r binds the loop value
        st.session_state["flash"] = f"Took {len(unassigned)} ticket(s)"
        st.rerun()
    if is_lead:
        b1, b2, b3 = st.columns([2, 2, 1])
        target = b1.selectbox("Assign to", [-1, 0, *people], key="bulk_assignee",
                              format_func=lambda i: {-1: "(keep)", 0: "Unassign"}.get(i) or people[i])
        new_priority = b2.selectbox("Priority", ["(keep)", *[p.name for p in sorted(Priority, reverse=True)]],
                                    key="bulk_priority")
        if b3.button("Apply", key="bulk_apply"):
            ids = [r.id for r in chosen]
            done = core.write(lambda s: tickets.bulk_update(
                s, actor=user.id, ticket_ids=ids, assignee_id=target if target > 0 else None, unassign=target == 0,
                priority=None if new_priority == "(keep)" else new_priority))
            if done is not None:
                st.session_state["flash"] = f"Updated {len(ids)} ticket(s)"
                st.rerun()


live_queue()
