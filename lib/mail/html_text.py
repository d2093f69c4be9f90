"""HTML mail to readable plain text, for HTML-only mail (a ticket's description is plain text).

What a person would read in the mail, and nothing of its markup:

* paragraphs, headings, list items, line breaks and table rows become lines; a table row's cells are
  joined with `` · `` (empty cells skipped), so a newsletter's layout tables read as lines of text and a
  data table as one line per row — never Markdown table pipes;
* a link shows its text, followed by its address in brackets when the address says more than the text
  (``Reset your password (https://example.com/reset)``); a link with no text (an image link, a tracking
  pixel) is dropped, as are images;
* scripts, styles, the head and comments (Outlook's conditional ``<!--[if mso]>`` blocks) are dropped;
* whitespace is collapsed (outside ``<pre>``), invisible characters used as padding are removed, and at
  most one blank line separates blocks.

Standard library only (``html.parser``), which accepts any input without raising.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

SEPARATOR = " · "
_SKIP = {"script", "style", "head", "title", "noscript", "template", "xml"}
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track",
         "wbr"}
_PARAGRAPH = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table", "ul", "ol", "dl", "hr"}
_LINE = {"div", "br", "li", "tr", "section", "article", "header", "footer", "center", "address", "dd", "dt",
         "form", "fieldset", "figure", "figcaption", "main", "nav", "aside", "caption", "tbody", "thead", "tfoot",
         "body", "html"}
_CELL = {"td", "th"}
# Zero-width and padding characters newsletters put in their preview text, and soft hyphens.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u034f\u00ad\u180e"))
_SPACES = re.compile(r"[^\S\n]+")
_LINK_SCHEMES = ("http://", "https://")


class _Converter(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.line: list[str] = []
        self.line_has_text = False  # kept as a flag: joining a long line at every cell would be quadratic
        self.pending_sep = False  # a cell started after text on this line: separate before the next text
        self.pending_blank = False
        self.skip: list[str] = []
        self.pre = 0
        self.links: list[tuple[str, list[str]]] = []  # (href, the link's text so far), innermost last

    # --- output ---------------------------------------------------------------------------------

    def _text(self, text: str) -> None:
        if self.pending_blank and (self.lines or self.line):
            self.newline()
            if self.lines and self.lines[-1] != "":
                self.lines.append("")
        self.pending_blank = False
        if self.pending_sep and self.line_has_text:
            self.line.append(SEPARATOR)
        self.pending_sep = False
        self.line.append(text)
        self.line_has_text = self.line_has_text or bool(text.strip())
        for _, seen in self.links:
            seen.append(text)

    def newline(self) -> None:
        text = "".join(self.line)
        self.line = []
        self.line_has_text = self.pending_sep = False
        if self.pre:
            self.lines.extend(text.split("\n"))
            return
        text = _SPACES.sub(" ", text).strip()
        if text.strip(SEPARATOR.strip() + " "):
            self.lines.append(text)

    def blank(self) -> None:
        self.newline()
        self.pending_blank = True

    # --- parser callbacks -----------------------------------------------------------------------

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.skip:
            if tag == self.skip[-1] and tag not in _VOID:
                self.skip.append(tag)
            return
        if tag in _SKIP:
            self.skip.append(tag)
            return
        if tag in _PARAGRAPH:
            self.blank()
        elif tag in _LINE:
            self.newline()
        elif tag in _CELL:
            self.pending_sep = self.line_has_text
        if tag == "pre":
            self.pre += 1
        elif tag == "li":
            self._text("- ")
        elif tag == "a":
            self.links.append((dict(attrs).get("href") or "", []))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if self.skip:
            if tag == self.skip[-1]:
                self.skip.pop()
            return
        if tag == "a" and self.links:
            href, seen = self.links.pop()
            self._link_end(href.strip(), " ".join("".join(seen).split()))
        if tag in _PARAGRAPH:
            self.blank()
        elif tag in _LINE:
            self.newline()
        if tag == "pre" and self.pre:
            self.pre -= 1

    def _link_end(self, href: str, text: str) -> None:
        if not text:
            return  # an image link or an empty anchor: nothing to read
        shown = href.lower()
        if shown.startswith("mailto:"):
            address = href[7:].split("?")[0]
            if address and address.lower() not in text.lower():
                self.line.append(f" ({address})")
            return
        if not shown.startswith(_LINK_SCHEMES):
            return  # javascript:, tel:, anchors on the page: the text is what matters
        bare = shown.split("://", 1)[1].rstrip("/")
        if bare not in text.lower() and shown not in text.lower():
            self.line.append(f" ({href})")

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        data = data.translate(_INVISIBLE)
        if not self.pre:
            data = data.replace("\r", " ").replace("\n", " ")
            if not data.strip():
                if self.line and not self.line[-1].endswith(" "):
                    self.line.append(" ")
                return
        self._text(data)

    def result(self) -> str:
        self.newline()
        while self.lines and self.lines[-1] == "":
            self.lines.pop()
        text = "\n".join(line.rstrip() for line in self.lines).strip("\n")
        return re.sub(r"\n{3,}", "\n\n", text)


def html_to_text(html: str) -> str:
    """Readable plain text of an HTML mail body (see the module docstring)."""
    converter = _Converter()
    converter.feed(html)
    converter.close()
    return converter.result()
