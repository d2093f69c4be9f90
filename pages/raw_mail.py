"""One inbound mail as it arrived (?id=N), or the list of a ticket's (?ticket=N): inert plain text, never rendered."""

from __future__ import annotations

import streamlit as st

from lib.config import get_settings
from lib.mail import raw_store
from lib.models import ticket_ref
from lib.queries import parse_ref
from lib.ui import core
from lib.workflow import Role

core.require_role(Role.TECHNICIAN)
st.title("✉️ Raw message")
st.caption("Mail as it reached the desk, headers included, shown as plain text: nothing in it is rendered, "
           "followed or loaded.")

raw_param = st.query_params.get("id")
ticket_param = st.query_params.get("ticket")
raw_id = int(raw_param) if raw_param and raw_param.isdigit() else None
ticket_id = parse_ref(ticket_param) if ticket_param else None

if raw_id is None and ticket_id is None:
    if raw_param or ticket_param:
        st.error(f"{raw_param or ticket_param!r} is not a message or ticket number.")
    ref = st.text_input("Ticket number", placeholder=f"{ticket_ref(123)} or 123",
                        help="Lists the raw messages kept for that ticket.")
    if ref:
        if parse_ref(ref) is None:
            st.error(f"{ref!r} is not a ticket number.")
        else:
            st.query_params.clear()
            st.query_params["ticket"] = str(parse_ref(ref))
            st.rerun()
    st.stop()

days = get_settings().mail_raw_retention_days
kept_for = f"kept for {days} days" if days else "kept with no time limit"

if raw_id is None and ticket_id is not None:
    with core.reading() as s:
        messages = raw_store.list_for_ticket(s, ticket_id)
    st.markdown(f"**[{ticket_ref(ticket_id)}]({core.ticket_url(ticket_id)})** · raw messages are {kept_for}")
    if not messages:
        st.info(f"No raw message is kept for {ticket_ref(ticket_id)}.")
    for m in messages:
        st.markdown(f"- [{core.fmt_time(m.received_at)} · {m.size:,} bytes]({raw_store.raw_url(m.id)}) · "
                    f"{core.escape_md(m.message_id)}")
    st.stop()

assert raw_id is not None  # for the type checker: one of the two was given (st.stop() above otherwise)
with core.reading() as s:
    row = raw_store.get(s, raw_id)
    if row is not None:
        data, message_id, tid, received_at = row.raw, row.message_id, row.ticket_id, row.received_at
if row is None:
    st.error(f"Raw message {raw_id} does not exist: it may have been removed (raw messages are {kept_for}).")
    st.stop()

where = f"[{ticket_ref(tid)}]({core.ticket_url(tid)}) · " if tid is not None else ""
st.markdown(f"{where}received {core.fmt_time(received_at)} · {len(data):,} bytes · {kept_for}")
st.text(f"Message-ID: {core.reveal_bidi(message_id)}")
st.download_button("⬇️ Download the message (.eml)", data=data, file_name=f"message-{raw_id}.eml",
                   mime="application/octet-stream")
text = raw_store.as_text(data)
if len(text) > raw_store.SHOWN_CHARS:
    st.warning(f"The message is long: the first {raw_store.SHOWN_CHARS:,} characters are shown; download it "
               "for the rest.")
    text = text[: raw_store.SHOWN_CHARS]
st.code(core.reveal_bidi(text), language=None, wrap_lines=True)
