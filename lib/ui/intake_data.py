"""Small reads for the intake form (contact and asset search, categories, duplicates), and how its problems are
put to the user: in the words of the form's labels, all at once, each at its field and listed by the button."""

from __future__ import annotations

import streamlit as st

from lib import directory, queries
from lib.ticket_core import MAX_SUMMARY
from lib.ui.core import reading
from lib.workflow import Channel

#: The channels a technician logs a ticket from (alerts and imports come in by themselves).
INTAKE_CHANNELS = (Channel.PHONE, Channel.WALK_IN, Channel.ON_BEHALF, Channel.EMAIL)

#: Field names of ``tickets.create_ticket``'s errors → the label the form shows, in the form's order.
FIELD_LABELS: dict[str, str] = {
    "channel": "How did it reach us?",
    "requester": "Requester",
    "requester_name": "Name",
    "requester_email": "E-mail",
    "requester_phone": "Phone",
    "asset_tag": "Asset tag",
    "device": "Device",
    "device_details": "Device details",
    "summary": "Summary",
    "description": "Description",
    "category": "Category",
    "priority": "Priority",
    "attachments": "Attachments",
    "assignee": "Assign to me",
    "form": "Ticket",
}


def summary_length(summary: str) -> int:
    """The summary's length as it will be stored (runs of spaces and line breaks count as one space)."""
    return len(" ".join(summary.split()))


def summary_too_long(summary: str) -> str | None:
    """What to say when the summary is over the limit (None when it fits). What was typed is kept in the field."""
    n = summary_length(summary)
    if n <= MAX_SUMMARY:
        return None
    return (f"is limited to {MAX_SUMMARY} characters and this one has {n:,} ({n - MAX_SUMMARY:,} too many). "
            "Shorten it — nothing you typed is cut — and put the rest in the Description.")


def summary_fixed(message: str | None) -> bool:
    """Whether a summary problem from the last submit was only its absence or its length (so a summary that is there
    and fits has fixed it)."""
    return message is not None and (message == "is required" or f"at most {MAX_SUMMARY}" in message
                                    or f"limited to {MAX_SUMMARY}" in message)


def explain(errors: dict[str, str], *, summary: str, picking_contact: bool) -> dict[str, str]:
    """The service's field errors in the form's words: channels by their labels, what to do rather than what is
    missing; ordered as the fields are."""
    out = dict(errors)
    if "channel" in out:
        out["channel"] = "choose one: " + ", ".join(c.label for c in INTAKE_CHANNELS)
    if "requester" in out and picking_contact:
        out["requester"] = "search for a contact and pick one, or choose **New contact** and enter their details"
    if out.get("category") == "is required":
        out["category"] = "choose a category"
    if "summary" in out and summary_too_long(summary):
        out["summary"] = summary_too_long(summary) or out["summary"]
    order = {name: i for i, name in enumerate(FIELD_LABELS)}
    return dict(sorted(out.items(), key=lambda kv: order.get(kv[0], len(order))))


def label(field: str) -> str:
    return FIELD_LABELS.get(field, field.replace("_", " ").capitalize())


def problem_lines(errors: dict[str, str]) -> list[str]:
    """One Markdown line per problem: "**Summary**: is required"."""
    return [f"**{label(name)}**: {message}" for name, message in errors.items()]


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
