"""Streamlit pieces for assignment: suggestion panels (intake, ticket page), acknowledgement and lead-flag
notices, and the workload board's reads, chart and table.

Reads are cached on the database's change marker and the current minute (SLA and acknowledgement states
move with the clock), never cleared globally.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial

import pandas as pd
import streamlit as st

from lib import acknowledge, assignment, board, board_snapshot, clock, sla
from lib.models import Ticket, ticket_ref
from lib.ui import core
from lib.ui.kept import kept
from lib.ui.queue_data import change_marker
from lib.workflow import Action, Priority, Role, Status

STATE_LABELS = {sla.SlaState.BREACHED: "🟥 breached", sla.SlaState.AT_RISK: "🟧 at risk",
                sla.SlaState.OK: "🟩 on track", sla.SlaState.PAUSED: "⏸ paused", sla.SlaState.NONE: "—"}


def _minute() -> int:
    return clock.minute()


# --- cached reads ------------------------------------------------------------------------------


def _weights() -> tuple[tuple[int, int], ...]:
    """The load weights, read on each run: a settings change moves no event, so it is part of the keys."""
    def read() -> tuple[tuple[int, int], ...]:
        with core.reading() as s:
            return tuple(sorted((int(p), w) for p, w in assignment.get_weights(s).items()))

    return core.per_run("weights", read)


@kept(ttl=120, max_entries=200)
def _suggestions(loads: tuple, ticket: tuple, minute: int, weights: tuple, ticket_id: int, _marker: int
                 ) -> assignment.Suggestions:
    """Keyed on what the ranking reads that can change: everyone's open tickets by priority (``loads``), the
    ticket itself (its change marker), the minute (who is away, skills and capacities: not events) and the
    weights. ``_marker``, the database's change marker, only saves reading it again (not part of the key)."""
    with core.reading() as s:
        return assignment.suggest(s, ticket_id, now=datetime.fromtimestamp(minute * 60, UTC), limit=None,
                                  weights={Priority(p): w for p, w in weights},
                                  # the kept copy (no GROUP BY after a write), at the marker read already
                                  open_counts=partial(board_snapshot.open_counts, marker=_marker))


def suggestions(ticket_id: int) -> assignment.Suggestions:
    from lib.ui import ticket_view

    marker = change_marker()
    with core.reading() as s:  # a write elsewhere that moves nobody's load (a note, a reply) keeps the ranking
        counts = board_snapshot.open_counts(s, marker=marker)
    loads = tuple(sorted((uid, tuple(sorted((int(p), n) for p, n in c.items()))) for uid, c in counts.items()))
    return _suggestions(loads, ticket_view.marker(ticket_id), _minute(), _weights(), ticket_id, marker)


@st.cache_data(ttl=120, max_entries=20, show_spinner=False)
def _board(marker: int, minute: int, weights: tuple) -> board.Board:
    with core.reading() as s:
        # counted from the kept snapshot of open tickets, patched by what changed (lib.board_snapshot)
        return board_snapshot.load_board(s, now=datetime.fromtimestamp(minute * 60, UTC),
                                         weights={Priority(p): w for p, w in weights}, marker=marker)


def board_data() -> board.Board:
    return _board(change_marker(), _minute(), _weights())


@st.cache_data(ttl=120, max_entries=100, show_spinner=False)
def _open_tickets(marker: int, minute: int, assignee_id: int | None) -> list[board.BoardTicket]:
    with core.reading() as s:
        return board.open_tickets(s, assignee_id=assignee_id, now=datetime.fromtimestamp(minute * 60, UTC))


def open_tickets(assignee_id: int | None) -> list[board.BoardTicket]:
    return _open_tickets(change_marker(), _minute(), assignee_id)


def settings() -> tuple[dict[Priority, int], bool]:
    with core.reading() as s:
        return assignment.get_weights(s), acknowledge.auto_reassign_enabled(s)


# --- suggestions -------------------------------------------------------------------------------


def rule_caption(found: assignment.Suggestions) -> str:
    if found.priority in assignment.URGENT:
        rule = f"{found.priority.label}: the most skilled person with room first"
    else:
        rule = f"{found.priority.label}: the least loaded person with the skill first"
    parts = [rule, f"load weights {assignment.weights_text(found.weights)}"]
    if found.escalated:
        parts.append("escalated: seniors and leads only")
    if found.excluded.get("away"):
        parts.append(f"{found.excluded['away']} away")
    return " · ".join(parts)


def candidate_line(c: assignment.Candidate) -> str:
    """The person by name (with their role when not a technician, and whether they hold it or are full), then
    the ranking's one-line reason."""
    tags = []
    if c.role is not Role.TECHNICIAN:
        tags.append(c.role.label.lower())
    if c.current:
        tags.append("current assignee")
    if c.full:
        tags.append("full")
    tag = f" ({', '.join(tags)})" if tags else ""
    return f"**{core.escape_md(c.name)}**{tag}  \n{core.escape_md(c.explanation)}"


def suggestions_list(found: assignment.Suggestions, *, key: str, can_assign: bool, limit: int = 5) -> int | None:
    """The ranked people by name, each with the reason for their place, and for a lead an "Assign to <name>"
    button under each (full width of the column, so the name is never cut); returns the id whose button was
    pressed."""
    st.caption(rule_caption(found))
    if not found.candidates:
        st.info("Nobody can take it now: everyone eligible is away or inactive.", icon="🫥")
        return None
    chosen = None
    for i, c in enumerate(found.candidates[:limit]):
        st.markdown(f"{i + 1}. {candidate_line(c)}")
        if can_assign and not c.current:
            if st.button(f"Assign to {core.escape_md(c.name)}", key=f"{key}_{c.user_id}", width="stretch",
                         type="primary" if i == 0 and not c.full else "secondary"):
                chosen = c.user_id
    return chosen


def suggestions_panel(user, t: Ticket, *, version: int):
    """Ticket page: suggested assignees with one-click assign (leads), or the best candidate for an
    unassigned ticket (anyone). Returns the write's result (None when nothing was done)."""
    from lib.ui.ticket_view import allowed

    if Status(t.status) is Status.CLOSED:
        return None
    can_assign = allowed(user, t, Action.ASSIGN)
    # Worked out only while open (open at first on an unassigned ticket): a closed panel costs the page nothing.
    panel = st.expander("🧭 Suggested assignees", expanded=t.assignee_id is None, key=f"sugg_open_{t.id}",
                        on_change="rerun")
    if not panel.open:
        return None
    with panel:
        found = suggestions(t.id)
        chosen = suggestions_list(found, key=f"sugg_{t.id}", can_assign=can_assign)
        result: list[str | None] | assignment.Candidate | None = None
        if chosen is not None:
            result = core.write(lambda s: assignment.reassign(s, actor=user.id, moves=[(t.id, version)],
                                                              assignee_id=chosen))
        if t.assignee_id is None and found.best is not None:
            if st.button(f"Assign to the best candidate ({found.best.name})", key=f"sugg_auto_{t.id}"):
                result = core.write(lambda s: assignment.auto_assign(s, actor=user.id, ticket_id=t.id,
                                                                     expected_version=version))
        elif not can_assign and t.assignee_id is not None:
            st.caption("A lead reassigns from here or from the workload board.")
    return result


# --- ticket notices ----------------------------------------------------------------------------


def ticket_notices(t: Ticket) -> None:
    """Acknowledgement state and the lead's flag, under the ticket header."""
    if Status(t.status) is Status.CLOSED:
        return
    now = clock.now()
    ack = None
    if Status(t.status) is Status.ASSIGNED and t.assignee_id is not None:
        with core.reading() as s:
            ack = acknowledge.clock_for(s, t.id)
    who = core.escape_md(t.assignee.name) if t.assignee else "the assignee"
    late = ack is not None and ack.overdue(now)
    if ack is not None and ack.due_at is not None:
        if late:
            st.warning(f"**Acknowledgement at risk** — assigned to {who} {core.fmt_age(ack.assigned_at, now=now)}, "
                       f"not acknowledged; the {ack.describe()} passed at {core.fmt_time(ack.due_at)}.", icon="🟧")
        else:
            st.caption(f"Waiting for {who} to acknowledge: due {core.fmt_time(ack.due_at)} ({ack.describe()}).")
    state = sla.state(t, now=now)
    if Priority(t.priority) in board.FLAG_PRIORITIES and (late or state in (sla.SlaState.AT_RISK,
                                                                           sla.SlaState.BREACHED)):
        what = "breached" if state is sla.SlaState.BREACHED else ("at risk" if state is sla.SlaState.AT_RISK else
                                                                    "not acknowledged in time")
        st.error(f"🚩 **Flagged to the lead**: {Priority(t.priority).label} ticket {what}.", icon="🚩")


# --- intake ------------------------------------------------------------------------------------


def intake_suggestions(user, ticket_id: int) -> bool:
    """After creation: who should take it, with one-click assign for a lead; True when a write was made."""
    found = suggestions(ticket_id)
    with core.reading() as s:
        t = s.get(Ticket, ticket_id)
        if t is None:
            return False
        assignee, version = t.assignee_id, t.version
    st.markdown("#### 🧭 Suggested assignees")
    if assignee is not None:
        st.caption("Already assigned.")
        return False
    is_lead = Role(user.role) >= Role.LEAD
    chosen = suggestions_list(found, key=f"in_sugg_{ticket_id}", can_assign=is_lead)
    if chosen is not None:
        done: list[str | None] | assignment.Candidate | None = core.write(
            lambda s: assignment.reassign(s, actor=user.id, moves=[(ticket_id, version)], assignee_id=chosen),
            success="Assigned")
        return done is not None
    if found.best is not None and st.button(f"Assign to the best candidate ({found.best.name})",
                                            key=f"in_sugg_auto_{ticket_id}"):
        done = core.write(lambda s: assignment.auto_assign(s, actor=user.id, ticket_id=ticket_id,
                                                           expected_version=version), success="Assigned")
        return done is not None
    return False


# --- the board ---------------------------------------------------------------------------------


def board_frame(b: board.Board) -> pd.DataFrame:
    rows = []
    for p in b.people:
        rows.append({
            "Technician": p.name + ("" if p.active else " (inactive)") + (" (away)" if p.away(b.now) else ""),
            "Role": p.role.label,
            "Load": min(p.share, 2.0) if p.capacity else (2.0 if p.load else 0.0),
            "Load of capacity": f"{p.load} of {p.capacity}",
            **{pr.label: p.counts.get(pr, 0) for pr in sorted(Priority, reverse=True)},
            "Not acknowledged": f"{p.unacknowledged}" + (f" ({p.ack_overdue} late)" if p.ack_overdue else ""),
            "At risk": p.at_risk,
            "Breached": p.breached,
            "Oldest open": core.fmt_age(p.oldest_created_at) if p.oldest_created_at else "—",
            "Why": p.why(b.now),
        })
    return pd.DataFrame(rows)


def board_table(b: board.Board) -> None:
    frame = board_frame(b)
    if frame.empty:
        st.info("No staff yet.")
        return
    st.dataframe(frame, hide_index=True, width="stretch", column_config={
        "Load": st.column_config.ProgressColumn("Load", help="Weighted open tickets against capacity (bar full "
                                                "at 200 %)", format="percent", min_value=0.0, max_value=2.0),
        "Why": st.column_config.TextColumn("Why", width="large"),
    })


def board_chart(b: board.Board) -> None:
    """A bar per person: weighted load stacked by priority, with the capacity marked."""
    import plotly.graph_objects as go

    people = list(reversed(b.people))  # plotly draws the first row at the bottom
    names = [p.name for p in people]
    colours = {Priority.CRITICAL: "#d62728", Priority.HIGH: "#ff7f0e", Priority.MEDIUM: "#1f77b4",
               Priority.LOW: "#aaaaaa"}
    fig = go.Figure()
    for pr in sorted(Priority, reverse=True):
        w = b.weights.get(pr, 0)
        fig.add_bar(y=names, x=[p.counts.get(pr, 0) * w for p in people], orientation="h", name=pr.label,
                    marker_color=colours[pr], customdata=[p.counts.get(pr, 0) for p in people],
                    hovertemplate=f"%{{customdata}} {pr.label.lower()} × {w} = %{{x}}<extra></extra>")
    fig.add_scatter(y=names, x=[p.capacity for p in people], mode="markers", name="Capacity",
                    marker={"symbol": "line-ns-open", "size": 26, "line": {"width": 3, "color": "black"}},
                    hovertemplate="capacity %{x}<extra></extra>")
    fig.update_layout(barmode="stack", height=max(220, 34 * len(people) + 90), margin={"l": 10, "r": 10, "t": 30,
                      "b": 10}, legend={"orientation": "h", "y": 1.08}, xaxis_title="weighted load")
    st.plotly_chart(fig, width="stretch", key="board_chart")


def flags_table(b: board.Board) -> None:
    if not b.flags:
        st.success("No High or Critical ticket is at risk, breached or waiting for an acknowledgement.", icon="✅")
        return
    rows = [{
        "Ticket": core.ticket_url(f.ticket_id), "Ref": ticket_ref(f.ticket_id), "Priority": f.priority.label,
        "State": STATE_LABELS.get(f.state, f.state.value), "Why": "; ".join(f.reasons),
        "Assignee": f.assignee or "— unassigned —", "Status": f.status.label, "Due": core.fmt_time(f.due_at),
        "Summary": f.summary,
    } for f in b.flags]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", column_config={
        "Ticket": st.column_config.LinkColumn("Ticket", display_text=r"id=(\d+)"),
    })
    if b.flags_total > len(b.flags):
        st.caption(f"Showing {len(b.flags)} of {b.flags_total}.")


def ticket_option(t: board.BoardTicket) -> str:
    state = STATE_LABELS.get(t.state, "")
    ack = " · ack late" if t.ack_due_at is not None and t.ack_due_at <= clock.now() else ""
    return f"{ticket_ref(t.id)} · {t.priority.label} · {t.category} · {state}{ack} · {t.summary[:60]}"
