"""My account: change my password, choose how notifications reach me by mail, see where I am signed in, sign out
(here or everywhere)."""

from __future__ import annotations

import streamlit as st

from lib import report_mail, staff_notify, users
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

st.markdown("#### Notifications by mail")
with core.reading() as s:
    mail_mode = staff_notify.email_mode(s, user.id)
modes = list(staff_notify.EmailMode)
with st.form("notify_mail_form"):
    chosen_mode = st.radio("Mail me my notifications", modes, index=modes.index(mail_mode), key="notify_mail_mode",
                           format_func=lambda m: m.label)
    st.caption(f"Every notification is also on 🔔 Notifications. The digest comes once a day from "
               f"{get_settings().staff_digest_hour:02d}:00 ({get_settings().timezone}), listing the unread ones not "
               "mailed yet. " + ("" if user.email else "You have no e-mail address: ask a lead to add one."))
    if st.form_submit_button("Save mail choice"):
        if core.write(lambda s: staff_notify.set_email_mode(s, user_id=user.id, mode=chosen_mode),
                      success="Mail choice saved") is not None:
            st.rerun()

st.markdown("#### The weekly report")
with core.reading() as s:
    subscribed = report_mail.is_subscribed(s, user.id)
    schedule = report_mail.get_schedule(s)
if user.role >= Role.LEAD:
    st.caption(f"As a team lead you get it anyway: {schedule.describe()}.")
else:
    wants = st.toggle("Mail me the weekly report", value=subscribed, key="report_mail_me",
                      help=f"The last full week's numbers, two trend charts, CSV and XLSX attached: "
                           f"{schedule.describe()}.")
    if wants != subscribed and core.write(lambda s: report_mail.set_subscribed(s, user.id, wants),
                                          success="Weekly report on" if wants else "Weekly report off") is not None:
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
