"""A page run's reads share one session (lib.ui.core.page_reads), on SQLite and PostgreSQL: every read of the run
uses it, a write committed in the run is seen by the reads after it, a failed statement does not spoil the reads
after it, and outside a page run each read has a session of its own."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from lib import db, tickets
from lib.config import get_settings
from lib.models import Ticket
from lib.ui import core
from tests.conftest import new_ticket as _new_ticket

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def new_ticket(engine: Engine, actor: int) -> int:
    return _new_ticket(engine, actor, priority="Low", now=NOW)


@pytest.fixture
def app_engine(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """The engine the pages use (lib.ui.core.get_engine), on the test's database."""
    monkeypatch.setenv("HELPDESK_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    yield core.get_engine()
    get_settings.cache_clear()


def _begins(engine: Engine) -> list[int]:
    """Counts the transactions begun on ``engine`` (one per session that reads)."""
    begun: list[int] = []
    event.listen(engine, "begin", lambda conn: begun.append(1))
    return begun


def test_one_session_for_every_read_of_a_page_run(app_engine: Engine, staff) -> None:
    tid = new_ticket(app_engine, staff.lead)
    begun = _begins(app_engine)
    with core.page_reads():
        with core.reading() as a:
            a.scalar(select(Ticket.summary).where(Ticket.id == tid))
        with core.reading() as b:
            b.scalar(select(Ticket.version).where(Ticket.id == tid))
        assert a is b
    assert len(begun) == 1
    # outside a page run: a session (and a transaction) per read
    with core.reading() as c:
        c.scalar(select(Ticket.summary).where(Ticket.id == tid))
    with core.reading() as d:
        d.scalar(select(Ticket.summary).where(Ticket.id == tid))
    assert c is not d and a is not c
    assert len(begun) == 3


def test_a_write_in_the_run_is_seen_by_the_reads_after_it(app_engine: Engine, staff) -> None:
    tid = new_ticket(app_engine, staff.lead)
    with core.page_reads():
        with core.reading() as s:
            before = s.scalar(select(Ticket.version).where(Ticket.id == tid))
            assert s.get(Ticket, tid).summary == "Low trouble"  # loaded into the session
        db.run_transaction(core.get_engine(), lambda w: tickets.update_fields(
            w, actor=staff.lead, ticket_id=tid, expected_version=before, changes={"summary": "Printer on fire"}))
        with core.reading() as s:  # a new transaction: SQLite's snapshot and the loaded object are current again
            assert s.scalar(select(Ticket.version).where(Ticket.id == tid)) == before + 1
            assert s.get(Ticket, tid).summary == "Printer on fire"


def test_a_failed_statement_does_not_spoil_the_reads_after_it(app_engine: Engine, staff) -> None:
    tid = new_ticket(app_engine, staff.lead)
    with core.page_reads():
        with pytest.raises(DBAPIError), core.reading() as s:
            s.execute(text("SELECT no_such_column FROM tickets"))
        with core.reading() as s:
            assert s.scalar(select(Ticket.id).where(Ticket.id == tid)) == tid


def test_the_run_session_ends_with_the_run(app_engine: Engine, staff) -> None:
    tid = new_ticket(app_engine, staff.lead)
    with core.page_reads():
        with core.reading() as s:
            s.scalar(select(Ticket.id).where(Ticket.id == tid))
            assert s.in_transaction()
        shared = s
    assert not shared.in_transaction()
    with core.reading() as s:
        assert s is not shared


def _statements(engine: Engine) -> list[str]:
    seen: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda c, cur, statement, *a: seen.append(statement))
    return seen


def test_the_settings_are_read_once_per_run_and_again_after_a_write(app_engine: Engine, staff) -> None:
    from lib import notify
    from lib.assignment import save_weights
    from lib.desk_settings import get_weights
    from lib.workflow import Priority

    with core.page_reads():
        with core.reading() as s:
            seen = _statements(app_engine)
            before = get_weights(s)
        with core.reading() as s:
            notify.templates(s)
            notify.requester_updates(s)
            assert get_weights(s) == before
        assert seen == []  # the run's first read brought every settings row in
        changed = {**before, Priority.LOW: before[Priority.LOW] + 1}
        db.run_transaction(core.get_engine(), lambda w: save_weights(w, actor=staff.lead, weights=changed))
        with core.reading() as s:
            assert get_weights(s) == changed  # read again after this run's write


def test_the_run_counts_the_statements_it_sent(app_engine: Engine, staff) -> None:
    from lib import page_timer

    tid = new_ticket(app_engine, staff.lead)
    one, two = page_timer.Run(), page_timer.Run()
    with core.page_reads(one), core.reading() as s:
        s.scalar(select(Ticket.id).where(Ticket.id == tid))
    with core.page_reads(two), core.reading() as s:
        s.scalar(select(Ticket.id).where(Ticket.id == tid))
        s.scalar(select(Ticket.version).where(Ticket.id == tid))
    assert 2 <= one.queries <= 4  # the settings rows, the read (and BEGIN where the driver is told it)
    assert two.queries == one.queries + 1
