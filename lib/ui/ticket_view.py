"""Pieces of the ticket page: loading a snapshot, the header, side panels and the timeline."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from lib import clock, queries, sla
from lib.models import Ticket, ticket_ref
from lib.queries import Related, TimelineEntry
from lib.sniff import safe_download_type
from lib.ui import core
from lib.workflow import (
    Action,
    EscalationLevel,
    EventKind,
    Priority,
    Role,
    Status,
    TicketFacts,
    is_allowed,
    may,
)


@dataclass
class Snapshot:
    ticket: Ticket
    timeline: list[TimelineEntry]
    last_event_id: int
    requester_other: list[Related]
    device_other: list[Related]
    children: list[Related]
    attachments: list
    facts: TicketFacts  # what the closure guards read, as the services read it


def load(ticket_id: int) -> Snapshot | None:
    from lib.ticket_core import facts

    with core.reading() as s:
        t = queries.get_ticket(s, ticket_id)
        if t is None:
            return None
        _ = (t.requester, t.device, t.category, t.assignee)  # load before the session closes
        snap = Snapshot(
            ticket=t,
            timeline=queries.timeline(s, ticket_id),
            last_event_id=queries.last_event_id(s, ticket_id),
            requester_other=queries.requester_tickets(s, t.requester_id, exclude=t.id) if t.requester_id else [],
            device_other=queries.device_tickets(s, t.device_id, exclude=t.id) if t.device_id else [],
            children=queries.child_tickets(s, t.id) if t.is_major_incident else [],
            attachments=queries.attachments(s, t.id),
            facts=facts(s, t),
        )
        s.expunge_all()
        return snap


#: The actions the ticket page offers as choices, in the order shown, with their labels.
ACTION_CHOICES: dict[Action, str] = {
    Action.ASSIGN: "👤 Assign",
    Action.REQUEST_INFO: "❓ Request information",
    Action.ESCALATE_SENIOR: "⬆️ Escalate to a senior",
    Action.ESCALATE_VENDOR: "🏭 Escalate to a vendor",
    Action.RESOLVE: "✅ Resolve",
    Action.RECORD_CONFIRMATION: "🙆 Record confirmation",
    Action.CLOSE: "🔒 Close",
    Action.REOPEN: "↩️ Reopen",
    Action.LINK: "🔗 Link to a major incident",
}


def allowed(user, ticket: Ticket, action: Action) -> bool:
    """Whether the action is possible now (status) and permitted for this user (role, assignment)."""
    return is_allowed(Status(ticket.status), action) and may(
        action, role=Role(user.role), actor_id=user.id, assignee_id=ticket.assignee_id,
        escalation=EscalationLevel(ticket.escalation_level),
    )


def header(snap: Snapshot) -> None:
    t = snap.ticket
    now = clock.now()
    st.title(f"🎫 {ticket_ref(t.id)}")
    st.subheader(core.escape_md(core.reveal_bidi(t.summary)), anchor=False)
    cols = st.columns([1, 1, 1, 1, 3])
    with cols[0]:
        core.status_badge(Status(t.status))
    with cols[1]:
        core.priority_badge(Priority(t.priority))
    with cols[2]:
        state = sla.state(t, now=now)
        if state is not sla.SlaState.NONE:
            colours: dict[str, core.BadgeColour] = {"ok": "green", "at_risk": "orange", "breached": "red"}
            st.badge(f"SLA: {state.label}", icon=sla.SLA_ICONS[state] or None, color=colours.get(state.value, "gray"))
    with cols[3]:
        if t.escalation_level:
            st.badge(f"Escalated: {EscalationLevel(t.escalation_level).label}", icon="⬆️", color="violet")
    m = st.columns(5)
    m[0].markdown(f"**Assignee**  \n{core.escape_md(t.assignee.name) if t.assignee else '— unassigned —'}")
    m[1].markdown(f"**Category**  \n{core.escape_md(t.category.name)}")
    m[2].markdown(f"**Created**  \n{core.fmt_time(t.created_at)}")
    due = core.fmt_time(t.resolution_due_at) if t.resolution_due_at else ("paused" if t.sla_policy else "—")
    m[3].markdown(f"**Resolution due**  \n{due}")
    resp = sla.responded_at(t)
    m[4].markdown(f"**First response**  \n{core.fmt_time(resp) if resp else 'due ' + core.fmt_time(t.response_due_at)}")
    if t.vendor_name:
        promised = core.fmt_time(t.vendor_promised_at) if t.vendor_promised_at else "no promise yet"
        st.caption(f"Vendor: {core.escape_md(t.vendor_name)} · case {core.escape_md(t.vendor_case_ref or '—')} · "
                   f"promised {promised}")
    if t.parent_id:
        st.caption(f"Part of major incident [{ticket_ref(t.parent_id)}]({core.ticket_url(t.parent_id)})")


def _related_list(title: str, rows: list[Related]) -> None:
    if not rows:
        return
    st.markdown(f"**{title}**")
    for r in rows:
        st.markdown(f"- [{ticket_ref(r.id)}]({core.ticket_url(r.id)}) · {r.status.label} · "
                    f"{core.fmt_time(r.created_at)} · {core.escape_md(core.reveal_bidi(r.summary[:60]))}")


def side_panels(snap: Snapshot) -> None:
    t = snap.ticket
    with st.container(border=True):
        st.markdown("#### 👤 Requester")
        if t.requester:
            r = t.requester
            st.text(core.reveal_bidi("\n".join(x for x in (r.name, r.email, r.phone, r.department, r.location) if x)))
            _related_list("Their other tickets", snap.requester_other)
        else:
            st.caption("No requester (e.g. a monitoring alert).")
    with st.container(border=True):
        st.markdown("#### 💻 Device")
        if t.device:
            d = t.device
            st.text("\n".join(x for x in (d.asset_tag, d.device_type, d.make_model, d.os, d.serial, d.location) if x))
            _related_list("Other tickets for this device", snap.device_other)
        if t.device_details:
            st.text(t.device_details)
        if not t.device and not t.device_details:
            st.caption("No device recorded.")
    if snap.children:
        with st.container(border=True):
            st.markdown(f"#### 🧩 Linked tickets ({len(snap.children)})")
            _related_list("Tickets of this incident", snap.children)
    if snap.attachments:
        with st.container(border=True):
            st.markdown("#### 📎 Attachments")
            for att in snap.attachments:
                st.download_button(f"{att.filename} ({att.size:,} bytes)", data=lambda a=att.id: _attachment(a),  # type: ignore[misc]  # mypy#15459: a=att.id binds this attachment
                                   file_name=att.filename, mime=safe_download_type(att.content_type), key=f"att_{att.id}",
                                   on_click="ignore")


def _attachment(attachment_id: int) -> bytes:
    with core.reading() as s:
        found = queries.attachment_bytes(s, attachment_id)
        return found[1] if found else b""


_KIND_ICONS = {
    EventKind.CREATED: "🆕", EventKind.ASSIGNED: "👤", EventKind.ACKNOWLEDGED: "👍", EventKind.ACTION: "🛠️",
    EventKind.WORKAROUND: "🩹", EventKind.PUBLIC_REPLY: "💬", EventKind.INTERNAL_NOTE: "🗒️",
    EventKind.INFO_REQUESTED: "❓", EventKind.ESCALATED: "⬆️", EventKind.RESUMED: "▶️", EventKind.RESOLVED: "✅",
    EventKind.CONFIRMATION_REQUESTED: "📨", EventKind.CONFIRMED: "🙆", EventKind.CLOSED: "🔒",
    EventKind.REOPENED: "↩️", EventKind.LINKED: "🔗", EventKind.FIELD_CHANGED: "✏️", EventKind.SLA_BREACHED: "🟥",
    EventKind.INBOUND_EMAIL: "📥", EventKind.MAIL_SENT: "📤", EventKind.ALERT: "🚨", EventKind.ATTACHMENT: "📎",
    EventKind.OVERRIDE: "⚠️", EventKind.STATUS_CHANGED: "🔀", EventKind.KB_LINKED: "📚", EventKind.KB_DRAFTED: "📝",
    EventKind.FOLLOW_UP_SCHEDULED: "📅", EventKind.FOLLOW_UP_REMINDED: "⏰", EventKind.FOLLOW_UP_COMPLETED: "☑️",
    EventKind.PREVENTIVE_STEPS: "🛡️",
}


def _headline(e: TimelineEntry) -> str:
    kind = EventKind(e.kind) if e.kind in EventKind._value2member_map_ else None
    label = e.kind.replace("_", " ").capitalize()
    if kind is EventKind.ACTION and e.meta:
        label = f"Action: {str(e.meta.get('action', '')).replace('_', ' ')}"
    if e.field:
        label = (f"Changed {e.field.replace('_', ' ')}: {core.escape_md(e.old_value or '—')} → "
                 f"{core.escape_md(e.new_value or '—')}")
    elif e.to_status and e.from_status != e.to_status:
        label += f" · {Status(e.from_status).label if e.from_status else '—'} → {Status(e.to_status).label}"
    if e.minutes:
        label += f" · {e.minutes} min"
    return f"{_KIND_ICONS.get(kind, '•') if kind else '•'} {label}"


def timeline(snap: Snapshot, *, show_internal: bool = True) -> None:
    entries = [e for e in snap.timeline if show_internal or e.public]
    if not entries:
        st.caption("No events.")
        return
    for e in reversed(entries):
        with st.container(border=True):
            visibility = ":blue-background[public — the requester sees this]" if e.public else \
                ":gray-background[internal]"
            st.markdown(f"**{_headline(e)}**  \n{visibility} · {core.escape_md(core.reveal_bidi(e.actor))} · "
                        f"{core.fmt_time(e.occurred_at)}")
            if e.body:
                core.user_text(e.body)  # user text is data, never markup


def closure_preview(snap: Snapshot, reason) -> list[str]:
    """What closing with ``reason`` still needs, shown before the user presses the button."""
    from datetime import timedelta

    from lib.config import get_settings
    from lib.workflow import closure_missing

    missing = closure_missing(reason, snap.facts, now=clock.now(),
                              confirmation_wait=timedelta(days=get_settings().confirmation_wait_days),
                              duplicate_of=-1, ticket_id=snap.ticket.id, note="(to be written)")
    return missing
