"""The page registry: which pages exist, their URL paths, sections and the lowest role that sees them."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from lib.config import ROOT
from lib.workflow import PERMISSIONS, Permission, Role


@dataclass(frozen=True)
class PageSpec:
    file: str
    title: str
    icon: str
    url_path: str
    section: str
    permission: Permission | None = None  # None: every staff member
    default: bool = False
    hidden: bool = False  # not in the sidebar: reached by links (e.g. a ticket's raw mail)
    counts_unread: bool = False  # the title shows the signed-in person's unread notifications, e.g. "Notifications (3)"

    @property
    def min_role(self) -> Role:
        return PERMISSIONS[self.permission] if self.permission is not None else Role.TECHNICIAN

    def page(self):
        title = unread_title(self.title) if self.counts_unread else self.title
        return st.Page(str(ROOT / "pages" / self.file), title=title, icon=self.icon, url_path=self.url_path,
                       default=self.default, visibility="hidden" if self.hidden else "visible")


PAGES: list[PageSpec] = [
    PageSpec("queue.py", "Queue", "📋", "queue", "Work", default=True),
    PageSpec("ticket.py", "Ticket", "🎫", "ticket", "Work"),
    PageSpec("intake.py", "New ticket", "➕", "intake", "Work"),
    PageSpec("kb.py", "Knowledge base", "📚", "kb", "Work"),
    PageSpec("raw_mail.py", "Raw message", "✉️", "raw_mail", "Work", hidden=True),
    PageSpec("metrics.py", "Metrics", "📈", "metrics", "Team", permission=Permission.VIEW_METRICS),
    PageSpec("report.py", "Weekly report", "🗓️", "report", "Team", permission=Permission.VIEW_METRICS),
    PageSpec("board.py", "Workload board", "🧭", "board", "Team", permission=Permission.VIEW_BOARD),
    PageSpec("admin.py", "Admin", "⚙️", "admin", "Team", permission=Permission.ADMIN),
    PageSpec("inbox.py", "Notifications", "🔔", "inbox", "Account", counts_unread=True),
    PageSpec("account.py", "My account", "👤", "account", "Account"),
]


def unread_title(title: str) -> str:
    """``title`` with the signed-in person's unread notifications, as the sidebar shows it on every page: one COUNT
    on an index per run (lib.staff_notify.unread_count_for)."""
    try:
        username = st.session_state.get("username")
    except Exception:  # noqa: BLE001 - outside a script run there is no session
        return title
    if not username:
        return title
    from lib import staff_notify
    from lib.ui import core

    def read() -> int:
        with core.reading() as s:
            return staff_notify.unread_count_for(s, str(username))

    unread = core.per_run("unread", read)  # the sidebar's line asks too, in the same run
    return f"{title} ({unread})" if unread else title


PUBLIC_PATHS = ("confirm",)


def on_public_page() -> bool:
    """True when the browser asked for a requester's page (by its path, as the link in the mail gives it)."""
    from urllib.parse import urlsplit

    try:
        path = urlsplit(st.context.url or "").path
    except Exception:  # noqa: BLE001 - no browser context
        return False
    return path.rstrip("/").rsplit("/", 1)[-1] in PUBLIC_PATHS


def public_pages() -> list:
    """Pages for requesters, who never log in (the signed confirmation link)."""
    return [st.Page(str(ROOT / "pages" / "confirm.py"), title="Confirm", icon="✅", url_path="confirm")]


def live_unread(user_id: int) -> None:
    """In the sidebar, on every page: "🔔 3 unread notifications" (a link to them), refreshed every
    ``notifications_refresh_seconds`` by a fragment that reruns alone, so a notification shows without a reload
    and without disturbing the page (the page titles' count catches up at the next full run)."""
    from lib.config import get_settings

    every = get_settings().notifications_refresh_seconds

    @st.fragment(run_every=every or None)
    def line() -> None:
        from lib import staff_notify
        from lib.ui import core

        def read() -> int:
            with core.reading() as s:
                return staff_notify.unread_count(s, user_id)

        unread = core.per_run("unread", read)  # the page titles' count, read in this run already
        if unread:
            st.markdown(f"[🔔 **{unread}** unread notification{'s' if unread != 1 else ''}](/inbox)")

    line()
