"""Pieces of the ticket page: loading a snapshot, the header, side panels and the timeline."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from lib import clock, queries, sla
from lib.config import get_settings
from lib.drafts import DraftField
from lib.models import OutboxMail, Ticket, ticket_ref
from lib.queries import Related, TimelineEntry
from lib.sniff import safe_download_type
from lib.ui import core
from lib.ui.next_step import escalation_now
from lib.workflow import (
    STATUS_INFO,
    Action,
    Channel,
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
    #: Events for which the requester was mailed (written in the event's transaction, so the marker covers it).
    mailed_events: frozenset[int] = frozenset()


def marker(ticket_id: int) -> tuple[int, int, int]:
    """What changes whenever the ticket does, read cheaply: its version (field and status changes) and the newest
    id and number of its events (appends; the count also moves when a lower id commits late on PostgreSQL). Read
    once per page run (the page and its live part both ask), again after a write of the run."""
    def read() -> tuple[int, int, int]:
        with core.reading() as s:
            return _marker(s, ticket_id)

    return core.per_run(f"ticket_marker_{ticket_id}", read)


def _marker(s, ticket_id: int) -> tuple[int, int, int]:
    from sqlalchemy import func, select

    from lib.models import TicketEvent

    # One statement (one round trip): the version and the events' newest id and number.
    events = select(func.max(TicketEvent.id).label("last"), func.count().label("n")) \
        .where(TicketEvent.ticket_id == ticket_id).subquery()
    version = select(Ticket.version).where(Ticket.id == ticket_id).scalar_subquery()
    found, last, count = s.execute(select(version, events.c.last, events.c.n)).one()
    return found or 0, last or 0, count


@st.cache_data(ttl=600, max_entries=200, show_spinner=False)
def load_at(ticket_id: int, marker: tuple[int, int, int], minute: int) -> Snapshot | None:
    """The snapshot for a change marker (and the minute, so the side lists of other tickets stay fresh): every
    tab on the ticket and every fragment run reuse it until the ticket changes; another server's write moves the
    marker read from the database, so no cache is ever cleared."""
    return load(ticket_id)


def load(ticket_id: int) -> Snapshot | None:
    from lib.notify import requester_mails
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
            mailed_events=frozenset(m.event_id for m in requester_mails(s, t.id, limit=10_000)
                                    if m.event_id is not None),
        )
        s.expunge_all()
        return snap


#: The actions of the ticket page's action area, with their labels.
ACTION_CHOICES: dict[Action, str] = {
    Action.TAKE: "🙋 Take this ticket",
    Action.ACKNOWLEDGE: "👍 Acknowledge",
    Action.RESUME: "▶️ Resume work",
    Action.REQUEST_CONFIRMATION: "📨 Ask the user to confirm the fix",
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


#: The ticket page's composer tabs: one is drawn at a time.
ACTION, REPLY, NOTE, DETAILS = "📝 Action", "✉️ Reply", "🗒️ Internal note", "✏️ Details"


def composer_panels(user, ticket: Ticket) -> dict[str, tuple[DraftField, ...]]:
    """The composer's tabs this user has on this ticket, in order, each with the drafts it holds: documenting an
    action and replying to the requester where they are allowed now, an internal note and the ticket's details
    always (a details edit may be refused; the tab says why)."""
    panels: dict[str, tuple[DraftField, ...]] = {}
    if allowed(user, ticket, Action.LOG_ACTION):
        panels[ACTION] = (DraftField.ACTION,)
    if allowed(user, ticket, Action.PUBLIC_REPLY):
        panels[REPLY] = (DraftField.REPLY,)
    panels[NOTE] = (DraftField.NOTE,)
    panels[DETAILS] = (DraftField.SUMMARY, DraftField.DESCRIPTION, DraftField.DEVICE_DETAILS)
    return panels


def _clip(text: str, *, lines: int = 8, chars: int = 700) -> tuple[str, bool]:
    """The start of a long text, cut at a line or word, and whether it was cut."""
    rows = text.split("\n")
    short = "\n".join(rows[:lines])
    if len(short) > chars:
        short = short[:chars].rsplit(" ", 1)[0]
    return (short, True) if short.strip() != text.strip() else (text, False)


def problem(snap: Snapshot) -> None:
    """The problem first, compact: summary, the requester's words, who reported it and how to reach them, the
    device. User text is shown as data (escaped), never as markup."""
    t = snap.ticket
    with st.container(key="problem"):
        st.subheader(f"🎫 {ticket_ref(t.id)} · {core.escape_md(core.reveal_bidi(t.summary))}", anchor=False)
        text = core.reveal_bidi(t.description or "").strip()
        if text:
            short, cut = _clip(text)
            with st.container(key="problem_description"):
                core.user_text(short + (" …" if cut else ""))
            if cut:
                with st.expander("Full description"):
                    core.user_text(text)
        else:
            st.caption("No description was given.")
        who = []
        if t.requester:
            r = t.requester
            who.append("👤 **" + core.escape_md(core.reveal_bidi(r.name or r.email or "—")) + "**")
            contact = [x for x in (r.email, r.phone) if x and x != r.name]
            if contact:
                who.append(core.escape_md(core.reveal_bidi(" · ".join(contact))))
            else:
                who.append("no e-mail address or phone")
        else:
            who.append("👤 no requester (e.g. a monitoring alert)")
        device = []
        if t.device:
            d = t.device
            device.append(" ".join(x for x in (d.asset_tag, d.make_model or d.device_type) if x))
        if t.device_details:
            device.append(t.device_details.splitlines()[0][:120])
        who.append("💻 " + (core.escape_md(core.reveal_bidi(" · ".join(device))) if device else "no device recorded"))
        how = LOGGED_HOW.get(Channel(t.channel)) if t.channel in Channel._value2member_map_ else None
        who.append(f"{how or 'logged'} on {core.fmt_time(t.created_at)}")
        st.markdown(" · ".join(who))


#: How a ticket came in, as the ticket page's requester line says it ("logged by phone on Thu 03 Dec 2026 10:00").
LOGGED_HOW: dict[Channel, str] = {
    Channel.EMAIL: "logged from an e-mail",
    Channel.PHONE: "logged by phone",
    Channel.WALK_IN: "logged at a walk-in",
    Channel.ON_BEHALF: "logged on the requester's behalf",
    Channel.ALERT: "logged by a monitoring alert",
    Channel.IMPORT: "imported",
}


def header(snap: Snapshot) -> None:
    """The problem, then the live state: status, priority, SLA, escalation now, assignee and clocks."""
    t = snap.ticket
    now = clock.now()
    problem(snap)
    status = Status(t.status)
    # One element for the badges and the assignee: each element costs the page run.
    badges = [core.status_badge_md(status), core.priority_badge_md(Priority(t.priority))]
    state = sla.state(t, now=now)
    if state is not sla.SlaState.NONE:
        colours: dict[str, core.BadgeColour] = {"ok": "green", "at_risk": "orange", "breached": "red"}
        badges.append(core.badge_md(f"SLA: {state.label}", icon=sla.SLA_ICONS[state] or None,
                                    color=colours.get(state.value, "gray")))
    level = escalation_now(status, snap.timeline, level=t.escalation_level)
    if level is not None:
        badges.append(core.badge_md(f"Escalated: {level.label}", icon="⬆️", color="violet"))
    badges.append(f"&nbsp;**Assignee:** {core.escape_md(t.assignee.name) if t.assignee else '— unassigned —'}")
    with st.container(key="state_badges"):
        st.markdown(" ".join(badges))
    parts = [f"Category: {core.escape_md(t.category.name)}"]
    if STATUS_INFO[status].open or STATUS_INFO[status].resolved:
        due = core.fmt_time(t.resolution_due_at) if t.resolution_due_at else ("paused" if t.sla_policy else "—")
        parts.append(f"Resolution due: {due}")
        resp = sla.responded_at(t)
        parts.append(f"First response: {core.fmt_time(resp) if resp else 'due ' + core.fmt_time(t.response_due_at)}")
    elif t.closed_at:
        parts.append(f"Closed: {core.fmt_time(t.closed_at)}")
    st.caption(" · ".join(parts))
    if t.vendor_name and level is EscalationLevel.VENDOR:
        promised = core.fmt_time(t.vendor_promised_at) if t.vendor_promised_at else "no promise yet"
        st.caption(f"Vendor: {core.escape_md(t.vendor_name)} · case {core.escape_md(t.vendor_case_ref or '—')} · "
                   f"promised {promised}")
    if t.parent_id:
        st.caption(f"Part of major incident [{ticket_ref(t.parent_id)}]({core.ticket_url(t.parent_id)})")


def _related_list(title: str, rows: list[Related]) -> None:
    if not rows:
        return
    st.markdown(f"**{title}**\n" + "".join(  # one element for the list: each element costs the page run
        f"\n- [{ticket_ref(r.id)}]({core.ticket_url(r.id)}) · {r.status.label} · "
        f"{core.fmt_time(r.created_at)} · {core.escape_md(core.reveal_bidi(r.summary[:60]))}" for r in rows))


def side_panels(snap: Snapshot) -> None:
    t = snap.ticket
    # Each panel's heading and facts are one element (each element costs the page run); what people typed is
    # shown as typed (escaped), never as markup.
    with st.container(border=True):
        if t.requester:
            r = t.requester
            st.markdown("#### 👤 Requester\n\n" + core.user_md(core.reveal_bidi(
                "\n".join(x for x in (r.name, r.email, r.phone, r.department, r.location) if x))))
            _related_list("Their other tickets", snap.requester_other)
        else:
            st.markdown("#### 👤 Requester\n\nNo requester (e.g. a monitoring alert).")
    with st.container(border=True):
        facts = []
        if t.device:
            d = t.device
            facts.append("\n".join(x for x in (d.asset_tag, d.device_type, d.make_model, d.os, d.serial, d.location) if x))
        if t.device_details:
            facts.append(t.device_details)
        st.markdown("#### 💻 Device\n\n" + ("\n\n".join(core.user_md(core.reveal_bidi(f)) for f in facts)
                                              if facts else "No device recorded."))
        if t.device:
            _related_list("Other tickets for this device", snap.device_other)
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


#: Tints of the timeline: public entries blue, internal ones amber, each with a thick left border (the label
#: says the same in words and icon, for anyone who does not see the colour). Static CSS, no user text in it.
_TIMELINE_CSS = """<style>
[class*="st-key-tl_pub_"] {border-left: 6px solid #1c7ed6 !important; background: rgba(28,126,214,0.06);}
[class*="st-key-tl_int_"] {border-left: 6px dashed #e8a400 !important; background: rgba(232,164,0,0.08);}
</style>"""


def visibility_label(e: TimelineEntry, ticket: Ticket, mailed: frozenset[int] = frozenset()) -> str:
    """Who sees an entry, in words: internal (staff only) or public, and whether the requester was mailed about it
    (``mailed``: the events with a mail to the requester)."""
    r = ticket.requester
    name = core.escape_md(core.reveal_bidi(r.name or r.email or "the requester")) if r is not None else ""
    if not e.public:
        what = "Internal note" if e.kind == EventKind.INTERNAL_NOTE.value else "Internal"
        if e.id in mailed:
            return f"🔒 **{what}** — {name} got a status update only"
        return f"🔒 **{what}** — not sent to the requester"
    if e.kind == EventKind.INBOUND_EMAIL.value:
        return "📥 **Public** — from the requester"
    if e.id in mailed:
        return f"📣 **Public** — sent to {name}"
    return "📣 **Public** — visible to the requester, not mailed"


def timeline(snap: Snapshot, *, show_internal: bool = True) -> None:
    entries = [e for e in snap.timeline if show_internal or e.public]
    if not entries:
        st.caption("No events.")
        return
    st.html(_TIMELINE_CSS)
    for e in reversed(entries):
        with st.container(border=True, key=f"tl_{'pub' if e.public else 'int'}_{e.id}"):
            # One element per entry (each element costs the page run); the body is user text: data, never markup.
            st.markdown(f"**{_headline(e)}**  \n{visibility_label(e, snap.ticket, snap.mailed_events)} · "
                        f"{core.escape_md(core.reveal_bidi(e.actor))} · {core.fmt_time(e.occurred_at)}"
                        + (f"\n\n{core.user_md(e.body)}" if e.body else ""))


# --- mail to the requester -------------------------------------------------------------------------------------

_STATE_ICONS = {"pending": "⏳", "sent": "✅", "failed": "❌", "cancelled": "🚫"}


def mail_state(m: OutboxMail) -> str:
    """The delivery state of one outbox mail in words."""
    icon = _STATE_ICONS.get(m.state, "•")
    if m.state == "sent":
        return f"{icon} sent {core.fmt_time(m.sent_at)}" if m.sent_at else f"{icon} sent"
    if m.state == "failed":
        return f"{icon} failed: {core.escape_md((m.last_error or 'no reason given')[:200])}"
    if m.state == "pending":
        tries = f", {m.attempts} attempt(s) so far, next {core.fmt_time(m.next_attempt_at)}" if m.attempts else ""
        return f"{icon} pending{tries}"
    return f"{icon} {core.escape_md(m.state)}"


def requester_mail(ticket_id: int, ticket: Ticket | None = None) -> None:
    """What the requester has been sent about this ticket, newest first, with each mail's delivery state
    (``ticket``: the page's snapshot of it, when it has one)."""
    from lib.notify import requester_mails

    with core.reading() as s:
        mails = requester_mails(s, ticket_id, ticket=ticket)
        for m in mails:
            s.expunge(m)
    with st.container(border=True, key="requester_mail"):
        heading = f"#### 📨 Sent to the requester ({len(mails)})\n\n"
        if not mails:
            st.markdown(heading + "Nothing has been mailed to the requester about this ticket.")
            return
        st.markdown(heading + _mail_lines(mails[:8]))  # one element: each element costs the page run
        if len(mails) > 8:
            with st.expander(f"{len(mails) - 8} earlier"):
                st.markdown(_mail_lines(mails[8:]))


def _mail_lines(mails: list[OutboxMail]) -> str:
    """Each mail's subject (bold) over its time and delivery state, a blank line between mails."""
    return "\n\n".join(f"**{core.escape_md(core.reveal_bidi(m.subject))}**  \n"
                       f"{core.fmt_time(m.created_at)} · {mail_state(m)}" for m in mails)


def mail_preview(ticket: Ticket, kind: EventKind, *, message: str = "", to_status: Status | None = None,
                 meta: dict | None = None) -> None:
    """Under a box that sends something: what the requester will get from it (rendered with the desk's
    templates), or why nothing is mailed."""
    from lib.notify import requester_preview

    quiet = _quiet(get_settings().database_url, ticket.id, ticket.channel)
    with core.reading() as s:
        # ``ticket`` is the page's snapshot (its requester loaded): no need to read it again for each preview.
        preview = requester_preview(s, ticket, kind.value, message=message, to_status=to_status, meta=meta,
                                    quiet=quiet)
    if preview.subject is None:
        st.caption(f"✉️ {preview.reason}")
        return
    # The mail is drawn only while its expander is open: a closed one costs the page run one element.
    shown = st.expander(f"✉️ The requester will get: {core.escape_md(core.reveal_bidi(preview.subject))}",
                        key=f"mail_preview_{ticket.id}_{kind.value}", on_change="rerun")
    if shown.open:
        with shown:
            st.caption(f"To {core.escape_md(core.reveal_bidi(preview.to))}")
            st.text(core.reveal_bidi(preview.body))


@st.cache_data(max_entries=5000, show_spinner=False)
def _quiet(database_url: str, ticket_id: int, channel: str) -> bool:
    """lib.notify.quiet_ticket: decided when the ticket was opened (by the mail that opened it) and never changed,
    so read once per ticket and database."""
    from lib.notify import quiet_ticket_id

    with core.reading() as s:
        return quiet_ticket_id(s, ticket_id, channel)


def closure_preview(snap: Snapshot, reason) -> list[str]:
    """What closing with ``reason`` still needs, shown before the user presses the button."""
    from datetime import timedelta

    from lib.workflow import closure_missing

    missing = closure_missing(reason, snap.facts, now=clock.now(),
                              confirmation_wait=timedelta(days=get_settings().confirmation_wait_days),
                              duplicate_of=-1, ticket_id=snap.ticket.id, note="(to be written)")
    return missing
