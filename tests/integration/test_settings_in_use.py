"""Settings set in the environment alone reach what the requester gets: the confirmation link on the configured
public address, the configured ticket numbers, signature and Message-ID domain; no address, no mail."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from lib.config import get_settings
from lib.db import read_session
from lib.mail import outbound
from lib.models import OutboxMail
from tests.conftest import awaiting_confirmation


@pytest.fixture
def desk_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    monkeypatch.setenv("HELPDESK_PUBLIC_URL", "https://desk.example.com/")
    monkeypatch.setenv("HELPDESK_TICKET_PREFIX", "IT")
    monkeypatch.setenv("HELPDESK_MAIL_DOMAIN", "campus.example")
    monkeypatch.setenv("HELPDESK_DESK_SIGNATURE", "Campus IT service desk")
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def bodies(smtp_server) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {" ".join(str(got.message["Subject"]).split()): got.message.get_payload(decode=True).decode()
            for got in smtp_server.received}


def test_the_confirmation_mail_carries_the_configured_address_number_and_signature(desk_env, engine, staff,
                                                                                   smtp_server):
    tid = awaiting_confirmation(engine, staff, summary="Projector in room 2 shows no picture")
    report = outbound.send_outbox(engine, smtp_server.config())
    assert report.sent >= 1 and not report.errors
    mails = bodies(smtp_server)
    [(subject, body)] = [(k, v) for k, v in mails.items() if "/confirm?t=" in v]
    assert subject.startswith(f"[IT-{tid:06d}]")
    assert "https://desk.example.com/confirm?t=" in body
    assert "localhost" not in body and "{{public_url}}" not in body
    assert "Campus IT service desk" in body
    assert all(got.message["Message-ID"].endswith("@campus.example>") for got in smtp_server.received)


def test_without_a_public_address_nothing_is_sent_and_nothing_is_lost(desk_env, engine, staff, smtp_server):
    desk_env.delenv("HELPDESK_PUBLIC_URL")
    get_settings.cache_clear()
    awaiting_confirmation(engine, staff)
    report = outbound.send_outbox(engine, smtp_server.config())
    assert report.sent == 0 and "public_url" in (report.unavailable or "")
    assert smtp_server.received == []
    with read_session(engine) as s:
        waiting = list(s.scalars(select(OutboxMail.state)))
    assert waiting and set(waiting) == {"pending"}
    # Set it (no restart of anything): the held mail goes out, its links on the address set now.
    desk_env.setenv("HELPDESK_PUBLIC_URL", "https://help.example.org")
    get_settings.cache_clear()
    assert outbound.send_outbox(engine, smtp_server.config()).sent == len(waiting)
    assert any("https://help.example.org/confirm?t=" in body for body in bodies(smtp_server).values())
