"""The queue's filters, sort and page through the URL: the round trip, the older links' spellings, and bad
values left out with a note (never an error)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from lib.queries import QueueView, Sort
from lib.queue_state import (
    MAX_TEXT,
    QueueState,
    default_view,
    from_params,
    query_string,
    to_filter,
    to_params,
)
from lib.workflow import Channel, Priority, Status

FULL = QueueState(
    view=QueueView.UNASSIGNED, statuses=(Status.NEW, Status.IN_PROGRESS), priorities=(Priority.CRITICAL, Priority.HIGH),
    category_ids=(2, 5), assignee_ids=(7,), include_unassigned=True, channels=(Channel.EMAIL,),
    text="paging 07 & \"x\" NEAR(", sort=Sort.NEWEST, page=3, created=("2026-11-02", "2026-11-09"),
)


@pytest.mark.parametrize("state", [QueueState(), FULL, QueueState(view=QueueView.MY_OPEN, page=2),
                                   QueueState(include_unassigned=True), QueueState(text="ünïcödé ✓")])
@pytest.mark.parametrize("home", [QueueView.ALL_OPEN, QueueView.MY_OPEN])
def test_round_trip(state: QueueState, home: QueueView) -> None:
    params = to_params(state, fallback_view=home)
    parsed = from_params(params, fallback_view=home)
    assert parsed.problems == []
    assert parsed.state == state
    named = from_params(to_params(state, fallback_view=None), fallback_view=QueueView.FOLLOW_UPS)
    assert named.state == state  # a link names its view: whoever opens it sees the same view


def test_defaults_are_left_out_of_the_url() -> None:
    assert to_params(QueueState(), fallback_view=QueueView.ALL_OPEN) == {}
    assert query_string({}) == ""
    assert to_params(FULL, fallback_view=QueueView.ALL_OPEN) == {
        "view": ["unassigned"], "status": ["new", "in_progress"], "priority": ["Critical", "High"],
        "category": ["2", "5"], "assignee": ["7", "none"], "channel": ["email"], "q": ["paging 07 & \"x\" NEAR("],
        "sort": ["newest"], "page": ["3"], "created_from": ["2026-11-02"], "created_to": ["2026-11-09"]}
    assert query_string({"view": ["all"], "q": ["a b&c"]}) == "?view=all&q=a+b%26c"


def test_older_links_still_open() -> None:
    """Metrics tiles and bars link with the view's label, priority names in capitals and ``text``."""
    parsed = from_params({"view": ["All tickets"], "priority": ["HIGH"], "text": ["printer"],
                          "sort": ["Newest first"], "created_from": ["2026-11-02"], "created_to": ["2026-11-03"]})
    assert parsed.problems == []
    assert parsed.state == QueueState(view=QueueView.ALL, priorities=(Priority.HIGH,), text="printer",
                                      sort=Sort.NEWEST, created=("2026-11-02", "2026-11-03"))


def test_bad_values_are_left_out_with_a_note() -> None:
    parsed = from_params({
        "view": ["nope"], "status": ["new", "flying"], "priority": ["9", "urgent", "low"], "category": ["x", "-1", "3"],
        "assignee": ["0", "abc", "4"], "channel": ["pigeon"], "sort": ["sideways"], "page": ["0"],
        "created_from": ["2026-11-09"], "created_to": ["2026-11-02"],
    }, fallback_view=QueueView.MY_OPEN)
    assert parsed.state == QueueState(view=QueueView.MY_OPEN, statuses=(Status.NEW,), priorities=(Priority.LOW,),
                                      category_ids=(3,), assignee_ids=(4,))
    joined = "\n".join(parsed.problems)
    for shown in ("view='nope'", "status='flying'", "priority='9'", "priority='urgent'", "category='x'",
                  "category='-1'", "assignee='0'", "assignee='abc'", "channel='pigeon'", "sort='sideways'",
                  "page='0'", "creation-date range"):
        assert shown in joined, shown
    assert len(parsed.problems) == 12


@pytest.mark.parametrize("page", ["-3", "1.5", "", "100001", "9" * 30, "١٢"])
def test_bad_pages(page: str) -> None:
    parsed = from_params({"page": [page]})
    assert parsed.state.page == 1 and len(parsed.problems) == 1


def test_long_values_are_bounded() -> None:
    parsed = from_params({"q": ["x" * 5000], "status": ["zz" * 100]})
    assert len(parsed.state.text) == MAX_TEXT
    assert any("cut to" in p for p in parsed.problems)
    assert all(len(p) < 120 for p in parsed.problems)  # a long bad value is shortened in the note
    many = from_params({"category": [str(i) for i in range(1, 1000)]})
    assert len(many.state.category_ids) == 50


def test_single_strings_and_repeats() -> None:
    assert from_params({"view": "all", "q": "vpn"}).state == QueueState(view=QueueView.ALL, text="vpn")
    assert from_params({"status": ["new", "new"]}).state.statuses == (Status.NEW,)
    assert from_params({"page": ["2", "5"]}).state.page == 5  # the last one, as st.query_params.get does


def test_default_view_and_filter() -> None:
    assert default_view(True) is QueueView.ALL_OPEN and default_view(False) is QueueView.MY_OPEN
    now = datetime(2026, 12, 1, 10, tzinfo=UTC)
    f = to_filter(FULL, me=7, now=now, zone=ZoneInfo("Europe/London"))
    assert (f.view, f.me, f.statuses, f.priorities, f.category_ids, f.assignee_ids, f.include_unassigned, f.channels,
            f.text, f.now) == (QueueView.UNASSIGNED, 7, [Status.NEW, Status.IN_PROGRESS], [Priority.CRITICAL,
                               Priority.HIGH], [2, 5], [7], True, [Channel.EMAIL], FULL.text, now)
    assert f.created_from == datetime(2026, 11, 2, tzinfo=ZoneInfo("Europe/London"))
    assert f.created_to == datetime(2026, 11, 9, tzinfo=ZoneInfo("Europe/London"))
