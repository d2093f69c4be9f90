"""Weekly report: the week's headline numbers against the previous week and the 4-week average, trends,
SLA breaches, the oldest open tickets, repeat issues, and the report as CSV, XLSX or HTML.

The same report comes from the CLI: ``python -m lib.cli report --week 2026-W47 --format html --out FILE``.
"""

from __future__ import annotations

import streamlit as st

from lib.metrics import charts
from lib.ui import core
from lib.ui import metrics_view as mv
from lib.workflow import Permission

core.require_role(Permission.VIEW_METRICS)
st.title("🗓️ Weekly report")

change = mv.marker()
if not mv.desk_has_tickets(change):
    mv.no_tickets_yet("Each week's headline numbers, trends, SLA breaches and oldest open tickets show here")
    st.stop()
weeks = mv.report_weeks(52)  # this week (so far) first, then the full weeks
this_week = weeks[0]
asked = st.query_params.get("week", "")
if mv.valid_week(asked) and asked not in weeks and asked < weeks[-1]:
    weeks.append(asked)  # a shared link may name an older week: /report?week=2026-W07
if "r_week" not in st.session_state:
    st.session_state["r_week"] = asked if asked in weeks else mv.default_week(change)


def _week_label(week: str) -> str:
    monday, sunday = mv.week_bounds(week)
    return f"{week} · {monday:%a %d %b} – {sunday:%a %d %b %Y}" + (" · so far" if week == this_week else "")


c1, c2 = st.columns([2, 3])
week = c1.selectbox("Week", weeks, format_func=_week_label, key="r_week",
                    help="ISO weeks, Monday to Sunday, in the desk's time zone. Default: the last full week, or this "
                         "week so far when the last one had no tickets.")
report = mv.load_report(change, week)
if week == this_week:
    st.info(f"**The week is not over**: these are its numbers up to today, {mv.local_today():%a %d %b}. The last "
            "full week is the next one in the list." if mv.week_has_tickets(report) else
            "**The week is not over** and has no tickets yet.", icon="⏳")

with c2:
    st.markdown("**Download**")
    cols = st.columns(len(mv.REPORT_FORMATS))
    for col, (fmt, (label, mime, ext)) in zip(cols, mv.REPORT_FORMATS.items(), strict=True):
        col.download_button(label, data=mv.report_download(week, fmt, change), file_name=f"helpdesk-{week}.{ext}",
                            mime=mime, key=f"r_dl_{fmt}", icon="⬇️", on_click="ignore")

st.subheader("Headline numbers")
mv.report_tiles(report)

trend = mv.report_trend(report)
st.subheader(f"Trends, the {max(1, trend['backlog'].shape[0])} weeks to this one")
left, right = st.columns(2)
with left:
    mv.chart(mv.figure(change, (week,), "flow_priority", lambda: charts.flow_by_priority(trend["flow"], measure="created")),
             key="r_chart_priority")
    mv.chart(mv.figure(change, (week,), "backlog", lambda: charts.backlog_line(trend["backlog"])), key="r_chart_backlog")
with right:
    mv.chart(mv.figure(change, (week,), "flow_category",
                       lambda: charts.flow_by_category(trend["flow"], measure="created")), key="r_chart_category")
    mv.chart(mv.figure(change, (week,), "sla", lambda: charts.sla_trend(trend["sla"])), key="r_chart_sla")
mv.chart(mv.figure(change, (week,), "people", lambda: charts.week_technician_bars(report)), key="r_chart_people")

st.subheader("SLA breaches")
mv.show_table(report.get("sla_breaches"), empty="No SLA target was missed this week.")
st.subheader("Oldest open tickets")
mv.show_table(report.get("oldest_open"), empty="No open tickets.")
st.subheader("Repeat issues")
mv.show_table(report.get("repeat_issues"), empty="No repeat issues this week.")
steps = report.get("preventive_steps")
if steps:
    st.subheader("Preventive steps")
    mv.show_table(steps, empty="")
