"""Drafts and presence in the database (lib/drafts.py, lib/presence.py), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from lib import drafts, presence, tickets
from lib.db import read_session, transaction
from lib.directory import RequesterInput
from lib.drafts import DraftField
from lib.errors import ValidationError
from lib.models import DraftText, TicketPresence
from lib.tickets import TicketDraft
from tests.conftest import Staff, TestClock


def _ticket(engine: Engine, staff: Staff, summary: str = "Printer jams") -> int:
    with transaction(engine) as s:
        t = tickets.create_ticket(s, actor=staff.tech, draft=TicketDraft(
            summary=summary, category="Printing", priority="Medium", channel="phone",
            requester=RequesterInput(name="Ann", email="ann@example.com")))
        return tickets.take(s, actor=staff.tech, ticket_id=t.id).id


def _drafts(engine: Engine, user: int, tid: int) -> dict[DraftField, drafts.Draft]:
    with read_session(engine) as s:
        return drafts.for_ticket(s, user_id=user, ticket_id=tid)


def test_a_draft_is_kept_per_user_ticket_and_field_and_upserted(engine: Engine, staff: Staff,
                                                                  clock: TestClock) -> None:
    tid, other = _ticket(engine, staff), _ticket(engine, staff, "Other")
    with transaction(engine) as s:
        drafts.save(s, user_id=staff.tech, ticket_id=tid, field=DraftField.REPLY, text="Hello Ann")
        drafts.save(s, user_id=staff.tech, ticket_id=tid, field="note", text="Checked the spooler")
        drafts.save(s, user_id=staff.tech2, ticket_id=tid, field=DraftField.REPLY, text="Tara's own reply")
        drafts.save(s, user_id=staff.tech, ticket_id=other, field=DraftField.REPLY, text="Another ticket")
    first = _drafts(engine, staff.tech, tid)[DraftField.REPLY].updated_at
    clock.advance(timedelta(minutes=3))
    with transaction(engine) as s:  # the same user, ticket and field: the row is updated, never added
        saved = drafts.save(s, user_id=staff.tech, ticket_id=tid, field=DraftField.REPLY, text="Hello Ann, fixed")
    assert saved is not None and saved.text == "Hello Ann, fixed"
    mine = _drafts(engine, staff.tech, tid)
    assert {f: d.text for f, d in mine.items()} == {DraftField.REPLY: "Hello Ann, fixed",
                                                    DraftField.NOTE: "Checked the spooler"}
    assert mine[DraftField.REPLY].updated_at - first >= timedelta(minutes=3)
    assert _drafts(engine, staff.tech2, tid)[DraftField.REPLY].text == "Tara's own reply"
    assert _drafts(engine, staff.tech, other)[DraftField.REPLY].text == "Another ticket"
    with read_session(engine) as s:
        assert s.scalar(select(func.count()).select_from(DraftText)) == 4
    assert drafts.writing(mine) == [DraftField.REPLY, DraftField.NOTE]


def test_blank_text_discard_and_clear_on_send(engine: Engine, staff: Staff) -> None:
    tid = _ticket(engine, staff)
    with transaction(engine) as s:
        drafts.save(s, user_id=staff.tech, ticket_id=tid, field=DraftField.REPLY, text="Dear Ann")
        drafts.save(s, user_id=staff.tech, ticket_id=tid, field=DraftField.NOTE, text="to self")
        drafts.save(s, user_id=staff.tech, ticket_id=tid, field=DraftField.ROOT_CAUSE, text="Worn roller")
    with transaction(engine) as s:  # emptied box: nothing left to keep
        assert drafts.save(s, user_id=staff.tech, ticket_id=tid, field=DraftField.NOTE, text="  \n") is None
    assert set(_drafts(engine, staff.tech, tid)) == {DraftField.REPLY, DraftField.ROOT_CAUSE}
    with transaction(engine) as s:  # sending the reply clears its draft in the same transaction
        tickets.public_reply(s, actor=staff.tech, ticket_id=tid, text="Dear Ann")
        assert drafts.discard(s, user_id=staff.tech, ticket_id=tid, fields=[DraftField.REPLY]) == 1
    assert set(_drafts(engine, staff.tech, tid)) == {DraftField.ROOT_CAUSE}
    with transaction(engine) as s:
        assert drafts.discard(s, user_id=staff.tech, ticket_id=tid) == 1
    assert _drafts(engine, staff.tech, tid) == {}


def test_a_failed_send_keeps_the_draft(engine: Engine, staff: Staff) -> None:
    tid = _ticket(engine, staff)
    with transaction(engine) as s:
        drafts.save(s, user_id=staff.tech, ticket_id=tid, field=DraftField.REPLY, text="Will this send?")
    with pytest.raises(ValidationError), transaction(engine) as s:
        tickets.public_reply(s, actor=staff.tech, ticket_id=tid, text="")  # refused: the transaction rolls back
        drafts.discard(s, user_id=staff.tech, ticket_id=tid, fields=[DraftField.REPLY])
    assert _drafts(engine, staff.tech, tid)[DraftField.REPLY].text == "Will this send?"


def test_bad_draft_input_is_refused_with_a_clear_message(engine: Engine, staff: Staff) -> None:
    tid = _ticket(engine, staff)
    with pytest.raises(ValidationError, match="not a draft field"), transaction(engine) as s:
        drafts.save(s, user_id=staff.tech, ticket_id=tid, field="password", text="x")
    with pytest.raises(ValidationError, match="at most 100,000") as caught, transaction(engine) as s:
        drafts.save(s, user_id=staff.tech, ticket_id=tid, field=DraftField.NOTE, text="x" * (drafts.MAX_CHARS + 1))
    assert "note" in caught.value.fields
    # Text is data: quotes, markup and other scripts come back exactly as typed.
    text = "Robert'); DROP TABLE tickets;-- <b>bold</b> ⟦Ω⟧ 日本語\r\n\ttabs"
    with transaction(engine) as s:
        drafts.save(s, user_id=staff.tech, ticket_id=tid, field=DraftField.NOTE, text=text)
    assert _drafts(engine, staff.tech, tid)[DraftField.NOTE].text == text


def test_presence_shows_fresh_visitors_and_what_they_write(engine: Engine, staff: Staff, clock: TestClock,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from lib.config import get_settings

    monkeypatch.setenv("HELPDESK_PRESENCE_STALE_SECONDS", "20")
    get_settings.cache_clear()
    tid, other = _ticket(engine, staff), _ticket(engine, staff, "Other")
    with transaction(engine) as s:
        presence.heartbeat(s, user_id=staff.tech, ticket_id=tid)
        presence.heartbeat(s, user_id=staff.tech2, ticket_id=tid, writing=[DraftField.REPLY, DraftField.NOTE])
        presence.heartbeat(s, user_id=staff.lead, ticket_id=other)
    with read_session(engine) as s:
        seen = presence.on_ticket(s, ticket_id=tid, exclude_user=staff.tech)
        assert [(p.name, p.doing) for p in seen] == [("Tara Tech", "is writing a reply and an internal note")]
        everyone = presence.on_tickets(s, ticket_ids=[tid, other])
    assert [(p.name, p.doing) for p in everyone[tid]] == [("Tara Tech", "is writing a reply and an internal note"),
                                                         ("Tom Tech", "is viewing")]
    assert [p.name for p in everyone[other]] == ["Lena Lead"]
    # Tom's tab keeps beating; Tara's tab closed. 15 s on both count; past 20 s only Tom does.
    clock.advance(timedelta(seconds=15))
    with transaction(engine) as s:
        presence.heartbeat(s, user_id=staff.tech, ticket_id=tid)
        presence.heartbeat(s, user_id=staff.tech2, ticket_id=tid, writing=[])  # sent: back to viewing
    with read_session(engine) as s:
        assert [p.doing for p in presence.on_ticket(s, ticket_id=tid, exclude_user=staff.tech)] == ["is viewing"]
    clock.advance(timedelta(seconds=21))
    with transaction(engine) as s:
        presence.heartbeat(s, user_id=staff.tech, ticket_id=tid)
    with read_session(engine) as s:
        assert presence.on_ticket(s, ticket_id=tid, exclude_user=staff.tech) == []
        assert [p.name for p in presence.on_ticket(s, ticket_id=tid)] == ["Tom Tech"]
        assert presence.on_tickets(s, ticket_ids=[other]) == {}
        # Heartbeats upsert: one row per person and ticket however many beats.
        assert s.scalar(select(func.count()).select_from(TicketPresence)) == 3
    # The staleness threshold is a setting.
    monkeypatch.setenv("HELPDESK_PRESENCE_STALE_SECONDS", "60")
    get_settings.cache_clear()
    with read_session(engine) as s:
        assert [p.name for p in presence.on_ticket(s, ticket_id=tid, exclude_user=staff.tech)] == ["Tara Tech"]
    get_settings.cache_clear()


def test_old_presence_rows_are_purged_and_leave_forgets(engine: Engine, staff: Staff, clock: TestClock) -> None:
    tid, other = _ticket(engine, staff), _ticket(engine, staff, "Other")
    with transaction(engine) as s:
        presence.heartbeat(s, user_id=staff.tech2, ticket_id=other)
        presence.heartbeat(s, user_id=staff.lead, ticket_id=tid)
    clock.advance(presence.PURGE_AFTER + timedelta(minutes=1))
    with transaction(engine) as s:
        presence.heartbeat(s, user_id=staff.tech, ticket_id=tid, purge=True)
    with read_session(engine) as s:
        rows = s.execute(select(TicketPresence.user_id, TicketPresence.ticket_id)).all()
    assert rows == [(staff.tech, tid)]
    with transaction(engine) as s:
        presence.leave(s, user_id=staff.tech, ticket_id=tid)
    with read_session(engine) as s:
        assert presence.on_ticket(s, ticket_id=tid) == []


def test_states_round_trip() -> None:
    assert presence.state_for([]) == "viewing"
    state = presence.state_for([DraftField.RESOLUTION_NOTES, "root_cause"])
    assert state == "writing:resolution_notes,root_cause"
    assert presence.parse_state(state) == (DraftField.RESOLUTION_NOTES, DraftField.ROOT_CAUSE)
    assert presence.parse_state("writing:reply,retired_field") == (DraftField.REPLY,)
    assert presence.parse_state("viewing") == ()


def test_presence_state_fits_its_column_whatever_is_being_written():
    from lib.drafts import DraftField
    from lib.presence import STATE_MAX, parse_state, state_for

    state = state_for(list(DraftField))
    assert len(state) <= STATE_MAX and state.startswith("writing:") and len(parse_state(state)) >= 5
