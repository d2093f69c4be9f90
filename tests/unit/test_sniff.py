"""Attachment content types come from the bytes; page formats are never served as such."""

from __future__ import annotations

import pytest

from lib.sniff import OCTET, safe_download_type, sniff

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 20
HTML = b"<!doctype html><script>alert(1)</script>"


@pytest.mark.parametrize(("data", "declared", "name", "stored"), [
    (PNG, "text/html", "shot.png", "image/png"),  # the bytes win over the declared type
    (HTML, "image/png", "shot.png", OCTET),  # a page dressed as an image is stored as plain bytes
    (HTML, "text/html", "page.html", OCTET),
    (b"<svg xmlns='http://www.w3.org/2000/svg'><script/></svg>", "image/svg+xml", "a.svg", OCTET),
    (b"%PDF-1.7 ...", None, "report.pdf", "application/pdf"),
    (b"\xff\xd8\xff\xe0 JFIF", "application/octet-stream", "photo.jpg", "image/jpeg"),
    (b"PK\x03\x04 rest", None, "budget.xlsx",
     "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    (b"PK\x03\x04 rest", "application/x-msdownload", "tool.zip", "application/zip"),
    (b"RIFF\x00\x00\x00\x00WEBPVP8 ", None, "a.webp", "image/webp"),
    (b"2026-12-01 10:00 service started\n", "text/plain", "app.log", "text/plain"),
    (b"2026-12-01 10:00 service started\n", None, "app.log", "text/plain"),
    (b"MZ\x90\x00\x03", "text/plain", "notes.txt", OCTET),  # binary declared as text
    (b"just bytes", "application/x-sh", "run.sh", OCTET),
])
def test_stored_type_comes_from_the_bytes(data: bytes, declared: str | None, name: str, stored: str) -> None:
    assert sniff(data, declared, name) == stored


@pytest.mark.parametrize(("stored", "served"), [
    ("image/png", "image/png"), ("application/pdf", "application/pdf"), ("text/plain", "text/plain"),
    ("text/html", OCTET), ("image/svg+xml", OCTET), ("application/xhtml+xml", OCTET),
    ("text/javascript", OCTET), (None, OCTET), ("TEXT/HTML; charset=utf-8", OCTET),
])
def test_downloads_never_name_a_page_format(stored: str | None, served: str) -> None:
    assert safe_download_type(stored) == served
