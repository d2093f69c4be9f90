"""Login with streamlit-authenticator against the users table; first-run setup; lockout counted in the DB.

A fresh ``Authenticate`` is built on every run from a fresh credentials dict (the widget mutates it),
with pre-hashed bcrypt passwords (``auto_hash=False``) and a cookie key from secrets or the environment
(generated once into data/generated_secrets.toml when missing — never a constant in code).
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

import streamlit as st
import streamlit_authenticator as stauth
from streamlit_authenticator.utilities.exceptions import LoginError

from lib import clock, users
from lib.config import get_secret, get_settings
from lib.db import transaction
from lib.models import User
from lib.ui.core import get_engine, reading
from lib.workflow import Role

_RECORDED = "_login_recorded_for"


def cookie_key() -> str:
    key = get_secret("cookie_key", generate=True) or ""
    if len(key.encode()) < 32:
        raise RuntimeError("the cookie key must be at least 32 bytes: set HELPDESK_COOKIE_KEY or [helpdesk] cookie_key")
    return key


def _credentials(now: datetime) -> tuple[dict, dict[str, int]]:
    from sqlalchemy import select

    settings = get_settings()
    creds: dict = {"usernames": {}}
    before: dict[str, int] = {}
    with reading() as s:
        for u in s.scalars(select(User).where(User.active.is_(True))).unique():
            failures = users.effective_failures(u, now=now)
            # A locked account reports the maximum so the widget refuses it; the message is ours.
            if u.locked_until is not None and u.locked_until > now:
                failures = max(failures, settings.login_max_failures)
            creds["usernames"][u.username] = {
                "name": u.name,
                "email": u.email or f"{u.username}@localhost",
                "password": u.password_hash,
                "roles": [Role(u.role).key],
                "failed_login_attempts": failures,
                "logged_in": False,
            }
            before[u.username] = failures
    return creds, before


def authenticator() -> tuple[stauth.Authenticate, dict, dict[str, int]]:
    settings = get_settings()
    creds, before = _credentials(clock.now())
    auth = stauth.Authenticate(
        creds,
        cookie_name=settings.cookie_name,
        cookie_key=cookie_key(),
        cookie_expiry_days=settings.cookie_expiry_days,
        auto_hash=False,
        login_sleep_time=float(st.session_state.get("_login_sleep_time", 0.0)),
    )
    return auth, creds, before


def needs_setup() -> bool:
    with reading() as s:
        return users.count_users(s) == 0


def setup_page() -> None:
    """First run on an empty database: create the first lead account. No default passwords anywhere."""
    st.title("Welcome to the help desk")
    st.write("There are no accounts yet. Create the **team lead** account first; "
             "the lead then adds technicians on the Admin page.")
    errors = st.session_state.get("setup_errors", {})
    with st.form("setup", border=True):
        username = st.text_input("Username", key="setup_username", help="letters, digits, . _ -")
        if errors.get("username"):
            st.error(errors["username"])
        name = st.text_input("Full name", key="setup_name")
        if errors.get("name"):
            st.error(errors["name"])
        email = st.text_input("E-mail", key="setup_email")
        if errors.get("email"):
            st.error(errors["email"])
        pw = st.text_input("Password", type="password", key="setup_pw", help=f"at least {users.MIN_PASSWORD} characters")
        pw2 = st.text_input("Repeat password", type="password", key="setup_pw2")
        if errors.get("password"):
            st.error(errors["password"])
        submitted = st.form_submit_button("Create lead account", type="primary")
    if submitted:
        if pw != pw2:
            st.session_state["setup_errors"] = {"password": "the two passwords differ"}
            st.rerun()
        try:
            with transaction(get_engine()) as s:
                users.create_user(s, actor=None, username=username, name=name, email=email or None,
                                  password=pw, role=Role.LEAD, first_run=True)
        except users.ValidationError as exc:
            st.session_state["setup_errors"] = exc.fields
            st.rerun()
        except users.PermissionDenied as exc:
            st.error(str(exc))
            return
        st.session_state.pop("setup_errors", None)
        st.session_state["flash"] = "Lead account created. Log in with it now."
        st.rerun()


def login_gate() -> bool:
    """Log in from the cookie, or render the login form. True when a user is logged in.

    streamlit-authenticator keeps the session and the re-login cookie; the password check and the
    failure count happen here, in the database, in the same run as the submit (so a rerun triggered
    by the cookie component can never lose a failure).
    """
    auth, _creds, _before = authenticator()
    st.session_state["_authenticator"] = auth
    if not st.session_state.get("authentication_status"):
        try:
            auth.login(location="unrendered")  # the cookie, if there is a valid one
        except LoginError:
            pass  # a cookie for an unknown or deactivated user: show the form
    if st.session_state.get("authentication_status"):
        username = cast(str, st.session_state.get("username"))  # set by streamlit-authenticator with the status
        if st.session_state.get(_RECORDED) != username:
            with transaction(get_engine()) as s:
                users.record_success(s, username=username, via="cookie")
            st.session_state[_RECORDED] = username
        return True
    with st.form("login_form", border=True):
        st.subheader("Log in to the help desk")
        username = st.text_input("Username", key="login_username", autocomplete="username")
        password = st.text_input("Password", type="password", key="login_password", autocomplete="current-password")
        submitted = st.form_submit_button("Log in", type="primary")
    if not submitted:
        return False
    now = clock.now()
    name = (username or "").strip().lower()
    with transaction(get_engine()) as s:
        user = users.get_by_username(s, name)
        locked = users.lock_message(user, now=now) if user is not None else None
        ok = (locked is None and user is not None and user.active
              and users.check_password(password or "", user.password_hash))
        if ok:
            users.record_success(s, username=name, via="password", now=now)
        elif locked is None:
            state = users.record_failure(s, username=name or "(empty)", now=now)
            if state is not None and user is not None:
                locked = users.lock_message(user, now=now)
    if locked:
        st.error(locked, icon="🔒")
        return False
    if not ok:
        st.error("Username or password is incorrect.")
        return False
    auth.authentication_controller.login(name, password)  # session state: name, username, roles
    if not st.session_state.get("authentication_status"):
        st.error("Login failed; try again.")
        return False
    auth.cookie_controller.set_cookie()
    st.session_state[_RECORDED] = name
    _continue_after_login()
    return True


def _continue_after_login() -> None:
    """The run that accepted the password still shows the form. Let the browser store the login cookie
    (a component sent in this run), then rerun the whole app without the form."""
    st.success("Logged in — loading…", icon="🔓")

    @st.fragment(run_every=0.6)
    def _tick() -> None:
        if st.session_state.pop("_login_tick", False):
            st.rerun()
        st.session_state["_login_tick"] = True

    _tick()
    st.stop()


def logout() -> None:
    auth = st.session_state.get("_authenticator")
    username = st.session_state.get("username")
    if username:
        with transaction(get_engine()) as s:
            users.record_logout(s, username=username)
    if auth is not None:
        auth.logout(location="unrendered")
    st.session_state.pop(_RECORDED, None)
