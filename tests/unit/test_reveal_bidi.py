"""Bidirectional controls in user text are shown as visible markers, so reordered text cannot mislead."""

from __future__ import annotations

import sys
import unicodedata

import pytest

from lib.ui.core import BIDI_CONTROLS, reveal_bidi

#: Unicode's explicit directional formatting classes: embeddings, overrides, isolates and their ends.
EXPLICIT_CLASSES = {"LRE", "RLE", "LRO", "RLO", "PDF", "LRI", "RLI", "FSI", "PDI"}
#: The invisible direction marks (their bidirectional classes are the strong L, R and AL).
MARKS = {"\u200e", "\u200f", "\u061c"}


def test_the_override_trick_shows() -> None:
    assert reveal_bidi("invoice\u202egnp.exe") == "invoice⟦U+202E⟧gnp.exe"


@pytest.mark.parametrize("code", [0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069,
                                  0x200E, 0x200F, 0x061C])
def test_every_control_gets_its_marker(code: int) -> None:
    assert reveal_bidi(f"a{chr(code)}b") == f"a⟦U+{code:04X}⟧b"


def test_every_explicit_directional_character_is_covered() -> None:
    found = {chr(c) for c in range(sys.maxunicode + 1) if unicodedata.bidirectional(chr(c)) in EXPLICIT_CLASSES}
    assert found | MARKS == BIDI_CONTROLS


def test_other_text_is_unchanged() -> None:
    for text in ("Printer on floor 3", "שלום עולם", "مرحبا", "naïve café 🖨️", "a\u200db", "line\nbreak", ""):
        assert reveal_bidi(text) == text
    assert reveal_bidi(None) == ""


def test_several_controls_and_no_control_left() -> None:
    shown = reveal_bidi("\u2067evil\u2069 \u202dx\u202c")
    assert shown == "⟦U+2067⟧evil⟦U+2069⟧ ⟦U+202D⟧x⟦U+202C⟧"
    assert not any(unicodedata.bidirectional(ch) in EXPLICIT_CLASSES or ch in MARKS for ch in shown)
