"""Public page behind the signed link in the confirmation mail. Opening it records nothing."""

from __future__ import annotations

import streamlit as st

from lib import confirm
from lib.db import read_session, transaction
from lib.errors import HelpdeskError, ValidationError
from lib.models import ticket_ref
from lib.ui.core import get_engine, user_text

st.title("Is it fixed?")
token = st.query_params.get("t", "")
done = st.session_state.get("confirm_done")
if done:
    st.success(done, icon="🙏")
    st.stop()
try:
    with read_session(get_engine()) as s:
        _row, ticket = confirm.check(s, token)
        ref, summary, notes = ticket_ref(ticket.id), ticket.summary, ticket.resolution_notes
except confirm.LinkRefused as exc:
    st.error(str(exc), icon="🔗")
    st.stop()

st.markdown(f"**{ref}**")
user_text(summary)
if notes:
    with st.container(border=True):
        st.caption("What we did")
        user_text(notes)
rating = st.feedback("stars", key="confirm_rating")
st.caption("Optional: how satisfied are you with how we handled it?")
c1, c2 = st.columns(2)
with c1:
    if st.button("✅ Yes, it works", type="primary", key="confirm_yes"):
        try:
            with transaction(get_engine()) as s:
                confirm.answer(s, token, works=True, rating=None if rating is None else rating + 1)
        except (confirm.LinkRefused, HelpdeskError) as exc:
            st.error(str(exc), icon="🔗")
            st.stop()
        st.session_state["confirm_done"] = "Thank you! We have recorded your confirmation and will close the ticket."
        st.rerun()
with c2:
    comment = st.text_area("Still broken? Tell us what happens", key="confirm_comment")
    if st.button("❌ No, still broken", key="confirm_no"):
        try:
            with transaction(get_engine()) as s:
                confirm.answer(s, token, works=False, comment=comment,
                               rating=None if rating is None else rating + 1)
        except ValidationError as exc:
            st.error("; ".join(exc.fields.values()) or str(exc))
        except HelpdeskError as exc:
            st.error(str(exc), icon="🔗")
        else:
            st.session_state["confirm_done"] = "Thank you — we have reopened the ticket and will be in touch."
            st.rerun()
