"""Checks on the files a command is given, before a library sees them.

DuckDB answers a path that is not a database with its own internals ("Catalog Error: Cannot
launch in-memory database in read-only mode!" for a JSON file); a user needs to hear that the
file is not a DuckDB database at all.
"""

from __future__ import annotations

from pathlib import Path

from monitor.core.store import StoreError

__all__ = ["existing_duckdb"]

# A DuckDB database file starts with an 8-byte checksum, then the magic bytes "DUCK".
_MAGIC, _AT = b"DUCK", 8


def existing_duckdb(path: Path) -> Path:
    """``path`` if it is a readable DuckDB database file; else :class:`StoreError` (one line)."""
    if not path.exists():
        raise StoreError(f"{path}: no such database file")
    if path.is_dir():
        raise StoreError(f"{path}: is a directory, not a DuckDB file")
    try:
        with path.open("rb") as fh:
            head = fh.read(_AT + len(_MAGIC))
    except OSError as err:
        raise StoreError(f"{path}: cannot read ({err.strerror})") from None
    if head[_AT:] != _MAGIC:
        raise StoreError(f"{path}: not a DuckDB file" + (" (empty)" if not head else ""))
    return path
