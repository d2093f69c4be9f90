"""In the browser, a ticket logged by phone for a requester with an e-mail address: the requester receives the
receipt, the request for information, the resolution and the confirmation request with its links, sent by the
app server's own worker to a real SMTP server (aiosmtpd on loopback); and the lead's edited template is the one
the next mail uses."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from email.header import decode_header, make_header

import pytest

from tests.e2e.conftest import AppServer, choose, log_ticket, login, seed_accounts, shot, wait_idle
from tests.integration.conftest import SmtpServer, free_port

PUBLIC = "https://desk.example.com"


@pytest.fixture(scope="module")
def mail_server() -> Iterator[SmtpServer]:
    server = SmtpServer(port=free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, mail_server: SmtpServer) -> Iterator[AppServer]:
    folder = tmp_path_factory.mktemp("requester_mail")
    seed_accounts(folder / "e2e.sqlite3").dispose()
    server = AppServer(folder, extra_env={
        "HELPDESK_WORKER": "on", "HELPDESK_WORKER_INTERVAL": "1", "HELPDESK_PUBLIC_URL": PUBLIC,
        "HELPDESK_SMTP_HOST": "127.0.0.1", "HELPDESK_SMTP_PORT": str(mail_server.port),
        "HELPDESK_SMTP_FROM": "helpdesk@desk.example"})
    yield server
    server.stop()


def subjects(mail_server: SmtpServer) -> list[str]:
    return [str(make_header(decode_header(r.message["Subject"]))).replace("\r\n", "") for r in mail_server.received]


def wait_for_mail(mail_server: SmtpServer, pattern: str, seconds: float = 30) -> str:
    """The body of the first mail whose subject matches, once the worker has sent it (no sleeping on luck)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for r, subject in zip(mail_server.received, subjects(mail_server), strict=True):
            if re.search(pattern, subject):
                payload = r.message.get_payload(decode=True) if not r.message.is_multipart() else \
                    r.message.get_payload(0).get_payload(decode=True)
                return payload.decode()
        time.sleep(0.2)  # polling the recorded mail for a state, bounded by the deadline
    raise AssertionError(f"no mail matching {pattern!r}; got {subjects(mail_server)}")


def test_a_phone_tickets_requester_hears_at_every_moment(page, browser, served, mail_server) -> None:  # type: ignore[no-untyped-def]
    base = served.url
    page.set_viewport_size({"width": 1440, "height": 900})
    login(page, base, "lena")
    # The lead edits the information-request template first: the mail below must use it.
    page.goto(base + "/admin")
    wait_idle(page)
    page.get_by_role("tab", name="✉️ Mail").click()
    wait_idle(page)
    choose(page, "Template", "info_requested")
    subject_box = page.get_by_role("textbox", name="Subject", exact=True)
    subject_box.fill("[{ref}] A question from the desk: {summary}")
    subject_box.press("Tab")
    wait_idle(page)
    page.get_by_role("button", name="Save template").click()
    wait_idle(page)
    page.get_by_text("saved", exact=False).first.wait_for()

    page = browser.new_page(viewport={"width": 1440, "height": 900})  # Tom, in a browser of his own
    login(page, base, "tom")
    page.goto(base + "/intake")  # "Phone" is the channel it opens with
    wait_idle(page)
    log_ticket(page, name="Ann Smith", email="ann@example.com", summary="VPN drops every ten minutes",
               description="Since this morning, on the office Wi-Fi only.", category="Networking")

    receipt = wait_for_mail(mail_server, r"^\[HD-000001\] We received your request")
    assert "HD-000001" in receipt

    page.goto(base + "/ticket?id=1")
    wait_idle(page)
    page.get_by_role("button", name="Take this ticket").click()
    wait_idle(page)
    page.get_by_role("button", name="Acknowledge").click()
    wait_idle(page)
    choose(page, "More actions", "❓ Request information")
    page.get_by_role("textbox", name="What do you need? (sent to the requester)").fill("Which building are you in?")
    page.get_by_role("textbox", name="What do you need? (sent to the requester)").press("Tab")
    wait_idle(page)
    page.get_by_role("button", name="Send request and wait on user").click()
    wait_idle(page)
    question = wait_for_mail(mail_server, r"^\[HD-000001\] A question from the desk: VPN drops")
    assert "Which building are you in?" in question

    page.get_by_role("button", name=re.compile("Resume work")).click()
    wait_idle(page)
    page.get_by_role("button", name="✅ Resolve").click()
    wait_idle(page)
    page.get_by_role("textbox", name="Resolution notes (what fixed it; sent to the requester)").fill(
        "Moved your laptop to the staff network.")
    page.get_by_role("textbox", name="Root cause", exact=True).fill("Guest network time limit")
    page.get_by_role("button", name="Resolve", exact=True).click()
    wait_idle(page)
    resolved = wait_for_mail(mail_server, r"^\[HD-000001\] Resolved")
    assert "Moved your laptop to the staff network." in resolved
    page.get_by_role("button", name="📨 Ask the user to confirm the fix").click()
    wait_idle(page)
    confirm = wait_for_mail(mail_server, r"^\[HD-000001\] Please confirm the fix")
    [link] = re.findall(re.escape(PUBLIC) + r"/confirm\?t=\S+", confirm)  # built on the public address
    shot(page, "50_requester_mail_flow")
    assert all(r.rcpt_tos == ["ann@example.com"] for r in mail_server.received)
    # the requester opens it (here, on the test server's own address) and answers
    ann = browser.new_page(viewport={"width": 390, "height": 844})
    ann.goto(link.replace(PUBLIC, base))
    wait_idle(ann)
    ann.get_by_role("heading", name="Is it fixed?").wait_for()
    ann.get_by_role("button", name="✅ Yes, it works").click()
    wait_idle(ann)
    ann.get_by_text("We have recorded your confirmation").wait_for()
    shot(ann, "51_requester_confirms")
