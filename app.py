"""Entry script: page config, login gate, role-based navigation — nothing else."""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="Help desk", page_icon="🛠️", layout="wide")

from lib.ui import auth, core  # noqa: E402
from lib.ui.pages import PAGES, public_pages  # noqa: E402
from lib.workflow import Role  # noqa: E402


def _login_view() -> None:
    """Logged out: the login form was drawn by main(); the page itself adds nothing."""
    core.flash()


def main() -> None:
    if auth.needs_setup():
        st.navigation([st.Page(auth.setup_page, title="Set up", icon="🧰", url_path="setup")],
                      position="hidden").run()
        return
    logged_in = auth.login_gate() if not st.session_state.get("authentication_status") else True
    user = core.current_user() if logged_in else None
    if user is None:
        if logged_in:  # the account was deactivated since login
            auth.logout()
            st.error("Your account is no longer active. Ask a lead.")
        # Every known path shows the login form, so a deep link (e.g. /ticket?id=12) survives the login.
        login_pages = [st.Page(_login_view, title="Log in", icon="🔑", url_path=p.url_path, default=p.default)
                       for p in PAGES]
        st.navigation(login_pages + public_pages(), position="hidden").run()
        return
    role = Role(user.role)
    sections: dict[str, list] = {}
    for spec in PAGES:
        if role >= spec.min_role:
            sections.setdefault(spec.section, []).append(spec.page())
    with st.sidebar:
        st.caption(f"Signed in as **{user.name}** · {role.label}")
    core.settings_banner(role)
    st.navigation(sections).run()


main()
