"""Canned responses on both engines: the lead keeps them (validated, audited), technicians get them filled in."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from lib import canned
from lib.db import transaction
from lib.errors import NotFound, PermissionDenied, ValidationError
from lib.models import PUBLIC_URL_MARK, AuditLog, Ticket
from tests.data.test_services import create


def audit_actions(engine) -> list[tuple[str, str | None]]:
    with transaction(engine) as s:
        return [(a.action, a.target) for a in s.scalars(select(AuditLog).where(AuditLog.action.like("canned_%"))
                                                       .order_by(AuditLog.id))]


@pytest.mark.parametrize("body, problem", [
    ("Hello {name}", "unknown placeholder {name}"),
    ("Hello {requester_name", "expected '}'"),
    ("Hello } there", "Single '}'"),
    ("Hello {}", "an empty placeholder"),
    ("See {ticket!r}", "without a format or conversion"),
    ("See {ticket:>20}", "without a format or conversion"),
])
def test_unknown_or_broken_placeholders_are_refused(body: str, problem: str) -> None:
    assert any(problem in p for p in canned.placeholder_problems(body)), canned.placeholder_problems(body)


def test_known_placeholders_and_literal_braces_pass() -> None:
    assert canned.placeholder_problems("Hi {requester_name}, {ticket} {summary} {public_url} {technician} {{x}}") == []


def test_the_lead_keeps_canned_replies_validated_and_audited(engine, staff) -> None:
    with transaction(engine) as s:
        row = canned.create(s, actor=staff.lead, title="Password reset",
                            body="Hello {requester_name},\n\nYour password for {ticket} is reset.\n\n{technician}")
        rid = row.id
    with transaction(engine) as s, pytest.raises(ValidationError) as err:
        canned.create(s, actor=staff.lead, title="password RESET", body="Hi {name}")
    assert set(err.value.fields) == {"title", "text"}
    assert "exists already" in err.value.fields["title"] and "unknown placeholder {name}" in err.value.fields["text"]
    assert "{requester_name}" in err.value.fields["text"]  # the message lists the placeholders there are
    with transaction(engine) as s, pytest.raises(ValidationError) as err:
        canned.create(s, actor=staff.lead, title="  ", body="")
    assert set(err.value.fields) == {"title", "text"}
    with transaction(engine) as s, pytest.raises(PermissionDenied):
        canned.create(s, actor=staff.tech, title="Mine", body="Hello")
    with transaction(engine) as s, pytest.raises(PermissionDenied):
        canned.update(s, actor=staff.senior, canned_id=rid, title="X", body="Y")
    with transaction(engine) as s:
        canned.update(s, actor=staff.lead, canned_id=rid, title="Password reset done", body="Done: {ticket}")
    with transaction(engine) as s:
        [row] = canned.list_responses(s)
        assert (row.title, row.body, row.updated_by) == ("Password reset done", "Done: {ticket}", "lead")
        canned.delete(s, actor=staff.lead, canned_id=rid)
    with transaction(engine) as s:
        assert canned.list_responses(s) == []
        with pytest.raises(NotFound):
            canned.delete(s, actor=staff.lead, canned_id=rid)
    assert audit_actions(engine) == [("canned_created", "Password reset"), ("canned_changed", "Password reset done"),
                                     ("canned_removed", "Password reset done")]


def test_a_canned_reply_is_filled_in_for_the_ticket_and_the_technician(engine, staff) -> None:
    tid = create(engine, staff.tech, summary="VPN drops hourly")
    with transaction(engine) as s:
        rid = canned.create(s, actor=staff.lead, title="Looking",
                            body="Hello {requester_name}, about {ticket} ({summary}): see {public_url}/kb. "
                                 "{technician} {{literal}}").id
    with transaction(engine) as s:
        text = canned.render(s, canned_id=rid, ticket_id=tid, technician_id=staff.tech)
    assert text == (f"Hello Ann Smith, about HD-{tid:06d} (VPN drops hourly): see https://desk.example.test/kb. "
                    "Tom Tech {literal}")
    alert_ticket = Ticket(id=7, summary="Disk full")  # alerts and imports may have no requester
    assert canned.render_text("Hello {requester_name}, {ticket}.", alert_ticket, None) == "Hello there, HD-000007."
    with transaction(engine) as s:
        with pytest.raises(NotFound):
            canned.render(s, canned_id=rid + 99, ticket_id=tid, technician_id=None)


def test_public_url_unset_leaves_the_mark_the_sender_fills_in(engine, staff, monkeypatch) -> None:
    from lib.config import get_settings

    monkeypatch.delenv("HELPDESK_PUBLIC_URL", raising=False)
    get_settings.cache_clear()
    try:
        tid = create(engine, staff.tech)
        with transaction(engine) as s:
            rid = canned.create(s, actor=staff.lead, title="Link", body="{public_url}/confirm").id
            assert canned.render(s, canned_id=rid, ticket_id=tid, technician_id=None) == f"{PUBLIC_URL_MARK}/confirm"
    finally:
        get_settings.cache_clear()
