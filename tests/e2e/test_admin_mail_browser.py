"""Admin → Mail in a real browser: the lead sees a template's live preview on a ticket, a failed mail with the
server's answer, and a quarantined message as inert text, and releases it."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import login, seed_accounts, shot, wait_idle

pytestmark = pytest.mark.e2e


def test_the_lead_reviews_templates_outbox_and_quarantine(page, app_server):
    from sqlalchemy import select

    from lib import tickets
    from lib.db import read_session, transaction
    from lib.directory import RequesterInput
    from lib.mail.inbound import ingest_message
    from lib.mail.settings import InboundDefaults
    from lib.models import OutboxMail, QuarantinedMail, ticket_ref
    from lib.tickets import TicketDraft
    from lib.users import get_by_username
    from tests.data.test_mail_in import make_mail

    engine = seed_accounts(app_server.db)
    with transaction(engine) as s:
        tom = get_by_username(s, "tom")
        assert tom is not None
        t = tickets.create_ticket(s, actor=tom.id, draft=TicketDraft(
            summary="Badge reader at door B beeps", category="Other", priority="Medium", channel="phone",
            requester=RequesterInput(name="Nina North", email="nina@example.com")))
        tid = t.id
    with transaction(engine) as s:
        mail = s.scalars(select(OutboxMail).where(OutboxMail.ticket_id == tid)).one()
        mail.state, mail.attempts, mail.last_error = "failed", 3, "451 4.7.1 Greylisted, try later"
        ingest_message(s, make_mail(sender="olga@example.com", subject="Laptop will not boot",
                                    message_id="<boot@example.com>", headers={"Precedence": "bulk"}),
                       defaults=InboundDefaults())

    login(page, app_server.url, "lena", path="/admin")
    page.get_by_role("tab", name="✉️ Mail").click()
    wait_idle(page)
    preview = page.get_by_text(f"Subject: [{ticket_ref(tid)}] We received your request: Badge reader at door B beeps")
    preview.wait_for()
    shot(page, "admin-mail-templates")

    page.get_by_text("📤 Outbox").click()
    wait_idle(page)
    page.get_by_text("Last error: 451 4.7.1 Greylisted, try later").wait_for()
    shot(page, "admin-mail-outbox")
    page.get_by_role("button", name="Send it again").click()
    wait_idle(page)
    with read_session(engine) as s:
        assert s.scalars(select(OutboxMail.state)).one() == "pending"

    page.get_by_text("🚧 Quarantine").click()
    wait_idle(page)
    page.get_by_text("Reason: bulk: Precedence: bulk (answers no ticket)").wait_for()
    shot(page, "admin-mail-quarantine")
    page.get_by_role("button", name="Release into intake").click()
    wait_idle(page)
    page.get_by_text("Became ").wait_for()
    with read_session(engine) as s:
        assert s.scalars(select(QuarantinedMail.resolved)).one() is True
