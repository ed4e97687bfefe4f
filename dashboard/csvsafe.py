"""CSV for spreadsheets: text that a spreadsheet would run as a formula is neutralised.

A cell whose text starts — after any spaces and invisible format characters — with ``=``,
``+``, ``-``, ``@``, a tab or a carriage return is a formula to Excel, LibreOffice and Google
Sheets (``=HYPERLINK("https://…","Verify evidence here")``, ``@SUM(…)``, ``-2+3``).  Such a
cell is written with a leading apostrophe, which every spreadsheet shows as text and which a
reader sees is not part of the value (OWASP, "CSV Injection").  Numbers are left alone: a
negative number in a numeric column is a number, not a formula.
"""

from __future__ import annotations

import csv
import unicodedata
from typing import Any

import pandas as pd

__all__ = ["FORMULA_START", "neutralise", "safe_frame", "to_csv"]

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _visible_start(text: str) -> str:
    """``text`` without leading spaces and format characters (zero-width, bidi marks)."""
    i = 0
    while i < len(text) and (text[i] in " \u00a0\u3000" or unicodedata.category(text[i]) == "Cf"):
        i += 1
    return text[i:]


def neutralise(value: Any) -> Any:
    """``value`` with a leading ``'`` if it is text a spreadsheet would take as a formula."""
    if not isinstance(value, str):
        return value
    if value.startswith(FORMULA_START) or _visible_start(value).startswith(FORMULA_START):
        return "'" + value
    return value


def safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose text cells (and column names) are neutralised."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(neutralise)
    out.columns = [neutralise(str(c)) for c in out.columns]
    return out


def to_csv(frame: pd.DataFrame) -> bytes:
    """UTF-8 CSV of ``frame`` (no index), safe to open in a spreadsheet.  Every text cell
    is quoted, so a carriage return inside one cannot start a new row."""
    return safe_frame(frame).to_csv(index=False, quoting=csv.QUOTE_NONNUMERIC).encode("utf-8")
