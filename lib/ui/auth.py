"""Sign-in against the users table with server-side sessions; first-run setup.

The password is checked here (bcrypt, with the lockout counted atomically in the database: lib.login.sign_in);
the browser then fetches ``/auth/session`` once, which sets an HttpOnly, SameSite=Strict cookie carrying only a
random signed token (lib.auth_routes). Every run checks that token against the ``login_sessions`` table, so
Log out, a password reset, a role change or a deactivation end the session everywhere at the next click.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

import streamlit as st

from lib import login, sessions, users
from lib.auth_routes import cookie_key
from lib.config import get_settings
from lib.db import transaction
from lib.models import User
from lib.ui.core import SESSION_TOKEN, current_user, get_engine, reading
from lib.workflow import Role

#: Databases (by URL) known to have accounts: set up once, a desk never needs the first-run page again.
_set_up: set[str] = set()


def needs_setup() -> bool:
    """No account yet (the first-run page). Once a database has one, this server stops asking on every run."""
    url = get_settings().database_url
    if url in _set_up:
        return False
    with reading() as s:
        empty = users.count_users(s) == 0
    if not empty:
        _set_up.add(url)
    return empty


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


def _cookie_token() -> str | None:
    try:
        value = st.context.cookies.get(get_settings().cookie_name)
    except Exception:  # noqa: BLE001 - no browser context (a bare script run): no cookie
        return None
    return sessions.unsign(value, cookie_key())


def _here() -> str:
    """The path and query of the page being shown, to come back to after signing in (a deep link survives)."""
    from urllib.parse import urlsplit

    try:
        path = urlsplit(st.context.url or "/").path or "/"
    except Exception:  # noqa: BLE001 - no browser context
        path = "/"
    query = urlencode([(k, v) for k in st.query_params for v in st.query_params.get_all(k)])
    return path + (f"?{query}" if query else "")


def _go(url: str, message: str) -> None:
    """Send the browser to one of our routes (they set or clear the HttpOnly cookie), and stop this run."""
    st.info(message, icon="🔐")
    st.html(f"<script>window.location.replace({json.dumps(url)});</script>", unsafe_allow_javascript=True)
    st.link_button("Continue", url)  # for a browser that runs no script
    st.stop()


def login_gate() -> User | None:
    """The signed-in user (this browser's session, or its cookie, checked against the database), or None after
    drawing the login form.

    A correct password starts a session and hands it to the browser through ``/auth/session``, which sets the
    cookie and comes back to the page asked for.
    """
    if not st.session_state.get(SESSION_TOKEN):
        token = _cookie_token()
        if token:
            st.session_state[SESSION_TOKEN] = token
    user = current_user()  # None (and the token dropped) when the session has ended
    if user is not None:
        return user
    with st.form("login_form", border=True):
        st.subheader("Log in to the help desk")
        username = st.text_input("Username", key="login_username", autocomplete="username")
        password = st.text_input("Password", type="password", key="login_password", autocomplete="current-password")
        submitted = st.form_submit_button("Log in", type="primary")
    if not submitted:
        return None
    try:
        agent = st.context.headers.get("User-Agent")
    except Exception:  # noqa: BLE001
        agent = None
    result = login.sign_in(get_engine(), username=username, password=password, user_agent=agent)
    if result.code is None:
        st.error(result.error or "Login failed; try again.", icon="🔒" if result.locked else None)
        return None
    st.session_state.pop("login_password", None)
    _go("/auth/session?" + urlencode({"code": result.code, "next": _here()}), "Logged in — loading…")
    return None  # not reached: _go stops the run


def logout(*, everywhere: bool = False) -> None:
    """End this browser's session in the database (so the cookie is worthless from now on, wherever it was
    copied) — or every session of the account — then let the logout route clear the cookie and show the form."""
    token = st.session_state.pop(SESSION_TOKEN, None) or _cookie_token()
    username = st.session_state.pop("username", None)
    with transaction(get_engine()) as s:
        if token:
            sessions.revoke(s, token=token, reason="logout")
        user = users.get_by_username(s, username) if username else None
        if user is not None:
            if everywhere:
                sessions.revoke_all(s, user_id=user.id, reason="signed out everywhere")
            users.record_logout(s, username=user.username)
    _go("/auth/logout", "Signing out…")


def describe_agent(agent: str | None) -> str:
    """A browser's User-Agent as a person names it: "Chrome on Windows"."""
    ua = agent or ""
    browser = next((name for key, name in (("Edg/", "Edge"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"),
                                           ("Safari/", "Safari")) if key in ua), "a browser")
    system = next((name for key, name in (("Windows", "Windows"), ("Android", "Android"), ("iPhone", "iOS"),
                                          ("iPad", "iPadOS"), ("Mac OS X", "macOS"), ("Linux", "Linux"))
                   if key in ua), "an unknown system")
    return f"{browser} on {system}"


def my_sessions(user_id: int, current: int | None) -> list[dict[str, str]]:
    """The account's signed-in browsers for My account, this one first and marked."""
    from lib.ui.core import fmt_time

    with reading() as s:
        rows = sorted(sessions.active(s, user_id=user_id), key=lambda r: r.id != current)
        return [{"": "➡️ this browser" if r.id == current else "", "Browser": describe_agent(r.user_agent),
                 "Signed in": fmt_time(r.created_at), "Last used": fmt_time(r.last_seen_at)}
                for r in rows]
