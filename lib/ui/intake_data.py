"""Small reads for the intake form (contact and asset search, categories, duplicates)."""

from __future__ import annotations

import streamlit as st

from lib import directory, queries
from lib.ui.core import reading


def search_requesters(text: str) -> list[tuple[int, str]]:
    with reading() as s:
        return [(r.id, f"{r.name} <{r.email}>" if r.email else f"{r.name} ({r.phone or 'no e-mail'})")
                for r in directory.search_requesters(s, text)]


def search_devices(text: str) -> list[tuple[int, str]]:
    with reading() as s:
        return [(d.id, " · ".join(x for x in (d.asset_tag, d.make_model, d.device_type, d.location) if x))
                for d in directory.search_devices(s, text)]


@st.cache_data(ttl=60, show_spinner=False)
def categories() -> dict[int, str]:
    with reading() as s:
        return {c.id: c.name for c in directory.list_categories(s)}


def duplicates(ticket_id: int) -> list[tuple[int, str, str]]:
    with reading() as s:
        t = queries.get_ticket(s, ticket_id)
        if t is None:
            return []
        rows = queries.possible_duplicates(s, requester_id=t.requester_id, device_id=t.device_id, exclude=t.id)
        return [(r.id, r.summary, r.status.label) for r in rows]
