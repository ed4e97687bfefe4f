"""Leak checks: do raw user keys of the input appear anywhere in what amplimon wrote?

A user key is looked for as a whole token (``[A-Za-z0-9_.:@-]+``) in every text value, so
that ``u0012`` is found in ``{"user":"u0012"}`` or ``... got "u0012"`` but not inside a
pseudonym or another id.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterable
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

_TOKEN = re.compile(r"[A-Za-z0-9_.:@-]+")
_USER = re.compile(rb'"user"\s*:\s*"([^"\\]*)')


def raw_users(files: Iterable[Path]) -> set[str]:
    """Every ``user`` value in the input files (malformed lines included)."""
    users: set[str] = set()
    for path in files:
        opener = gzip.open if str(path).endswith(".gz") else open
        with opener(path, "rb") as f:
            for line in f:
                users.update(m.decode("utf-8", "replace") for m in _USER.findall(line))
    return users


def leaks(texts: Iterable[str], users: set[str]) -> set[str]:
    found: set[str] = set()
    for text in texts:
        found.update(u for u in _TOKEN.findall(text) if u in users)
    return found


def duckdb_texts(db: Path) -> list[str]:
    """Every text (VARCHAR or JSON) value of every table."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        cols = con.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE data_type IN ('VARCHAR', 'JSON')"
        ).fetchall()
        out: list[str] = []
        for table, col in cols:
            out += [
                str(v)
                for (v,) in con.execute(
                    f'SELECT "{col}" FROM "{table}" WHERE "{col}" IS NOT NULL'
                ).fetchall()
            ]
        return out
    finally:
        con.close()


def parquet_texts(root: Path) -> list[str]:
    out: list[str] = []
    for path in sorted(root.rglob("*.parquet")):
        table = pq.read_table(path)
        for name in table.column_names:
            out += [str(v) for v in table.column(name).to_pylist() if v is not None]
    return out
