"""The queue's filters, sort and page as one value, and its round trip through the URL's query parameters.

A reload or a shared link (``/queue?view=unassigned&priority=High&q=printer&page=2``) shows the same tickets.
Parameters a person edited by hand are checked one by one: a bad value is dropped with a note saying
which, never an error. Pure code (no Streamlit, no database): the page and saved views (lib.saved_views)
both speak this format.

Parameters (each may repeat where it is a list; defaults are left out of the URL):

========== ========================================== =====================================
view       a view's slug (``my-open``, ``unassigned``) the role's default view
status     a status value (``in_progress``)            any
priority   a priority name (``High``)                   any
category   a category id                               any
assignee   a staff id, or ``none`` for unassigned       anyone
channel    a channel value (``email``)                  any
q          the search words                            none
sort       a sort's slug (``newest``)                  ``priority``
page       1, 2, ...                                   1
created_from, created_to  ISO days (metrics links; the second excluded)
========== ========================================== =====================================
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from lib.queries import QueueFilter, QueueView, Sort
from lib.workflow import Channel, Priority, Status

VIEW_SLUGS: dict[QueueView, str] = {
    QueueView.MY_OPEN: "my-open", QueueView.UNASSIGNED: "unassigned", QueueView.ALL_OPEN: "all-open",
    QueueView.AT_RISK: "at-risk", QueueView.AWAITING: "awaiting", QueueView.RECENTLY_CLOSED: "recently-closed",
    QueueView.ALL: "all", QueueView.FOLLOW_UPS: "follow-ups",
}
SORT_SLUGS: dict[Sort, str] = {
    Sort.PRIORITY: "priority", Sort.NEWEST: "newest", Sort.OLDEST: "oldest", Sort.UPDATED: "updated", Sort.DUE: "due",
}
_VIEW_BY_SLUG = {v: k for k, v in VIEW_SLUGS.items()}
_SORT_BY_SLUG = {v: k for k, v in SORT_SLUGS.items()}
UNASSIGNED = "none"
MAX_TEXT = 300
MAX_PAGE = 100_000
MAX_LIST = 50
#: Every parameter the queue reads (anything else in the URL is left alone, e.g. ``embed``).
PARAMS = ("view", "status", "priority", "category", "assignee", "channel", "q", "text", "sort", "page",
          "created_from", "created_to")
_ID = re.compile(r"^[0-9]{1,9}$")


@dataclass(frozen=True)
class QueueState:
    view: QueueView = QueueView.ALL_OPEN
    statuses: tuple[Status, ...] = ()
    priorities: tuple[Priority, ...] = ()
    category_ids: tuple[int, ...] = ()
    assignee_ids: tuple[int, ...] = ()
    include_unassigned: bool = False
    channels: tuple[Channel, ...] = ()
    text: str = ""
    sort: Sort = Sort.PRIORITY
    page: int = 1
    created: tuple[str, str] | None = None  # ISO days, the second excluded

    def filters_only(self) -> QueueState:
        """The same filters on page 1 (what a saved view keeps, and what a changed filter starts from)."""
        return replace(self, page=1)


def default_view(is_lead: bool) -> QueueView:
    return QueueView.ALL_OPEN if is_lead else QueueView.MY_OPEN


@dataclass
class Parsed:
    state: QueueState
    problems: list[str] = field(default_factory=list)  # one line per value left out, fit to show


def _view(raw: str) -> QueueView | None:
    if raw in _VIEW_BY_SLUG:
        return _VIEW_BY_SLUG[raw]
    return QueueView(raw) if raw in QueueView._value2member_map_ else None  # the older links spell the label


def _sort(raw: str) -> Sort | None:
    if raw in _SORT_BY_SLUG:
        return _SORT_BY_SLUG[raw]
    return Sort(raw) if raw in Sort._value2member_map_ else None


def _priority(raw: str) -> Priority | None:
    try:
        return Priority.parse(raw)
    except ValueError:
        return None


def _enum_value(kind: type[enum.Enum], raw: str) -> Any:
    return kind(raw) if raw in kind._value2member_map_ else None


def _created(first: str | None, end: str | None) -> tuple[str, str] | None:
    try:
        lo, hi = date.fromisoformat(first or ""), date.fromisoformat(end or "")
    except ValueError:
        return None
    return (lo.isoformat(), hi.isoformat()) if lo < hi else None


def _values(params: Mapping[str, Sequence[str] | str], name: str) -> list[str]:
    raw = params.get(name)
    if raw is None:
        return []
    return [raw] if isinstance(raw, str) else [str(v) for v in raw]


def from_params(params: Mapping[str, Sequence[str] | str], *, fallback_view: QueueView = QueueView.ALL_OPEN) -> Parsed:
    """The queue state a URL asks for. ``params`` maps a name to its values (``st.query_params.to_dict()``
    gives the last value only: pass ``{k: st.query_params.get_all(k) for k in ...}``)."""
    problems: list[str] = []

    def bad(name: str, value: str) -> None:
        shown = value if len(value) <= 40 else value[:40] + "…"
        problems.append(f"Ignored {name}={shown!r} (not a valid {name}).")

    def one(name: str) -> str | None:
        values = _values(params, name)
        return values[-1] if values else None

    view = fallback_view
    if (raw := one("view")) is not None:
        view = _view(raw) or view
        if _view(raw) is None:
            bad("view", raw)

    def many(name: str, parse: Callable[[str], Any]) -> list[Any]:
        out: list = []
        for raw in _values(params, name)[:MAX_LIST]:
            value = parse(raw)
            if value is None:
                bad(name, raw)
            elif value not in out:
                out.append(value)
        return out

    statuses = many("status", lambda r: _enum_value(Status, r))
    priorities = many("priority", _priority)
    categories = many("category", lambda r: int(r) if _ID.match(r) else None)
    assignees_raw = many("assignee", lambda r: 0 if r == UNASSIGNED else (int(r) if _ID.match(r) and int(r) > 0 else None))
    channels = many("channel", lambda r: _enum_value(Channel, r))
    text = one("q")
    if text is None:
        text = one("text") or ""  # the older links' name
    if len(text) > MAX_TEXT:
        problems.append(f"The search text was cut to {MAX_TEXT} characters.")
        text = text[:MAX_TEXT]
    sort = Sort.PRIORITY
    if (raw := one("sort")) is not None:
        parsed_sort = _sort(raw)
        if parsed_sort is None:
            bad("sort", raw)
        else:
            sort = parsed_sort
    page = 1
    if (raw := one("page")) is not None:
        if _ID.match(raw) and 1 <= int(raw) <= MAX_PAGE:
            page = int(raw)
        else:
            bad("page", raw)
    created = None
    first, end = one("created_from"), one("created_to")
    if first is not None or end is not None:
        created = _created(first, end)
        if created is None:
            problems.append("Ignored the creation-date range (created_from, created_to): not two days in order.")
    state = QueueState(
        view=view, statuses=tuple(statuses), priorities=tuple(sorted(priorities, reverse=True)),
        category_ids=tuple(categories), assignee_ids=tuple(a for a in assignees_raw if a),
        include_unassigned=0 in assignees_raw, channels=tuple(channels), text=text, sort=sort, page=page,
        created=created,
    )
    return Parsed(state=state, problems=problems)


def to_params(state: QueueState, *, fallback_view: QueueView | None = QueueView.ALL_OPEN) -> dict[str, list[str]]:
    """Query parameters for ``state``; defaults are left out, so a plain queue has a plain URL. The view is
    always named when ``fallback_view`` is None (a link or saved view another person opens)."""
    out: dict[str, list[str]] = {}
    if fallback_view is None or state.view is not fallback_view:
        out["view"] = [VIEW_SLUGS[state.view]]
    if state.statuses:
        out["status"] = [s.value for s in state.statuses]
    if state.priorities:
        out["priority"] = [p.label for p in state.priorities]
    if state.category_ids:
        out["category"] = [str(c) for c in state.category_ids]
    if state.assignee_ids or state.include_unassigned:
        out["assignee"] = [str(a) for a in state.assignee_ids] + ([UNASSIGNED] if state.include_unassigned else [])
    if state.channels:
        out["channel"] = [c.value for c in state.channels]
    if state.text.strip():
        out["q"] = [state.text.strip()]
    if state.sort is not Sort.PRIORITY:
        out["sort"] = [SORT_SLUGS[state.sort]]
    if state.page > 1:
        out["page"] = [str(state.page)]
    if state.created:
        out["created_from"], out["created_to"] = [state.created[0]], [state.created[1]]
    return out


def query_string(params: Mapping[str, Sequence[str]]) -> str:
    """``?a=1&b=2`` for a link (empty when there is nothing to say)."""
    from urllib.parse import urlencode

    pairs = [(k, v) for k, values in params.items() for v in values]
    return "?" + urlencode(pairs) if pairs else ""


def to_filter(state: QueueState, *, me: int, now: datetime, zone: ZoneInfo) -> QueueFilter:
    """The query for ``state``: the creation-date range is read as local days in the desk's time zone."""
    created_from = created_to = None
    if state.created:
        lo, hi = (date.fromisoformat(d) for d in state.created)
        created_from, created_to = datetime.combine(lo, time(), zone), datetime.combine(hi, time(), zone)
    return QueueFilter(
        view=state.view, me=me, statuses=list(state.statuses), priorities=list(state.priorities),
        category_ids=list(state.category_ids), assignee_ids=list(state.assignee_ids),
        include_unassigned=state.include_unassigned, channels=list(state.channels), text=state.text,
        created_from=created_from, created_to=created_to, now=now,
    )
