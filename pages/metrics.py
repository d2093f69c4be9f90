"""Metrics: volume by priority and category, backlog, response and resolution times, SLA, workload.

For seniors and leads. Every tile and chart reads lib.metrics.measures through cached reads (lib.ui.metrics_view);
the definitions are in docs/metrics.md.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from lib import clock
from lib.metrics import charts
from lib.ui import core
from lib.ui import metrics_view as mv
from lib.workflow import Permission

core.require_role(Permission.VIEW_METRICS)
st.title("📈 Metrics")

change = mv.marker()
if not mv.desk_has_tickets(change):
    mv.no_tickets_yet("Volume by priority and category, backlog, response and resolution times, SLA and workload "
                      "show here")
    st.stop()
look = mv.lookups()
f = mv.filter_bar(look)
if f.start > f.end:
    st.warning("The period's first day is after its last day.")
    st.stop()

data = mv.load_metrics(change, f.key)
periods = f.periods()

mv.kpi_tiles(data["kpis"], data["rates"], data["rates_before"], f)
with st.expander("Satisfaction, confirmation delay, mean resolution time", expanded=False):
    mv.rate_tiles(data["rates"], data["durations"])

# The charts in sections, one shown at a time: only the open section is worked out and sent, so a new tab draws
# two charts, not eight, before the first one shows (drawing a Plotly chart costs the browser far more than the
# server). The open section is in the address (?section=Team), so a shared link opens it.
if "m_measure" in st.session_state:  # the Count choice is kept while another section is open (its control is not drawn)
    st.session_state["m_measure"] = st.session_state["m_measure"]
volume, backlog, times, team, repeats = st.tabs(list(mv.SECTIONS), key="section", bind="query-params",
                                                on_change="rerun")

if volume.open:
    with volume:
        measure = st.segmented_control("Count", ["created", "resolved", "closed"], default="created",
                                       key="m_measure", format_func=str.capitalize, required=True) or "created"
        flow = data["flow"]
        fig_prio = mv.figure(data["digests"]["flow"], f.key, "flow_priority",
                             lambda: charts.flow_by_priority(flow, measure=measure, grain=f.grain, periods=periods),
                             measure)
        left, right = st.columns(2)
        with left:
            ev_prio = mv.chart(fig_prio, key="m_chart_priority", selectable=measure == "created")
        with right:
            fig_cat = mv.figure(data["digests"]["flow"], f.key, "flow_category",
                                lambda: charts.flow_by_category(flow, measure=measure, grain=f.grain, periods=periods),
                                measure)
            ev_cat = mv.chart(fig_cat, key="m_chart_category", selectable=measure == "created")
        if measure == "created" and not charts.is_empty(fig_prio):
            names_to_ids = {name: cid for cid, name in look["categories"].items()}
            picked_prio, picked_cat = mv.selected(ev_prio), mv.selected(ev_cat)
            if picked_prio:
                mv.show_selection_link(mv.flow_selection(picked_prio, flow, f, by="priority",
                                                         names_to_ids=names_to_ids))
            if picked_cat:
                result = mv.flow_selection(picked_cat, flow, f, by="category", names_to_ids=names_to_ids)
                if result is None:
                    st.caption(f"“{charts.OTHER}” groups several categories: pick a named one to open its tickets.")
                mv.show_selection_link(result)
            if not picked_prio and not picked_cat:
                st.caption("Click a bar (or drag across bars) to open those tickets in the queue.")
        elif measure == "closed":
            st.caption("Closed counts resolved work (confirmed, or no reply); duplicates, cancellations and "
                       "not-applicable closures are counted apart, in Closures by reason.")

if backlog.open:
    with backlog:
        left, right = st.columns(2)
        with left:
            mv.chart(mv.figure(data["digests"]["backlog"], f.key, "backlog",
                               lambda: charts.backlog_line(data["backlog"], grain=f.grain, periods=periods)),
                     key="m_chart_backlog")
        with right:
            mv.chart(mv.figure(data["digests"]["closures"], f.key, "closures",
                               lambda: charts.closures_bar(data["closures"])), key="m_chart_closures")

if times.open:
    with times:
        left, right = st.columns(2)
        with left:
            mv.chart(mv.figure(data["digests"]["resolution"], f.key, "resolution",
                               lambda: charts.resolution_box(data["resolution"])), key="m_chart_resolution")
        with right:
            mv.chart(mv.figure(data["digests"]["sla"], f.key, "sla",
                               lambda: charts.sla_trend(data["sla"], grain=f.grain, periods=periods)),
                     key="m_chart_sla")
        st.dataframe(mv.durations_table(data["durations"]), hide_index=True, width="stretch")

if team.open:
    with team:
        minute = clock.minute()
        ageing = mv.load_ageing(change, minute, f.key)
        left, right = st.columns([3, 2])
        with left:
            fig_work = mv.figure(data["digests"]["workload"], f.key, "workload",
                                 lambda: charts.workload_bars(data["workload"], weights=data["weights"]))
            ev_work = mv.chart(fig_work, key="m_chart_workload", selectable=True)
            url = mv.workload_selection(mv.selected(ev_work))
            if url:
                st.markdown(f"**[Open their open tickets in the queue ↗]({url})**")
            else:
                st.caption("Load is what is open now; resolved (in the hover) counts the period. Click a "
                           "technician's bar to open their open tickets in the queue.")
        with right:
            mv.chart(mv.figure(change, f.key, "ageing", lambda: charts.ageing_bar(ageing), minute),
                     key="m_chart_ageing")
            st.caption("Tickets open now, by time since creation (the filters apply, the period does not).")

if repeats.open:
    with repeats:
        st.caption("The same requester, device or category again within 30 days, in the period.")
        repeat = mv.records(data["repeat"])
        if repeat.empty:
            st.info("No repeat issues in this period.", icon="✅")
        else:
            table = pd.DataFrame({
                "Kind": [str(k).capitalize() for k in repeat["kind"]],
                "Who or what": [str(k) for k in repeat["key"]],
                "Tickets": [int(c) for c in repeat["count"]],
                "Ticket numbers": [mv.ticket_links(ids) for ids in repeat["ticket_ids"]],
            })
            st.dataframe(table, hide_index=True, width="stretch")
