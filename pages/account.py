"""My account: change my password, see where I am signed in, sign out (here or everywhere)."""

from __future__ import annotations

import streamlit as st

from lib import users
from lib.config import get_settings
from lib.ui import auth, core
from lib.workflow import Role

user = core.require_role(Role.TECHNICIAN)
core.flash()
st.title("👤 My account")
st.markdown(f"**{user.name}** · `{user.username}` · {Role(user.role).label} · {user.email or 'no e-mail'}")

errors = st.session_state.get("pw_errors", {})
with st.form("password_form", clear_on_submit=False):
    st.markdown("#### Change my password")
    current = st.text_input("Current password", type="password", key="pw_current")
    if errors.get("current_password"):
        st.error(errors["current_password"])
    new = st.text_input("New password", type="password", key="pw_new", help=f"at least {users.MIN_PASSWORD} characters")
    repeat = st.text_input("Repeat new password", type="password", key="pw_repeat")
    if errors.get("new_password"):
        st.error(errors["new_password"])
    if st.form_submit_button("Change password"):
        if new != repeat:
            st.session_state["pw_errors"] = {"new_password": "the two entries differ"}
            st.rerun()
        here = st.session_state.get("_session_id")
        if core.write(lambda s: users.change_own_password(s, actor=user.id, current=current, new=new,  # type: ignore[func-returns-value]  # None, so "or True" makes success truthy
                                                          keep_session=here) or True,
                      errors_key="pw_errors", success="Password changed; your other sessions are signed out"):
            for k in ("pw_current", "pw_new", "pw_repeat"):
                st.session_state.pop(k, None)
            st.rerun()
        st.rerun()

st.markdown("#### Where I am signed in")
here = st.session_state.get("_session_id")
mine = auth.my_sessions(user.id, here)
st.dataframe(mine, hide_index=True, width="stretch")
st.caption("A session ends at Log out, after "
           f"{get_settings().session_idle_minutes} minutes unused, or "
           f"{get_settings().session_lifetime_hours} hours after signing in.")
c1, c2 = st.columns(2)
if c1.button("Log out", key="logout_button", type="primary"):
    auth.logout()
if c2.button("Sign out everywhere", key="logout_everywhere", help="ends every session of yours, this one too"):
    auth.logout(everywhere=True)
