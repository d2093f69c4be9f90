"""Intake: log a ticket from a phone call, a walk-in, an e-mail or on behalf of a user."""

from __future__ import annotations

import streamlit as st

from lib import assignment, tickets
from lib.directory import DeviceInput, RequesterInput
from lib.models import ticket_ref
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

errors: dict[str, str] = st.session_state.get("intake_errors", {})


def field_error(*names: str) -> None:
    for name in names:
        if errors.get(name):
            st.error(f"{name.replace('_', ' ').capitalize()}: {errors[name]}", icon="✋")


INTAKE_CHANNELS = [Channel.PHONE, Channel.WALK_IN, Channel.ON_BEHALF, Channel.EMAIL]
channel = st.segmented_control("How did it reach us?", [c.value for c in INTAKE_CHANNELS],
                               format_func=lambda v: Channel(v).label, key="in_channel", default=Channel.PHONE.value,
                               required=True)
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
summary = st.text_input("Summary", key="in_summary", max_chars=200, placeholder="One line: what is wrong")
field_error("summary")
description = st.text_area("Description", key="in_description", height=140,
                           placeholder="What the user reported, error messages, what they already tried")
field_error("description")
cats = intake_data.categories()
c1, c2 = st.columns(2)
category = c1.selectbox("Category", list(cats), format_func=lambda i: cats[i], key="in_category", index=None,
                        placeholder="Choose a category")
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

if st.button("Create ticket", type="primary", key="in_submit"):
    draft = TicketDraft(
        summary=summary, description=description, category=category if category is not None else "",
        priority=priority, channel=channel or "", requester_id=requester_id, requester=requester_new,
        device_id=device_id, device=device_new, device_details=device_details,
        assignee_id=user.id if take_it else None,
        attachments=[NewAttachment(f.name, f.type or "", f.getvalue()) for f in (files or [])],
    )
    if mode == "Existing contact" and requester_id is None:
        st.session_state["intake_errors"] = {"requester": "search and pick a contact, or enter a new one"}
        st.rerun()

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
    elif st.session_state.get("intake_errors"):
        st.rerun()
