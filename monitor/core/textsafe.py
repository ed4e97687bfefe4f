"""Text from platforms made visible as it is: control characters become a space, and the
invisible *format* characters — bidi overrides and isolates (U+202A–U+202E, U+2066–U+2069),
zero-width spaces and joiners (U+200B–U+200D), U+FEFF, … (Unicode category Cf) — are spelled
out as ``⟨U+202E⟩``, so that a hostile id cannot reorder or hide what a reader sees
("Trojan Source", Boucher & Anderson 2021).  Used by the dashboard and the audit report
before any escaping for Markdown or HTML."""

from __future__ import annotations

import unicodedata
from typing import Any

__all__ = ["spell_format_chars", "visible"]


def _show(ch: str) -> str:
    cat = unicodedata.category(ch)
    if cat == "Cc" or ch in "\u2028\u2029":
        return " "
    if cat == "Cf":
        return f"⟨U+{ord(ch):04X}⟩"
    return ch


def visible(value: Any) -> str:
    """``str(value)`` with control characters as spaces and format characters spelled out."""
    text = "" if value is None else str(value)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _show(ch) for ch in text)


def spell_format_chars(text: str) -> str:
    """Only the format characters spelled out (for markup such as SVG, whose newlines and
    tabs are its own)."""
    if text.isascii():
        return text
    return "".join(f"⟨U+{ord(ch):04X}⟩" if unicodedata.category(ch) == "Cf" else ch for ch in text)
