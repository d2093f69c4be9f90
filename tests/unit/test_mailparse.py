"""Tests for lib.mail.parse: raw inbound e-mail bytes to InboundMail."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.mail.parse import (
    InboundAttachment,
    InboundMail,
    MailParseError,
    find_ticket_tag,
    parse_mail,
    strip_quoted_reply,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
EMAIL_DIR = PROJECT_ROOT.parent / "shared" / "testdata" / "email"


def shared_mail(name: str) -> bytes:
    """Raw bytes of one real mail from the shared testdata folder; skip when the folder is absent."""
    if not EMAIL_DIR.is_dir():
        pytest.skip(f"shared testdata folder not found: {EMAIL_DIR}")
    path = EMAIL_DIR / name
    assert path.is_file(), f"expected real test mail {path} is missing"
    return path.read_bytes()


def mail(text: str, *, body: bytes = b"") -> bytes:
    """A hand-made message: ``text`` holds headers (and optionally a body), written with CRLF."""
    return text.strip("\n").replace("\n", "\r\n").encode("utf-8") + b"\r\n" + body


PLAIN = """
From: Jane Doe <Jane.Doe@Example.com>
To: help@example.com
Subject: printer on fire
Message-ID: <plain-1@example.com>
Date: Tue, 03 Mar 2026 09:15:00 +0100
Content-Type: text/plain; charset=utf-8

The printer is on fire.
"""


def assert_clean_body(parsed: InboundMail) -> None:
    assert "\r" not in parsed.body_text
    assert all(line == line.rstrip() for line in parsed.body_text.split("\n"))
    assert parsed.body_text == parsed.body_text.strip("\n")


# --- real mails from the shared testdata folder -------------------------------------------


def test_every_shared_mail_parses() -> None:
    if not EMAIL_DIR.is_dir():
        pytest.skip(f"shared testdata folder not found: {EMAIL_DIR}")
    files = sorted(EMAIL_DIR.glob("*.eml"))
    assert len(files) >= 6
    for path in files:
        parsed = parse_mail(path.read_bytes())
        assert re.fullmatch(r"<[^<>\s]+@[^<>\s]+>", parsed.message_id), path.name
        assert "@" in parsed.from_address and parsed.from_address == parsed.from_address.lower()
        assert parsed.subject and parsed.subject != "(no subject)"
        assert "\n" not in parsed.subject and parsed.subject == parsed.subject.strip()
        assert parsed.date is not None and parsed.date.tzinfo is UTC, path.name
        assert not parsed.is_auto and parsed.auto_reason is None, path.name
        assert parsed.ticket_ref is None
        assert_clean_body(parsed)
        assert "\ufffd" not in parsed.body_text + parsed.subject, path.name


def test_quoted_printable_czech_mail() -> None:
    parsed = parse_mail(shared_mail("django-helpdesk_quoted_printable.eml"))
    assert parsed.subject == "Český test"
    assert parsed.body_text == "Tohle je test českých písmen odeslaných z gmailu."
    assert parsed.from_name == "Tim hobbs"
    assert parsed.from_address == "tim.thelion@gmail.com"
    assert parsed.to == ["helpdesk@auto-mat.cz"]
    assert parsed.message_id == "<CACf_UpPA7=DRF4NLFf4WpOVwHsRMtfNEwy1DHLjfh09DjuKZFA@mail.gmail.com>"
    assert parsed.date == datetime(2019, 3, 5, 17, 3, 6, tzinfo=UTC)
    assert parsed.attachments == []  # the text/html alternative is not an attachment


def test_blank_body_keeps_attachment_and_long_subject() -> None:
    parsed = parse_mail(shared_mail("django-helpdesk_blank-body-with-attachment.eml"))
    assert parsed.body_text == ""
    assert parsed.attachments == [InboundAttachment("baf", "text/plain", b"You shouldn't see this.\n")]
    assert parsed.subject == "Attachment without body - and a l" + "o" * 179 + "ng subject"
    assert parsed.from_name == "Timothy Hobbs"
    assert parsed.date == datetime(2019, 2, 15, 12, 58, 5, tzinfo=UTC)


def test_forwarded_thunderbird_8bit_utf8_mail() -> None:
    parsed = parse_mail(shared_mail("django-helpdesk_utf-nondecodable.eml"))
    # two adjacent encoded words; the second one carries only the final "í"
    assert parsed.subject == "Fwd: Cyklozaměstnavatel - změna vyhodnocení"
    body = parsed.body_text
    assert body.startswith("-------- Forwarded Message --------")
    assert "Ahoj Johne," in body
    assert "podle domluvy bych Tě poprosila o změnu vyhodnocení soutěže" in body
    assert "po zprůměrování hodnocení všech zaměstnanců tohoto zaměstnavatele." in body
    assert "Jiří Houdek" in body
    assert body.endswith("Díky moc!\nn.")
    assert "prostředí" not in body and "<p>" not in body  # the plain part wins over the HTML one
    thread = ["<CAK0Q_=uQY=3V5iUSgEN16GLtYoJ-6oQu-vYjsgQ=jv6DwOkuLQ@mail.gmail.com>"]
    assert parsed.in_reply_to == thread
    assert parsed.references == thread
    assert parsed.attachments == []
    assert parsed.date == datetime(2020, 1, 21, 12, 28, 46, tzinfo=UTC)


def test_all_special_chars_mail() -> None:
    parsed = parse_mail(shared_mail("django-helpdesk_all-special-chars.eml"))
    assert parsed.subject == "Testovácí email"
    assert parsed.body_text == "íářčšáíéřášč"
    assert parsed.from_address == "timothy.hobbs@auto-mat.cz"


def test_forwarded_message_with_original_message_block() -> None:
    parsed = parse_mail(shared_mail("django-helpdesk_forwarded-message.eml"))
    assert parsed.subject == "Test with original message from GitHub"
    assert parsed.from_name == "The Sender"
    assert parsed.body_text.startswith("This is email body\n\n-----Original Message-----\n")
    assert parsed.body_text.endswith("Thanks,\nThe GitHub Team")
    assert strip_quoted_reply(parsed.body_text) == "This is email body"


def test_pgp_signed_mail_gives_signed_text_only() -> None:
    parsed = parse_mail(shared_mail("django-helpdesk_pgp.eml"))
    assert parsed.subject == "example email that crashes django-helpdesk get_email"
    assert parsed.body_text == (
        "hi, thanks for looking into this :)\n\n"
        "https://github.com/django-helpdesk/django-helpdesk/issues/567#issuecomment-342954233"
    )
    assert "PGP SIGNATURE" not in parsed.body_text
    assert parsed.attachments == []
    assert parsed.from_address == "bugreporter@example.com"
    assert parsed.to == ["djangohelpdesk@example.com"]
    assert parsed.date == datetime(2017, 11, 8, 21, 30, 15, tzinfo=UTC)


# --- hand-made mails ------------------------------------------------------------------------


def test_plain_mail_fields() -> None:
    parsed = parse_mail(mail(PLAIN))
    assert parsed.from_name == "Jane Doe"
    assert parsed.from_address == "jane.doe@example.com"
    assert parsed.message_id == "<plain-1@example.com>"
    assert parsed.date == datetime(2026, 3, 3, 8, 15, tzinfo=UTC)
    assert parsed.body_text == "The printer is on fire."
    assert (parsed.cc, parsed.in_reply_to, parsed.references, parsed.attachments) == ([], [], [], [])


def test_html_only_mail_is_converted_to_text() -> None:
    html = (
        '<html><head><style>p {color: red}</style></head><body><p>Hello <b>team</b>,</p>'
        '<p>see <a href="https://status.example.com/incident/42">the status page</a>.</p>'
        '<img src="cid:logo" alt="logo"><ul><li>first</li><li>second</li></ul>'
        "<p>Thanks &amp; regards</p></body></html>"
    )
    parsed = parse_mail(mail("From: a@example.com\nContent-Type: text/html; charset=utf-8\n\n" + html))
    body = parsed.body_text
    assert not re.search(r"</?[a-z]+[\s>/]", body), body
    assert "Hello team," in body
    assert "the status page" in body
    assert "Thanks & regards" in body
    assert "first" in body and "second" in body
    assert "color: red" not in body and "cid:logo" not in body
    assert "\n\n\n" not in body
    assert parsed.attachments == []


def test_blank_plain_alternative_falls_back_to_html() -> None:
    raw = mail("""
From: a@example.com
Content-Type: multipart/alternative; boundary=BB

--BB
Content-Type: text/plain; charset=utf-8


--BB
Content-Type: text/html; charset=utf-8

<p>Only the <i>HTML</i> part has text.</p>
--BB--
""")
    parsed = parse_mail(raw)
    assert parsed.body_text == "Only the HTML part has text."
    assert parsed.attachments == []


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ("Auto-Submitted: auto-replied", "Auto-Submitted: auto-replied"),
        ("Auto-Submitted: auto-generated", "Auto-Submitted: auto-generated"),
        ("X-Auto-Response-Suppress: All", "X-Auto-Response-Suppress: All"),
        ("Precedence: bulk", "Precedence: bulk"),
        ("Precedence: Junk", "Precedence: junk"),
        ("Precedence: list", "Precedence: list"),
        ("X-Autoreply: yes", "X-Autoreply: yes"),
        ("X-Autorespond: Out of office", "X-Autorespond: Out of office"),
    ],
)
def test_auto_reply_headers(headers: str, reason: str) -> None:
    parsed = parse_mail(mail(f"From: a@example.com\n{headers}\nSubject: Out of office\n\nAway."))
    assert parsed.is_auto
    assert parsed.auto_reason == reason


@pytest.mark.parametrize("sender", ["MAILER-DAEMON@mx.example.com", "postmaster@example.com"])
def test_mailer_daemon_sender_is_auto(sender: str) -> None:
    parsed = parse_mail(mail(f"From: Mail Delivery System <{sender}>\n\nUndeliverable."))
    assert parsed.is_auto
    assert parsed.auto_reason == f"From: {sender.lower()}"


def test_delivery_status_report_is_auto() -> None:
    raw = mail("""
From: Mail Delivery Subsystem <bounces@mx.example.com>
To: help@example.com
Subject: Undelivered Mail Returned to Sender
Content-Type: multipart/report; report-type=delivery-status; boundary=RR

--RR
Content-Type: text/plain; charset=us-ascii

Your message could not be delivered to nobody@example.org.
--RR
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.com

Final-Recipient: rfc822; nobody@example.org
Action: failed
Status: 5.1.1
--RR
Content-Type: message/rfc822

From: help@example.com
To: nobody@example.org
Subject: [HD-9] your ticket

Hello.
--RR--
""")
    parsed = parse_mail(raw)
    assert parsed.is_auto
    assert parsed.auto_reason == "Content-Type: multipart/report; report-type=delivery-status"
    assert parsed.body_text == "Your message could not be delivered to nobody@example.org."
    assert parsed.attachments == []
    assert parsed.ticket_ref is None  # the tag is in the returned message, not in this subject


def test_auto_submitted_no_and_plain_mail_are_not_auto() -> None:
    parsed = parse_mail(mail("From: a@example.com\nAuto-Submitted: no\n\nHello."))
    assert (parsed.is_auto, parsed.auto_reason) == (False, None)
    parsed = parse_mail(mail(PLAIN))
    assert (parsed.is_auto, parsed.auto_reason) == (False, None)


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Re: [HD-000123] printer", 123),
        ("[hd-7]", 7),
        ("AW: Fwd: [Hd-42] VPN down", 42),
        ("HD-12 without brackets", None),
        ("[HD-] nothing", None),
        ("[HD-0000]", None),
        ("[HD-12345678901234567890] absurd", None),
        ("[XHD-5] other system", None),
        ("", None),
    ],
)
def test_find_ticket_tag(subject: str, expected: int | None) -> None:
    assert find_ticket_tag(subject) == expected


def test_ticket_tag_from_subject_and_custom_prefix() -> None:
    raw = mail("From: a@example.com\nSubject: Re: [HD-000123] printer\n\nStill broken.")
    assert parse_mail(raw).ticket_ref == 123
    assert parse_mail(raw, tag_prefix="IT").ticket_ref is None
    assert find_ticket_tag("Re: [it-55] laptop", tag_prefix="IT") == 55


def test_threading_headers() -> None:
    raw = mail("""
From: a@example.com
Message-ID:
 <reply-3@example.com>
In-Reply-To: <reply-2@example.com> (Jane's message of Monday)
References: <root-1@example.com>
 <reply-2@example.com>	<root-1@example.com>

Thanks!
""")
    parsed = parse_mail(raw)
    assert parsed.message_id == "<reply-3@example.com>"
    assert parsed.in_reply_to == ["<reply-2@example.com>"]
    assert parsed.references == ["<root-1@example.com>", "<reply-2@example.com>"]


def test_message_id_without_brackets_is_normalised() -> None:
    parsed = parse_mail(mail("From: a@example.com\nMessage-ID: abc.123@example.com\n\nx"))
    assert parsed.message_id == "<abc.123@example.com>"


def test_missing_message_id_gets_stable_synthetic_id() -> None:
    raw = mail("From: a@example.com\nSubject: no id\n\nbody")
    first, second = parse_mail(raw), parse_mail(bytes(raw))
    assert first.message_id == second.message_id
    assert first.message_id == f"<{hashlib.sha256(raw).hexdigest()}@helpdesk.invalid>"
    assert parse_mail(raw + b"more").message_id != first.message_id


def test_addresses_and_dates() -> None:
    raw = mail("""
From: =?utf-8?q?Dvo=C5=99=C3=A1k=2C_Ji=C5=99=C3=AD?= <Jiri@Example.CZ>
To: "Support, First Line" <Help@Example.com>, other@example.com
To: help@example.com
Cc: Boss <boss@example.com>, undisclosed-recipients:;
Date: Mon, 2 Mar 2026 23:30:00 -0000

x
""")
    parsed = parse_mail(raw)
    assert parsed.from_name == "Dvořák, Jiří"
    assert parsed.from_address == "jiri@example.cz"
    assert parsed.to == ["help@example.com", "other@example.com"]
    assert parsed.cc == ["boss@example.com"]
    assert parsed.date == datetime(2026, 3, 2, 23, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("sender", "address"),
    [
        ("Tim hobbs <tim.thelion@gmail.com", "tim.thelion@gmail.com"),  # missing ">"
        ("Tim hobbs tim.thelion@gmail.com", "tim.thelion@gmail.com"),  # no angle brackets at all
        ('"Tim <Tim@X.cz>', "tim@x.cz"),  # unbalanced quote
        ("tim@x.cz (Tim)", "tim@x.cz"),
    ],
)
def test_sloppy_from_header_still_yields_the_address(sender: str, address: str) -> None:
    assert parse_mail(mail(f"From: {sender}\n\nx")).from_address == address


@pytest.mark.parametrize(
    "value", ["not a date", "Mon, 99 Foo 2020 25:61:00 +0000", "Fri, 31 Dec 9999 23:59:59 -1200"]
)
def test_invalid_date_gives_none(value: str) -> None:
    assert parse_mail(mail(f"From: a@example.com\nDate: {value}\n\nx")).date is None


def test_minimal_mail_gets_defaults() -> None:
    parsed = parse_mail(b"From: a@example.com\r\n")
    assert parsed.subject == "(no subject)"
    assert parsed.body_text == ""
    assert parsed.date is None
    assert (parsed.to, parsed.cc, parsed.attachments) == ([], [], [])
    assert parsed.message_id.endswith("@helpdesk.invalid>")
    assert (parsed.is_auto, parsed.ticket_ref) == (False, None)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty input"),
        (b" \r\n\r\n", "empty input"),
        (b"\x00\xff", "no header lines"),
        (b"hello", "no header lines"),
        (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "no header lines"),
        (b"Subject: hi\r\n\r\nno sender", "no From address"),
        (b"From: undisclosed-recipients:;\r\n\r\nx", "no From address"),
        (b"From: Jane Doe\r\n\r\nx", "no From address"),
        ("From: a@example.com\r\n\r\nstr, not bytes", "expected the raw message as bytes"),
    ],
)
def test_unusable_input_raises_mail_parse_error(raw: bytes, reason: str) -> None:
    with pytest.raises(MailParseError, match=reason):
        parse_mail(raw)


@pytest.mark.parametrize(
    "subject",
    [
        "=?utf-8?q?unterminated",
        "=?x-no-such-charset?q?caf=E9?=",
        "=?utf-8?b?!!!not-base64?=",
        "=?utf-8?x?unknown-encoding?=",
        "=??q?empty-charset?=",
    ],
)
def test_invalid_encoded_word_does_not_crash(subject: str) -> None:
    parsed = parse_mail(mail(f"From: =?utf-8?q?broken <a@example.com>\nSubject: {subject}\n\nx"))
    assert parsed.subject
    assert parsed.from_address == "a@example.com"


def test_raw_8bit_headers_and_bad_charsets_degrade() -> None:
    raw = mail("From: a@example.com\nSubject: Žádost o přístup\nContent-Type: text/plain; charset=x-bogus\n")
    parsed = parse_mail(raw + b"\r\ncaf\xe9 ok")
    assert parsed.subject == "Žádost o přístup"
    assert parsed.body_text == "café ok"  # unknown charset, not UTF-8: Latin-1
    utf8 = mail("From: a@example.com\nContent-Type: text/plain; charset=utf-8\n")
    assert parse_mail(utf8 + b"\r\nbad \xff byte").body_text == "bad \ufffd byte"
    cp1250 = mail("From: a@example.com\nContent-Type: text/plain; charset=windows-1250\n")
    parsed = parse_mail(cp1250 + b"\r\n\x9alapka")
    assert parsed.body_text == "šlapka"


def test_malformed_headers_do_not_crash() -> None:
    raw = mail("""
From: a@example.com
To: <<<>>>, @@@, "unterminated <x@
Cc: ;;;,,,
In-Reply-To: garbage without any id
References: <<>>
Content-Type: multipart/mixed; boundary=
Content-Disposition: attachment; filename*=bogus''%ZZ

x
""")
    parsed = parse_mail(raw)
    assert parsed.from_address == "a@example.com"
    assert parsed.in_reply_to == []


ATTACHMENTS = """
From: a@example.com
Subject: files
Content-Type: multipart/mixed; boundary=MM

--MM
Content-Type: multipart/alternative; boundary=AA

--AA
Content-Type: text/plain; charset=utf-8

See attached.
--AA
Content-Type: text/html; charset=utf-8

<p>See attached.</p>
--AA--
--MM
Content-Type: application/pdf
Content-Disposition: attachment; filename*=utf-8''%C4%8Desk%C3%BD%20soubor.pdf
Content-Transfer-Encoding: base64

JVBERi0=
--MM
Content-Type: application/octet-stream; name="=?utf-8?b?xI1lc2vDvS5iaW4=?="
Content-Disposition: attachment; filename="=?utf-8?b?xI1lc2vDvS5iaW4=?="

raw
--MM
Content-Type: text/plain
Content-Disposition: attachment; filename="../../etc/pass\x07wd"

secret
--MM
Content-Type: text/csv
Content-Disposition: attachment; filename="C:\\\\Users\\\\jane\\\\report.csv"

a,b
--MM
Content-Type: image/png
Content-Disposition: inline; filename="screenshot.png"
Content-Transfer-Encoding: base64

iVBORw0K
--MM
Content-Type: image/gif
Content-Disposition: inline
Content-ID: <logo@example.com>

GIF89a
--MM
Content-Type: application/zip
Content-Disposition: attachment

PK
--MM
Content-Type: message/rfc822
Content-Disposition: attachment

From: b@example.com
Subject: forwarded

inner body
--MM--
"""


def test_attachments_are_decoded_and_sanitised() -> None:
    parsed = parse_mail(mail(ATTACHMENTS))
    assert parsed.body_text == "See attached."
    names = [a.filename for a in parsed.attachments]
    assert names == [
        "český soubor.pdf",
        "český.bin",
        "passwd",
        "report.csv",
        "screenshot.png",
        "attachment-6",
        "attachment-7",
    ]
    by_name = {a.filename: a for a in parsed.attachments}
    assert by_name["český soubor.pdf"].data == b"%PDF-"
    assert by_name["český soubor.pdf"].content_type == "application/pdf"
    assert by_name["passwd"].data == b"secret"
    assert by_name["screenshot.png"].data == b"\x89PNG\r\n"
    assert by_name["attachment-6"].content_type == "application/zip"
    forwarded = by_name["attachment-7"]
    assert forwarded.content_type == "message/rfc822"
    assert b"Subject: forwarded" in forwarded.data and b"inner body" in forwarded.data
    for name in names:
        assert "/" not in name and "\\" not in name
        assert not any(ord(c) < 32 for c in name)


def test_overlong_filename_is_shortened_keeping_extension() -> None:
    raw = mail(f"""
From: a@example.com
Content-Type: application/pdf
Content-Disposition: attachment; filename="{"x" * 400}.pdf"

%PDF
""")
    (attachment,) = parse_mail(raw).attachments
    assert len(attachment.filename) <= 200
    assert attachment.filename.endswith(".pdf")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_never_raises_anything_but_mail_parse_error(data: bytes) -> None:
    sender = b"From: a@example.com\r\n"
    for raw in (data, sender + data, sender + b"Subject: =?utf-8?q?" + data, sender + b"\r\n" + data):
        try:
            parsed = parse_mail(raw)
        except MailParseError as error:
            assert str(error)
        else:
            assert isinstance(parsed, InboundMail)


def test_module_does_not_import_ui_or_database_packages() -> None:
    code = "import sys, lib.mail.parse; print(sorted({'streamlit', 'sqlalchemy'} & set(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


# --- strip_quoted_reply --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            (
                "Works now, thanks!\n\nOn Tue, 3 Mar 2026 at 09:15, Help Desk <help@example.com> wrote:\n"
                "> Please restart the router.\n>\n> Regards"
            ),
            "Works now, thanks!",
        ),
        (
            (
                "Works now.\r\n\r\nOn Tue, 3 Mar 2026 at 09:15, Help Desk <\r\nhelp@example.com> wrote:\r\n"
                "\r\n> Please restart."
            ),
            "Works now.",
        ),
        (
            "Done.\n\n-----Original Message-----\nFrom: Help Desk\nSent: Monday\n\nPlease restart.",
            "Done.",
        ),
        (
            "Done.\n\n________________________________\nFrom: Help Desk <help@example.com>\nSent: Monday",
            "Done.",
        ),
        ("Díky, funguje to.\n\nDne 3. 3. 2026 v 9:15 Jana napsala:\n> Zkuste restart.", "Díky, funguje to."),
        ("Thanks\n\n> quoted tail\n> more\n\n", "Thanks"),
        (
            "> Which printer?\nThe one on floor 2.\n> Since when?\nMonday.\n\n> Regards, help desk",
            "> Which printer?\nThe one on floor 2.\n> Since when?\nMonday.",
        ),
        ("On Monday we wrote: the plan.\nIt is fine.", "On Monday we wrote: the plan.\nIt is fine."),
        ("> only a quote\n> nothing new", "> only a quote\n> nothing new"),
        ("-----Original Message-----\nFrom: x", "-----Original Message-----\nFrom: x"),
        ("", ""),
        ("Just text.", "Just text."),
    ],
)
def test_strip_quoted_reply(text: str, expected: str) -> None:
    assert strip_quoted_reply(text) == expected
