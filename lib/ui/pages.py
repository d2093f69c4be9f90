"""The page registry: which pages exist, their URL paths, sections and the lowest role that sees them."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from lib.config import ROOT
from lib.workflow import Role


@dataclass(frozen=True)
class PageSpec:
    file: str
    title: str
    icon: str
    url_path: str
    section: str
    min_role: Role = Role.TECHNICIAN
    default: bool = False

    def page(self):  # type: ignore[no-untyped-def]
        return st.Page(str(ROOT / "pages" / self.file), title=self.title, icon=self.icon, url_path=self.url_path,
                       default=self.default)


PAGES: list[PageSpec] = [
    PageSpec("queue.py", "Queue", "📋", "queue", "Work", default=True),
    PageSpec("ticket.py", "Ticket", "🎫", "ticket", "Work"),
    PageSpec("intake.py", "New ticket", "➕", "intake", "Work"),
    PageSpec("kb.py", "Knowledge base", "📚", "kb", "Work"),
    PageSpec("metrics.py", "Metrics", "📈", "metrics", "Team", min_role=Role.SENIOR),
    PageSpec("report.py", "Weekly report", "🗓️", "report", "Team", min_role=Role.SENIOR),
    PageSpec("board.py", "Workload board", "🧭", "board", "Team", min_role=Role.LEAD),
    PageSpec("admin.py", "Admin", "⚙️", "admin", "Team", min_role=Role.LEAD),
    PageSpec("account.py", "My account", "👤", "account", "Account"),
]


def public_pages() -> list:
    """Pages for requesters, who never log in (the signed confirmation link)."""
    return [st.Page(str(ROOT / "pages" / "confirm.py"), title="Confirm", icon="✅", url_path="confirm")]
