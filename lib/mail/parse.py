"""Turn raw inbound e-mail bytes into an :class:`InboundMail` for ticket ingestion.

:func:`parse_mail` raises only :class:`MailParseError`, and only when the input cannot be a
mail at all: not bytes, empty or blank, no header line (``b"hello"``, binary junk), or no
From address with a domain. Everything else degrades gracefully: undecodable text is decoded with
replacement characters, a missing subject becomes ``"(no subject)"``, a missing or invalid
date becomes ``None``, a missing Message-ID is replaced by a stable synthetic one.

The modern parser (``email.policy.default``) reads the message first. When it finds no body text, or
reports defects in the MIME structure (e.g. a multipart boundary written unquoted with ``=`` in it, which
it cannot split), the body and attachments are read again with the tolerant legacy parser
(``email.policy.compat32``). A body that neither can read is flagged (``body_unreadable``) so the ticket
can say so instead of showing an empty description. HTML-only mail is converted by
:mod:`lib.mail.html_text`.

Standard library ``email`` only, so it runs in the web process and in scripts alike.
"""

from __future__ import annotations

import email
import hashlib
import posixpath
import re
import unicodedata
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.errors import (
    CloseBoundaryNotFoundDefect,
    MessageDefect,
    MessageError,
    MultipartInvariantViolationDefect,
    NoBoundaryInMultipartDefect,
    StartBoundaryNotFoundDefect,
)
from email.header import decode_header, make_header
from email.message import Message, MIMEPart
from email.utils import getaddresses
from html import unescape
from typing import cast

from lib.config import get_settings
from lib.mail.html_text import html_to_text

NO_SUBJECT = "(no subject)"
SYNTHETIC_ID_DOMAIN = "helpdesk.invalid"
_MAX_FILENAME = 200
_SIGNATURES = {"application/pgp-signature", "application/pkcs7-signature", "application/x-pkcs7-signature"}
_AUTO_HEADERS = ("X-Auto-Response-Suppress", "X-Autoreply", "X-Autorespond")
_LIST_HEADERS = ("List-Id", "List-Unsubscribe")
#: What the sender's kind of mail is called (``InboundMail.auto_kind``): none of them is ever answered.
SPAM, AUTO, BULK = "spam", "auto-reply", "bulk"
#: Defects that mean the modern parser did not see the MIME structure the sender meant.
_STRUCTURE_DEFECTS = (StartBoundaryNotFoundDefect, MultipartInvariantViolationDefect, NoBoundaryInMultipartDefect,
                      CloseBoundaryNotFoundDefect)
_MSG_ID = re.compile(r"<([^<>]+)>")
_SIMPLE_ADDRESS = re.compile(r"[^\s@<>\"(),;:]+@[^\s@<>\"(),;:]+")
_ATTRIBUTION = re.compile(
    r"^\s*(on|am|le|dne|el)\b.*\b(wrote|schrieb|a écrit|napsala?|napsal\(a\)|escribió)\s*:\s*$",
    re.IGNORECASE,
)
_ORIGINAL_MESSAGE = re.compile(r"^\s*-{2,}\s*original message\s*-{2,}\s*$", re.IGNORECASE)
_OUTLOOK_RULE = re.compile(r"^\s*_{10,}\s*$")
# What the email package and the codecs raise on malformed input: HeaderParseError, IndexError
# and AttributeError from the header value parser, LookupError for unknown charsets, ...
_MALFORMED = (MessageError, LookupError, ValueError, IndexError, TypeError, AttributeError)


class MailParseError(ValueError):
    """The input is not a usable e-mail; ``str(error)`` says why."""


@dataclass(frozen=True)
class InboundAttachment:
    filename: str  # decoded, no directories or control characters; "attachment-N" if it had none
    content_type: str
    data: bytes


@dataclass(frozen=True)
class InboundMail:
    message_id: str  # "<...>"; synthetic "<sha256-of-raw@helpdesk.invalid>" when missing
    subject: str  # decoded, whitespace collapsed; "(no subject)" when empty
    from_name: str
    from_address: str  # lower-cased addr-spec
    to: list[str]  # lower-cased addr-specs
    cc: list[str]
    date: datetime | None  # aware, UTC
    in_reply_to: list[str]
    references: list[str]
    body_text: str  # plain text (HTML-only mails converted), LF line ends, no trailing blanks
    attachments: list[InboundAttachment]
    is_auto: bool  # spam, auto-reply, bounce or bulk mail: never answer it automatically
    auto_reason: str | None  # the header that said so, e.g. "Auto-Submitted: auto-replied"
    ticket_ref: int | None  # number from a "[HD-000123]" subject tag
    auto_kind: str | None = None  # SPAM, AUTO or BULK when is_auto
    body_unreadable: bool = False  # the message has a body, but no text could be read from it


def parse_mail(raw: bytes, *, tag_prefix: str | None = None) -> InboundMail:
    """Parse one RFC 5322 message; see the module docstring for what raises :class:`MailParseError`."""
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise MailParseError(f"expected the raw message as bytes, got {type(raw).__name__}")
    raw = bytes(raw)
    if not raw.strip():
        raise MailParseError("empty input")
    try:
        return _parse(raw, tag_prefix)
    except MailParseError:
        raise
    except Exception as exc:  # last line of defence for the "only MailParseError" contract
        raise MailParseError(f"cannot parse message: {type(exc).__name__}: {exc}") from exc


def _parse(raw: bytes, tag_prefix: str | None) -> InboundMail:
    msg = email.message_from_bytes(raw, policy=policy.default)
    if not msg.keys():
        raise MailParseError("not an e-mail message: no header lines found")
    from_name, from_address = next(iter(_addresses(msg, "from")), ("", ""))
    if not _SIMPLE_ADDRESS.fullmatch(from_address):  # e.g. an address written without <>
        found = _SIMPLE_ADDRESS.search(_clean(" ".join(_raw_values(msg, "from"))))
        from_address = found.group(0).lower() if found else ""
    if not from_address:
        raise MailParseError("no From address")
    subject = " ".join(_header_text(msg, "subject").split()) or NO_SUBJECT
    body_text, attachments, unreadable = _content(msg, raw)
    auto_kind, auto_reason = _auto_reason(msg, from_address)
    synthetic_id = f"<{hashlib.sha256(raw).hexdigest()}@{SYNTHETIC_ID_DOMAIN}>"
    return InboundMail(
        message_id=(_message_ids(msg, "message-id") or [synthetic_id])[0],
        subject=subject,
        from_name=from_name,
        from_address=from_address,
        to=list(dict.fromkeys(a for _, a in _addresses(msg, "to"))),
        cc=list(dict.fromkeys(a for _, a in _addresses(msg, "cc"))),
        date=_date(msg),
        in_reply_to=_message_ids(msg, "in-reply-to"),
        references=_message_ids(msg, "references"),
        body_text=body_text,
        attachments=attachments,
        is_auto=auto_kind is not None,
        auto_reason=auto_reason,
        ticket_ref=find_ticket_tag(subject, tag_prefix=tag_prefix),
        auto_kind=auto_kind,
        body_unreadable=unreadable,
    )


def find_ticket_tag(subject: str, *, tag_prefix: str | None = None) -> int | None:
    """Ticket number from a ``[HD-000123]`` tag (any case, leading zeros) in ``subject``, else None.

    ``tag_prefix`` defaults to the configured ``ticket_prefix``."""
    if tag_prefix is None:
        tag_prefix = get_settings().ticket_prefix
    tag = rf"\[\s*{re.escape(tag_prefix)}-0*([1-9][0-9]{{0,8}})\s*\]"
    match = re.search(tag, subject or "", re.IGNORECASE)
    return int(match.group(1)) if match else None


def strip_quoted_reply(text: str) -> str:
    """Best-effort cut of the quoted history below a reply; the input itself if nothing would remain.

    Cuts at the first of: an ``On ... wrote:`` attribution (also wrapped over two lines, and in a
    few other languages) followed by ``>`` lines, a ``-----Original Message-----`` line, or an
    Outlook ``_____`` rule followed by ``From:``; then drops a trailing block of ``>`` lines.
    """
    lines = (text or "").replace("\r\n", "\n").split("\n")

    def next_filled(start: int) -> str:
        return next((line.lstrip() for line in lines[start:] if line.strip()), "")

    def starts_history(i: int) -> bool:
        if _ORIGINAL_MESSAGE.match(lines[i]):
            return True
        if _OUTLOOK_RULE.match(lines[i]) and next_filled(i + 1).lower().startswith("from:"):
            return True
        return any(
            _ATTRIBUTION.match(" ".join(lines[i:i + span])) and next_filled(i + span).startswith(">")
            for span in (1, 2)
        )

    kept = lines[: next((i for i in range(len(lines)) if starts_history(i)), len(lines))]
    while kept and (not kept[-1].strip() or kept[-1].lstrip().startswith(">")):
        kept.pop()
    result = "\n".join(kept).rstrip()
    return result if result.strip() else text


# --- headers -----------------------------------------------------------------------------


def _clean(text: str) -> str:
    """Re-decode raw 8-bit bytes the parser kept as surrogates; drop control characters but tab/LF."""
    try:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return "".join(c for c in text if c in "\t\n" or unicodedata.category(c) != "Cc")


def _raw_values(msg: MIMEPart, name: str) -> list[str]:
    return [str(value) for key, value in msg.raw_items() if key.lower() == name.lower()]


def _decode_words(value: str) -> str:
    """Decode encoded-words with the legacy decoder; the value unchanged if that fails."""
    try:
        return str(make_header(decode_header(value)))
    except _MALFORMED:  # malformed encoded words, unknown charsets
        return value


def _header_text(msg: MIMEPart, name: str) -> str:
    """Decoded, unfolded value of the first ``name`` header; '' if absent."""
    try:
        value = msg.get(name)
        text = "" if value is None else str(value)
    except _MALFORMED:  # the default policy's header parser can fail on malformed input
        raw = _raw_values(msg, name)
        text = _decode_words(" ".join(raw[0].split())) if raw else ""
    return _clean(text).strip()


def _addresses(msg: MIMEPart, name: str) -> list[tuple[str, str]]:
    """(display name, lower-cased addr-spec) of every address in all ``name`` headers."""
    try:
        pairs = [(a.display_name, a.addr_spec) for h in msg.get_all(name) or [] for a in h.addresses]
    except _MALFORMED:  # unparseable address header: fall back to the lenient legacy parser
        pairs = [(_decode_words(n), a) for n, a in getaddresses(_raw_values(msg, name))]
    return [(_clean(n).strip(), _clean(a).strip().lower()) for n, a in pairs if a.strip("<> ")]


def _message_ids(msg: MIMEPart, name: str) -> list[str]:
    """Normalised ``<id>`` values of a Message-ID / In-Reply-To / References header."""
    text = " ".join(_raw_values(msg, name))
    ids = ["".join(found.split()) for found in _MSG_ID.findall(text)]
    if not ids:  # some mailers leave out the angle brackets
        ids = [token.strip("<>,;") for token in text.split() if "@" in token]
    return list(dict.fromkeys(f"<{_clean(i)}>" for i in ids if i))


def _date(msg: MIMEPart) -> datetime | None:
    """The Date header in UTC; a date without zone (``-0000``) is taken as UTC."""
    try:
        header = msg.get("date")
        value = header.datetime if header is not None else None
        if value is not None:
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except (*_MALFORMED, OverflowError):  # invalid dates or years out of range
        pass
    return None


def _auto_reason(msg: MIMEPart, from_address: str) -> tuple[str | None, str | None]:
    """What kind of machine-sent mail this is (SPAM, AUTO, BULK or None), and the header that said so.

    Spam first (a spam filter's verdict: ``X-Spam-Flag: YES``, ``X-Spam-Status: Yes, score=...``), then
    auto-replies and bounces, then bulk and list mail.
    """
    flag = _header_text(msg, "x-spam-flag")
    if flag.lower().startswith("yes"):
        return SPAM, f"X-Spam-Flag: {flag}"[:200]
    status = _header_text(msg, "x-spam-status")
    if re.match(r"yes\b", status, re.IGNORECASE):
        return SPAM, f"X-Spam-Status: {' '.join(status.split())}"[:200]
    auto_submitted = _header_text(msg, "auto-submitted")
    if auto_submitted and auto_submitted.split(";")[0].strip().lower() != "no":
        return AUTO, f"Auto-Submitted: {auto_submitted}"
    for name in _AUTO_HEADERS:
        if _raw_values(msg, name):
            return AUTO, f"{name}: {_header_text(msg, name)}".rstrip()
    if msg.get_content_type() == "multipart/report":
        return AUTO, f"Content-Type: multipart/report; report-type={msg.get_param('report-type', '')}"
    if from_address.split("@")[0] in ("mailer-daemon", "postmaster"):
        return AUTO, f"From: {from_address}"
    precedence = _header_text(msg, "precedence").lower()
    if precedence in ("bulk", "junk", "list"):
        return BULK, f"Precedence: {precedence}"
    for name in _LIST_HEADERS:
        if _raw_values(msg, name):
            return BULK, f"{name}: {_header_text(msg, name)}"[:200].rstrip()
    return None, None


# --- body and attachments ----------------------------------------------------------------


def _content(msg: MIMEPart, raw: bytes) -> tuple[str, list[InboundAttachment], bool]:
    """(body text, attachments, body unreadable): the modern parse, else the tolerant legacy one."""
    body_part = _body_part(msg)
    text = _body_text(body_part) if body_part is not None else ""
    attachments = _attachments(msg, body_part)
    broken = _structure_broken(msg)
    if text.strip() and not broken:
        return text, attachments, False
    legacy: MIMEPart | None
    try:  # parts made with _class: the same methods as the modern parse, the legacy parser's tolerance
        legacy = cast(MIMEPart, email.message_from_bytes(raw, _class=MIMEPart, policy=policy.compat32))
        legacy_body = _body_part(legacy)
        legacy_text = _body_text(legacy_body) if legacy_body is not None else ""
        legacy_attachments = _attachments(legacy, legacy_body)
    except _MALFORMED:
        legacy, legacy_text, legacy_attachments = None, "", []
    if legacy is not None and legacy_text.strip() and (broken or not text.strip()):
        return legacy_text, legacy_attachments, False
    if text.strip():
        return text, attachments, False
    if broken and len(legacy_attachments) > len(attachments):
        attachments = legacy_attachments
    unreadable = broken or _has_unread_payload(msg, attachments) or (
        legacy is not None and _has_unread_payload(legacy, legacy_attachments))
    return "", attachments, unreadable


def _structure_broken(msg: MIMEPart) -> bool:
    defects: list[MessageDefect] = []
    with suppress(*_MALFORMED):
        for part in msg.walk():
            defects.extend(part.defects)
    return any(isinstance(d, _STRUCTURE_DEFECTS) for d in defects)


def _has_unread_payload(msg: MIMEPart, attachments: list[InboundAttachment]) -> bool:
    """Whether a leaf part that is neither an attachment nor a signature holds non-blank content.

    Called when no body text was read: such content is a body that could not be turned into text
    (an undecodable transfer encoding, a body of an unexpected type), as opposed to a mail that is
    empty or attachments only."""
    names = {a.filename for a in attachments}
    with suppress(*_MALFORMED):
        for part in msg.walk():
            if part.is_multipart() or part.get_content_type() in _SIGNATURES:
                continue
            if part.get_content_disposition() == "attachment" or _safe_filename(part.get_filename()) in names - {""}:
                continue
            payload = part.get_payload()
            if isinstance(payload, str) and payload.strip():
                return True
    return False


def _body_part(msg: MIMEPart) -> MIMEPart | None:
    """The text/plain body part, or the text/html one when there is no non-blank plain text."""
    try:
        plain = msg.get_body(preferencelist=("plain",))
        if plain is not None and _decode(plain).strip():
            return plain
        return msg.get_body(preferencelist=("html",)) or plain
    except _MALFORMED:  # broken MIME structure: no body rather than no mail
        return None


def _decode(part: MIMEPart) -> str:
    """Text of a leaf part: declared charset, then UTF-8, then Latin-1 (which cannot fail)."""
    try:
        data = part.get_payload(decode=True)
    except _MALFORMED:  # defective transfer encoding
        data = None
    if not isinstance(data, bytes):
        return ""
    charset = part.get_content_charset() or ""
    for candidate in (charset, "utf-8"):
        try:
            return data.decode(candidate)
        except (LookupError, ValueError, TypeError):
            continue
    return data.decode("utf-8" if charset.replace("-", "") == "utf8" else "latin-1", "replace")


def _body_text(part: MIMEPart) -> str:
    text = _decode(part).replace("\r\n", "\n").replace("\r", "\n")
    is_html = part.get_content_subtype() == "html"
    if is_html:
        try:
            text = html_to_text(text)
        except (*_MALFORMED, AssertionError, RecursionError):  # last resort: the tags stripped
            text = " ".join(unescape(re.sub(r"<[^>]*>", " ", text)).split())
    text = "\n".join(line.rstrip() for line in _clean(text).split("\n")).strip("\n")
    return re.sub(r"\n{3,}", "\n\n", text) if is_html else text


def _attachments(msg: MIMEPart, body_part: MIMEPart | None) -> list[InboundAttachment]:
    """Real attachments anywhere in the MIME tree; attached messages are kept whole.

    A leaf part is one if its disposition is ``attachment``, or if it is not text and has a file
    name. Signatures (PGP/S-MIME) and the body with its alternatives are not.
    """
    found: list[InboundAttachment] = []

    def visit(part: MIMEPart) -> None:
        if part is body_part or part.get_content_type() in _SIGNATURES:
            return
        if part.is_multipart() and part.get_content_maintype() != "message":
            for sub in part.iter_parts():
                visit(sub)
            return
        try:
            filename = part.get_filename()
        except _MALFORMED:  # malformed Content-Disposition parameters
            filename = None
        if part.get_content_disposition() == "attachment" or (
            filename and part.get_content_maintype() != "text"
        ):
            name = _safe_filename(filename) or f"attachment-{len(found) + 1}"
            found.append(InboundAttachment(name, part.get_content_type(), _payload_bytes(part)))

    with suppress(*_MALFORMED):  # keep what was found before a broken part
        visit(msg)
    return found


def _payload_bytes(part: MIMEPart) -> bytes:
    try:
        if part.get_content_maintype() == "message" and part.is_multipart():
            subs = cast(list[Message], part.get_payload())  # is_multipart(): a list of messages
            return b"".join(sub.as_bytes(policy=policy.compat32) for sub in subs)
        data = part.get_payload(decode=True)
    except _MALFORMED:  # defective payload: keep the attachment, lose its content
        return b""
    return data if isinstance(data, bytes) else b""


def _safe_filename(filename: str | None) -> str:
    """File name without directories, control or format characters; '' if nothing is left."""
    if not filename:
        return ""
    name = _clean(_decode_words(filename) if "=?" in filename else filename)
    name = re.split(r"[/\\]", name)[-1]
    name = "".join(c for c in name if unicodedata.category(c) not in ("Cc", "Cf")).strip()
    if name in (".", ".."):
        return ""
    stem, ext = posixpath.splitext(name)
    ext = ext if len(ext) <= 16 else ""
    if len(name) > _MAX_FILENAME:
        name = (stem[: _MAX_FILENAME - len(ext)] + ext) if ext else name[:_MAX_FILENAME]
    return name
