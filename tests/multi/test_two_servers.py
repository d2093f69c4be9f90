"""Two app servers on one PostgreSQL: what one writes the other shows, a sign-in on one holds on the other,
a stale save across servers is refused with who/what/when, an alert burst split over both makes one ticket,
and with both workers running every mail is sent exactly once."""

from __future__ import annotations

import json
import re
import threading

from alembic.script import ScriptDirectory
from sqlalchemy import func, select, text

from lib import tickets
from lib.db import MIGRATIONS_DIR, read_session, transaction
from lib.directory import RequesterInput
from lib.mail.inbound import ingest_message
from lib.mail.settings import InboundDefaults
from lib.models import Category, OutboxMail, Ticket, TicketEvent, ticket_ref
from lib.tickets import TicketDraft
from lib.users import get_by_username
from lib.workflow import EventKind
from tests.e2e.conftest import log_ticket, login, pick, wait_idle
from tests.integration.conftest import make_mail
from tests.multi.conftest import ALERT_TOKEN, Pair, http_post, signed_in, wait_until

VIEWPORT = {"width": 1300, "height": 900}


def grid_cell(page, text_: str):
    return page.get_by_test_id("stDataFrame").first.locator('td[role="gridcell"]', has_text=text_).first


def test_both_servers_started_together_on_an_empty_database_and_migrated_it_once(pair: Pair) -> None:
    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    with pair.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [head]
        names = conn.execute(select(Category.name)).scalars().all()
    assert names and len(names) == len(set(names))  # the reference data was seeded once, not by each server
    for server in pair.servers:
        assert server.health() == (200, {"status": "ok", "database": "ok"})


def test_a_ticket_created_on_a_appears_in_b_queue_at_its_next_refresh(browser, pair: Pair, staff_cookies) -> None:
    on_b = signed_in(browser, staff_cookies, "lena", pair.b)
    on_b.get_by_role("heading", name="Queue").wait_for()
    pick(on_b, "All open")
    assert grid_cell(on_b, "Projector in room 7").count() == 0

    on_a = signed_in(browser, staff_cookies, "tom", pair.a, "/intake")
    log_ticket(on_a, channel="Walk-in", name="Ann Smith", email="ann@example.com",
               summary="Projector in room 7 shows no signal", description="HDMI and VGA both blank since Monday.",
               category="Hardware")

    # B's queue was not reloaded: its live refresh (every 2 s here) brings the new ticket in.
    grid_cell(on_b, "Projector in room 7 shows no signal").wait_for(state="attached", timeout=20_000)
    on_a.context.close()
    on_b.context.close()


def test_a_sign_in_on_a_is_valid_on_b(browser, pair: Pair) -> None:
    ctx_a = browser.new_context(viewport=VIEWPORT)
    page = ctx_a.new_page()
    login(page, pair.a.url, "tom")
    page.get_by_role("heading", name="Queue").wait_for()
    [cookie] = [c for c in ctx_a.cookies() if c["name"] == "helpdesk_session"]
    # Another browser holding only that cookie, talking only to B: signed in, no login form.
    ctx_b = browser.new_context(viewport=VIEWPORT)
    ctx_b.add_cookies([{"name": cookie["name"], "value": cookie["value"], "url": pair.b.url}])
    on_b = ctx_b.new_page()
    on_b.goto(pair.b.url + "/account")
    wait_idle(on_b)
    on_b.get_by_role("heading", name="My account").wait_for()
    assert on_b.get_by_role("button", name="Log in").count() == 0
    # Logging out on B ends the session for A as well: it is a row in the shared database.
    on_b.get_by_role("button", name="Log out", exact=True).click()
    on_b.get_by_role("button", name="Log in").wait_for()
    page.reload()
    wait_idle(page)
    page.get_by_role("button", name="Log in").wait_for()
    ctx_a.close()
    ctx_b.close()


def test_a_stale_save_across_servers_is_refused_with_who_what_and_when(browser, pair: Pair, staff_cookies) -> None:
    with transaction(pair.engine) as s:
        tom = get_by_username(s, "tom")
        assert tom is not None
        t = tickets.create_ticket(s, actor=tom.id, draft=TicketDraft(
            summary="Docking station drops the network", category="Hardware", priority="Medium", channel="phone",
            requester=RequesterInput(name="Bea Brown", email="bea@example.com")))
        tickets.take(s, actor=tom.id, ticket_id=t.id)
        tid = t.id
    on_a = signed_in(browser, staff_cookies, "tom", pair.a, f"/ticket?id={tid}")
    on_b = signed_in(browser, staff_cookies, "lena", pair.b, f"/ticket?id={tid}")
    for page in (on_a, on_b):
        page.get_by_role("heading", name=ticket_ref(tid)).wait_for()
        pick(page, "Details")
    on_a.get_by_role("textbox", name="Summary").fill("Docking station drops the network after sleep")
    on_a.get_by_role("button", name="Save changes").click()
    wait_idle(on_a)
    on_b.get_by_role("textbox", name="Summary").fill("Dock: no network")
    on_b.get_by_role("button", name="Save changes").click()
    wait_idle(on_b)
    # The refusal names who changed what, and when.
    refusal = on_b.get_by_test_id("stAlert").filter(has_text="Not saved").filter(has_text="Tom Tech").first
    refusal.wait_for()
    message = refusal.inner_text()
    assert "was changed after you loaded it" in message
    assert "summary from Docking station drops the network to Docking station drops the network after sleep" in message
    assert re.search(r"\bat (\w{3} \d\d \w{3} \d{4} )?\d\d:\d\d\b", message), message
    pick(on_b, "Details")
    assert on_b.get_by_role("textbox", name="Summary").input_value() == "Dock: no network"  # the draft is kept
    with read_session(pair.engine) as s:
        saved = s.get(Ticket, tid)
        assert saved is not None and saved.summary == "Docking station drops the network after sleep"  # no lost update
    on_a.context.close()
    on_b.context.close()


def test_an_alert_burst_split_across_both_servers_makes_one_ticket(pair: Pair) -> None:
    body = json.dumps({
        "version": "4", "receiver": "helpdesk", "groupKey": "{}:{}", "status": "firing",
        "alerts": [{"status": "firing", "labels": {"alertname": "LinkDown", "instance": "sw-core-2",
                                                   "severity": "critical"},
                    "annotations": {"summary": "LinkDown on sw-core-2"}, "startsAt": "2026-05-01T10:00:00Z"}],
    }).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {ALERT_TOKEN}"}
    posts = 12
    start = threading.Barrier(posts)
    replies: list[tuple[int, dict]] = []
    lock = threading.Lock()

    def send(i: int) -> None:
        server = pair.servers[i % 2]
        start.wait(10)
        reply = http_post(server.url + "/api/alerts/alertmanager", body, headers)
        with lock:
            replies.append(reply)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(posts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [status for status, _ in replies] == [200] * posts, replies
    assert sum(r["created"] for _, r in replies) == 1
    assert sum(r["updated"] for _, r in replies) == posts - 1
    with read_session(pair.engine) as s:
        [ticket] = s.scalars(select(Ticket).where(Ticket.summary == "LinkDown on sw-core-2")).all()
        assert ticket.occurrences == posts
        assert {tuple(r["tickets"]) for _, r in replies} == {(ticket_ref(ticket.id),)}


def test_outbound_mail_is_sent_exactly_once_with_both_workers_running(pair: Pair) -> None:
    def new_mail_tickets(prefix: str, n: int) -> list[int]:
        ids = []
        for i in range(n):
            with transaction(pair.engine) as s:
                result = ingest_message(s, make_mail(subject=f"{prefix} {i}", sender=f"{prefix}{i}@example.com",
                                                     message_id=f"<{prefix}-{i}@example.com>"),
                                        defaults=InboundDefaults())
                assert result.ticket_id is not None
                ids.append(result.ticket_id)
        return ids

    def outbox_of(ids: list[int]) -> list[OutboxMail]:
        with read_session(pair.engine) as s:
            rows = list(s.scalars(select(OutboxMail).where(OutboxMail.ticket_id.in_(ids))))
            s.expunge_all()
            return rows

    ids = new_mail_tickets("burst", 24)  # 8 claims of 3 (HELPDESK_SMTP_BATCH=3) to share between the workers
    rows = wait_until(lambda: (r := outbox_of(ids)) and all(m.state == "sent" for m in r) and r,
                      what="every acknowledgement sent")
    # One more mail queued afterwards and sent: the workers have run on past the burst.
    marker = new_mail_tickets("after", 1)
    wait_until(lambda: all(m.state == "sent" for m in outbox_of(marker)), what="the later mail sent")
    sent_ids = [m["Message-ID"] for r in pair.smtp.received if (m := r.message)["To"].startswith("burst")]
    assert sorted(sent_ids) == sorted(row.message_id for row in rows)  # every one, none twice
    assert all(row.attempts == 1 for row in rows)
    with read_session(pair.engine) as s:
        per_ticket = dict(s.execute(
            select(TicketEvent.ticket_id, func.count()).where(TicketEvent.ticket_id.in_(ids),
                                                               TicketEvent.kind == EventKind.MAIL_SENT.value)
            .group_by(TicketEvent.ticket_id)).all())
    assert per_ticket == {tid: 1 for tid in ids}
