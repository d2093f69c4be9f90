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

    @property
    def min_role(self) -> Role:
        return PERMISSIONS[self.permission] if self.permission is not None else Role.TECHNICIAN

    def page(self):
        return st.Page(str(ROOT / "pages" / self.file), title=self.title, icon=self.icon, url_path=self.url_path,
                       default=self.default)


PAGES: list[PageSpec] = [
    PageSpec("queue.py", "Queue", "📋", "queue", "Work", default=True),
    PageSpec("ticket.py", "Ticket", "🎫", "ticket", "Work"),
    PageSpec("intake.py", "New ticket", "➕", "intake", "Work"),
    PageSpec("kb.py", "Knowledge base", "📚", "kb", "Work"),
    PageSpec("metrics.py", "Metrics", "📈", "metrics", "Team", permission=Permission.VIEW_METRICS),
    PageSpec("report.py", "Weekly report", "🗓️", "report", "Team", permission=Permission.VIEW_METRICS),
    PageSpec("board.py", "Workload board", "🧭", "board", "Team", permission=Permission.VIEW_BOARD),
    PageSpec("admin.py", "Admin", "⚙️", "admin", "Team", permission=Permission.ADMIN),
    PageSpec("account.py", "My account", "👤", "account", "Account"),
]


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
