"""Public page behind the signed link in the confirmation mail. Opening it records nothing.

Requesters see only messages written for them: a refused or already used link, or a failure on our side,
never a stack trace or who worked on the ticket.
"""

from __future__ import annotations

import logging

import streamlit as st

from lib import confirm
from lib.db import read_session, transaction
from lib.errors import ValidationError
from lib.models import ticket_ref
from lib.ui.core import get_engine, reveal_bidi, user_text

log = logging.getLogger(__name__)
TRY_AGAIN = "Sorry, something went wrong on our side. Please try again in a few minutes, or reply to our e-mail."

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
except Exception:
    log.exception("confirmation page: reading the link failed")
    st.error(TRY_AGAIN, icon="⚠️")
    st.stop()


def submit(*, works: bool, comment: str | None, rating: int | None, thanks: str) -> None:
    """Record the requester's answer in one transaction; any refusal is shown in their words."""
    try:
        with transaction(get_engine()) as s:
            confirm.answer(s, token, works=works, comment=comment, rating=None if rating is None else rating + 1)
    except ValidationError as exc:  # what they typed stays in the box
        st.error("; ".join(exc.fields.values()) or str(exc))
        return
    except confirm.LinkRefused as exc:
        st.error(str(exc), icon="🔗")
        st.stop()
    except Exception:  # any other refusal (HelpdeskError) or failure: logged for the desk, never shown
        log.exception("confirmation page: recording the answer failed")
        st.error(TRY_AGAIN, icon="⚠️")
        return
    st.session_state["confirm_done"] = thanks
    st.rerun()


st.markdown(f"**{ref}**")
user_text(reveal_bidi(summary))
if notes:
    with st.container(border=True):
        st.caption("What we did")
        user_text(reveal_bidi(notes))
rating = st.feedback("stars", key="confirm_rating")
st.caption("Optional: how satisfied are you with how we handled it?")
c1, c2 = st.columns(2)
with c1:
    if st.button("✅ Yes, it works", type="primary", key="confirm_yes"):
        submit(works=True, comment=None, rating=rating,
               thanks="Thank you! We have recorded your confirmation and will close the ticket.")
with c2:
    comment = st.text_area("Still broken? Tell us what happens", key="confirm_comment")
    if st.button("❌ No, still broken", key="confirm_no"):
        submit(works=False, comment=comment, rating=rating,
               thanks="Thank you — we have reopened the ticket and will be in touch.")
