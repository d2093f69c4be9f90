"""Markdown written by staff (KB resolution steps) to HTML that is safe to put in the page.

Two layers, each enough on its own for the usual attacks:

1. markdown-it-py with raw HTML disabled: ``<script>``, ``<img onerror=...>`` and any other tag typed
   into the text come out as escaped text, and links whose target is not http(s), mailto or a path on
   this site (``/kb?id=3``) are left as plain text.
2. nh3 (ammonia) over the result: an allow-list of tags and attributes, URL schemes limited to http,
   https and mailto, relative URLs only as site paths, ``rel="noopener noreferrer nofollow"`` on links.

Images are rendered as links (an image would load a third-party URL as soon as the article is opened).
No streamlit import: the UI shows the result with ``st.html`` (lib/ui/kb_view.py).
"""

from __future__ import annotations

import re
from functools import lru_cache

import nh3
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml

ALLOWED_SCHEMES = frozenset({"http", "https", "mailto"})
ALLOWED_TAGS = frozenset({
    "p", "br", "hr", "strong", "em", "del", "s", "code", "pre", "blockquote", "ul", "ol", "li",
    "h1", "h2", "h3", "h4", "h5", "h6", "a", "table", "thead", "tbody", "tr", "th", "td",
})
ALLOWED_ATTRIBUTES: dict[str, set[str]] = {"a": {"href", "title"}, "ol": {"start"}}
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*):")
# Control characters and whitespace that browsers ignore inside a URL scheme ("java\tscript:").
_URL_NOISE = re.compile(r"[\x00-\x20\x7f]+")


def safe_url(url: str) -> bool:
    """http(s) and mailto URLs, and paths on this site; nothing else (no javascript:, data:, vbscript:, //host)."""
    if not isinstance(url, str):
        return False
    squeezed = _URL_NOISE.sub("", url)
    if not squeezed or "\\" in squeezed:
        return False
    m = _SCHEME.match(squeezed)
    if m:
        return m.group(1).lower() in ALLOWED_SCHEMES
    return squeezed.startswith("/") and not squeezed.startswith("//")


def _relative(url: str) -> str | None:
    return url if safe_url(url) else None


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    md.validateLink = safe_url  # type: ignore[method-assign]  # markdown-it's hook for link checks

    def image_as_link(renderer, tokens, idx, options, env):
        token = tokens[idx]
        src = str(token.attrGet("src") or "")
        alt = escapeHtml(renderer.renderInlineAsText(token.children or [], options, env) or "image")
        return f'<a href="{escapeHtml(src)}">🖼 {alt}</a>' if safe_url(src) else f"🖼 {alt}"

    md.add_render_rule("image", image_as_link)
    return md


def render(text: str | None) -> str:
    """Sanitised HTML for ``text``; empty string for empty input."""
    if not text or not text.strip():
        return ""
    html = _parser().render(text)
    return nh3.clean(
        html,
        tags=set(ALLOWED_TAGS),
        clean_content_tags={"script", "style"},
        attributes={k: set(v) for k, v in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(ALLOWED_SCHEMES),
        url_relative=_relative,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


def to_plain(text: str | None, limit: int = 300) -> str:
    """Markdown reduced to one line of plain text (for snippets in lists), at most ``limit`` characters."""
    if not text:
        return ""
    plain = re.sub(r"[`*_#>|~]+", "", text)
    plain = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", plain)
    plain = " ".join(plain.split())
    return plain if len(plain) <= limit else plain[: limit - 1].rstrip() + "…"
