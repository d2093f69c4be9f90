"""Bad input gets a clear ValidationError naming the field, or is stored intact; never a crash, never half a ticket."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

import pytest
from sqlalchemy import func, inspect, select

from lib import queries, tickets
from lib.db import transaction
from lib.directory import DeviceInput, RequesterInput
from lib.errors import NotFound, ValidationError
from lib.models import Attachment, Device, OutboxMail, Requester, Ticket, TicketEvent
from lib.tickets import NewAttachment, TicketDraft

TABLES = (Ticket, TicketEvent, Requester, Device, OutboxMail, Attachment)
SQL = "'; DROP TABLE tickets; --"


def draft(**kw) -> TicketDraft:
    base = dict(summary="Outlook keeps asking for a password", category="Software", priority="Medium",
                channel="email", description="Since this morning.",
                requester=RequesterInput(name="Ann Smith", email="ann@example.com"))
    base.update(kw)
    return TicketDraft(**base)  # type: ignore[arg-type]


def counts(engine) -> dict[str, int]:
    with transaction(engine) as s:
        return {m.__tablename__: s.scalar(select(func.count()).select_from(m)) for m in TABLES}


def refused(engine, call: Callable, field: str) -> str:
    """Run ``call(session)`` in a transaction; it must raise ValidationError naming ``field`` and write nothing."""
    before = counts(engine)
    with pytest.raises(ValidationError) as err:
        with transaction(engine) as s:
            call(s)
    assert field in err.value.fields, f"expected an error on {field!r}, got {err.value.fields}"
    assert counts(engine) == before, "a refused call left rows behind"
    return err.value.fields[field]


def create(engine, actor, **kw) -> int:
    with transaction(engine) as s:
        return tickets.create_ticket(s, actor=actor, draft=draft(**kw)).id


def stored(engine, tid: int) -> Ticket:
    with transaction(engine) as s:
        return s.get(Ticket, tid)


def working(engine, staff) -> int:
    tid = create(engine, staff.tech)
    with transaction(engine) as s:
        tickets.take(s, actor=staff.tech, ticket_id=tid)
    return tid


def test_empty_summary(engine, staff):
    for empty in ("", "   ", "\n\t", None):
        msg = refused(engine, lambda s, e=empty: tickets.create_ticket(s, actor=staff.tech, draft=draft(summary=e)),
                      "summary")
        assert msg == "is required"


def test_every_field_error_at_once(engine, staff):
    with pytest.raises(ValidationError) as err:
        with transaction(engine) as s:
            tickets.create_ticket(s, actor=staff.tech, draft=draft(summary="", category="Plumbing",
                                                                    priority="Urgent", channel="fax"))
    assert {"summary", "category", "priority", "channel"} <= set(err.value.fields)


def test_unknown_or_inactive_category(engine, staff):
    msg = refused(engine, lambda s: tickets.create_ticket(s, actor=staff.tech, draft=draft(category="Plumbing")),
                  "category")
    assert "Plumbing" in msg and "Networking" in msg  # says what to choose instead
    refused(engine, lambda s: tickets.create_ticket(s, actor=staff.tech, draft=draft(category=987654)), "category")
    refused(engine, lambda s: tickets.create_ticket(s, actor=staff.tech, draft=draft(category=10**20)), "category")
    from lib.directory import resolve_category, save_category
    with transaction(engine) as s:
        cat = resolve_category(s, "Other")
        save_category(s, actor=staff.lead, category_id=cat.id, name=cat.name, active=False)
    assert "deactivated" in refused(
        engine, lambda s: tickets.create_ticket(s, actor=staff.tech, draft=draft(category="other")), "category")


def test_100_kb_description_is_stored_intact(engine, staff):
    line = "Step 42: clicked Send; got 0x800CCC0E — retried (again) ✓\n"
    text = (line * (100_000 // len(line) + 1))[:100_000]
    tid = create(engine, staff.tech, description=text)
    assert stored(engine, tid).description == text
    with transaction(engine) as s:
        tickets.internal_note(s, actor=staff.tech, ticket_id=tid, text=text)
        created = [e.body for e in queries.timeline(s, tid) if e.kind in ("created", "internal_note")]
    assert created == [text, text]
    too_long = "x" * 200_001
    assert "at most" in refused(engine, lambda s: tickets.create_ticket(s, actor=staff.tech,
                                                                       draft=draft(description=too_long)),
                                "description")
    assert "at most" in refused(engine, lambda s: tickets.create_ticket(s, actor=staff.tech,
                                                                       draft=draft(summary="y" * 201)), "summary")


def test_control_characters_are_refused_clearly(engine, staff):
    tid = working(engine, staff)
    for bad in ("\x00", "\x07", "\x1b[31mred", "\x7f", "\ud800"):
        for field, call in _control_cases(staff, tid, bad):
            assert "control characters" in refused(engine, call, field), (repr(bad), field)


def _control_cases(staff, tid: int, bad: str) -> list[tuple[str, Callable]]:
    return [
        ("summary", lambda s: tickets.create_ticket(s, actor=staff.tech, draft=draft(summary=f"Printer {bad}"))),
        ("description", lambda s: tickets.create_ticket(s, actor=staff.tech, draft=draft(description=f"a{bad}b"))),
        ("requester_name", lambda s: tickets.create_ticket(s, actor=staff.tech, draft=draft(
            requester=RequesterInput(name=f"Ann{bad}", email="new@example.com")))),
        ("text", lambda s: tickets.internal_note(s, actor=staff.tech, ticket_id=tid, text=f"note {bad}")),
        ("summary", lambda s: tickets.update_fields(s, actor=staff.tech, ticket_id=tid, expected_version=2,
                                                    changes={"summary": f"x{bad}"})),
    ]


def test_tabs_and_line_breaks_are_fine(engine, staff):
    tid = create(engine, staff.tech, summary="Two\tspaces\nand a line", description="line 1\r\nline 2\n\tindented")
    t = stored(engine, tid)
    assert t.summary == "Two spaces and a line"  # a summary is one line
    assert t.description == "line 1\nline 2\n\tindented"  # line breaks kept (normalised to \n)


def test_sql_metacharacters_are_stored_intact(engine, staff):
    tid = create(engine, staff.tech, summary=SQL, description=f"{SQL}\n\" OR 1=1 --\n%_\\",
                 requester=RequesterInput(name=SQL, email="o'brien@example.com"),
                 device=DeviceInput(asset_tag="LAP-'1", make_model=SQL))
    with transaction(engine) as s:
        tickets.take(s, actor=staff.tech, ticket_id=tid)
        tickets.internal_note(s, actor=staff.tech, ticket_id=tid, text=SQL)
        tickets.update_fields(s, actor=staff.tech, ticket_id=tid, expected_version=2,
                              changes={"root_cause": SQL, "resolution_notes": "Robert'); --"})
    t = stored(engine, tid)
    assert (t.summary, t.requester.name, t.requester.email, t.device.make_model, t.root_cause) == (
        SQL, SQL, "o'brien@example.com", SQL, SQL)
    assert t.description == f"{SQL}\n\" OR 1=1 --\n%_\\"
    assert inspect(engine).has_table("tickets")
    with transaction(engine) as s:
        page = queries.list_queue(s, queries.QueueFilter(view=queries.QueueView.ALL, text=SQL))
    assert [r.id for r in page.rows] == [tid]


def test_emoji_rtl_and_combining_characters(engine, staff):
    description = ("Printer 🖨️ says: ‏שלום עולם‏ / مرحبا بالعالم; café (decomposed: cafe\u0301); "
                   "q\u0307 Z\u0351\u0362a\u0308\u0301; family 👨‍👩‍👧‍👦; flags 🇬🇧🇩🇪")
    summary = "Drucker 🖨️ kaputt — שלום — cafe\u0301"
    tid = create(engine, staff.tech, summary=summary, description=description,
                 requester=RequesterInput(name="Zoë Ångström 李小龍", email="zoe@example.com"))
    t = stored(engine, tid)
    assert t.description == description  # a free text is kept exactly as typed
    assert t.summary == unicodedata.normalize("NFC", summary)  # a one-line summary is kept in NFC form
    assert "é" in t.summary and "🖨️" in t.summary and "שלום" in t.summary
    assert t.requester.name == "Zoë Ångström 李小龍"
    with transaction(engine) as s:
        tickets.internal_note(s, actor=staff.tech, ticket_id=tid, text=description)
        for text in ("cafe\u0301", "café", "🖨️", "שלום"):
            page = queries.list_queue(s, queries.QueueFilter(view=queries.QueueView.ALL, text=text))
            assert [r.id for r in page.rows] == [tid], text


def test_wrong_types_name_the_field(engine, staff):
    tid = working(engine, staff)
    cases: list[tuple[str, Callable]] = [
        ("summary", lambda s: tickets.create_ticket(s, actor=staff.tech, draft=draft(summary=12345))),
        ("summary", lambda s: tickets.create_ticket(s, actor=staff.tech, draft=draft(summary=["a"]))),
        ("description", lambda s: tickets.create_ticket(s, actor=staff.tech, draft=draft(description=b"bytes"))),
        ("priority", lambda s: tickets.create_ticket(s, actor=staff.tech, draft=draft(priority=[1]))),
        ("priority", lambda s: tickets.create_ticket(s, actor=staff.tech, draft=draft(priority=True))),
        ("priority", lambda s: tickets.create_ticket(s, actor=staff.tech, draft=draft(priority=7))),
        ("priority", lambda s: tickets.create_ticket(s, actor=staff.tech, draft=draft(priority=2.5))),
        ("category", lambda s: tickets.create_ticket(s, actor=staff.tech, draft=draft(category=True))),
        ("category", lambda s: tickets.create_ticket(s, actor=staff.tech, draft=draft(category=["Software"]))),
        ("category", lambda s: tickets.create_ticket(s, actor=staff.tech, draft=draft(category=None))),
        ("channel", lambda s: tickets.create_ticket(s, actor=staff.tech, draft=draft(channel=5))),
        ("requester", lambda s: tickets.create_ticket(s, actor=staff.tech, draft=draft(requester=None,
                                                                                       requester_id="abc"))),
        ("device", lambda s: tickets.create_ticket(s, actor=staff.tech, draft=draft(device_id=1.5))),
        ("assignee", lambda s: tickets.create_ticket(s, actor=staff.tech, draft=draft(assignee_id="3"))),
        ("parent", lambda s: tickets.create_ticket(s, actor=staff.tech, draft=draft(parent_id=True))),
        ("external_ref", lambda s: tickets.create_ticket(s, actor=staff.tech, draft=draft(
            external_source="email", external_ref=123))),
        ("requester_email", lambda s: tickets.create_ticket(s, actor=staff.tech, draft=draft(
            requester=RequesterInput(name="Ann", email=42)))),
        ("requester_email", lambda s: tickets.create_ticket(s, actor=staff.tech, draft=draft(
            requester=RequesterInput(name="Ann", email="not an address")))),
        ("minutes", lambda s: tickets.log_action(s, actor=staff.tech, ticket_id=tid, kind="diagnosis",
                                                 text="x", minutes="abc")),
        ("minutes", lambda s: tickets.internal_note(s, actor=staff.tech, ticket_id=tid, text="x", minutes=[5])),
        ("minutes", lambda s: tickets.public_reply(s, actor=staff.tech, ticket_id=tid, text="x", minutes=True)),
        ("minutes", lambda s: tickets.internal_note(s, actor=staff.tech, ticket_id=tid, text="x", minutes=-5)),
        ("text", lambda s: tickets.internal_note(s, actor=staff.tech, ticket_id=tid, text=None)),
        ("text", lambda s: tickets.public_reply(s, actor=staff.tech, ticket_id=tid, text={"a": 1})),
        ("kind", lambda s: tickets.log_action(s, actor=staff.tech, ticket_id=tid, kind=3, text="x")),
        ("summary", lambda s: tickets.update_fields(s, actor=staff.tech, ticket_id=tid, expected_version=2,
                                                    changes={"summary": 5})),
        ("priority", lambda s: tickets.update_fields(s, actor=staff.tech, ticket_id=tid, expected_version=2,
                                                     changes={"priority": {"level": 1}})),
        ("category", lambda s: tickets.update_fields(s, actor=staff.tech, ticket_id=tid, expected_version=2,
                                                     changes={"category": 3.0})),
        ("device", lambda s: tickets.update_fields(s, actor=staff.tech, ticket_id=tid, expected_version=2,
                                                   changes={"device_id": "abc"})),
        ("requester", lambda s: tickets.update_fields(s, actor=staff.tech, ticket_id=tid, expected_version=2,
                                                      changes={"requester_id": []})),
        ("assignee", lambda s: tickets.assign(s, actor=staff.lead, ticket_id=tid, assignee_id="abc",
                                              expected_version=2)),
        ("parent", lambda s: tickets.link(s, actor=staff.tech, ticket_id=tid, parent_id="abc")),
        ("duplicate_of", lambda s: tickets.close(s, actor=staff.tech, ticket_id=tid, expected_version=2,
                                                 reason="duplicate", duplicate_of="1")),
        ("reason", lambda s: tickets.close(s, actor=staff.tech, ticket_id=tid, expected_version=2, reason=["x"])),
        ("promised_at", lambda s: tickets.escalate_to_vendor(s, actor=staff.tech, ticket_id=tid, expected_version=2,
                                                             vendor_name="Acme", case_ref=None, promised_at=5)),
        ("vendor_name", lambda s: tickets.escalate_to_vendor(s, actor=staff.tech, ticket_id=tid, expected_version=2,
                                                             vendor_name=None, case_ref=None, promised_at=None)),
        ("senior", lambda s: tickets.escalate_to_senior(s, actor=staff.tech, ticket_id=tid, expected_version=2,
                                                        senior_id="2", reason="x")),
        ("expected_version", lambda s: tickets.request_info(s, actor=staff.tech, ticket_id=tid,
                                                            expected_version=None, text="x")),
    ]
    problems = []
    for field, call in cases:
        try:
            refused(engine, call, field)
        except BaseException as exc:  # noqa: BLE001 - report every case, not just the first
            problems.append(f"{field}: {type(exc).__name__}: {exc}"[:300])
    assert problems == []
    t = stored(engine, tid)
    assert (t.version, t.summary, t.priority) == (2, "Outlook keeps asking for a password", 2)


def test_malformed_ticket_ids_are_not_found(engine, staff):
    for bad in ("abc", "12", None, True, 1.5, 2**40, -1):
        with pytest.raises(NotFound):
            with transaction(engine) as s:
                tickets.internal_note(s, actor=staff.tech, ticket_id=bad, text="x")


def test_no_half_ticket_when_a_late_step_fails(engine, staff):
    """The ticket, its new contact and device are flushed before the attachment is checked: all roll back."""
    before = counts(engine)
    bad_name = NewAttachment("report\x00.pdf", "application/pdf", b"%PDF-1.4")
    with pytest.raises(ValidationError) as err:
        with transaction(engine) as s:
            tickets.create_ticket(s, actor=staff.tech, draft=draft(
                requester=RequesterInput(name="New Person", email="new.person@example.com"),
                device=DeviceInput(asset_tag="LAP-9999"), attachments=[bad_name]))
    assert "filename" in err.value.fields
    assert counts(engine) == before


def test_partly_bad_field_edit_changes_nothing(engine, staff):
    tid = working(engine, staff)
    refused(engine, lambda s: tickets.update_fields(s, actor=staff.tech, ticket_id=tid, expected_version=2,
                                                    changes={"summary": "A fine new summary", "priority": "Urgent"}),
            "priority")
    t = stored(engine, tid)
    assert (t.summary, t.version) == ("Outlook keeps asking for a password", 2)


def test_an_attachment_is_stored_with_the_type_of_its_bytes(engine, staff):
    """A page dressed as an image (declared image/png) is stored as plain bytes; a real PNG declared as HTML is
    stored as an image."""
    from sqlalchemy import select

    from lib.models import Attachment

    page = NewAttachment("invoice.png", "image/png", b"<html><script>alert(1)</script></html>")
    image = NewAttachment("screen.png", "text/html", b"\x89PNG\r\n\x1a\n" + b"\x00" * 32)
    with transaction(engine) as s:
        t = tickets.create_ticket(s, actor=staff.tech, draft=draft(attachments=[page, image]))
        stored = {name: kind for name, kind in s.execute(select(Attachment.filename, Attachment.content_type)
                                                         .where(Attachment.ticket_id == t.id))}
    assert stored == {"invoice.png": "application/octet-stream", "screen.png": "image/png"}
