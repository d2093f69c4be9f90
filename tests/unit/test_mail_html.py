"""HTML mail to readable text, spam/bulk/auto classification, and the tolerant parse of broken MIME."""

from __future__ import annotations

import re

import pytest

from lib.mail.html_text import html_to_text
from lib.mail.parse import AUTO, BULK, SPAM, parse_mail
from tests.mail_fixtures import NEWSLETTER, OUTLOOK_HTML, SPAM_UNQUOTED_BOUNDARY, unquoted_boundary


def html_mail(html: str, *, headers: str = "") -> bytes:
    head = "From: Bob Jones <bob.jones@example.org>\nSubject: Wi-Fi\nContent-Type: text/html; charset=utf-8\n" + headers
    return (head.strip("\n") + "\n\n").replace("\n", "\r\n").encode() + html.encode()


def assert_readable(text: str) -> None:
    assert not re.search(r"</?[a-zA-Z][^>]*>", text), text  # no tags
    assert "| --- |" not in text and "---|" not in text, text  # no Markdown tables
    assert "[](" not in text and "![" not in text, text  # no empty links, no images
    assert "\n\n\n" not in text and "  " not in text, text  # whitespace collapsed
    assert "\u200c" not in text and "\xa0" not in text, text


def test_a_newsletter_table_layout_reads_as_lines_of_text() -> None:
    text = parse_mail(NEWSLETTER).body_text
    assert_readable(text)
    assert text.split("\n") == [
        "New VPN client",
        "",
        "View in browser (https://mail.contoso-cloud.example/web/8842)",
        "",
        "November update",
        "",
        "Hello,",
        "the new VPN client 5.2 is available for all customers.",
        "",
        "Region · Maintenance window",
        "Europe · 4 Dec, 22:00–23:00 UTC",
        "Americas · 6 Dec, 03:00–04:00 UTC",
        "",
        "Download the client (https://mail.contoso-cloud.example/c/2?u=8842)",
        "",
        "You receive this mail as a Contoso Cloud customer. Unsubscribe (https://mail.contoso-cloud.example/u/8842)",
    ]
    assert "logo.png" not in text and "open/8842.gif" not in text and "/c/1" not in text and "/c/3" not in text


def test_an_outlook_html_mail_reads_as_the_person_wrote_it() -> None:
    text = parse_mail(html_mail(OUTLOOK_HTML)).body_text
    assert_readable(text)
    assert text.split("\n") == [
        "Hi team,",
        "",
        "Since this morning’s update my laptop will not connect to the Wi-Fi in building B.",
        "",
        "Error code: 0x80070005, see the Wi-Fi page (https://intranet.example.org/kb/wifi).",
        "",
        "Kind regards,",
        "",
        "Bob Jones | Finance",
        "bob.jones@example.org | +44 20 7946 0000",
    ]
    assert "mso" not in text and "behavior" not in text and "cid:" not in text and "Logo" not in text


@pytest.mark.parametrize("html, expected", [
    ('<a href="https://example.com/a"></a>text', "text"),  # a link with no text is dropped
    ('<a href="https://example.com/a"><img src="x.png" alt="Logo"></a>', ""),  # so is an image link
    ('<a href="https://example.com/status">https://example.com/status</a>', "https://example.com/status"),
    ('<a href="https://example.com/status/">example.com/status</a>', "example.com/status"),
    ('<a href="mailto:ann@example.com">ann@example.com</a>', "ann@example.com"),
    ('<a href="mailto:ann@example.com?subject=hi">Ann</a>', "Ann (ann@example.com)"),
    ('<a href="javascript:alert(1)">click</a>', "click"),
    ('<a href="#top">Back to top</a>', "Back to top"),
    ("<table><tr><td>a</td><td></td><td>b</td></tr></table>", "a · b"),
    ("<table><tr><td></td></tr><tr><td>&nbsp;</td></tr></table>", ""),
    ("<ul><li>one</li><li>two</li></ul>", "- one\n- two"),
    ("<pre>  indented\n    code</pre>", "  indented\n    code"),
    ("<script>var a = '<p>x</p>';</script><style>p{}</style>visible", "visible"),
    ("<!-- a comment --><p>kept</p><!--[if mso]><p>outlook only</p><![endif]-->", "kept"),
    ("a&amp;b &lt;c&gt; &#8364;5", "a&b <c> €5"),
    ("<p>unclosed <b>bold<div>next", "unclosed bold\nnext"),
    ("", ""),
])
def test_html_details(html: str, expected: str) -> None:
    assert html_to_text(html) == expected


def test_text_as_typed_is_not_changed_into_markup() -> None:
    text = html_to_text("<p>Use *stars* and _underscores_ | pipes [x](y)</p>")
    assert text == "Use *stars* and _underscores_ | pipes [x](y)"


@pytest.mark.parametrize("header, kind, reason", [
    ("X-Spam-Flag: YES", SPAM, "X-Spam-Flag: YES"),
    ("X-Spam-Flag: yes", SPAM, "X-Spam-Flag: yes"),
    ("X-Spam-Status: Yes, score=7.1 required=5.0", SPAM, "X-Spam-Status: Yes, score=7.1 required=5.0"),
    ("X-Spam-Status: yes", SPAM, "X-Spam-Status: yes"),
    ("X-Spam-Status: No, score=-0.1", None, None),
    ("X-Spam-Status: Yesterday", None, None),
    ("X-Spam-Flag: NO", None, None),
    ("Precedence: bulk", BULK, "Precedence: bulk"),
    ("Precedence: List", BULK, "Precedence: list"),
    ("List-Id: <staff.lists.example.org>", BULK, "List-Id: <staff.lists.example.org>"),
    ("List-Unsubscribe: <mailto:u@lists.example.org>", BULK, "List-Unsubscribe: <mailto:u@lists.example.org>"),
    ("Auto-Submitted: auto-replied", AUTO, "Auto-Submitted: auto-replied"),
    ("Auto-Submitted: no", None, None),
    ("X-Autoreply: yes", AUTO, "X-Autoreply: yes"),
])
def test_machine_mail_is_told_apart(header: str, kind: str | None, reason: str | None) -> None:
    raw = f"From: a@example.com\r\nSubject: hi\r\n{header}\r\n\r\nbody".encode()
    mail = parse_mail(raw)
    assert (mail.auto_kind, mail.auto_reason, mail.is_auto) == (kind, reason, kind is not None)


def test_spam_wins_over_the_other_markers() -> None:
    raw = b"From: a@example.com\r\nPrecedence: bulk\r\nAuto-Submitted: auto-generated\r\nX-Spam-Flag: YES\r\n\r\nx"
    assert parse_mail(raw).auto_kind == SPAM


def test_an_unquoted_boundary_holding_equals_signs_is_split_by_the_tolerant_parse() -> None:
    for raw in (SPAM_UNQUOTED_BOUNDARY, unquoted_boundary(spam=False)):
        mail = parse_mail(raw)
        assert mail.body_text.startswith("Dear customer, your account has been suspended. Verify your details")
        assert "–" in mail.body_text  # windows-1252 0x96 decoded
        assert not mail.body_unreadable and mail.attachments == []
    assert parse_mail(SPAM_UNQUOTED_BOUNDARY).auto_kind == SPAM


def test_attachments_behind_a_broken_boundary_are_found_too() -> None:
    raw = (b"From: Olga <olga@example.org>\r\nSubject: scan\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=----=_Part_1=_x\r\n\r\n"
           b"------=_Part_1=_x\r\nContent-Type: text/plain\r\n\r\nThe scan is attached.\r\n"
           b"------=_Part_1=_x\r\nContent-Type: application/pdf; name=scan.pdf\r\n"
           b"Content-Disposition: attachment; filename=scan.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           b"JVBERi0xLjQK\r\n------=_Part_1=_x--\r\n")
    mail = parse_mail(raw)
    assert mail.body_text == "The scan is attached."
    assert [(a.filename, a.data) for a in mail.attachments] == [("scan.pdf", b"%PDF-1.4\n")]


@pytest.mark.parametrize("raw, unreadable", [
    # neither parser finds the parts the sender meant
    (b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b2\r\n\r\ntext\r\n--b2--\r\n",
     True),
    # a body of a type that is not text and not an attachment
    (b"From: a@example.com\r\nContent-Type: application/octet-stream\r\n\r\n\x01\x02data", True),
    # an empty mail, or attachments only, is not unreadable: there is nothing to read
    (b"From: a@example.com\r\nSubject: empty\r\n\r\n", False),
    (b"From: a@example.com\r\nContent-Type: text/plain\r\n\r\n   \r\n", False),
    (b"From: a@example.com\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n"
     b"Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=a.pdf\r\n\r\n%PDF\r\n--b--\r\n",
     False),
])
def test_a_body_that_cannot_be_read_is_flagged(raw: bytes, unreadable: bool) -> None:
    mail = parse_mail(raw)
    assert mail.body_text == ""
    assert mail.body_unreadable is unreadable
