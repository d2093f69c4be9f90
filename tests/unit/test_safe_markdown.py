"""Article Markdown to HTML: hostile input comes out inert, ordinary Markdown still works."""

from __future__ import annotations

import re

import pytest

from lib.safe_markdown import render, safe_url, to_plain

HOSTILE = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    "<img src=x onerror=alert(1)>",
    '<img src="x" onerror="alert(1)">',
    "<svg onload=alert(1)>",
    "<iframe src=javascript:alert(1)></iframe>",
    '<a href="javascript:alert(1)">x</a>',
    "<div style=\"background:url(javascript:alert(1))\" onmouseover=alert(1)>x</div>",
    "<style>body{display:none}</style>",
    "<!-- <script>alert(1)</script> -->",
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x](java\tscript:alert(1))",
    "[x](&#106;avascript:alert(1))",
    "[x](&#x6A;avascript:alert(1))",
    "[x](<javascript:alert(1)>)",
    "[x](vbscript:msgbox(1))",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[x](//evil.example/path)",
    "[x](\\\\evil.example\\share)",
    "[x]: javascript:alert(1)\n\n[y][x]",
    "<javascript:alert(1)>",
    "![x](javascript:alert(1))",
    '![x](https://e.example/a.png "t" onerror=alert(1))',
    "[x](https://ok.example \"t\" onmouseover=alert(1))",
    "<details open ontoggle=alert(1)>",
    "<math><mi xlink:href=javascript:alert(1)>x</mi></math>",
    "<form action=javascript:alert(1)><button>x</button></form>",
    "```html\n<script>alert(1)</script>\n```",
    "`<img src=x onerror=alert(1)>`",
    "> <script>alert(1)</script>",
    "| a |\n|---|\n| <img src=x onerror=alert(1)> |",
]
_TAG = re.compile(r"<\s*([a-zA-Z][a-zA-Z0-9]*)")
_ALLOWED = {"p", "br", "hr", "strong", "em", "del", "s", "code", "pre", "blockquote", "ul", "ol", "li", "h1", "h2",
            "h3", "h4", "h5", "h6", "a", "table", "thead", "tbody", "tr", "th", "td"}


@pytest.mark.parametrize("source", HOSTILE)
def test_hostile_markdown_renders_inert(source: str) -> None:
    html = render(source)
    tags = {t.lower() for t in _TAG.findall(html)}
    assert tags <= _ALLOWED, (source, html)
    lowered = html.lower()
    for needle in ("<script", "<img", "<iframe", "<svg", "<style", "<form", "javascript:", "vbscript:", "data:text",
                   " on", "style="):
        if needle in ("javascript:", "vbscript:", "data:text", " on", "style="):
            # allowed only as visible, escaped text outside any tag
            for tag in re.findall(r"<[^>]+>", lowered):
                assert needle not in tag, (source, html)
        else:
            assert needle not in lowered, (source, html)
    for href in re.findall(r'<a\s[^>]*href="([^"]*)"', html):
        assert safe_url(href.replace("&amp;", "&")), (source, href)


def test_ordinary_markdown_still_works() -> None:
    html = render("# Fix\n\n1. Open **tray 2**\n2. Replace the `roller`\n\n"
                  "| Step | Time |\n|---|---|\n| 1 | 5 min |\n\n> Note\n\n~~old~~ "
                  "[HP guide](https://support.example/guide) [KB-3](/kb?id=3) [mail](mailto:desk@example.com)")
    for part in ("<h1>Fix</h1>", "<ol>", "<strong>tray 2</strong>", "<code>roller</code>", "<table>", "<blockquote>",
                 "<s>old</s>", 'href="https://support.example/guide"', 'href="/kb?id=3"',
                 'href="mailto:desk@example.com"', 'rel="noopener noreferrer nofollow"'):
        assert part in html, part


def test_images_become_links_and_empty_input_is_empty() -> None:
    assert render("![diagram](https://e.example/d.png)").count("<a ") == 1
    assert "<img" not in render("![diagram](https://e.example/d.png)")
    assert render("") == "" and render("   \n") == "" and render(None) == ""


@pytest.mark.parametrize(("url", "ok"), [
    ("https://example.com", True), ("http://example.com/a?b=1", True), ("mailto:a@b.c", True), ("/kb?id=1", True),
    ("javascript:alert(1)", False), (" javascript:alert(1)", False), ("JAVASCRIPT:x", False), ("java\nscript:x", False),
    ("//evil.example", False), ("data:text/html,x", False), ("ftp://x", False), ("", False), ("relative/path", False),
    ("\\\\server\\share", False), ("/\\evil.example", False),
])
def test_safe_url(url: str, ok: bool) -> None:
    assert safe_url(url) is ok


def test_to_plain() -> None:
    assert to_plain("**Replace** the [roller](https://x.example) `now`\n\n# Done") == "Replace the roller now Done"
    assert to_plain("x" * 500, 10) == "x" * 9 + "…"
