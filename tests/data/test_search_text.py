"""Control characters in search text, on SQLite and PostgreSQL: the queue's text filter refuses them with
:class:`lib.search.SearchTextError` (a NUL used to fail the query on PostgreSQL and match every ticket on
SQLite), the KB/ticket search answers with the same message, and tab and line breaks count as spaces."""

from __future__ import annotations

import unicodedata

import pytest

from lib import queries, search, tickets
from lib.db import read_session, transaction
from lib.directory import RequesterInput
from lib.queries import QueueFilter, QueueView
from lib.search import SearchTextError, clean_search_text
from lib.tickets import TicketDraft

ANN = RequesterInput(name="Ann Smith", email="ann@example.com")
REFUSED = ["\x00", "print\x00er", "\x00printer", "printer\x07", "\x1b[2J", "a\x7fb", "\x85printer", "\x9f",
           "\x0b", "\x0c", "\ud800"]


@pytest.fixture
def queue(engine, staff) -> dict[str, int]:
    ids = {}
    with transaction(engine) as s:
        for key, summary, category in (("jam", "Printer jams on tray 2", "Printing"),
                                       ("vpn", "VPN drops every hour", "Networking"),
                                       ("fan", "Laptop fan loud", "Hardware")):
            t = tickets.create_ticket(s, actor=staff.tech, draft=TicketDraft(
                summary=summary, category=category, priority="Medium", channel="phone", requester=ANN))
            ids[key] = t.id
    return ids


def listed(engine, text: str) -> set[int]:  # type: ignore[no-untyped-def]
    with read_session(engine) as s:
        return {r.id for r in queries.list_queue(s, QueueFilter(view=QueueView.ALL, text=text)).rows}


def first_refused(text: str) -> str:
    return next(c for c in text if unicodedata.category(c) in ("Cc", "Cs"))


@pytest.mark.parametrize("text", REFUSED)
def test_queue_text_filter_refuses_control_characters(engine, queue, text) -> None:
    with pytest.raises(SearchTextError) as exc:
        listed(engine, text)
    assert isinstance(exc.value, ValueError)
    assert f"(U+{ord(first_refused(text)):04X}); remove it and try again." in str(exc.value)
    assert str(exc.value).startswith("Search text contains ")
    # the session and the database are fine afterwards (nothing was sent)
    assert listed(engine, "printer") == {queue["jam"]}


def test_nul_message_is_the_documented_one(engine, queue) -> None:
    with pytest.raises(SearchTextError, match=r"^Search text contains a control character \(U\+0000\); "
                                              r"remove it and try again\.$"):
        listed(engine, "\x00")


@pytest.mark.parametrize("text", ["printer\tjams", "printer\njams", "printer\r\njams", "\tprinter jams\n"])
def test_tab_and_line_breaks_become_spaces_in_the_queue(engine, queue, text) -> None:
    assert listed(engine, text) == {queue["jam"]}


def test_ordinary_queue_text_still_works(engine, queue) -> None:
    assert listed(engine, "VPN") == {queue["vpn"]}
    assert listed(engine, f"HD-{queue['fan']:06d}") == {queue["fan"]}
    assert listed(engine, "ann@example.com") == set(queue.values())
    assert listed(engine, "") == set(queue.values())
    assert listed(engine, "späße ✓ 😀") == set()


@pytest.mark.parametrize("text", REFUSED)
def test_search_answers_control_characters_with_the_message(engine, queue, text) -> None:
    with read_session(engine) as s:
        for match in ("all", "any"):
            result = search.search(s, text, match=match)  # type: ignore[arg-type]
            assert result.hits == []
            assert result.message is not None and result.message.startswith("Search text contains ")
            assert "remove it and try again" in result.message


def test_search_takes_tab_and_line_breaks_as_spaces(engine, staff) -> None:
    with transaction(engine) as s:
        t = tickets.create_ticket(s, actor=staff.tech, draft=TicketDraft(
            summary="Zebra label printer prints blank labels", category="Printing", priority="Low",
            channel="phone", requester=ANN))
        t = tickets.take(s, actor=staff.tech, ticket_id=t.id)
        tickets.resolve(s, actor=staff.tech, ticket_id=t.id, expected_version=t.version,
                        resolution_notes="Recalibrated the label sensor")
        tid = t.id
    with read_session(engine) as s:
        for text in ("zebra\tlabel", "zebra\nlabel", "zebra\r\nlabel"):
            result = search.search(s, text, kinds=("tickets",))
            assert result.message is None and [h.id for h in result.hits] == [tid]


def test_clean_search_text() -> None:
    assert clean_search_text(None) == ""
    assert clean_search_text("a\tb\nc\rd") == "a b c d"
    assert clean_search_text("a\r\nb") == "a b"
    assert clean_search_text("naïve café ✓") == "naïve café ✓"
    assert clean_search_text("\u200b zero-width and \u00a0 no-break are not Cc") == \
        "\u200b zero-width and \u00a0 no-break are not Cc"
    with pytest.raises(SearchTextError, match=r"control character \(U\+001F\)"):
        clean_search_text("x\x1fy")
    with pytest.raises(SearchTextError, match=r"invalid character \(U\+DC80\)"):
        clean_search_text("x\udc80")
    with pytest.raises(TypeError):
        clean_search_text(b"bytes")  # type: ignore[arg-type]
