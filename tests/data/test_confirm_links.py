"""The requester's confirmation link, on SQLite and PostgreSQL: claimed once, whatever the concurrency, and
bound to the resolution round it was mailed in."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from lib import confirm, confirm_links, tickets
from lib.db import read_session, transaction
from lib.models import ActionToken, Ticket, TicketEvent
from lib.workflow import EventKind, Status
from tests.conftest import Staff, awaiting_confirmation, wait_for_lock_waiter

THREADS = 8
DEADLINE_SECONDS = 120
STAFF_NAMES = ("Lena", "Sam", "Tom", "Tara", "Lead", "Senior", "Tech")
OUTCOMES = (EventKind.CONFIRMED.value, EventKind.REOPENED.value)


def _token(engine: Engine, tid: int) -> str:
    with transaction(engine) as s:
        return confirm_links.issue(s, tickets.get_ticket(s, tid))


def _outcomes(engine: Engine, tid: int) -> list[str]:
    with read_session(engine) as s:
        return list(s.scalars(select(TicketEvent.kind).where(TicketEvent.ticket_id == tid,
                                                             TicketEvent.kind.in_(OUTCOMES))
                              .order_by(TicketEvent.id)))


def _event_count(engine: Engine, tid: int) -> int:
    with read_session(engine) as s:
        return s.scalar(select(func.count()).select_from(TicketEvent).where(TicketEvent.ticket_id == tid)) or 0


def _ticket(engine: Engine, tid: int) -> Ticket:
    with read_session(engine) as s:
        t = tickets.get_ticket(s, tid)
        s.expunge(t)
        return t


def _answer(engine: Engine, token: str, *, works: bool) -> None:
    with transaction(engine) as s:
        confirm.answer(s, token, works=works, comment=None if works else "The Wi-Fi still drops", rating=4)


def _assert_calm(message: str) -> None:
    assert "Traceback" not in message and not any(name in message for name in STAFF_NAMES), message


def _run_threads(target: Callable[[int], None], n: int) -> None:
    threads = [threading.Thread(target=target, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + DEADLINE_SECONDS
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), f"threads still running after {DEADLINE_SECONDS} s"


@pytest.mark.parametrize("mix", ["all confirm", "confirm and reject"])
def test_many_submissions_of_one_link_record_one_outcome(engine: Engine, staff: Staff, mix: str) -> None:
    tid = awaiting_confirmation(engine, staff)
    token = _token(engine, tid)
    events_before = _event_count(engine, tid)
    recorded: list[int] = []
    refused: list[str] = []
    failures: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(THREADS)

    def submit(n: int) -> None:
        works = mix == "all confirm" or n % 2 == 0
        start.wait()
        try:
            _answer(engine, token, works=works)
            with lock:
                recorded.append(n)
        except confirm.LinkAlreadyUsed as exc:
            with lock:
                refused.append(str(exc))
        except Exception as exc:  # noqa: BLE001 - any other failure is what this test looks for
            with lock:
                failures.append(f"{type(exc).__name__}: {exc}"[:300])

    _run_threads(submit, THREADS)
    assert failures == []
    assert len(recorded) == 1 and len(refused) == THREADS - 1
    outcome = _outcomes(engine, tid)
    assert len(outcome) == 1
    state = "confirmed as fixed" if outcome == [EventKind.CONFIRMED.value] else "open again"
    for message in refused:
        assert message.startswith("This link was already used on ") and state in message
        _assert_calm(message)
    t = _ticket(engine, tid)
    assert t.satisfaction == 4
    # the outcome, and one satisfaction change: nothing of the refused submissions was written
    assert _event_count(engine, tid) == events_before + 2
    with read_session(engine) as s:
        assert s.scalar(select(func.count()).select_from(ActionToken).where(ActionToken.used_at.is_not(None))) == 1


def test_second_submission_waiting_on_the_first_is_told_the_link_was_used(engine: Engine, staff: Staff) -> None:
    """The race of a double click: the second submission reads the link as unused while the first is still
    uncommitted, then finds it claimed (PostgreSQL waits on the row; SQLite on its write lock)."""
    tid = awaiting_confirmation(engine, staff)
    token = _token(engine, tid)
    second: list[object] = []

    def submit_again() -> None:
        try:
            _answer(engine, token, works=False)
            second.append("recorded")
        except Exception as exc:  # noqa: BLE001 - what the second submission got is the point of the test
            second.append(exc)

    with transaction(engine) as s:
        confirm.answer(s, token, works=True)
        other = threading.Thread(target=submit_again, daemon=True)
        other.start()
        if engine.dialect.name == "postgresql":
            assert wait_for_lock_waiter(engine), "the second submission never waited for the first"
    other.join(DEADLINE_SECONDS)
    assert not other.is_alive()
    assert len(second) == 1 and isinstance(second[0], confirm.LinkAlreadyUsed), second
    message = str(second[0])
    assert "already used on" in message and "confirmed as fixed" in message
    _assert_calm(message)
    assert _outcomes(engine, tid) == [EventKind.CONFIRMED.value]
    assert Status(_ticket(engine, tid).status) is Status.AWAITING_CONFIRMATION


def _reopen_and_resolve_again(engine: Engine, staff: Staff, tid: int) -> None:
    with transaction(engine) as s:
        t = tickets.get_ticket(s, tid)
        t = tickets.reopen(s, actor=staff.tech, ticket_id=tid, expected_version=t.version,
                           reason="The user called: it drops again")
        t = tickets.resolve(s, actor=staff.tech, ticket_id=tid, expected_version=t.version,
                            resolution_notes="Replaced the access point")
        tickets.request_confirmation(s, actor=staff.tech, ticket_id=tid, expected_version=t.version)


@pytest.mark.parametrize("works", [True, False])
def test_link_from_an_earlier_resolution_records_nothing(engine: Engine, staff: Staff, works: bool) -> None:
    tid = awaiting_confirmation(engine, staff)
    old = _token(engine, tid)
    _reopen_and_resolve_again(engine, staff, tid)
    new = _token(engine, tid)
    before = (_event_count(engine, tid), _ticket(engine, tid).version)

    with read_session(engine) as s, pytest.raises(confirm.LinkSuperseded) as opened:
        confirm.check(s, old)
    assert "earlier resolution" in str(opened.value) and "newest" in str(opened.value)
    with pytest.raises(confirm.LinkSuperseded):
        _answer(engine, old, works=works)
    assert (_event_count(engine, tid), _ticket(engine, tid).version) == before
    assert Status(_ticket(engine, tid).status) is Status.AWAITING_CONFIRMATION
    with read_session(engine) as s:
        assert s.scalar(select(func.count()).select_from(ActionToken).where(ActionToken.used_at.is_not(None))) == 0

    _answer(engine, new, works=works)  # the newest mail's link works
    assert _outcomes(engine, tid) == ([EventKind.REOPENED.value, EventKind.CONFIRMED.value] if works
                                      else [EventKind.REOPENED.value] * 2)


def test_used_link_after_a_new_round_says_it_was_used(engine: Engine, staff: Staff) -> None:
    """A link that reopened the ticket, opened again after the next resolution: already used, not superseded."""
    tid = awaiting_confirmation(engine, staff)
    token = _token(engine, tid)
    _answer(engine, token, works=False)
    with transaction(engine) as s:
        t = tickets.get_ticket(s, tid)
        t = tickets.resolve(s, actor=staff.tech, ticket_id=tid, expected_version=t.version,
                            resolution_notes="Replaced the access point")
        tickets.request_confirmation(s, actor=staff.tech, ticket_id=tid, expected_version=t.version)
    with read_session(engine) as s, pytest.raises(confirm.LinkAlreadyUsed) as err:
        confirm.check(s, token)
    assert "resolved and waiting for your confirmation" in str(err.value)
    _assert_calm(str(err.value))


def test_a_link_technician_reopened_between_opening_and_pressing_records_nothing(engine: Engine, staff: Staff) -> None:
    tid = awaiting_confirmation(engine, staff)
    token = _token(engine, tid)
    with read_session(engine) as s:
        confirm.check(s, token)  # the requester opens the page
    with transaction(engine) as s:
        t = tickets.get_ticket(s, tid)
        tickets.reopen(s, actor=staff.tech, ticket_id=tid, expected_version=t.version, reason="Found more")
    before = _event_count(engine, tid)
    with pytest.raises(confirm.LinkRefused) as err:
        _answer(engine, token, works=True)
    assert "earlier resolution" in str(err.value)
    assert _event_count(engine, tid) == before


def test_links_mailed_before_rounds_were_signed_still_work_in_their_round(engine: Engine, staff: Staff) -> None:
    tid = awaiting_confirmation(engine, staff)

    def three_part() -> str:
        token_id, _round, nonce, _sig = _token(engine, tid).split(".")
        return f"{token_id}.{nonce}.{confirm_links.sign(int(token_id), nonce, tid, confirm_links.PURPOSE, None)}"

    current, earlier = three_part(), three_part()
    with read_session(engine) as s:
        confirm.check(s, current)
    _reopen_and_resolve_again(engine, staff, tid)
    with pytest.raises(confirm.LinkSuperseded):
        _answer(engine, earlier, works=True)
    legacy_now = three_part()
    _answer(engine, legacy_now, works=True)
    assert _outcomes(engine, tid) == [EventKind.REOPENED.value, EventKind.CONFIRMED.value]


def test_round_is_signed(engine: Engine, staff: Staff) -> None:
    """Editing the round in an old link to the current one breaks its signature."""
    tid = awaiting_confirmation(engine, staff)
    old = _token(engine, tid)
    _reopen_and_resolve_again(engine, staff, tid)
    token_id, round_, nonce, sig = old.split(".")
    forged = f"{token_id}.{int(round_) + 1}.{nonce}.{sig}"
    with read_session(engine) as s, pytest.raises(confirm.LinkRefused) as err:
        confirm.check(s, forged)
    assert "not valid" in str(err.value)
