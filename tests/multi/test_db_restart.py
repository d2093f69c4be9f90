"""PostgreSQL stopped and started again under a running app server (a private cluster, never the shared one).

During the outage: /api/health answers 503 with a clear body, an alert post 503 (so Alertmanager sends it again),
a page a clear message. After it: health 200, the same page carries on by itself, the next page load works, alerts
are taken again (not 503 any more), and the worker sends the mail that was queued before the outage, once.
"""

from __future__ import annotations

import json

from sqlalchemy import select

from lib.db import make_engine, read_session, transaction
from lib.mail.inbound import ingest_message
from lib.mail.settings import InboundDefaults
from lib.models import OutboxMail, Ticket
from tests.e2e.conftest import login, wait_idle
from tests.integration.conftest import SmtpServer, make_mail
from tests.multi.conftest import (
    ALERT_TOKEN,
    AppServer,
    Database,
    PrivateCluster,
    free_port,
    http_post,
    seed_staff,
    start_servers,
    wait_until,
)


def test_the_app_server_rides_out_a_database_restart(browser, private_cluster: PrivateCluster, tmp_path) -> None:
    db = Database(private_cluster.admin_url, name="helpdesk")
    smtp = SmtpServer(port=free_port())
    smtp.start()
    server = AppServer("solo", db.url, tmp_path, env={
        "HELPDESK_SMTP_HOST": "127.0.0.1", "HELPDESK_SMTP_PORT": str(smtp.port),
        "HELPDESK_SMTP_FROM": "helpdesk@desk.example", "HELPDESK_PUBLIC_URL": "http://desk.example.test",
        "HELPDESK_SMTP_RETRY_BASE_SECONDS": "0.2", "HELPDESK_SMTP_RETRY_MAX_SECONDS": "0.5"})
    engine = None
    try:
        start_servers([server])
        engine = make_engine(db.url)
        seed_staff(engine)
        page = browser.new_context(viewport={"width": 1300, "height": 900}).new_page()
        login(page, server.url, "tom")
        page.get_by_role("heading", name="Queue").wait_for()

        # Mail queued before the outage, which the SMTP server refuses for now: it waits in the outbox.
        smtp.handler.reply = "451 4.3.0 Try again later"
        with transaction(engine) as s:
            ids = [ingest_message(s, make_mail(subject=f"Restart {i}", sender=f"user{i}@example.com",
                                               message_id=f"<restart-{i}@example.com>"),
                                  defaults=InboundDefaults()).ticket_id for i in range(3)]
        wait_until(lambda: smtp.handler.refused >= 3, what="the worker trying the queued mail")

        private_cluster.stop()
        status, body = wait_until(lambda: (r := server.health())[0] != 200 and r, what="health to see the outage")
        assert (status, body) == (503, {"status": "error", "database": "unavailable"})
        alert = json.dumps({"version": "4", "receiver": "helpdesk", "status": "firing", "alerts": [
            {"status": "firing", "labels": {"alertname": "DbDown", "instance": "pg-1", "severity": "critical"},
             "annotations": {"summary": "DbDown on pg-1"}}]}).encode()
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {ALERT_TOKEN}"}
        status, body = http_post(server.url + "/api/alerts/alertmanager", alert, headers)
        assert (status, body) == (503, {"error": "database unavailable; nothing was recorded, send it again"})
        page.reload()
        page.get_by_role("heading", name="The help desk database is not answering").wait_for(timeout=30_000)
        page.get_by_text("Nothing saved before is lost").wait_for()
        smtp.handler.reply = None  # the mail server takes mail again; the database is still down

        private_cluster.start()
        wait_until(lambda: server.health() == (200, {"status": "ok", "database": "ok"}), what="health to recover")
        # The page that hit the outage carries on by itself; a new page load works; no app server restart.
        page.get_by_role("heading", name="Queue").wait_for(timeout=30_000)
        page.goto(server.url + "/account")
        wait_idle(page)
        page.get_by_role("heading", name="My account").wait_for()

        # Alertmanager sends the refused post again: taken now, and again (not 503 once the database is back).
        first = http_post(server.url + "/api/alerts/alertmanager", alert, headers)
        again = http_post(server.url + "/api/alerts/alertmanager", alert, headers)
        assert (first[0], first[1]["created"], again[0], again[1]["updated"]) == (200, 1, 200, 1)
        with read_session(engine) as s:
            assert s.scalars(select(Ticket.occurrences).where(Ticket.summary == "DbDown on pg-1")).one() == 2

        # The worker resumed: the mail queued before the outage is sent, each exactly once.
        def sent() -> list[OutboxMail] | None:
            with read_session(engine) as s:
                rows = list(s.scalars(select(OutboxMail).where(OutboxMail.ticket_id.in_(ids))))
                s.expunge_all()
            return rows if rows and all(r.state == "sent" for r in rows) else None

        rows = wait_until(sent, what="the queued mail sent after the restart")
        assert sorted(smtp.message_ids()) == sorted(r.message_id for r in rows)
        page.context.close()
    finally:
        server.stop()
        if engine is not None:
            engine.dispose()
        smtp.stop()
