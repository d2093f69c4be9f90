"""Two tabs, two technicians, many threads: no lost update, no lock error, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
import threading
import time

import pytest
from sqlalchemy import func, select

from lib import queries, tickets
from lib.db import read_session, transaction
from lib.directory import RequesterInput
from lib.errors import PermissionDenied, StaleTicket
from lib.models import Ticket, TicketEvent
from lib.tickets import DuplicateExternalRef, TicketDraft
from lib.workflow import EventKind, Status
from tests.conftest import wait_for_lock_waiter

THREADS = 20
UPDATES_PER_THREAD = 10
SHARED_TICKETS = 4
DEADLINE_SECONDS = 120


def draft(summary: str = "VPN drops every hour", **kw) -> TicketDraft:
    return TicketDraft(summary=summary, category="Networking", priority="Medium", channel="phone",
                       requester=RequesterInput(name="Ann Smith", email="ann@example.com"), **kw)


def working_ticket(engine, staff, assignee: int) -> int:
    with transaction(engine) as s:
        tid = tickets.create_ticket(s, actor=staff.lead, draft=draft()).id
        tickets.assign(s, actor=staff.lead, ticket_id=tid, assignee_id=assignee, expected_version=1)
    return tid


def version_of(engine, tid: int) -> int:
    with read_session(engine) as s:
        return s.scalar(select(Ticket.version).where(Ticket.id == tid))


def test_second_save_is_refused_naming_who_changed_what(engine, staff):
    tid = working_ticket(engine, staff, staff.lead)
    # two browser tabs of the same lead render the same version
    loaded_a = version_of(engine, tid)
    loaded_b = version_of(engine, tid)
    assert loaded_a == loaded_b
    with transaction(engine) as s:
        tickets.update_fields(s, actor=staff.lead, ticket_id=tid, expected_version=loaded_a,
                              changes={"summary": "VPN drops every hour on Wi-Fi"})
    second_draft = {"summary": "VPN drops when the laptop sleeps", "priority": "High"}
    events_before = _count_events(engine, tid)
    with pytest.raises(StaleTicket) as err:
        with transaction(engine) as s:
            tickets.update_fields(s, actor=staff.lead, ticket_id=tid, expected_version=loaded_b,
                                  changes=dict(second_draft))
    message = str(err.value)
    assert "Lena Lead" in message and "summary" in message and "VPN drops every hour on Wi-Fi" in message
    assert err.value.expected == loaded_b and err.value.current == loaded_b + 1
    assert err.value.changes and "summary" in err.value.changes[0]
    # nothing lost: the first change is stored, nothing of the second was written, the draft is intact
    with read_session(engine) as s:
        t = s.get(Ticket, tid)
        assert (t.summary, t.priority, t.version) == ("VPN drops every hour on Wi-Fi", 2, loaded_a + 1)
    assert _count_events(engine, tid) == events_before
    assert second_draft == {"summary": "VPN drops when the laptop sleeps", "priority": "High"}
    # a note typed in the stale tab meanwhile goes through, without touching the version
    with transaction(engine) as s:
        tickets.internal_note(s, actor=staff.lead, ticket_id=tid, text="User says it started after the update")
    assert version_of(engine, tid) == loaded_a + 1
    # and after reloading, the second save works
    with transaction(engine) as s:
        tickets.update_fields(s, actor=staff.lead, ticket_id=tid, expected_version=version_of(engine, tid),
                              changes=second_draft)


def test_two_technicians_interleaved_sessions(engine, staff):
    """Both sessions are open at the same time: the assignee saves a field, a senior on the escalated
    ticket saves a field from the version both rendered; the note from the second session still lands."""
    tid = working_ticket(engine, staff, staff.tech)
    with transaction(engine) as s:
        tickets.escalate_to_vendor(s, actor=staff.tech, ticket_id=tid, expected_version=2, vendor_name="Acme",
                                   case_ref=None, promised_at=None)
    rendered = version_of(engine, tid)
    with transaction(engine) as s:
        tickets.update_fields(s, actor=staff.tech, ticket_id=tid, expected_version=rendered,
                              changes={"priority": "High"})
    with pytest.raises(StaleTicket) as err:
        with transaction(engine) as s:
            tickets.update_fields(s, actor=staff.senior, ticket_id=tid, expected_version=rendered,
                                  changes={"priority": "Low"})
    assert "Tom Tech" in str(err.value) and "priority" in str(err.value) and "High" in str(err.value)
    with transaction(engine) as s:
        tickets.internal_note(s, actor=staff.senior, ticket_id=tid, text="Vendor says firmware 2.1 fixes it")
    with read_session(engine) as s:
        assert s.get(Ticket, tid).priority == 3
        kinds = [k for (k,) in s.execute(select(TicketEvent.kind).where(TicketEvent.ticket_id == tid))]
    assert kinds.count(EventKind.FIELD_CHANGED.value) == 1 and EventKind.INTERNAL_NOTE.value in kinds


def test_status_change_from_a_stale_tab_is_refused(engine, staff):
    tid = working_ticket(engine, staff, staff.tech)
    rendered = version_of(engine, tid)
    with transaction(engine) as s:
        tickets.acknowledge(s, actor=staff.tech, ticket_id=tid, expected_version=rendered)
    with pytest.raises(StaleTicket, match="Tom Tech acknowledged"):
        with transaction(engine) as s:
            tickets.request_info(s, actor=staff.tech, ticket_id=tid, expected_version=rendered, text="Which VPN?")
    with read_session(engine) as s:
        assert s.get(Ticket, tid).status == Status.IN_PROGRESS


def _count_events(engine, tid: int, kind: EventKind | None = None) -> int:
    with read_session(engine) as s:
        stmt = select(func.count()).select_from(TicketEvent).where(TicketEvent.ticket_id == tid)
        if kind is not None:
            stmt = stmt.where(TicketEvent.kind == kind.value)
        return s.scalar(stmt)


def _run_threads(target, n: int) -> None:
    threads = [threading.Thread(target=target, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + DEADLINE_SECONDS
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), f"threads still running after {DEADLINE_SECONDS} s"


@pytest.mark.threads
def test_twenty_threads_updating_at_once(engine, staff):
    ids = [working_ticket(engine, staff, staff.lead) for _ in range(SHARED_TICKETS)]
    applied, stale, failures = [], [], []
    lock = threading.Lock()
    start = threading.Barrier(THREADS)

    def worker(n: int) -> None:
        rng = random.Random(n)
        start.wait()
        for j in range(UPDATES_PER_THREAD):
            tid = rng.choice(ids)
            try:
                version = version_of(engine, tid)  # what this "tab" rendered
                with transaction(engine) as s:
                    tickets.update_fields(s, actor=staff.lead, ticket_id=tid, expected_version=version,
                                          changes={"summary": f"thread {n} update {j}"})
                with lock:
                    applied.append(tid)
            except StaleTicket:
                with lock:
                    stale.append(tid)
            except Exception as exc:  # noqa: BLE001 - every other failure is what this test looks for
                with lock:
                    failures.append(f"{type(exc).__name__}: {exc}"[:300])

    _run_threads(worker, THREADS)
    assert failures == []
    assert len(applied) + len(stale) == THREADS * UPDATES_PER_THREAD
    assert applied, "no update went through"
    for tid in ids:
        n_applied = applied.count(tid)
        assert _count_events(engine, tid, EventKind.FIELD_CHANGED) == n_applied
        assert version_of(engine, tid) == 2 + n_applied  # created 1, assigned 2, then one per applied save


def test_two_people_take_the_same_ticket(engine, staff):
    with transaction(engine) as s:
        tid = tickets.create_ticket(s, actor=staff.tech, draft=draft()).id
    results: dict[int, str] = {}
    start = threading.Barrier(2)

    def worker(i: int) -> None:
        actor = (staff.tech, staff.tech2)[i]
        start.wait()
        try:
            with transaction(engine) as s:
                tickets.take(s, actor=actor, ticket_id=tid)
            results[actor] = "took"
        except PermissionDenied as exc:
            results[actor] = str(exc)
        except Exception as exc:  # noqa: BLE001
            results[actor] = f"failed: {type(exc).__name__}: {exc}"

    _run_threads(worker, 2)
    assert sorted(results.values())[-1] == "took" and sorted(results.values())[0].startswith("already taken by")
    assert _count_events(engine, tid, EventKind.ASSIGNED) == 1


def test_same_external_ref_recorded_twice_at_once(engine, staff):
    """Two ingesters record the same message concurrently: one ticket, the other is told which."""
    first_inserted = threading.Event()
    outcome: dict[str, object] = {}

    def make(s):
        return tickets.create_ticket(s, actor=tickets.SYSTEM, draft=draft(
            external_source="email", external_ref="<same@mail.example>"))

    def first(_: int) -> None:
        with transaction(engine) as s:
            outcome["first"] = make(s).id
            first_inserted.set()
            wait_for_lock_waiter(engine)  # keep the transaction open until the second one waits on it

    def second(_: int) -> None:
        first_inserted.wait(10)
        try:
            with transaction(engine) as s:
                outcome["second"] = make(s).id
        except DuplicateExternalRef as exc:
            outcome["second"] = exc
        except Exception as exc:  # noqa: BLE001
            outcome["second"] = f"failed: {type(exc).__name__}: {exc}"

    threads = [threading.Thread(target=first, args=(0,)), threading.Thread(target=second, args=(1,))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert isinstance(outcome["second"], DuplicateExternalRef), outcome["second"]
    assert outcome["second"].ticket_id == outcome["first"]
    with read_session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Ticket)) == 1


def test_change_marker_sees_a_late_commit(engine, staff):
    """On PostgreSQL a transaction holding a lower event id can commit after one with a higher id."""
    a = working_ticket(engine, staff, staff.lead)
    b = working_ticket(engine, staff, staff.lead)
    if engine.dialect.name == "sqlite":  # writers are serialised: no interleaving to test, just the basics
        with read_session(engine) as s:
            before = queries.change_marker(s)
        with transaction(engine) as s:
            tickets.internal_note(s, actor=staff.lead, ticket_id=a, text="x")
        with read_session(engine) as s:
            assert queries.change_marker(s) != before
        return
    slow = transaction(engine)
    s1 = slow.__enter__()
    try:
        tickets.internal_note(s1, actor=staff.lead, ticket_id=a, text="slow writer")
        s1.flush()  # takes its event id now
        with transaction(engine) as s2:
            tickets.internal_note(s2, actor=staff.lead, ticket_id=b, text="fast writer")
        with read_session(engine) as s:
            seen = queries.change_marker(s)
    finally:
        slow.__exit__(None, None, None)  # the slow writer commits last
    with read_session(engine) as s:
        assert queries.change_marker(s) != seen
