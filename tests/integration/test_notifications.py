"""The notification seam (lib.notify) and its webhook channel (lib.webhooks), against a real HTTP server on
loopback: requesters hear of every channel's tickets, a rolled-back change sends nothing, the lead's status
updates and the quiet flag are honoured; the webhook POSTs signed JSON once per chosen event, retries with
backoff on 5xx and timeouts, gives up on a 4xx, and two workers never send one delivery twice."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from lib import notify, tickets, webhooks
from lib.db import transaction
from lib.errors import PermissionDenied
from lib.models import OutboxMail, User, WebhookDelivery
from lib.ticket_core import add_event
from lib.workflow import EventKind
from tests.data.test_services import create, do, draft, in_progress, mails


class Receiver:
    """An HTTP server on 127.0.0.1 that records POSTs and answers with the scripted statuses (then 200)."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.script: list[int] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the standard library's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    status = receiver.script.pop(0) if receiver.script else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/desk"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def bodies(self) -> list[dict]:
        return [json.loads(body) for _, body in self.requests]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.stop()


def set_webhook(engine, url: str, events: list[str], **kw) -> webhooks.WebhookConfig:  # type: ignore[no-untyped-def]
    with transaction(engine) as s:
        lead = s.scalars(select(User).where(User.username == "lead")).one()
        return webhooks.save_config(s, actor=lead.id, url=url, events=events, **kw)


def deliveries(engine) -> list[WebhookDelivery]:  # type: ignore[no-untyped-def]
    with transaction(engine) as s:
        return list(s.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


# --- requesters --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("channel", ["phone", "walk_in", "on_behalf", "email"])
def test_every_channel_gets_the_receipt(engine, staff, channel):
    tid = create(engine, staff.tech, channel=channel)
    [mail] = mails(engine, tid)
    assert "We received your request" in mail.subject and mail.to_address == "ann@example.com"


def test_reopen_is_answered_and_status_updates_follow_the_leads_choice(engine, staff):
    tid = in_progress(engine, staff)
    do(engine, tickets.escalate_to_vendor, tid, actor=staff.tech, vendor_name="Acme printers", case_ref="C-77",
       promised_at=None, note="Fuser under warranty")
    do(engine, tickets.resume, tid, actor=staff.tech)
    do(engine, tickets.resolve, tid, actor=staff.tech, resolution_notes="New fuser", root_cause="Fuser")
    do(engine, tickets.reopen, tid, actor=staff.tech, reason="It jams again")
    bodies = {m.subject.split("] ", 1)[1].split(":")[0]: m.body for m in mails(engine, tid)}
    subjects = [m.subject.split("] ", 1)[1].split(":")[0] for m in mails(engine, tid)]
    assert subjects == ["We received your request", "Update", "Update", "Update", "Resolved", "Reopened"]
    texts = [m.body for m in mails(engine, tid)]
    assert "A technician has taken on" in texts[1] and "waiting on them" in texts[2] and "has resumed" in texts[3]
    assert "It jams again" in bodies["Reopened"] and "Its status is now" not in bodies["Reopened"]

    with transaction(engine) as s:  # the lead keeps only "escalated"
        notify.set_requester_updates(s, [EventKind.ESCALATED.value], actor=staff.lead)
    tid = in_progress(engine, staff)
    do(engine, tickets.escalate_to_vendor, tid, actor=staff.tech, vendor_name="Acme", case_ref=None, promised_at=None)
    do(engine, tickets.resume, tid, actor=staff.tech)
    assert [m.subject.split("] ", 1)[1].split(":")[0] for m in mails(engine, tid)] == [
        "We received your request", "Update"]


def test_a_rolled_back_change_sends_nothing(engine, staff):
    tid = in_progress(engine, staff)
    before = len(mails(engine, tid))
    with pytest.raises(RuntimeError), transaction(engine) as s:
        tickets.public_reply(s, actor=staff.tech, ticket_id=tid, text="On my way")
        newest = s.scalars(select(OutboxMail).where(OutboxMail.ticket_id == tid).order_by(OutboxMail.id.desc())).first()
        assert newest is not None and newest.body.count("On my way")
        raise RuntimeError("the page failed after the write")
    assert len(mails(engine, tid)) == before


def test_a_ticket_from_mail_that_must_not_be_answered_never_mails_its_sender(engine, staff):
    with transaction(engine) as s:
        t = tickets.create_ticket(s, actor=staff.tech, draft=draft(
            channel="email", event_meta={notify.QUIET: "the mail is marked as spam (X-Spam-Flag: YES)"}))
        tid = t.id
    do(engine, tickets.take, tid, actor=staff.tech)  # a status update the lead chose: not to this sender
    do(engine, tickets.acknowledge, tid, actor=staff.tech)
    assert mails(engine, tid) == []
    do(engine, tickets.public_reply, tid, actor=staff.tech, text="We had a look: is this genuine?")
    # what a technician writes by hand goes: they judged the sender genuine
    assert [m.body.count("is this genuine?") for m in mails(engine, tid)] == [1]
    with transaction(engine) as s:  # one event marked quiet on an ordinary ticket: that event only
        t = tickets.create_ticket(s, actor=staff.tech, draft=draft(channel="phone"))
        add_event(s, t, EventKind.PUBLIC_REPLY, actor=None, actor_label="system", now=t.created_at,
                  body="x", public=True, meta={notify.QUIET: "test"})
        tid = t.id
    assert ["We received your request" in m.subject for m in mails(engine, tid)] == [True]


# --- the webhook -----------------------------------------------------------------------------------------------


def test_webhook_posts_signed_json_once_per_chosen_event(clock, engine, staff, receiver):
    config = set_webhook(engine, receiver.url, ["created", "resolved"])
    tid = in_progress(engine, staff)  # created (chosen), assigned, acknowledged (not chosen)
    do(engine, tickets.internal_note, tid, actor=staff.tech, text="Secret diagnosis")
    do(engine, tickets.resolve, tid, actor=staff.tech, resolution_notes="New roller", root_cause="Wear")
    assert [d.kind for d in deliveries(engine)] == ["created", "resolved"]
    assert webhooks.deliver_due(engine, now=clock.now()) == 2
    assert webhooks.deliver_due(engine, now=clock.now()) == 0  # nothing twice
    assert [b["event"] for b in receiver.bodies()] == ["created", "resolved"]
    headers, body = receiver.requests[0]
    assert webhooks.verify(config.secret, headers["x-helpdesk-signature"], body)
    assert not webhooks.verify("another secret", headers["x-helpdesk-signature"], body)
    assert not webhooks.verify(config.secret, headers["x-helpdesk-signature"], body + b" ")
    assert headers["x-helpdesk-event"] == "created" and headers["content-type"].startswith("application/json")
    created, resolved = receiver.bodies()
    assert created["ticket"]["id"] == tid and created["ticket"]["ref"].endswith(f"{tid:06d}")
    assert resolved["change"] == {"from_status": "in_progress", "to_status": "resolved"}
    assert "Secret diagnosis" not in json.dumps(receiver.bodies())
    assert {d.state for d in deliveries(engine)} == {"sent"}


def test_webhook_retries_5xx_with_backoff_and_gives_up_on_4xx(clock, engine, staff, receiver):
    set_webhook(engine, receiver.url, ["created"])
    receiver.script = [503, 500]
    tid = create(engine, staff.tech)
    start = clock.now()
    assert webhooks.deliver_due(engine, now=start) == 0
    [d] = deliveries(engine)
    assert (d.state, d.attempts, d.last_error) == ("pending", 1, "HTTP 503 Service Unavailable")
    assert d.next_attempt_at == start + timedelta(seconds=30)
    assert webhooks.deliver_due(engine, now=start + timedelta(seconds=5)) == 0  # not due yet
    first_retry = deliveries(engine)[0].next_attempt_at
    assert webhooks.deliver_due(engine, now=first_retry) == 0  # 500 again: the delay doubles
    d = deliveries(engine)[0]
    assert d.attempts == 2 and d.next_attempt_at == first_retry + timedelta(seconds=60)
    assert webhooks.deliver_due(engine, now=d.next_attempt_at) == 1
    assert [h["x-helpdesk-delivery"] for h, _ in receiver.requests] == [str(d.id)] * 3  # the same id each time
    assert deliveries(engine)[0].state == "sent"

    receiver.script = [404]
    create(engine, staff.tech)
    assert webhooks.deliver_due(engine, now=clock.now()) == 0
    failed = deliveries(engine)[-1]
    assert (failed.state, failed.attempts, failed.last_error) == ("failed", 1, "HTTP 404 Not Found")
    with transaction(engine) as s:  # the lead sends it again from Admin
        webhooks.retry(s, failed.id, actor=staff.lead)
    assert webhooks.deliver_due(engine, now=clock.now()) == 1
    assert tid


def test_webhook_unreachable_is_retried_then_failed(clock, engine, staff, monkeypatch):
    set_webhook(engine, "http://127.0.0.1:9/nothing-listens-here", ["created"])
    monkeypatch.setenv("HELPDESK_WEBHOOK_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("HELPDESK_WEBHOOK_TIMEOUT", "2")
    from lib.config import get_settings
    get_settings.cache_clear()
    try:
        create(engine, staff.tech)
        assert webhooks.deliver_due(engine, now=clock.now()) == 0
        d = deliveries(engine)[0]
        assert d.state == "pending" and "refused" in (d.last_error or "").lower()
        assert webhooks.deliver_due(engine, now=d.next_attempt_at) == 0
        d = deliveries(engine)[0]
        assert d.state == "failed" and d.attempts == 2 and "gave up after 2 tries" in d.last_error
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


def test_two_workers_never_send_one_delivery_twice(clock, engine, staff, receiver):
    set_webhook(engine, receiver.url, ["created"])
    for _ in range(12):
        create(engine, staff.tech)
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(webhooks.deliver_due(engine, now=clock.now())))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    while webhooks.deliver_due(engine, now=clock.now()):
        pass
    ids = [h["x-helpdesk-delivery"] for h, _ in receiver.requests]
    assert len(ids) == len(set(ids)) == 12


def test_webhook_settings_are_checked_and_audited(engine, staff):
    for url, field in (("ftp://example.com/x", "url"), ("http://user:pw@example.com/", "url")):
        with pytest.raises(webhooks.ValidationError) as err, transaction(engine) as s:
            webhooks.save_config(s, actor=staff.lead, url=url, events=["created"])
        assert field in err.value.fields
    with pytest.raises(webhooks.ValidationError) as err, transaction(engine) as s:
        webhooks.save_config(s, actor=staff.lead, url="https://chat.example.com/hook", events=["tea_time"])
    assert "tea_time" in err.value.fields["events"]
    a = set_webhook(engine, "https://chat.example.com/hook", ["created"])
    b = set_webhook(engine, "https://chat.example.com/hook2", ["created", "reopened"])
    c = set_webhook(engine, "https://chat.example.com/hook2", ["created"], new_secret=True)
    assert a.secret == b.secret != c.secret and b.events == ("created", "reopened")
    with pytest.raises(PermissionDenied), transaction(engine) as s:  # a technician cannot
        webhooks.save_config(s, actor=staff.tech, url="https://evil.example.com/", events=["created"])
    with pytest.raises(PermissionDenied), transaction(engine) as s:
        notify.set_requester_updates(s, [], actor=staff.senior)
    with transaction(engine) as s:
        from lib.audit_log import list_audit
        assert [e.action for e in list_audit(s)][:3] == ["webhook_saved"] * 3
        assert not s.scalars(select(OutboxMail)).first()


def test_webhook_payload_shows_the_ticket_as_the_event_left_it(clock, engine, staff, receiver):
    set_webhook(engine, receiver.url, ["assigned"])
    tid = in_progress(engine, staff)  # taken by Tom
    do(engine, tickets.assign, tid, actor=staff.lead, assignee_id=staff.tech2)  # the lead gives it to Tara
    assert webhooks.deliver_due(engine, now=clock.now()) == 2
    taken, given = receiver.bodies()
    assert (taken["ticket"]["assignee"], taken["actor"]) == ("Tom Tech", "Tom Tech")
    assert (given["ticket"]["assignee"], given["change"]["new"], given["actor"]) == ("Tara Tech", "Tara Tech",
                                                                                     "Lena Lead")


def test_a_sent_delivery_is_not_sent_again_and_a_claimed_one_not_cancelled(clock, engine, staff, receiver):
    set_webhook(engine, receiver.url, ["created"])
    create(engine, staff.tech)
    create(engine, staff.tech)
    assert webhooks.deliver_due(engine, now=clock.now(), limit=1) == 1
    sent, waiting = deliveries(engine)
    with pytest.raises(webhooks.ValidationError, match="has not failed"), transaction(engine) as s:
        webhooks.retry(s, sent.id, actor=staff.lead)
    webhooks.claim(engine, now=clock.now(), limit=1)  # a worker holds it
    with pytest.raises(webhooks.ValidationError, match="being sent right now"), transaction(engine) as s:
        webhooks.cancel(s, waiting.id, actor=staff.lead)
