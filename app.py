"""Entry script: page config, login gate, role-based navigation — nothing else."""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="Help desk", page_icon="🛠️", layout="wide")

from sqlalchemy.exc import DBAPIError  # noqa: E402
from streamlit.navigation.page import StreamlitPage  # noqa: E402

from lib import page_timer  # noqa: E402
from lib.ui import auth, core  # noqa: E402
from lib.ui.pages import PAGES, live_unread, on_public_page, public_pages  # noqa: E402
from lib.workflow import Role  # noqa: E402


def _login_view() -> None:
    """Logged out: the login form was drawn by main(); the page itself adds nothing."""
    core.flash()


def _run(nav: StreamlitPage, run: page_timer.Run, prefix: str = "") -> None:
    """Run the page the navigation chose, named for the page timer by its address (the root page too)."""
    run.page = prefix + (nav.url_path or getattr(nav, "_url_path", "") or nav.title.lower().replace(" ", "-"))
    nav.run()


def main(run: page_timer.Run) -> None:
    if auth.needs_setup():
        _run(st.navigation([st.Page(auth.setup_page, title="Set up", icon="🧰", url_path="setup")],
                           position="hidden"), run)
        return
    if on_public_page():
        # A requester's page (the signed confirmation link): no login form, no staff chrome, whoever opens it.
        # (A default page besides it: a lone page would be the default, served at "/", and its own path would
        # then read as "Page not found".)
        _run(st.navigation([st.Page(_login_view, title="Help desk", url_path="home", default=True),
                            *public_pages()], position="hidden"), run)
        return
    user = auth.login_gate()
    if user is None:
        # Every known path shows the login form, so a deep link (e.g. /ticket?id=12) survives the login.
        login_pages = [st.Page(_login_view, title="Log in", icon="🔑", url_path=p.url_path, default=p.default)
                       for p in PAGES]
        _run(st.navigation(login_pages + public_pages(), position="hidden"), run, prefix="log-in:")
        return
    role = Role(user.role)
    sections: dict[str, list] = {}
    for spec in PAGES:
        if role >= spec.min_role:
            sections.setdefault(spec.section, []).append(spec.page())
    with st.sidebar:
        st.caption(f"Signed in as **{user.name}** · {role.label}")
        live_unread(user.id)
    core.settings_banner(role)
    _run(st.navigation(sections), run)


try:
    with page_timer.timed() as this_run, core.page_reads(this_run):
        main(this_run)
except DBAPIError:  # the database is down or unreachable: a calm page that carries on by itself
    core.database_unavailable()
