"""The content type of an attachment, from its bytes: what a sender declares is never trusted.

Mail and upload forms carry a declared type that anyone can set (an HTML page declared ``image/png``). The
stored type comes from the file's first bytes for the formats a desk sees (images, PDF, ZIP and Office files,
gzip, plain text); anything else, and every type a browser would run or render as a page (HTML, SVG, XML,
JavaScript), is stored and served as ``application/octet-stream``. Attachments are only ever offered as
downloads, and every response carries ``X-Content-Type-Options: nosniff`` (lib/server_routes.py).
"""

from __future__ import annotations

from pathlib import PurePath

OCTET = "application/octet-stream"

#: (leading bytes, offset, content type)
_SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"GIF87a", 0, "image/gif"),
    (b"GIF89a", 0, "image/gif"),
    (b"%PDF-", 0, "application/pdf"),
    (b"\x1f\x8b", 0, "application/gzip"),
    (b"BM", 0, "image/bmp"),
)
_OFFICE = {
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ".odt": "application/vnd.oasis.opendocument.text",
    ".ods": "application/vnd.oasis.opendocument.spreadsheet",
}
#: Plain-text types kept when the bytes are text (never a type a browser renders as a page).
_TEXT = {"text/plain", "text/csv", "message/rfc822", "text/x-log", "application/json"}


def sniff(data: bytes, declared: str | None = None, filename: str | None = None) -> str:
    """The content type to store for ``data`` (see the module docstring)."""
    head = data[:16]
    for magic, offset, kind in _SIGNATURES:
        if head[offset:offset + len(magic)] == magic:
            return kind
    if head[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] == b"PK\x03\x04":
        return _OFFICE.get(PurePath(filename or "").suffix.lower(), "application/zip")
    kind = (declared or "").split(";")[0].strip().lower()
    if kind in _TEXT and _is_text(data):
        return kind
    if not kind and _is_text(data) and PurePath(filename or "").suffix.lower() in (".txt", ".log", ".csv"):
        return "text/plain"
    return OCTET


def safe_download_type(stored: str | None) -> str:
    """The type a download is served with: a stored type from before sniffing may still name a page format."""
    kind = (stored or "").split(";")[0].strip().lower()
    if kind.startswith(("image/", "application/pdf", "application/zip", "application/gzip",
                        "application/vnd.")) and kind != "image/svg+xml":
        return kind
    return kind if kind in _TEXT else OCTET


def _is_text(data: bytes) -> bool:
    sample = data[:4096]
    if b"\x00" in sample:
        return False
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(sample) - 3  # a character cut at the end of the sample
    return True
