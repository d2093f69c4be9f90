"""One ticket (?id=N): the problem first, the live header, the next step (one primary button, the rest in a
menu), documentation and editable fields, side panels and the timeline."""

from __future__ import annotations

from datetime import datetime, time

import streamlit as st

from lib import clock, tickets
from lib.drafts import DraftField
from lib.models import Attachment, Ticket, ticket_ref
from lib.queries import parse_ref
from lib.ui import assignment_view, canned_view, core, kb_view, next_step, ticket_view, workspace_view
from lib.ui.core import write
from lib.workflow import (
    Action,
    ActionKind,
    ClosureReason,
    ConfirmationVia,
    EventKind,
    Priority,
    Role,
    Status,
    next_status,
)

user = core.require_role(Role.TECHNICIAN)
core.flash()

raw_id = st.query_params.get("id")
ticket_id = parse_ref(raw_id) if raw_id else None
if ticket_id is None:
    st.title("🎫 Open a ticket")
    ref = st.text_input("Ticket number", placeholder=f"{ticket_ref(123)} or 123")
    if ref:
        if parse_ref(ref) is None:
            st.error(f"{ref!r} is not a ticket number.")
        else:
            st.query_params["id"] = str(parse_ref(ref))
            st.rerun()
    st.stop()

ticket_marker = ticket_view.marker(ticket_id)
newest = ticket_view.load_at(ticket_id, ticket_marker, clock.minute())
if newest is None:
    st.error(f"Ticket {raw_id} does not exist.")
    st.markdown("[📋 Back to the queue](/)")
    st.stop()
tid = newest.ticket.id
vkey, ekey = f"loaded_version_{tid}", f"loaded_event_{tid}"
# The tab works on the ticket as it loaded it until its person reloads: the actions, forms and side panels are
# drawn from that snapshot on every run, and field and status saves compare its version. Drawing them from the
# newest state instead re-laid the page under the pointer after someone else's change: the first click landed
# on a control that had just gone (a form of the old status) or moved, and was lost. Others' changes show at once
# in the live part above and below (header, notice, timeline); a save that meets them is refused with who, what
# and when. One snapshot per tab: the ticket version this tab loaded, not a copy of the desk's data.
pinned = st.session_state.get("loaded_snapshot")
if vkey not in st.session_state or pinned is None or pinned.ticket.id != tid:
    st.session_state["loaded_snapshot"] = pinned = newest
    st.session_state[vkey] = newest.ticket.version
    st.session_state[ekey] = newest.last_event_id
snap = pinned
t = snap.ticket
loaded_version = st.session_state[vkey]
box = workspace_view.Drafts(user.id, tid)  # what this person is writing here, kept in the database
F = DraftField


def saved(result, message: str, *clear: str) -> None:
    """After a successful write: the sent drafts are gone (same transaction); reload this tab at the new version."""
    if result is None:
        return
    box.forget(*clear)
    st.session_state.pop(f"act_{tid}", None)  # the next step is chosen afresh for the new state
    st.session_state.pop(f"more_{tid}", None)
    st.session_state.pop(vkey, None)
    st.session_state.pop("stale_message", None)
    st.session_state["flash"] = message
    st.rerun()


# The problem, the header, who else is here and what changed since this tab loaded: drawn by the live fragment
# (end of the page), so they are always the newest state.
top = st.container()
assignment_view.ticket_notices(t)
kb_view.ticket_repeats(tid, user, marker=ticket_marker)
main, side = st.columns([2, 1], gap="large")
with side:
    ticket_view.side_panels(snap)
    ticket_view.requester_mail(tid, newest.ticket)
    kb_view.ticket_knowledge(t, user)
    kb_view.follow_ups_panel(tid, user)
    if Status(t.status) is not Status.CLOSED:
        kb_view.suggestions(t.summary, category_id=t.category_id, description=t.description, ticket_id=tid, user=user)
    saved(assignment_view.suggestions_panel(user, t, version=loaded_version), "Assignment saved")

with main:
    status = Status(t.status)
    A = Action
    # --- the next step: one primary button, the other allowed actions in a menu ---------------------------------
    # Drawn from this tab's snapshot, so nothing moves under the pointer when someone else changes the ticket.
    steps = next_step.plan(status, [a for a in next_step.PAGE_ACTIONS if ticket_view.allowed(user, t, a)],
                           assigned=t.assignee_id is not None, confirmed=t.confirmed_at is not None)

    def label(action: Action) -> str:
        if action is A.REQUEST_CONFIRMATION and status is Status.AWAITING_CONFIRMATION:
            return "📨 Remind the user to confirm"
        return ticket_view.ACTION_CHOICES.get(action, action.label)

    # One key per ticket, whatever its status: a key that changed with the status made the first click after
    # someone else's change land on a widget that no longer existed. A choice no longer offered is dropped.
    act_key, more_key = f"act_{tid}", f"more_{tid}"
    if st.session_state.get(act_key) not in steps.all:
        st.session_state[act_key] = None
    if st.session_state.get(more_key) not in steps.others:
        st.session_state[more_key] = None

    def choose_primary() -> None:
        st.session_state[act_key] = steps.primary
        st.session_state[more_key] = None

    def choose_more() -> None:
        st.session_state[act_key] = st.session_state.get(more_key)

    def run_now(action: Action) -> None:
        """The one-click actions, from the primary button or from their panel."""
        if action is A.TAKE:
            saved(write(lambda s: tickets.take(s, actor=user.id, ticket_id=tid)), "You took the ticket")
        elif action is A.ACKNOWLEDGE:
            saved(write(lambda s: tickets.acknowledge(s, actor=user.id, ticket_id=tid,
                                                      expected_version=loaded_version)), "Acknowledged")
        elif action is A.RESUME:
            saved(write(lambda s: tickets.resume(s, actor=user.id, ticket_id=tid,
                                                 expected_version=loaded_version)), "Back in progress")
        elif action is A.REQUEST_CONFIRMATION:
            saved(write(lambda s: tickets.request_confirmation(s, actor=user.id, ticket_id=tid,
                                                               expected_version=loaded_version)),
                  "Confirmation requested")

    def preview(action: Action, message: str = "", meta: dict | None = None) -> None:
        kind = next_step.ACTION_EVENTS.get(action)
        if kind is not None:
            ticket_view.mail_preview(t, kind, message=message, meta=meta, to_status=next_status(status, action))

    chosen: Action | None = None
    with st.container(key="next_step"):
        if steps.primary is None:
            st.info("No actions for you on this ticket right now. You can still add an internal note below."
                    if status is not Status.CLOSED else
                    "This ticket is closed. Reopen it within the reopen window, or log a new linked ticket.",
                    icon="ℹ️")
        else:
            with st.container(horizontal=True, vertical_alignment="bottom", gap="small", key="action_bar"):
                immediate = steps.primary in next_step.IMMEDIATE
                help_text = next_step.HELP.get(steps.primary)
                if st.button(label(steps.primary), type="primary", key=f"primary_{steps.primary.value}",
                             help=help_text, on_click=None if immediate else choose_primary):
                    if immediate:
                        run_now(steps.primary)
                if steps.others:
                    st.selectbox("More actions", steps.others, index=None, key=more_key, format_func=label,
                                 placeholder=f"{len(steps.others)} more: choose…", on_change=choose_more, width=300)
            chosen = st.session_state.get(act_key)
            if steps.primary in next_step.IMMEDIATE and chosen is None:
                preview(steps.primary)

    # The text boxes are not in st.form: a form sends its values only on submit, so what was typed in it was
    # lost on a panel switch. Outside a form a box commits on blur (or Ctrl+Enter) and is kept as a draft.
    if chosen in next_step.IMMEDIATE:
        with st.container(border=True, key="now_form"):
            st.caption(next_step.HELP.get(chosen, ""))
            preview(chosen)
            if st.button(label(chosen), type="primary", key=f"now_{chosen.value}"):
                run_now(chosen)
    if chosen == A.ASSIGN:
        with st.container(border=True, key="assign_form"):
            from lib.ui.queue_data import lookups

            people = dict(lookups(0)["people"])
            opts = [0, *people]
            current = t.assignee_id if t.assignee_id in people else 0
            who = st.selectbox("Assign to", opts, index=opts.index(current), key="assign_to",
                               format_func=lambda i: "— unassigned —" if i == 0 else people[i])
            note = box.box("Note (optional)", F.ASSIGN_NOTE, key="assign_note", widget=st.text_input)
            preview(A.ASSIGN)
            if st.button("Assign", type="primary", key="assign_go"):
                saved(write(box.sending(lambda s: tickets.assign(
                    s, actor=user.id, ticket_id=tid, assignee_id=who or None, expected_version=loaded_version,
                    note=note), F.ASSIGN_NOTE)), "Assignment saved", "assign_note")
    if chosen == A.REQUEST_INFO:
        with st.container(border=True, key="info_form"):
            text = box.box("What do you need? (sent to the requester)", F.INFO_REQUEST, key="info_text")
            preview(A.REQUEST_INFO, text)
            if st.button("Send request and wait on user", type="primary", key="info_go"):
                saved(write(box.sending(lambda s: tickets.request_info(
                    s, actor=user.id, ticket_id=tid, expected_version=loaded_version, text=text),
                    F.INFO_REQUEST)), "Request sent; the ticket waits on the user", "info_text")
    if chosen == A.ESCALATE_SENIOR:
        from lib.ui.queue_data import seniors

        senior_opts = seniors(0)
        with st.container(border=True, key="senior_form"):
            senior = st.selectbox("Senior", list(senior_opts), format_func=lambda i: senior_opts[i], key="esc_senior")
            reason = box.box("Reason", F.ESCALATION_REASON, key="esc_reason")
            preview(A.ESCALATE_SENIOR, meta={"level": "senior"})
            if st.button("Escalate", type="primary", key="esc_go"):
                saved(write(box.sending(lambda s: tickets.escalate_to_senior(
                    s, actor=user.id, ticket_id=tid, expected_version=loaded_version, senior_id=senior,
                    reason=reason), F.ESCALATION_REASON)), "Escalated", "esc_reason")
    if chosen == A.ESCALATE_VENDOR:
        with st.container(border=True, key="vendor_form"):
            vendor = box.box("Vendor", F.VENDOR_NAME, key="vendor_name", widget=st.text_input)
            case = box.box("Vendor case reference", F.VENDOR_CASE, key="vendor_case", widget=st.text_input)
            c1, c2 = st.columns(2)
            pdate = c1.date_input("Vendor promised by (date)", value=None, key="vendor_date")
            ptime = c2.time_input("time", value=time(17, 0), key="vendor_time")
            note = box.box("Vendor note", F.VENDOR_NOTE, key="vendor_note")
            preview(A.ESCALATE_VENDOR, meta={"level": "vendor"})
            if st.button("Escalate to vendor", type="primary", key="vendor_go"):
                promised = datetime.combine(pdate, ptime, tzinfo=core.tz()) if pdate else None
                saved(write(box.sending(lambda s: tickets.escalate_to_vendor(
                    s, actor=user.id, ticket_id=tid, expected_version=loaded_version, vendor_name=vendor,
                    case_ref=case, promised_at=promised, note=note), F.VENDOR_NOTE, F.VENDOR_NAME,
                    F.VENDOR_CASE)), "Escalated to vendor", "vendor_note", "vendor_name", "vendor_case")
    if chosen == A.RESOLVE:
        with st.container(border=True, key="resolve_form"):
            notes = box.box("Resolution notes (what fixed it; sent to the requester)", F.RESOLUTION_NOTES,
                            key="res_notes", initial=t.resolution_notes or "")
            cause = box.box("Root cause", F.ROOT_CAUSE, key="res_cause", initial=t.root_cause or "")
            unknown = box.box("…or why no root cause was found", F.ROOT_CAUSE_UNKNOWN, key="res_unknown",
                              initial=t.root_cause_unknown_reason or "", widget=st.text_input)
            preview(A.RESOLVE, notes)
            if st.button("Resolve", type="primary", key="resolve_go"):
                saved(write(box.sending(lambda s: tickets.resolve(
                    s, actor=user.id, ticket_id=tid, expected_version=loaded_version, resolution_notes=notes,
                    root_cause=cause or None, root_cause_unknown_reason=unknown or None),
                    F.RESOLUTION_NOTES, F.ROOT_CAUSE, F.ROOT_CAUSE_UNKNOWN)), "Resolved",
                    "res_notes", "res_cause", "res_unknown")
    if chosen == A.RECORD_CONFIRMATION:
        with st.container(border=True, key="conf_form"):
            via = st.selectbox("How did they confirm?", [v.value for v in ConfirmationVia if v.value != "link"],
                               format_func=lambda v: v.replace("_", " "), key="conf_via")
            by = box.box("Who confirmed", F.CONFIRMED_BY, key="conf_by", widget=st.text_input,
                         initial=t.requester.name if t.requester else "")
            note = box.box("Confirmation note", F.CONFIRMATION_NOTE, key="conf_note", widget=st.text_input)
            preview(A.RECORD_CONFIRMATION)
            if st.button("Record confirmation", type="primary", key="conf_go"):
                saved(write(box.sending(lambda s: tickets.record_confirmation(
                    s, actor=user.id, ticket_id=tid, expected_version=loaded_version, via=via, confirmed_by=by,
                    note=note), F.CONFIRMATION_NOTE, F.CONFIRMED_BY)), "Confirmation recorded", "conf_note",
                    "conf_by")
    if chosen == A.CLOSE:
        reason = st.selectbox("Closure reason", [r.value for r in ClosureReason],
                              format_func=lambda v: ClosureReason(v).label, key="close_reason")
        missing = ticket_view.closure_preview(snap, ClosureReason(reason))
        if missing:
            st.info("Still needed:\n" + "\n".join(f"- {m}" for m in missing), icon="📋")
        with st.container(border=True, key="close_form"):
            dup = box.box(f"Duplicate of (ticket number, e.g. {ticket_ref(123)})", F.DUPLICATE_OF,
                          key="close_dup", widget=st.text_input) if reason == ClosureReason.DUPLICATE else ""
            note = box.box("Closing note", F.CLOSE_NOTE, key="close_note")
            override = box.box("Lead override: why close anyway", F.CLOSE_OVERRIDE, key="close_override",
                               widget=st.text_input) if missing and Role(user.role) >= Role.LEAD else None
            box.prime("close_prevent_steps", F.PREVENTIVE_STEPS)
            prevent, follow_up = kb_view.preventive_inputs("close_prevent", user)
            box.persist("close_prevent_steps", F.PREVENTIVE_STEPS, prevent)
            box.status("close_prevent_steps", F.PREVENTIVE_STEPS)
            preview(A.CLOSE, note, meta={"reason": reason})
            if st.button("Close ticket", type="primary", key="close_go"):
                saved(write(box.sending(lambda s: tickets.close(
                    s, actor=user.id, ticket_id=tid, expected_version=loaded_version, reason=reason,
                    duplicate_of=parse_ref(dup) if dup else None, note=note or None,
                    override_reason=override or None, preventive_steps=prevent or None,
                    follow_up=follow_up), F.CLOSE_NOTE, F.CLOSE_OVERRIDE, F.PREVENTIVE_STEPS, F.DUPLICATE_OF)),
                    "Closed", "close_note", "close_override", "close_prevent_steps", "close_dup")
    if chosen == A.REOPEN:
        with st.container(border=True, key="reopen_form"):
            why = box.box("Why (e.g. what the user reported)", F.REOPEN_REASON, key="reopen_why")
            preview(A.REOPEN, why)
            if st.button("Reopen", type="primary", key="reopen_go"):
                saved(write(box.sending(lambda s: tickets.reopen(
                    s, actor=user.id, ticket_id=tid, expected_version=loaded_version, reason=why),
                    F.REOPEN_REASON)), "Reopened", "reopen_why")
    if chosen == A.LINK:
        with st.container(border=True, key="link_form"):
            parent = box.box(f"Parent ticket (ticket number, e.g. {ticket_ref(123)}; empty to unlink)",
                             F.LINK_PARENT, key="link_parent", widget=st.text_input,
                             initial=ticket_ref(t.parent_id) if t.parent_id else "")
            preview(A.LINK)
            if st.button("Save link", type="primary", key="link_go"):
                saved(write(box.sending(lambda s: tickets.link(
                    s, actor=user.id, ticket_id=tid, parent_id=parse_ref(parent) if parent.strip() else None),
                    F.LINK_PARENT)), "Link saved", "link_parent")

    # One panel at a time, as a composer with tabs (only the open one is drawn, which keeps the page fast); the
    # choice survives reruns. What is typed in a panel is a draft in the database, so switching panels (or
    # reloading) never drops it, and a draft kept in another panel is named under the tabs.
    panels = ticket_view.composer_panels(user, t)
    names = list(panels)
    panel_key = f"panel_{tid}"
    if st.session_state.get(panel_key) not in names:  # a panel this person no longer has (the ticket moved on)
        st.session_state.pop(panel_key, None)
    panel = st.segmented_control("Panel", names, key=panel_key, default=names[0], label_visibility="collapsed",
                                 required=True, wrap=True) or names[0]
    kept_elsewhere = [name for name, fields in panels.items() if name != panel and any(f in box.held for f in fields)]
    if kept_elsewhere:
        st.caption("💾 Unsent draft in " + ", ".join(kept_elsewhere))

    # --- editable fields: an edit in progress is a draft too ---------------------------------------------------
    if panel == ticket_view.DETAILS:
        can_edit = ticket_view.allowed(user, t, Action.UPDATE_FIELDS)
        from lib.ui.queue_data import lookups

        cats = dict(lookups(0)["categories"])
        errors = st.session_state.get(f"edit_errors_{tid}", {})
        with st.container(border=True, key="edit_form"):
            summary = box.box("Summary", F.SUMMARY, key=f"ed_summary_{tid}", initial=t.summary, widget=st.text_input,
                              disabled=not can_edit)
            if errors.get("summary"):
                st.error(errors["summary"])
            c1, c2 = st.columns(2)
            cat_ids = list(cats)
            category = c1.selectbox("Category", cat_ids, index=cat_ids.index(t.category_id) if t.category_id in cat_ids
                                    else 0, format_func=lambda i: cats[i], key=f"ed_cat_{tid}", disabled=not can_edit)
            prios = [p.name for p in sorted(Priority, reverse=True)]
            priority = c2.selectbox("Priority", prios, index=prios.index(Priority(t.priority).name),
                                    format_func=lambda n: f"{Priority[n].label} — {Priority[n].definition}",
                                    key=f"ed_prio_{tid}", disabled=not can_edit)
            description = box.box("Description", F.DESCRIPTION, key=f"ed_desc_{tid}", initial=t.description,
                                  height=160, disabled=not can_edit)
            device = box.box("Device details", F.DEVICE_DETAILS, key=f"ed_dev_{tid}", initial=t.device_details or "",
                             disabled=not can_edit)
            if st.button("Save changes", disabled=not can_edit, key="edit_go"):
                changes = {"summary": summary, "category": category, "priority": priority,
                           "description": description, "device_details": device or None}
                saved(write(box.sending(lambda s: tickets.update_fields(
                    s, actor=user.id, ticket_id=tid, expected_version=loaded_version, changes=changes),
                    F.SUMMARY, F.DESCRIPTION, F.DEVICE_DETAILS), errors_key=f"edit_errors_{tid}"), "Changes saved",
                    f"ed_summary_{tid}", f"ed_desc_{tid}", f"ed_dev_{tid}", f"ed_cat_{tid}", f"ed_prio_{tid}")
        if not can_edit:
            st.caption("Only the assignee, a senior on an escalated ticket, or a lead edits these fields.")

    # --- documentation: appends, never refused for staleness -----------------------------------------
    res: Ticket | Attachment | None  # the last write's result
    if panel == ticket_view.ACTION:
        with st.container(border=True, key="action_form"):
            st.markdown("**Document an action** (diagnosis, reproduction, troubleshooting step)")
            row = st.container(horizontal=True, gap="small")  # one element where columns are three
            kind = row.selectbox("Kind", [k.value for k in ActionKind], format_func=lambda v: v.capitalize(),
                                 key="act_kind")
            minutes = row.number_input("Minutes spent", min_value=0, max_value=1440, value=0, step=5,
                                       key="act_minutes", width=170)
            text = box.box("What you did and found", F.ACTION, key="act_text")
            if st.button("Add to timeline", key="act_go"):
                saved(write(box.sending(lambda s: tickets.log_action(
                    s, actor=user.id, ticket_id=tid, kind=kind, text=text, minutes=minutes or None), F.ACTION)),
                    "Action documented", "act_text", "act_minutes")
    if panel == ticket_view.REPLY:
        with st.container(border=True, key="reply_form"):
            st.markdown("**Reply to the requester** (public, e-mailed)")
            text = box.box("Message", F.REPLY, key="reply_text")
            canned_view.picker(t, "reply_text", technician_id=user.id)
            workaround = st.checkbox("This is a workaround", key="reply_workaround")
            ticket_view.mail_preview(t, EventKind.WORKAROUND if workaround else EventKind.PUBLIC_REPLY,
                                     message=text)
            if st.button("Send reply", key="reply_go"):
                if workaround:
                    res = write(box.sending(lambda s: tickets.provide_workaround(
                        s, actor=user.id, ticket_id=tid, text=text), F.REPLY))
                else:
                    res = write(box.sending(lambda s: tickets.public_reply(
                        s, actor=user.id, ticket_id=tid, text=text), F.REPLY))
                saved(res, "Reply sent", "reply_text", "reply_workaround")
    if panel == ticket_view.NOTE:
        with st.container(border=True, key="note_form"):
            st.markdown("**Internal note** (staff only)")
            text = box.box("Note", F.NOTE, key="note_text")
            canned_view.picker(t, "note_text", technician_id=user.id)
            up = st.file_uploader("Attach a file", key="note_file")
            ticket_view.mail_preview(t, EventKind.INTERNAL_NOTE)
            if st.button("Add note", key="note_go"):
                res = None
                if text.strip():
                    res = write(box.sending(lambda s: tickets.internal_note(s, actor=user.id, ticket_id=tid, text=text),
                                            F.NOTE))
                if up is not None:
                    res = write(lambda s: tickets.add_attachment(s, actor=user.id, ticket_id=tid,
                                attachment=tickets.NewAttachment(up.name, up.type or "", up.getvalue()))) or res  # type: ignore[union-attr]  # up is not None (checked above; lost in the lambda)
                if res is None and not text.strip() and up is None:
                    st.error("Write a note or choose a file.")
                saved(res, "Note added", "note_text", "note_file")

    st.divider()
    st.markdown("### Timeline")
    st.toggle("Show internal entries", value=True, key="tl_internal")
    timeline_slot = st.container()

# The live part: header, presence, others' changes and the timeline, refreshed alone every few seconds.
workspace_view.live(user_id=user.id, ticket_id=tid, top=top, below=timeline_slot, loaded_version=loaded_version,
                    loaded_event=st.session_state[ekey], writing=box.writing())
st.caption(f"Version {loaded_version} loaded at {core.fmt_time(clock.now())}")
