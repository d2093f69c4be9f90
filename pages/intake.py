"""Intake: log a ticket from a phone call, a walk-in, an e-mail or on behalf of a user."""

from __future__ import annotations

import streamlit as st

from lib import assignment, tickets
from lib.directory import DeviceInput, RequesterInput
from lib.models import ticket_ref
from lib.ticket_core import MAX_SUMMARY
from lib.tickets import NewAttachment, TicketDraft
from lib.ui import assignment_view, core, intake_data, kb_view
from lib.workflow import Channel, Priority, Role

user = core.require_role(Role.TECHNICIAN)
core.flash()
st.title("➕ New ticket")

done = st.session_state.get("intake_done")
if done:
    with st.container(border=True):
        st.success(f"Ticket **{ticket_ref(done['id'])}** created.", icon="🎫")
        st.markdown(f"[Open {ticket_ref(done['id'])} →]({core.ticket_url(done['id'])})")
        if done["duplicates"]:
            st.warning("Possible duplicates — open tickets of the same requester or device:", icon="👯")
            for d in done["duplicates"]:
                st.markdown(f"- [{ticket_ref(d[0])}]({core.ticket_url(d[0])}) · {d[2]} · {core.escape_md(d[1])}")
        if done.get("assigned"):
            st.info(f"Assigned to **{core.escape_md(done['assigned'][0])}** — {core.escape_md(done['assigned'][1])}",
                    icon="🧭")
        elif assignment_view.intake_suggestions(user, done["id"]):
            st.rerun()
        if st.button("Log another ticket", key="intake_another"):
            st.session_state.pop("intake_done", None)
            st.rerun()
    st.stop()

# The last submit's problems, in the form's words: each is shown at its field and all are listed by the button.
# A problem fixed since (a channel chosen, a contact picked, a category, a summary that fits) leaves both places.
errors: dict[str, str] = dict(st.session_state.get("intake_errors", {}))


def field_error(*names: str) -> None:
    for name in names:
        if errors.get(name):
            st.error(f"{intake_data.label(name)}: {errors[name]}", icon="✋")


st.session_state.setdefault("in_channel", Channel.PHONE.value)  # not a default=: it must survive a reset
channel = st.segmented_control("How did it reach us?", [c.value for c in intake_data.INTAKE_CHANNELS],
                               format_func=lambda v: Channel(v).label, key="in_channel", required=True)
if channel:
    errors.pop("channel", None)
field_error("channel")

st.markdown("#### Requester")
mode = st.radio("Requester", ["Existing contact", "New contact"], horizontal=True, key="in_req_mode",
                label_visibility="collapsed")
requester_id = None
requester_new = None
if mode == "Existing contact":
    q = st.text_input("Search contacts by name or e-mail", key="in_req_search", placeholder="e.g. ann or ann@example.com")
    matches = intake_data.search_requesters(q) if q.strip() else []
    if q.strip() and not matches:
        st.caption("No contact found — switch to **New contact**.")
    if matches:
        ids = [m[0] for m in matches]
        labels = {m[0]: m[1] for m in matches}
        requester_id = st.selectbox("Contact", ids, format_func=lambda i: labels[i], key="in_req_pick")
else:
    c1, c2 = st.columns(2)
    rn = c1.text_input("Name", key="in_req_name")
    re_ = c2.text_input("E-mail", key="in_req_email")
    c3, c4, c5 = st.columns(3)
    rp = c3.text_input("Phone", key="in_req_phone")
    rd = c4.text_input("Department", key="in_req_dept")
    rl = c5.text_input("Location", key="in_req_loc")
    requester_new = RequesterInput(name=rn, email=re_ or None, phone=rp or None, department=rd or None,
                                   location=rl or None)
if requester_id is not None or (requester_new is not None and (rn.strip() or re_.strip())):
    errors.pop("requester", None)
field_error("requester", "requester_name", "requester_email", "requester_phone")

st.markdown("#### Device")
dmode = st.radio("Device", ["No device", "Existing asset", "Describe it"], horizontal=True, key="in_dev_mode",
                 label_visibility="collapsed")
device_id = None
device_details = None
device_new = None
if dmode == "Existing asset":
    dq = st.text_input("Search assets by tag, model or serial", key="in_dev_search")
    dmatches = intake_data.search_devices(dq) if dq.strip() else []
    if dmatches:
        dlabels = {m[0]: m[1] for m in dmatches}
        device_id = st.selectbox("Asset", list(dlabels), format_func=lambda i: dlabels[i], key="in_dev_pick")
    elif dq.strip():
        st.caption("No asset found — choose **Describe it**.")
elif dmode == "Describe it":
    c1, c2, c3 = st.columns(3)
    tag = c1.text_input("Asset tag (optional)", key="in_dev_tag")
    dtype = c2.text_input("Type", key="in_dev_type", placeholder="laptop, printer…")
    model = c3.text_input("Make / model", key="in_dev_model")
    c4, c5, c6 = st.columns(3)
    dos = c4.text_input("OS", key="in_dev_os")
    serial = c5.text_input("Serial", key="in_dev_serial")
    dloc = c6.text_input("Location", key="in_dev_loc")
    if tag.strip():
        device_new = DeviceInput(asset_tag=tag, device_type=dtype, make_model=model, os=dos, serial=serial,
                                 location=dloc)
    else:
        parts = [f"{k}: {v}" for k, v in (("Type", dtype), ("Model", model), ("OS", dos), ("Serial", serial),
                                          ("Location", dloc)) if v.strip()]
        device_details = "\n".join(parts) or None
field_error("asset_tag", "device", "device_details")

st.markdown("#### Issue")
# No max_chars: the browser would silently drop what goes over (a paste, say). Everything typed is kept and the
# limit is said out loud instead; the service refuses a summary that is too long.
summary = st.text_input("Summary", key="in_summary", placeholder="One line: what is wrong",
                        help=f"At most {MAX_SUMMARY} characters; the details go in the Description.")
too_long = intake_data.summary_too_long(summary)
if summary.strip() and not too_long and intake_data.summary_fixed(errors.get("summary")):
    errors.pop("summary", None)
if too_long:
    st.error(f"**Summary** {too_long}", icon="✂️")
else:
    field_error("summary")
    if summary:
        st.caption(f"{intake_data.summary_length(summary)} / {MAX_SUMMARY} characters")
description = st.text_area("Description", key="in_description", height=140,
                           placeholder="What the user reported, error messages, what they already tried")
field_error("description")
cats = intake_data.categories()
c1, c2 = st.columns(2)
category = c1.selectbox("Category", list(cats), format_func=lambda i: cats[i], key="in_category", index=None,
                        placeholder="Choose a category")
if category is not None:
    errors.pop("category", None)
with c1:
    field_error("category")
prio_help = "\n".join(f"- **{p.label}** — {p.definition}" for p in sorted(Priority, reverse=True))
priority = c2.radio("Priority", [p.name for p in sorted(Priority)], format_func=lambda n: Priority[n].label,
                    horizontal=True, key="in_priority", index=1, help=prio_help)
c2.caption(Priority[priority].definition)
kb_view.suggestions(summary, category_id=category, description=description)
kb_view.intake_repeats(requester_id=requester_id, device_id=device_id, category_id=category,
                       make_model=device_new.make_model if device_new else (model if dmode == "Describe it" else None))
files = st.file_uploader("Attachments", accept_multiple_files=True, key="in_files")
field_error("attachments")
take_it = st.checkbox("Assign to me", key="in_take", value=False)
auto_assign = st.checkbox("Auto-assign the best candidate", key="in_auto", value=False, disabled=take_it,
                          help="By skill in the category, workload against capacity and urgency; the reason is "
                               "recorded in the ticket's timeline")

submitted = st.button("Create ticket", type="primary", key="in_submit")
if errors and not submitted:
    n = len(errors)
    st.error(f"**The ticket was not created: {'one thing' if n == 1 else f'{n} things'} to fix** (each is also "
             "shown at its field; what you typed is kept):\n" + "\n".join(f"- {line}" for line in
                                                                      intake_data.problem_lines(errors)), icon="✋")
if submitted:
    draft = TicketDraft(
        summary=summary, description=description, category=category if category is not None else "",
        priority=priority, channel=channel or "", requester_id=requester_id, requester=requester_new,
        device_id=device_id, device=device_new, device_details=device_details,
        assignee_id=user.id if take_it else None,
        attachments=[NewAttachment(f.name, f.type or "", f.getvalue()) for f in (files or [])],
    )

    def create(s):
        ticket = tickets.create_ticket(s, actor=user.id, draft=draft)
        chosen = assignment.auto_assign(s, actor=user.id, ticket_id=ticket.id) if auto_assign and not take_it else None
        return ticket, chosen

    result = core.write(create, errors_key="intake_errors")
    if result is not None:
        created, chosen = result
        st.session_state["intake_done"] = {"id": created.id, "duplicates": intake_data.duplicates(created.id),
                                           "assigned": (chosen.name, chosen.explanation) if chosen else None}
        for key in [k for k in st.session_state if str(k).startswith("in_")]:
            del st.session_state[key]
        st.session_state.pop("intake_errors", None)
        st.rerun()
    elif st.session_state.get("intake_errors"):  # every problem at once, in the form's words
        st.session_state["intake_errors"] = intake_data.explain(
            st.session_state["intake_errors"], summary=summary,
            picking_contact=mode == "Existing contact" and requester_id is None)
        st.rerun()
