"""Inbound e-mail on SQLite and PostgreSQL: tickets, replies, auto-replies, duplicates and the quarantine."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from lib import tickets
from lib.config import get_settings
from lib.db import read_session, transaction
from lib.directory import RequesterInput
from lib.mail.inbound import ingest_files, ingest_message
from lib.mail.settings import InboundDefaults
from lib.models import Attachment, OutboxMail, ProcessedMail, QuarantinedMail, Ticket, TicketEvent, ticket_ref
from lib.tickets import TicketDraft
from lib.workflow import ActionKind, ClosureReason, EventKind, Status
from tests.conftest import testdata_dir as shared_testdata

ROOT = Path(__file__).resolve().parents[2]


def make_mail(*, sender: str = "Ann Smith <ann@example.com>", subject: str = "Printer on floor 3 is jammed",
              body: str = "The printer shows error E5 since this morning.", message_id: str | None = None,
              in_reply_to: str | None = None, references: str | None = None, headers: dict[str, str] | None = None,
              attachments: list[tuple[str, bytes]] = ()) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "helpdesk@desk.example"
    msg["Subject"] = subject
    msg["Message-ID"] = message_id or make_msgid(domain="example.com")
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = references
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    for filename, data in attachments:
        msg.add_attachment(data, maintype="application", subtype="octet-stream", filename=filename)
    return msg.as_bytes()


def ingest(engine, raw: bytes, **kwargs):
    with transaction(engine) as s:
        return ingest_message(s, raw, defaults=InboundDefaults(own_addresses=("helpdesk@desk.example",)), **kwargs)


def count(engine, model, *where) -> int:
    with read_session(engine) as s:
        return s.scalar(select(func.count()).select_from(model).where(*where)) or 0


def events(engine, ticket_id: int, kind: EventKind | None = None) -> list[TicketEvent]:
    with read_session(engine) as s:
        stmt = select(TicketEvent).where(TicketEvent.ticket_id == ticket_id).order_by(TicketEvent.id)
        if kind is not None:
            stmt = stmt.where(TicketEvent.kind == kind.value)
        found = list(s.scalars(stmt).unique())
        s.expunge_all()  # keep them readable after the read session ends
        return found


def ticket(engine, ticket_id: int) -> Ticket:
    with read_session(engine) as s:
        found = s.get(Ticket, ticket_id)
        s.expunge_all()
        return found


def waiting_on_user(engine, staff, ticket_id: int) -> None:
    with transaction(engine) as s:
        t = tickets.take(s, actor=staff.tech, ticket_id=ticket_id)
        t = tickets.acknowledge(s, actor=staff.tech, ticket_id=ticket_id, expected_version=t.version)
        tickets.request_info(s, actor=staff.tech, ticket_id=ticket_id, expected_version=t.version,
                             text="Which tray is jammed?")
    assert ticket(engine, ticket_id).status == Status.WAITING_USER


@pytest.fixture
def small_attachments(monkeypatch):
    monkeypatch.setenv("HELPDESK_ATTACHMENT_MAX_BYTES", "1000")
    get_settings.cache_clear()
    yield 1000
    monkeypatch.delenv("HELPDESK_ATTACHMENT_MAX_BYTES")
    get_settings.cache_clear()


# --- the real mails in the shared test data ----------------------------------------------------

EXPECTED = {
    # file: (summary starts with, requester, attachments (name, size), body contains)
    "django-helpdesk_all-special-chars.eml": ("Testovácí email", "timothy.hobbs@auto-mat.cz", [], "íářčšáíéřášč"),
    "django-helpdesk_blank-body-with-attachment.eml": ("Attachment without body - and a looo",
                                                       "timothy.hobbs@auto-mat.cz", [("baf", 24)], ""),
    "django-helpdesk_forwarded-message.eml": ("Test with original message from GitHub", "sender@domain.tld", [],
                                              "This is email body"),
    "django-helpdesk_pgp.eml": ("example email that crashes django-helpdesk get_email", "bugreporter@example.com", [],
                                "thanks for looking into this"),
    "django-helpdesk_quoted_printable.eml": ("Český test", "tim.thelion@gmail.com", [],
                                             "Tohle je test českých písmen odeslaných z gmailu."),
    "django-helpdesk_utf-nondecodable.eml": ("Fwd: Cyklozaměstnavatel - změna vyhodnocení", "john.smith@example.cz", [],
                                             "Forwarded Message"),
}


def test_every_shared_mail_becomes_a_ticket_with_an_acknowledgement(engine):
    folder = shared_testdata("email")
    files = sorted(folder.glob("*.eml"))
    assert {f.name for f in files} == set(EXPECTED), "a new shared test mail needs its expectations here"
    for path in files:
        summary, requester, atts, body = EXPECTED[path.name]
        result = ingest(engine, path.read_bytes())
        assert result.kind == "ticket", (path.name, result)
        with read_session(engine) as s:
            t = s.get(Ticket, result.ticket_id)
            assert t.summary.startswith(summary) and len(t.summary) <= 200, path.name
            assert t.channel == "email" and t.status == Status.NEW
            assert t.requester.email == requester
            assert body in t.description
            assert t.external_source == "email" and t.external_ref == result.message_id
            stored = s.execute(select(Attachment.filename, Attachment.size).where(Attachment.ticket_id == t.id)).all()
            assert sorted(map(tuple, stored)) == atts, path.name
            ack = s.scalars(select(OutboxMail).where(OutboxMail.ticket_id == t.id)).all()
            assert len(ack) == 1
            assert ack[0].to_address == requester
            assert ack[0].subject.startswith(f"[{ticket_ref(t.id)}] We received your request")
            assert ack[0].in_reply_to == result.message_id  # threads under the requester's own mail
    # The long subject was cut to fit; the description keeps it whole.
    with read_session(engine) as s:
        t = s.scalar(select(Ticket).where(Ticket.summary.like("Attachment without body%")))
        assert t.summary.endswith("…") and "oong subject" in t.description and t.description.startswith("Subject: ")
    # A second pass over the same files makes nothing new.
    summary = ingest_files(engine, files)
    assert summary.counts["duplicate"] == len(files) and not summary.errors
    assert count(engine, Ticket) == len(files)


# --- replies -----------------------------------------------------------------------------------


def test_reply_by_tag_resumes_a_ticket_waiting_on_the_user(engine, staff):
    first = ingest(engine, make_mail())
    waiting_on_user(engine, staff, first.ticket_id)
    outbox_before = count(engine, OutboxMail)
    reply = make_mail(subject=f"Re: [{ticket_ref(first.ticket_id)}] We need more information",
                      body="It is tray 2.\n\nOn Mon, 1 Jun 2026 at 09:00, Help desk wrote:\n> Which tray is jammed?\n")
    result = ingest(engine, reply)
    assert result.kind == "comment" and result.ticket_id == first.ticket_id
    t = ticket(engine, first.ticket_id)
    assert t.status == Status.IN_PROGRESS
    comment = events(engine, t.id, EventKind.INBOUND_EMAIL)[-1]
    assert comment.public and comment.body == "It is tray 2."
    assert comment.from_status == Status.WAITING_USER and comment.to_status == Status.IN_PROGRESS
    assert "Which tray is jammed?" in comment.meta["full_text"]
    assert comment.meta["matched_by"] == "tag" and comment.actor_label == "Ann Smith <ann@example.com>"
    assert count(engine, OutboxMail) == outbox_before  # a requester's reply is not answered automatically
    assert count(engine, Ticket) == 1


def test_reply_by_in_reply_to_and_by_references(engine, staff):
    first = ingest(engine, make_mail())
    with read_session(engine) as s:
        ack_id = s.scalar(select(OutboxMail.message_id).where(OutboxMail.ticket_id == first.ticket_id))
    waiting_on_user(engine, staff, first.ticket_id)
    # No tag in the subject: the thread headers alone find the ticket.
    result = ingest(engine, make_mail(subject="Re: your mail", body="Tray 2.", in_reply_to=ack_id,
                                      references=f"{first.message_id} {ack_id}"))
    assert (result.kind, result.ticket_id, result.reason) == ("comment", first.ticket_id, "matched by in-reply-to")
    assert ticket(engine, first.ticket_id).status == Status.IN_PROGRESS
    # A client that keeps only References, pointing at the requester's own first mail.
    result = ingest(engine, make_mail(subject="more", body="Also tray 3.", references=first.message_id))
    assert (result.kind, result.ticket_id) == ("comment", first.ticket_id)
    # A reply to an earlier inbound reply (e.g. a colleague answering on the thread) lands there too.
    result2 = ingest(engine, make_mail(subject="Re: more", body="And 4.", in_reply_to=result.message_id))
    assert (result2.kind, result2.ticket_id) == ("comment", first.ticket_id)
    assert count(engine, Ticket) == 1
    assert len(events(engine, first.ticket_id, EventKind.INBOUND_EMAIL)) == 3


def test_a_reply_never_confirms_a_fix(engine, staff):
    first = ingest(engine, make_mail())
    tid = first.ticket_id
    with transaction(engine) as s:
        t = tickets.take(s, actor=staff.tech, ticket_id=tid)
        t = tickets.acknowledge(s, actor=staff.tech, ticket_id=tid, expected_version=t.version)
        tickets.log_action(s, actor=staff.tech, ticket_id=tid, kind=ActionKind.DIAGNOSIS, text="Roller", minutes=5)
        t = tickets.resolve(s, actor=staff.tech, ticket_id=tid, expected_version=t.version,
                            resolution_notes="Replaced roller", root_cause="Worn roller")
        tickets.request_confirmation(s, actor=staff.tech, ticket_id=tid, expected_version=t.version)
    result = ingest(engine, make_mail(subject=f"Re: [{ticket_ref(tid)}] Please confirm", body="Yes it works, thanks!"))
    assert result.kind == "comment"
    t = ticket(engine, tid)
    assert t.status == Status.AWAITING_CONFIRMATION and t.confirmed_at is None


def test_staff_and_earlier_writers_are_participants_unknown_senders_get_a_linked_ticket(engine, staff):
    first = ingest(engine, make_mail())
    tag = f"[{ticket_ref(first.ticket_id)}]"
    by_staff = ingest(engine, make_mail(sender="Tom Tech <TECH@desk.example>", subject=f"Re: {tag}", body="On it."))
    assert (by_staff.kind, by_staff.ticket_id) == ("comment", first.ticket_id)

    stranger = ingest(engine, make_mail(sender="Eve <eve@elsewhere.example>", subject=f"Re: {tag} me too",
                                        body="Same problem on floor 4."))
    assert stranger.kind == "ticket" and stranger.ticket_id != first.ticket_id
    assert "not a participant" in stranger.reason
    linked = ticket(engine, stranger.ticket_id)
    assert linked.parent_id == first.ticket_id and linked.requester.email == "eve@elsewhere.example"
    # Eve wrote on the new ticket, so she is a participant there: her next reply is a comment on it.
    again = ingest(engine, make_mail(sender="eve@elsewhere.example", subject=f"Re: [{ticket_ref(linked.id)}]",
                                     body="Any news?"))
    assert (again.kind, again.ticket_id) == ("comment", linked.id)


def test_a_reply_to_a_closed_ticket_opens_a_new_linked_ticket(engine, staff):
    first = ingest(engine, make_mail())
    with transaction(engine) as s:
        t = s.get(Ticket, first.ticket_id)
        tickets.close(s, actor=staff.lead, ticket_id=t.id, expected_version=t.version, reason=ClosureReason.CANCELLED,
                      note="The requester fixed it herself")
    result = ingest(engine, make_mail(subject=f"Re: [{ticket_ref(first.ticket_id)}] Closed", body="It is back!"))
    assert result.kind == "ticket" and result.ticket_id != first.ticket_id
    assert "closed" in result.reason
    assert ticket(engine, first.ticket_id).status == Status.CLOSED
    new = ticket(engine, result.ticket_id)
    assert new.parent_id == first.ticket_id and new.status == Status.NEW and "It is back!" in new.description


def test_unknown_tag_and_foreign_thread_make_a_new_ticket(engine):
    result = ingest(engine, make_mail(subject="Re: [HD-999999] old thing", in_reply_to="<nothing@nowhere.example>"))
    assert result.kind == "ticket" and ticket(engine, result.ticket_id).parent_id is None


def test_reply_attachments_are_kept_and_oversize_ones_dropped_with_a_note(engine, small_attachments):
    first = ingest(engine, make_mail(attachments=[("small.log", b"x" * 100), ("huge.bin", b"y" * 5000)]))
    assert first.kind == "ticket"
    with read_session(engine) as s:
        names = s.scalars(select(Attachment.filename).where(Attachment.ticket_id == first.ticket_id)).all()
    assert names == ["small.log"]
    notes = events(engine, first.ticket_id, EventKind.INTERNAL_NOTE)
    assert len(notes) == 1 and "huge.bin (5,000 bytes)" in notes[0].body and not notes[0].public
    reply = ingest(engine, make_mail(subject=f"Re: [{ticket_ref(first.ticket_id)}]", body="Screenshots",
                                     attachments=[("shot.png", b"p" * 200), ("video.mp4", b"v" * 2000)]))
    assert reply.kind == "comment"
    with read_session(engine) as s:
        names = s.scalars(select(Attachment.filename).where(Attachment.ticket_id == first.ticket_id)
                          .order_by(Attachment.id)).all()
    assert names == ["small.log", "shot.png"]
    assert "video.mp4" in events(engine, first.ticket_id, EventKind.INTERNAL_NOTE)[-1].body


# --- auto-replies and bounces ------------------------------------------------------------------


BOUNCE = (
    "From: Mail Delivery System <MAILER-DAEMON@mx.example.com>\r\n"
    "To: helpdesk@desk.example\r\n"
    "Subject: Undelivered Mail Returned to Sender\r\n"
    "Message-ID: <bounce-{n}@mx.example.com>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n"
    "--b\r\nContent-Type: text/plain\r\n\r\nThis is the mail system. I'm sorry to have to inform you...\r\n"
    "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.com\r\n\r\n"
    "Final-Recipient: rfc822; ann@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
    "--b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: {orig}\r\nSubject: [{ref}] We need more information\r\n"
    "--b--\r\n"
)


def test_auto_replies_and_bounces_never_resume_or_answer(engine, staff):
    first = ingest(engine, make_mail())
    waiting_on_user(engine, staff, first.ticket_id)
    with read_session(engine) as s:
        sent_ids = s.scalars(select(OutboxMail.message_id).where(OutboxMail.ticket_id == first.ticket_id)).all()
    outbox_before = count(engine, OutboxMail)
    tag = f"[{ticket_ref(first.ticket_id)}]"
    autos = [
        make_mail(subject=f"Out of office: {tag}", body="I am away until Monday.",
                  headers={"Auto-Submitted": "auto-replied"}, in_reply_to=sent_ids[-1]),
        make_mail(subject=f"Automatic reply: {tag}", body="Away", headers={"X-Auto-Response-Suppress": "All"}),
        make_mail(subject=f"Re: {tag}", body="Newsletter", headers={"Precedence": "bulk"}),
        BOUNCE.format(n=1, orig=sent_ids[-1], ref=ticket_ref(first.ticket_id)).encode(),
    ]
    for raw in autos:
        result = ingest(engine, raw)
        assert (result.kind, result.ticket_id) == ("ignored_auto", first.ticket_id), result
    t = ticket(engine, first.ticket_id)
    assert t.status == Status.WAITING_USER
    assert count(engine, OutboxMail) == outbox_before
    notes = events(engine, t.id, EventKind.INTERNAL_NOTE)
    assert len(notes) == 4 and all(not n.public for n in notes)
    assert "Auto-Submitted: auto-replied" in notes[0].body
    assert not events(engine, t.id, EventKind.INBOUND_EMAIL)
    # An auto-reply that answers no ticket is kept in the quarantine, and still answered by nobody.
    stray = ingest(engine, make_mail(subject="Out of office", headers={"Auto-Submitted": "auto-replied"}))
    assert stray.kind == "ignored_auto" and stray.ticket_id is None and stray.reason.startswith("auto-reply")
    with read_session(engine) as s:
        reasons = s.scalars(select(QuarantinedMail.reason)).all()
    assert len(reasons) == 1 and reasons[0].startswith("auto-reply: Auto-Submitted")
    assert count(engine, OutboxMail) == outbox_before and count(engine, Ticket) == 1


# --- duplicates, quarantine, loops ---------------------------------------------------------------


def test_the_same_message_id_twice_makes_one_ticket_and_one_comment(engine):
    raw = make_mail(message_id="<same-1@example.com>")
    assert ingest(engine, raw).kind == "ticket"
    second = ingest(engine, make_mail(message_id="<same-1@example.com>", body="resent with another body"))
    assert second.kind == "duplicate"
    first_id = second.ticket_id
    reply = make_mail(message_id="<same-2@example.com>", subject=f"Re: [{ticket_ref(first_id)}]", body="more")
    assert ingest(engine, reply).kind == "comment"
    assert ingest(engine, reply).kind == "duplicate"
    assert count(engine, Ticket) == 1
    assert len(events(engine, first_id, EventKind.INBOUND_EMAIL)) == 1
    assert count(engine, OutboxMail) == 1


def test_a_ticket_recorded_before_mail_processed_is_still_a_duplicate(engine):
    with transaction(engine) as s:
        tickets.create_ticket(s, actor=tickets.SYSTEM, draft=TicketDraft(
            summary="Imported", category="Other", priority="Low", channel="email",
            requester=RequesterInput(email="ann@example.com"), external_source="email", external_ref="<old@example.com>"))
    result = ingest(engine, make_mail(message_id="<old@example.com>"))
    assert result.kind == "duplicate" and result.ticket_id is not None
    assert count(engine, Ticket) == 1 and count(engine, ProcessedMail) == 1


@pytest.mark.parametrize("raw, reason", [
    (b"", "cannot be read as an e-mail: empty input"),
    (b"\x00\x01\x02 binary junk \xff\xfe", "cannot be read as an e-mail"),
    (b"Subject: no sender\r\n\r\nbody\r\n", "no From address"),
    (b"From: root@localhost\r\nSubject: cron\r\nMessage-ID: <c1@localhost>\r\n\r\nbody\r\n", "is not an e-mail address"),
    (b"From: helpdesk@desk.example\r\nSubject: loop\r\nMessage-ID: <l1@desk.example>\r\n\r\nbody\r\n", "own address"),
])
def test_unusable_mail_is_quarantined_with_its_reason(engine, raw, reason):
    result = ingest(engine, raw)
    assert result.kind == "quarantined" and reason in result.reason
    with read_session(engine) as s:
        q = s.scalars(select(QuarantinedMail)).one()
        assert reason in q.reason and q.raw == raw and not q.resolved
    assert count(engine, Ticket) == 0 and count(engine, OutboxMail) == 0
    assert ingest(engine, raw).kind == "duplicate"  # not quarantined twice
    assert count(engine, QuarantinedMail) == 1


def test_batch_goes_on_after_garbage_and_reads_maildirs_and_stdin(engine, tmp_path):
    maildir = tmp_path / "Maildir"
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True)
    (maildir / "new" / "1.host").write_bytes(make_mail(subject="one"))
    (maildir / "new" / "2.host").write_bytes(b"\x00garbage\xff")
    (maildir / "new" / "3.host").write_bytes(make_mail(subject="three"))
    (maildir / "cur" / "0.host:2,S").write_bytes(make_mail(subject="zero"))
    loose = tmp_path / "loose.eml"
    loose.write_bytes(make_mail(subject="loose"))
    seen = []
    summary = ingest_files(engine, [maildir, loose, "-"], stdin=io.BytesIO(make_mail(subject="piped")),
                           progress=lambda done, total: seen.append((done, total)))
    assert summary.counts == {"ticket": 5, "quarantined": 1} and not summary.errors
    assert seen[-1] == (6, 6)
    assert str(summary) == "6 message(s): 5 ticket, 1 quarantined"
    assert sorted(p.name for p in (maildir / "new").iterdir()) == []
    assert sorted(p.name for p in (maildir / "cur").iterdir()) == ["0.host:2,S", "1.host:2,S", "2.host:2,S", "3.host:2,S"]
    with read_session(engine) as s:
        assert sorted(s.scalars(select(Ticket.summary))) == ["loose", "one", "piped", "three", "zero"]


def test_concurrent_copies_of_one_message_make_one_ticket(engine):
    raw = make_mail(message_id="<race@example.com>", sender="New Person <new.person@example.com>")
    barrier = threading.Barrier(4)
    results = []

    def worker():
        barrier.wait()
        results.append(ingest(engine, raw))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.kind for r in results) == ["duplicate", "duplicate", "duplicate", "ticket"]
    assert count(engine, Ticket) == 1 and count(engine, OutboxMail) == 1


def test_pipe_route_reads_one_message_from_stdin(sqlite_engine, tmp_path):
    url = sqlite_engine.url.render_as_string(hide_password=False)
    env = {**os.environ, "HELPDESK_DATABASE_URL": url}
    raw = make_mail(subject="Via the MTA pipe")
    run = subprocess.run([sys.executable, "-m", "lib.cli", "ingest-email", "-"], input=raw, capture_output=True,
                         cwd=ROOT, env=env, timeout=60)
    assert run.returncode == 0, run.stderr.decode()
    assert "1 ticket" in run.stdout.decode()
    again = subprocess.run([sys.executable, "-m", "lib.cli", "ingest-email", "-"], input=raw, capture_output=True,
                           cwd=ROOT, env=env, timeout=60)
    assert again.returncode == 0 and "1 duplicate" in again.stdout.decode()
    assert count(sqlite_engine, Ticket) == 1
