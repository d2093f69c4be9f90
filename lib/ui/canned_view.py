"""Canned replies: the lead's Admin tab (add, edit, remove) and the picker technicians use beside a reply or note
text area to insert one, filled in for the ticket, and edit it before sending. Rules live in lib.canned."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from lib import canned
from lib.models import CannedResponse, Ticket, User
from lib.ui import core

ERRORS_NEW, ERRORS_EDIT = "canned_new_errors", "canned_edit_errors"


def _responses() -> list[CannedResponse]:
    """The canned replies, read once per page run (a reply and a note box each have a picker)."""
    def read() -> list[CannedResponse]:
        with core.reading() as s:
            rows = canned.list_responses(s)
            for row in rows:
                s.expunge(row)
            return rows

    return core.per_run("canned_responses", read)


def _placeholders_help() -> str:
    return "Placeholders: " + ", ".join(f"`{{{k}}}` {v}" for k, v in canned.PLACEHOLDERS.items()) + \
        ". Write `{{` and `}}` for literal braces."


def _field_errors(key: str) -> None:
    for field, message in st.session_state.get(key, {}).items():
        st.error(f"{field}: {message}")


def render(lead: User) -> None:
    """Admin → 💬 Canned replies (the page checks the lead's role; the services check it again)."""
    rows = _responses()
    st.caption("Reply snippets technicians insert into a public reply or an internal note, and edit before sending. "
               + _placeholders_help())
    if rows:
        st.dataframe(pd.DataFrame([{"Title": r.title, "Text": r.body, "Changed by": r.updated_by or "",
                                    "Changed": core.fmt_time(r.updated_at)} for r in rows]),
                     hide_index=True, width="stretch")
    else:
        st.info("No canned replies yet.", icon="💬")

    with st.expander("➕ Add a canned reply", expanded=not rows):
        with st.form("canned_new"):
            title = st.text_input("Title", key="cr_new_title", max_chars=canned.TITLE_MAX)
            body = st.text_area("Text", key="cr_new_body", height=160,
                                placeholder="Hello {requester_name},\n\nAbout {ticket} ({summary}): …\n\n{technician}")
            _field_errors(ERRORS_NEW)
            if st.form_submit_button("Add canned reply", type="primary"):
                made = core.write(lambda s: canned.create(s, actor=lead.id, title=title, body=body),
                                  errors_key=ERRORS_NEW, success="Canned reply added")
                if made is not None:
                    for k in ("cr_new_title", "cr_new_body"):
                        st.session_state.pop(k, None)
                    st.rerun()

    if not rows:
        return
    st.markdown("#### Edit a canned reply")
    by_id = {r.id: r for r in rows}
    pick = st.selectbox("Canned reply", list(by_id), format_func=lambda i: by_id[i].title, key="cr_edit_pick")
    row = by_id[pick]
    with st.form(f"canned_edit_{pick}"):
        new_title = st.text_input("Title", value=row.title, key=f"cr_title_{pick}", max_chars=canned.TITLE_MAX)
        new_body = st.text_area("Text", value=row.body, key=f"cr_body_{pick}", height=160)
        _field_errors(ERRORS_EDIT)
        c1, c2 = st.columns(2)
        save = c1.form_submit_button("Save changes", type="primary")
        remove = c2.form_submit_button("Remove this canned reply")
    if save:
        if core.write(lambda s: canned.update(s, actor=lead.id, canned_id=pick, title=new_title, body=new_body),
                      errors_key=ERRORS_EDIT, success="Canned reply saved") is not None:
            st.rerun()
    if remove:
        if core.write(lambda s: canned.delete(s, actor=lead.id, canned_id=pick) or True,  # type: ignore[func-returns-value]  # None, so "or True" makes success truthy
                      success="Canned reply removed") is not None:
            st.session_state.pop("cr_edit_pick", None)
            st.rerun()


def _insert(ticket_id: int, target_key: str, pick_key: str, technician_id: int | None) -> None:
    """The Insert button's callback: runs before the rerun, so the text area's state may still be changed."""
    canned_id = st.session_state.get(pick_key)
    if canned_id is None:
        return
    if technician_id is None:
        me = core.current_user()
        technician_id = me.id if me is not None else None
    with core.reading() as s:
        text = canned.render(s, canned_id=int(canned_id), ticket_id=ticket_id, technician_id=technician_id)
    current = st.session_state.get(target_key) or ""
    st.session_state[target_key] = (current.rstrip("\n") + "\n\n" + text) if current.strip() else text


def picker(ticket: Ticket | int, target_key: str, *, technician_id: int | None = None) -> None:
    """A canned-reply chooser with an Insert button that appends the chosen reply, filled in for ``ticket``, to the
    text area whose key is ``target_key`` (which the technician then edits and sends as usual)."""
    ticket_id = ticket if isinstance(ticket, int) else ticket.id
    rows = _responses()
    if not rows:
        st.caption("No canned replies yet: a lead adds them on Admin → 💬 Canned replies.")
        return
    by_id = {r.id: r.title for r in rows}
    pick_key = f"{target_key}__canned"
    row = st.container(horizontal=True, gap="small", vertical_alignment="bottom")  # one element, not three
    row.selectbox("Canned reply", list(by_id), format_func=lambda i: by_id[i], key=pick_key)
    row.button("Insert", key=f"{target_key}__canned_insert", on_click=_insert,
               args=(ticket_id, target_key, pick_key, technician_id), width="content",
               help="Adds the reply, filled in for this ticket, to the text above; edit it before sending")
