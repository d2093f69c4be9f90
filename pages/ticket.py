"""One ticket (?id=N): header, the actions allowed now, editable fields, side panels and the timeline."""

from __future__ import annotations

from datetime import datetime, time

import streamlit as st

from lib import clock, tickets
from lib.models import Attachment, Ticket, ticket_ref
from lib.queries import parse_ref
from lib.ui import assignment_view, core, kb_view, ticket_view
from lib.ui.core import write
from lib.workflow import (
    Action,
    ActionKind,
    ClosureReason,
    ConfirmationVia,
    Priority,
    Role,
    Status,
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

snap = ticket_view.load(ticket_id)
if snap is None:
    st.error(f"Ticket {raw_id} does not exist.")
    st.markdown("[📋 Back to the queue](/)")
    st.stop()
t = snap.ticket
tid = t.id
vkey, ekey = f"loaded_version_{tid}", f"loaded_event_{tid}"
if vkey not in st.session_state:  # the version this tab loaded: field and status saves compare it
    st.session_state[vkey] = t.version
    st.session_state[ekey] = snap.last_event_id
loaded_version = st.session_state[vkey]


def saved(result, message: str, *clear: str) -> None:
    """After a successful write: clear the used drafts and reload this tab at the new version."""
    if result is None:
        return
    for key in (*clear, f"act_{tid}"):  # the next step is chosen afresh for the new state
        st.session_state.pop(key, None)
    st.session_state.pop(vkey, None)
    st.session_state.pop("stale_message", None)
    st.session_state["flash"] = message
    st.rerun()


ticket_view.header(snap)
assignment_view.ticket_notices(t)
stale = st.session_state.get("stale_message")
if stale and ticket_ref(tid) in stale:
    st.error(stale, icon="🔄")
new_events = sum(1 for e in snap.timeline if e.id > st.session_state[ekey])
if t.version != loaded_version or new_events:
    with st.container(border=True):
        changed = t.version != loaded_version
        st.warning(
            f"{new_events} new event(s) since you loaded this ticket"
            + (" — including changes to its fields or status. Saving fields or status will be refused until you reload; "
               "your drafts stay." if changed else "."), icon="🔔")
        if st.button("Reload to the newest state", key="reload"):
            st.session_state.pop(vkey, None)
            st.session_state.pop("stale_message", None)
            st.rerun()

kb_view.ticket_repeats(tid, user)
main, side = st.columns([2, 1], gap="large")
with side:
    ticket_view.side_panels(snap)
    kb_view.ticket_knowledge(t, user)
    kb_view.follow_ups_panel(tid, user)
    if Status(t.status) is not Status.CLOSED:
        kb_view.suggestions(t.summary, category_id=t.category_id, description=t.description, ticket_id=tid, user=user)
    saved(assignment_view.suggestions_panel(user, t, version=loaded_version), "Assignment saved")

with main:
    status = Status(t.status)
    # One panel at a time (only it is rendered, which keeps the page fast); the choice survives reruns.
    panel = st.segmented_control("Panel", ["⚡ Actions", "✏️ Details", "📝 Document"], key=f"panel_{tid}",
                                 default="⚡ Actions", label_visibility="collapsed", required=True, wrap=True) or "⚡ Actions"
    A = Action
    form_actions = [action for action, ok in [
        (A.ASSIGN, ticket_view.allowed(user, t, A.ASSIGN)),
        (A.REQUEST_INFO, ticket_view.allowed(user, t, A.REQUEST_INFO)),
        (A.ESCALATE_SENIOR, ticket_view.allowed(user, t, A.ESCALATE_SENIOR)),
        (A.ESCALATE_VENDOR, ticket_view.allowed(user, t, A.ESCALATE_VENDOR)),
        (A.RESOLVE, ticket_view.allowed(user, t, A.RESOLVE)),
        (A.RECORD_CONFIRMATION, ticket_view.allowed(user, t, A.RECORD_CONFIRMATION) and t.confirmed_at is None),
        (A.CLOSE, ticket_view.allowed(user, t, A.CLOSE)),
        (A.REOPEN, ticket_view.allowed(user, t, A.REOPEN)),
        (A.LINK, ticket_view.allowed(user, t, A.LINK)),
    ] if ok]
    # --- actions allowed now for this user ----------------------------------------------------------
    if panel == "⚡ Actions":
        shown = 0
        if ticket_view.allowed(user, t, Action.TAKE) and t.assignee_id is None:
            shown += 1
            if st.button("Take this ticket", type="primary", key="take"):
                saved(write(lambda s: tickets.take(s, actor=user.id, ticket_id=tid)), "You took the ticket")
        suggested = A.RESOLVE if status is Status.IN_PROGRESS and A.RESOLVE in form_actions else (
            A.CLOSE if t.confirmed_at is not None and A.CLOSE in form_actions else None)
        # One key per ticket, whatever its status: a key that changed with the status made the first click
        # after someone else's change land on a widget that no longer existed. A choice that is no longer
        # allowed falls back to the suggestion; clicking the chosen action again keeps it chosen.
        act_key = f"act_{tid}"
        if st.session_state.get(act_key) not in form_actions:
            st.session_state[act_key] = suggested
        chosen = st.pills("What next?", form_actions, format_func=ticket_view.ACTION_CHOICES.__getitem__, key=act_key,
                          required=True, wrap=True) \
            if form_actions else None
        shown += len(form_actions)
        if chosen == A.ASSIGN:
            with st.form("assign_form"):
                from lib.ui.queue_data import lookups

                people = dict(lookups(0)["people"])
                opts = [0, *people]
                current = t.assignee_id if t.assignee_id in people else 0
                who = st.selectbox("Assign to", opts, index=opts.index(current), key="assign_to",
                                   format_func=lambda i: "— unassigned —" if i == 0 else people[i])
                note = st.text_input("Note (optional)", key="assign_note")
                if st.form_submit_button("Assign"):
                    saved(write(lambda s: tickets.assign(s, actor=user.id, ticket_id=tid, assignee_id=who or None,
                                                         expected_version=loaded_version, note=note)),
                          "Assignment saved", "assign_note")
        if ticket_view.allowed(user, t, Action.ACKNOWLEDGE) and (t.assignee_id == user.id or Role(user.role) >= Role.LEAD):
            shown += 1
            if st.button("Acknowledge", type="primary", key="ack", help="Confirms you have it; stops the response clock"):
                saved(write(lambda s: tickets.acknowledge(s, actor=user.id, ticket_id=tid,
                                                          expected_version=loaded_version)), "Acknowledged")
        if ticket_view.allowed(user, t, Action.REQUEST_INFO):
            shown += 1
            if chosen == A.REQUEST_INFO:
                with st.form("info_form"):
                    text = st.text_area("What do you need? (sent to the requester)", key="info_text")
                    if st.form_submit_button("Send request and wait on user"):
                        saved(write(lambda s: tickets.request_info(s, actor=user.id, ticket_id=tid,
                                                                   expected_version=loaded_version, text=text)),
                              "Request sent; the ticket waits on the user", "info_text")
        if ticket_view.allowed(user, t, Action.ESCALATE_SENIOR):
            shown += 1
            if chosen == A.ESCALATE_SENIOR:
                from lib.ui.queue_data import seniors

                senior_opts = seniors(0)
                with st.form("senior_form"):
                    senior = st.selectbox("Senior", list(senior_opts), format_func=lambda i: senior_opts[i],
                                          key="esc_senior")
                    reason = st.text_area("Reason", key="esc_reason")
                    if st.form_submit_button("Escalate"):
                        saved(write(lambda s: tickets.escalate_to_senior(
                            s, actor=user.id, ticket_id=tid, expected_version=loaded_version, senior_id=senior,
                            reason=reason)), "Escalated", "esc_reason")
        if ticket_view.allowed(user, t, Action.ESCALATE_VENDOR):
            shown += 1
            if chosen == A.ESCALATE_VENDOR:
                with st.form("vendor_form"):
                    vendor = st.text_input("Vendor", key="vendor_name")
                    case = st.text_input("Vendor case reference", key="vendor_case")
                    c1, c2 = st.columns(2)
                    pdate = c1.date_input("Vendor promised by (date)", value=None, key="vendor_date")
                    ptime = c2.time_input("time", value=time(17, 0), key="vendor_time")
                    note = st.text_area("Note", key="vendor_note")
                    if st.form_submit_button("Escalate to vendor"):
                        promised = datetime.combine(pdate, ptime, tzinfo=core.tz()) if pdate else None
                        saved(write(lambda s: tickets.escalate_to_vendor(
                            s, actor=user.id, ticket_id=tid, expected_version=loaded_version, vendor_name=vendor,
                            case_ref=case, promised_at=promised, note=note)), "Escalated to vendor",
                            "vendor_note")
        if ticket_view.allowed(user, t, Action.RESUME):
            shown += 1
            if st.button("▶️ Resume work", key="resume"):
                saved(write(lambda s: tickets.resume(s, actor=user.id, ticket_id=tid,
                                                     expected_version=loaded_version)), "Back in progress")
        if ticket_view.allowed(user, t, Action.RESOLVE):
            shown += 1
            if chosen == A.RESOLVE:
                with st.form("resolve_form"):
                    notes = st.text_area("Resolution notes (what fixed it; sent to the requester)",
                                         value=t.resolution_notes or "", key="res_notes")
                    cause = st.text_area("Root cause", value=t.root_cause or "", key="res_cause")
                    unknown = st.text_input("…or why no root cause was found", value=t.root_cause_unknown_reason or "",
                                            key="res_unknown")
                    if st.form_submit_button("Resolve", type="primary"):
                        saved(write(lambda s: tickets.resolve(
                            s, actor=user.id, ticket_id=tid, expected_version=loaded_version, resolution_notes=notes,
                            root_cause=cause or None, root_cause_unknown_reason=unknown or None)), "Resolved")
        if ticket_view.allowed(user, t, Action.REQUEST_CONFIRMATION):
            shown += 1
            label = "📨 Remind the user to confirm" if status is Status.AWAITING_CONFIRMATION else \
                "📨 Ask the user to confirm the fix"
            if st.button(label, key="req_conf"):
                saved(write(lambda s: tickets.request_confirmation(s, actor=user.id, ticket_id=tid,
                                                                   expected_version=loaded_version)),
                      "Confirmation requested")
        if ticket_view.allowed(user, t, Action.RECORD_CONFIRMATION) and t.confirmed_at is None:
            shown += 1
            if chosen == A.RECORD_CONFIRMATION:
                with st.form("conf_form"):
                    via = st.selectbox("How did they confirm?", [v.value for v in ConfirmationVia if v.value != "link"],
                                       format_func=lambda v: v.replace("_", " "), key="conf_via")
                    by = st.text_input("Who confirmed", value=t.requester.name if t.requester else "", key="conf_by")
                    note = st.text_input("Note", key="conf_note")
                    if st.form_submit_button("Record confirmation"):
                        saved(write(lambda s: tickets.record_confirmation(
                            s, actor=user.id, ticket_id=tid, expected_version=loaded_version, via=via, confirmed_by=by,
                            note=note)), "Confirmation recorded")
        if ticket_view.allowed(user, t, Action.CLOSE):
            shown += 1
            if chosen == A.CLOSE:
                reason = st.selectbox("Closure reason", [r.value for r in ClosureReason],
                                      format_func=lambda v: ClosureReason(v).label, key="close_reason")
                missing = ticket_view.closure_preview(snap, ClosureReason(reason))
                if missing:
                    st.info("Still needed:\n" + "\n".join(f"- {m}" for m in missing), icon="📋")
                with st.form("close_form"):
                    dup = st.text_input(f"Duplicate of (ticket number, e.g. {ticket_ref(123)})", key="close_dup") \
                        if reason == ClosureReason.DUPLICATE else ""
                    note = st.text_area("Closing note", key="close_note")
                    override = st.text_input("Lead override: why close anyway", key="close_override") \
                        if missing and Role(user.role) >= Role.LEAD else None
                    prevent, follow_up = kb_view.preventive_inputs("close_prevent", user)
                    if st.form_submit_button("Close ticket", type="primary"):
                        saved(write(lambda s: tickets.close(
                            s, actor=user.id, ticket_id=tid, expected_version=loaded_version, reason=reason,
                            duplicate_of=parse_ref(dup) if dup else None, note=note or None,
                            override_reason=override or None, preventive_steps=prevent or None,
                            follow_up=follow_up)), "Closed", "close_note", "close_prevent_steps")
        if ticket_view.allowed(user, t, Action.REOPEN):
            shown += 1
            if chosen == A.REOPEN:
                with st.form("reopen_form"):
                    why = st.text_area("Why (e.g. what the user reported)", key="reopen_why")
                    if st.form_submit_button("Reopen"):
                        saved(write(lambda s: tickets.reopen(s, actor=user.id, ticket_id=tid,
                                                             expected_version=loaded_version, reason=why)),
                              "Reopened", "reopen_why")
        if ticket_view.allowed(user, t, Action.LINK):
            shown += 1
            if chosen == A.LINK:
                with st.form("link_form"):
                    parent = st.text_input(f"Parent ticket (ticket number, e.g. {ticket_ref(123)}; empty to unlink)",
                                           value=ticket_ref(t.parent_id) if t.parent_id else "", key="link_parent")
                    if st.form_submit_button("Save link"):
                        saved(write(lambda s: tickets.link(s, actor=user.id, ticket_id=tid,
                                                           parent_id=parse_ref(parent) if parent.strip() else None)),
                              "Link saved")
        if not shown:
            st.info("No actions for you on this ticket right now. You can still add an internal note "
                    "under **Document**." if status is not Status.CLOSED else
                    "This ticket is closed. Reopen it within the reopen window, or log a new linked ticket.",
                    icon="ℹ️")

    # --- editable fields ----------------------------------------------------------------------------
    if panel == "✏️ Details":
        can_edit = ticket_view.allowed(user, t, Action.UPDATE_FIELDS)
        from lib.ui.queue_data import lookups

        cats = dict(lookups(0)["categories"])
        errors = st.session_state.get(f"edit_errors_{tid}", {})
        with st.form("edit_form"):
            summary = st.text_input("Summary", value=t.summary, key=f"ed_summary_{tid}", disabled=not can_edit)
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
            description = st.text_area("Description", value=t.description, height=160, key=f"ed_desc_{tid}",
                                       disabled=not can_edit)
            device = st.text_area("Device details", value=t.device_details or "", key=f"ed_dev_{tid}",
                                  disabled=not can_edit)
            if st.form_submit_button("Save changes", disabled=not can_edit):
                changes = {"summary": summary, "category": category, "priority": priority,
                           "description": description, "device_details": device or None}
                saved(write(lambda s: tickets.update_fields(s, actor=user.id, ticket_id=tid,
                                                            expected_version=loaded_version, changes=changes),
                            errors_key=f"edit_errors_{tid}"), "Changes saved")
        if not can_edit:
            st.caption("Only the assignee, a senior on an escalated ticket, or a lead edits these fields.")

    # --- documentation: appends, never refused for staleness -----------------------------------------
    if panel == "📝 Document":
        res: Ticket | Attachment | None  # the last write's result
        if ticket_view.allowed(user, t, Action.LOG_ACTION):
            with st.form("action_form"):
                st.markdown("**Document an action** (diagnosis, reproduction, troubleshooting step)")
                c1, c2 = st.columns([2, 1])
                kind = c1.selectbox("Kind", [k.value for k in ActionKind], format_func=lambda v: v.capitalize(),
                                    key="act_kind")
                minutes = c2.number_input("Minutes spent", min_value=0, max_value=1440, value=0, step=5,
                                          key="act_minutes")
                text = st.text_area("What you did and found", key="act_text")
                if st.form_submit_button("Add to timeline"):
                    saved(write(lambda s: tickets.log_action(s, actor=user.id, ticket_id=tid, kind=kind, text=text,
                                                             minutes=minutes or None)), "Action documented",
                          "act_text", "act_minutes")
        if ticket_view.allowed(user, t, Action.PUBLIC_REPLY):
            with st.form("reply_form"):
                st.markdown("**Reply to the requester** (public, e-mailed)")
                text = st.text_area("Message", key="reply_text")
                workaround = st.checkbox("This is a workaround", key="reply_workaround")
                if st.form_submit_button("Send reply"):
                    if workaround:
                        res = write(lambda s: tickets.provide_workaround(s, actor=user.id, ticket_id=tid, text=text))
                    else:
                        res = write(lambda s: tickets.public_reply(s, actor=user.id, ticket_id=tid, text=text))
                    saved(res, "Reply sent", "reply_text")
        with st.form("note_form"):
            st.markdown("**Internal note** (staff only)")
            text = st.text_area("Note", key="note_text")
            up = st.file_uploader("Attach a file", key="note_file")
            if st.form_submit_button("Add note"):
                res = None
                if text.strip():
                    res = write(lambda s: tickets.internal_note(s, actor=user.id, ticket_id=tid, text=text))
                if up is not None:
                    res = write(lambda s: tickets.add_attachment(s, actor=user.id, ticket_id=tid,
                                attachment=tickets.NewAttachment(up.name, up.type or "", up.getvalue()))) or res  # type: ignore[union-attr]  # up is not None (checked above; lost in the lambda)
                if res is None and not text.strip() and up is None:
                    st.error("Write a note or choose a file.")
                saved(res, "Note added", "note_text")

    st.divider()
    st.markdown("### Timeline")
    show_internal = st.toggle("Show internal entries", value=True, key="tl_internal")
    ticket_view.timeline(snap, show_internal=show_internal)

st.caption(f"Version {loaded_version} loaded at {core.fmt_time(clock.now())}")
