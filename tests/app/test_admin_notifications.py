"""Admin → Notifications: the lead chooses the requesters' status updates and sets the webhook (checked, saved,
audited); its deliveries are listed, and a failed one is sent again from the page."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import Engine

from lib import notify, webhooks
from lib.db import read_session, transaction
from lib.models import AuditLog, WebhookDelivery
from tests.app.conftest import page_test
from tests.conftest import Staff
from tests.data.test_services import create


def test_status_updates_and_webhook_from_the_admin_page(app_env: Engine, staff_app: Staff):
    at = page_test("admin.py", "lead")
    at.run()
    assert not at.exception, at.exception
    assert "No webhook yet: nothing is sent." in [i.value for i in at.info]

    # status updates: keep "escalated" only
    for kind in notify.UPDATE_CHOICES:
        at.checkbox(key=f"upd_{kind}").set_value(kind == "escalated")
    next(b for b in at.button if b.label == "Save status updates").click().run()
    with read_session(app_env) as s:
        assert notify.requester_updates(s) == ("escalated",)

    # the weekly report mail: Wednesdays at 09:00
    at.selectbox(key="rm_day").set_value(2)
    at.number_input(key="rm_hour").set_value(9)
    next(b for b in at.button if b.label == "Save the schedule").click().run()
    from lib import report_mail
    with read_session(app_env) as s:
        assert report_mail.get_schedule(s) == report_mail.Schedule(True, 2, 9)

    # a bad address is refused at the field, and what was typed stays
    at.text_input(key="wh_url").set_value("ftp://chat.example.com/hook")
    next(b for b in at.button if b.label == "Save webhook").click().run()
    assert any("is not an http:// or https:// address" in e.value for e in at.error)
    assert at.text_input(key="wh_url").value == "ftp://chat.example.com/hook"

    at.text_input(key="wh_url").set_value("https://chat.example.com/hook")
    at.multiselect(key="wh_events").set_value(["created", "reopened"])
    next(b for b in at.button if b.label == "Save webhook").click().run()
    assert not at.exception, at.exception
    with read_session(app_env) as s:
        config = webhooks.get_config(s)
        assert config is not None and (config.url, config.events) == ("https://chat.example.com/hook",
                                                                        ("created", "reopened"))
        assert {a.action for a in s.scalars(select(AuditLog))} >= {"webhook_saved", "requester_updates_saved"}
    assert config.secret in [c.value for c in at.code]

    # a delivery that failed is listed, with its error, and sent again from the page
    tid = create(app_env, staff_app.tech)
    with transaction(app_env) as s:
        row = s.scalars(select(WebhookDelivery)).one()
        row.state, row.attempts, row.last_error = "failed", 1, "HTTP 404 Not Found"
    at.run()
    table = next(d.value for d in at.dataframe if "last error" in d.value.columns)
    assert isinstance(table, pd.DataFrame)
    assert table.iloc[0][["event", "state", "last error"]].tolist() == ["created", "failed", "HTTP 404 Not Found"]
    assert table.iloc[0]["ticket"].endswith(f"{tid:06d}")
    next(b for b in at.button if b.label == "Send it again").click().run()
    with read_session(app_env) as s:
        assert s.scalars(select(WebhookDelivery)).one().state == "pending"


def test_a_technician_subscribes_to_the_weekly_report_on_my_account(app_env: Engine, staff_app: Staff):
    from lib import report_mail

    at = page_test("account.py", "tech")
    at.run()
    assert not at.exception, at.exception
    at.toggle(key="report_mail_me").set_value(True).run()
    assert not at.exception, at.exception
    with read_session(app_env) as s:
        assert report_mail.is_subscribed(s, staff_app.tech)
        assert "tech@desk.example" in [u.email for u in report_mail.recipients(s)]
    at.toggle(key="report_mail_me").set_value(False).run()
    with read_session(app_env) as s:
        assert not report_mail.is_subscribed(s, staff_app.tech)
