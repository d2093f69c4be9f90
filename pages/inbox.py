"""🔔 Notifications: what the signed-in staff member must act on, newest first; open one (marks it read), mark one
or all read. The rules are lib.staff_notify's; the sidebar shows the unread count (lib.ui.pages)."""

from __future__ import annotations

import streamlit as st

from lib import staff_notify
from lib.staff_notify import NoticeKind
from lib.ui import core
from lib.workflow import Role

user = core.require_role(Role.TECHNICIAN)
core.flash()
st.title("🔔 Notifications")

with core.reading() as s:
    unread = staff_notify.unread_count(s, user.id)
    mode = staff_notify.email_mode(s, user.id)

c1, c2 = st.columns([3, 1])
c1.caption(f"{unread} unread · by mail: {mode.label.lower()} (change it on My account)")
if c2.button("Mark all read", key="inbox_all_read", disabled=unread == 0, width="stretch"):
    done = core.write(lambda s: staff_notify.mark_all_read(s, user_id=user.id))
    if done is not None:
        st.session_state["flash"] = f"{done} notification(s) marked read"
        st.rerun()
unread_only = st.toggle("Unread only", value=False, key="inbox_unread_only")

with core.reading() as s:
    notes = staff_notify.list_for(s, user.id, unread_only=unread_only)
    s.expunge_all()

if not notes:
    st.info("Nothing here: you are told when a ticket is assigned or escalated to you, its requester replies, "
            "its SLA is at risk or breached, a follow-up you own falls due, or someone mentions you as "
            f"`@{user.username}` in an internal note.", icon="🔕")

def _mark_read(notification_id: int) -> bool | None:
    return core.write(lambda s: staff_notify.mark_read(s, user_id=user.id, notification_id=notification_id))


for note in notes:
    kind = NoticeKind(note.kind) if note.kind in NoticeKind._value2member_map_ else None
    with st.container(border=True):
        left, mid, right = st.columns([6, 1, 1.5])
        state = "🔵 **unread**" if note.read_at is None else "read"
        left.markdown(f"{kind.icon if kind else '🔔'} **{kind.label if kind else note.kind}** · "
                      f"{core.fmt_time(note.created_at)} · {state}")
        with left:
            st.text(note.text)  # ticket summaries and notes are user text: shown as typed, never as markup
        if note.ticket_id is not None and mid.button("Open", key=f"inbox_open_{note.id}", type="primary",
                                                     width="stretch"):
            _mark_read(note.id)
            st.switch_page("pages/ticket.py", query_params={"id": str(note.ticket_id)})
        if note.read_at is None and right.button("Mark read", key=f"inbox_read_{note.id}", width="stretch"):
            _mark_read(note.id)
            st.rerun()
if len(notes) >= 200:
    st.caption("The 200 newest are shown.")
