"""The lead's workload board: flags, who is overloaded and why, reassignment, assignment settings."""

from __future__ import annotations

import streamlit as st

from lib import acknowledge, assignment, board
from lib.ui import assignment_view as view
from lib.ui import core
from lib.workflow import Permission, Priority

user = core.require_role(Permission.VIEW_BOARD)
core.flash()
st.title("🧭 Workload board")

b = view.board_data()

# --- flags: High/Critical tickets at risk, breached or not acknowledged in time ----------------------
st.subheader(f"🚩 Flagged to you ({b.flags_total})", anchor=False)
st.caption("High and Critical tickets that are at risk, breached, or not acknowledged within their target.")
if b.flags:
    view.flags_table(b)
else:
    st.success("No High or Critical ticket is at risk, breached or past its acknowledgement target.", icon="✅")
st.markdown(f"**Acknowledgements:** {board.ack_summary(b)} Per person under *Not acknowledged* below.")

# --- who is overloaded and why ---------------------------------------------------------------------
st.subheader("👥 Load per person", anchor=False)
for p in b.overloaded:
    st.error(f"**{core.escape_md(p.name)}** is overloaded — {core.escape_md(p.why(b.now))}", icon="🔥")
unassigned = sum(b.unassigned.values())
if unassigned:
    oldest = core.fmt_age(b.unassigned_oldest)
    parts = " + ".join(f"{b.unassigned[p]} {p.label.lower()}" for p in sorted(b.unassigned, reverse=True))
    st.warning(f"**{unassigned} unassigned** open ticket(s) = {parts}; oldest created {oldest}.", icon="📥")
st.caption(f"Load = open tickets weighted by priority ({assignment.weights_text(b.weights)}) against capacity.")
view.board_chart(b)
view.board_table(b)

# --- reassignment ----------------------------------------------------------------------------------
st.subheader("🔀 Reassign", anchor=False)
owners = {p.user_id: f"{p.name} — {p.load} of {p.capacity}" for p in b.people}
owner_ids: list[int] = [0, *owners]
default_owner = b.people[0].user_id if b.people else 0
source = st.selectbox("Tickets of", owner_ids, index=owner_ids.index(default_owner), key="board_source",
                      format_func=lambda i: "— unassigned —" if i == 0 else owners[i])
listed = view.open_tickets(source or None)
by_id = {t.id: t for t in listed}
picked = st.multiselect("Tickets to move", list(by_id), format_func=lambda i: view.ticket_option(by_id[i]),
                        key=f"board_tickets_{source}", placeholder="Choose one or more tickets")
picked = [i for i in picked if i in by_id]
if picked:
    first = view.suggestions(picked[0])
    ranked = [c for c in first.candidates if c.user_id != source]
    names = {c.user_id: c for c in ranked}
    if not ranked:
        st.info("Nobody else can take it now (everyone eligible is away or inactive).")
    else:
        st.caption(view.rule_caption(first))
        target = st.selectbox("Move to", list(names), key=f"board_target_{picked[0]}",
                              format_func=lambda i: f"{names[i].name}{' (full)' if names[i].full else ''} — "
                                                    f"{names[i].explanation}")
        if len(picked) > 1:  # each ticket has its own explanation for the chosen person
            st.markdown("**Why, per ticket**")
            for tid in picked:
                found = view.suggestions(tid)
                line = next((c.explanation for c in found.candidates if c.user_id == target),
                            "not among the candidates for this ticket (e.g. escalated: seniors only)")
                st.markdown(f"- {core.escape_md(view.ticket_option(by_id[tid]))}: {core.escape_md(line)}")
        note = st.text_input("Note (optional, internal)", key="board_note")
        if st.button(f"Move {len(picked)} ticket(s) to {names[target].name}", type="primary", key="board_move"):
            moves = [(tid, by_id[tid].version) for tid in picked]
            done = core.write(lambda s: assignment.reassign(s, actor=user.id, moves=moves, assignee_id=target,
                                                            note=note or "Reassigned from the workload board"),
                              success=f"Moved {len(moves)} ticket(s) to {names[target].name}")
            if done is not None:
                for key in (f"board_tickets_{source}", "board_note"):
                    st.session_state.pop(key, None)
                st.rerun()

# --- settings --------------------------------------------------------------------------------------
with st.expander("⚙️ Assignment settings"):
    weights, auto = view.settings()
    with st.form("board_settings"):
        st.markdown("**Load weights per open ticket**")
        cols = st.columns(4)
        new = {p: cols[i].number_input(p.label, min_value=0, max_value=assignment.MAX_WEIGHT, step=1,
                                       value=weights[p], key=f"board_w_{p.name}")
               for i, p in enumerate(sorted(Priority, reverse=True))}
        auto_new = st.toggle("Reassign tickets not acknowledged within their target automatically (worker)",
                             value=auto, key="board_auto")
        if st.form_submit_button("Save settings"):
            def save(s):
                assignment.save_weights(s, actor=user.id, weights={p: int(v) for p, v in new.items()})
                acknowledge.set_auto_reassign(s, actor=user.id, enabled=auto_new)
                return True

            if core.write(save, success="Settings saved") is not None:
                st.rerun()
