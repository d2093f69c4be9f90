"""The queue: views, filters, sort, paging, counts per open status, live refresh, take and bulk actions."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from lib import clock, sla, tickets
from lib.config import get_settings
from lib.models import ticket_ref
from lib.queries import QueueView, Sort
from lib.search import SearchTextError
from lib.ui import core, kb_view, queue_data
from lib.workflow import OPEN_STATUSES, STATUS_ICONS, Channel, Priority, Role, Status

user = core.require_role(Role.TECHNICIAN)
is_lead = Role(user.role) >= Role.LEAD
core.flash()
st.title("📋 Queue")

# Query parameters let a metrics tile or a link open the queue pre-filtered (?view=...&priority=High).
qp = st.query_params
if "queue_view" not in st.session_state:
    st.session_state["queue_view"] = qp.get("view") if qp.get("view") in [v.value for v in QueueView] else (
        QueueView.MY_OPEN.value if not is_lead else QueueView.ALL_OPEN.value)
    if qp.get("priority"):
        st.session_state["queue_priorities"] = [p for p in qp.get_all("priority") if p.upper() in Priority.__members__]
    if qp.get("status"):
        st.session_state["queue_statuses"] = [s for s in qp.get_all("status") if s in Status._value2member_map_]
    if qp.get("text"):
        st.session_state["queue_text"] = qp.get("text")
    for param, state in (("category", "queue_categories"), ("assignee", "queue_assignees")):
        if qp.get(param):
            st.session_state[state] = [int(v) for v in qp.get_all(param) if v.isdigit()]
    if qp.get("channel"):
        st.session_state["queue_channels"] = [c for c in qp.get_all("channel") if c in Channel._value2member_map_]
    # A metrics tile or bar: tickets created from this day up to (not including) that one, in the desk's zone.
    st.session_state["queue_created"] = queue_data.created_range(qp.get("created_from"), qp.get("created_to"))

look = queue_data.lookups(clock.minute())
categories = dict(look["categories"])
people = dict(look["people"])

view = st.segmented_control("View", [v.value for v in QueueView], key="queue_view", label_visibility="collapsed",
                            required=True) or QueueView.ALL_OPEN.value
with st.expander("Filters and sort", expanded=False):
    c1, c2, c3 = st.columns(3)
    statuses = c1.multiselect("Status", [s.value for s in Status], format_func=lambda v: Status(v).label,
                              key="queue_statuses")
    priorities = c2.multiselect("Priority", [p.name for p in sorted(Priority, reverse=True)],
                                format_func=lambda n: Priority[n].label, key="queue_priorities")
    cats = c3.multiselect("Category", list(categories), format_func=lambda i: categories.get(i, str(i)),
                          key="queue_categories")
    c4, c5, c6 = st.columns(3)
    assignee_opts = [0, *people]
    assignees = c4.multiselect("Assignee", assignee_opts,
                               format_func=lambda i: "Unassigned" if i == 0 else people.get(i, str(i)),
                               key="queue_assignees")
    channels = c5.multiselect("Channel", [c.value for c in Channel], format_func=lambda v: Channel(v).label,
                              key="queue_channels")
    sort = c6.selectbox("Sort", [s.value for s in Sort], key="queue_sort")
    text = st.text_input("Search number, summary, description or requester", key="queue_text",
                         placeholder=f"e.g. {ticket_ref(123)}, printer, ann@example.com")
created = st.session_state.get("queue_created")
if created:
    first, last = created[0], created[1]
    c1, c2 = st.columns([5, 1], vertical_alignment="center")
    c1.caption(f"Only tickets created {queue_data.describe_range(first, last)} (from the metrics page).")
    if c2.button("Show all dates", key="queue_created_clear"):
        st.session_state["queue_created"] = None
        st.rerun()

filter_key = (
    view, user.id, tuple(statuses), tuple(Priority[p].value for p in priorities), tuple(cats),
    tuple(a for a in assignees if a), 0 in assignees, tuple(channels), text.strip(),
    tuple(st.session_state.get("queue_created") or ()),
)
if st.session_state.get("_queue_filter_key") != filter_key:
    st.session_state["_queue_filter_key"] = filter_key
    st.session_state["queue_page"] = 1
page_size = 50
refresh = get_settings().queue_refresh_seconds


def _sla_label(row) -> str:
    state = sla.state(row, now=clock.now())
    return f"{sla.SLA_ICONS[state]} {state.label}".strip()


@st.fragment(run_every=refresh if refresh > 0 else None)
def live_queue() -> None:
    marker = queue_data.change_marker()
    counts = queue_data.open_counts(marker)
    cols = st.columns(len(OPEN_STATUSES))
    for col, status in zip(cols, OPEN_STATUSES, strict=True):
        col.metric(f"{STATUS_ICONS[status]} {status.label}", counts.get(status.value, 0))
    page = int(st.session_state.get("queue_page", 1))
    try:
        result = queue_data.queue_page(marker, clock.minute(), filter_key, st.session_state.get("queue_sort")
                                       or Sort.PRIORITY.value, page - 1, page_size)
    except SearchTextError as exc:  # the typed text stays in the search box under "Filters and sort"
        st.warning(f"{exc} The search box is under **Filters and sort**.", icon="🔎")
        return
    if view == QueueView.FOLLOW_UPS.value:
        kb_view.my_due_follow_ups(user.id)
    if result.total == 0:
        hints = {
            QueueView.MY_OPEN.value: "Nothing assigned to you. Take one from **Unassigned**, or log a new ticket.",
            QueueView.UNASSIGNED.value: "Every open ticket has an owner.",
            QueueView.FOLLOW_UPS.value: "No follow-ups of yours are due.",
        }
        st.info(hints.get(view, "No tickets match. Clear a filter, or log a new ticket with **New ticket**."),
                icon="📭")
        st.markdown("[➕ Log a new ticket](/intake)")
        return
    now = clock.now()
    frame = pd.DataFrame([{
        "Ticket": core.ticket_url(r.id) + f"#HD-{r.id:06d}",
        "Priority": f"{core.PRIORITY_ICONS[r.priority]} {r.priority.label}",
        "Status": r.status.label,
        "SLA": _sla_label(r),
        "Summary": r.summary,
        "Category": r.category,
        "Assignee": r.assignee or "— unassigned —",
        "Requester": r.requester or "—",
        "Age": core.fmt_age(r.created_at, now=now),
        "Due": core.fmt_time(r.resolution_due_at) if r.status in OPEN_STATUSES else "—",
    } for r in result.rows])
    st.caption(f"{result.total:,} ticket(s) · page {page} of {result.pages} · refreshes every {refresh} s · "
               "click a ticket number to open it in a new tab")
    event = st.dataframe(
        frame, hide_index=True, width="stretch", key="queue_table", on_select="rerun", selection_mode="multi-row",
        height=min(36 * (len(frame) + 1) + 3, 1200),
        column_config={
            "Ticket": st.column_config.LinkColumn("Ticket", display_text=r"#(HD-\d+)$", width="small"),
            "Summary": st.column_config.TextColumn(width="large"),
        },
    )
    nav1, nav2, _ = st.columns([1, 1, 6])
    if nav1.button("◀ Previous", disabled=page <= 1, key="queue_prev"):
        st.session_state["queue_page"] = page - 1
        st.rerun(scope="fragment")
    if nav2.button("Next ▶", disabled=page >= result.pages, key="queue_next"):
        st.session_state["queue_page"] = page + 1
        st.rerun(scope="fragment")
    chosen = [result.rows[i] for i in event.selection.rows if i < len(result.rows)]
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
