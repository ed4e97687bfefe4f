"""Provenance of a run: the SHA-256 of every input file and of the configuration text.

``runs.info.inputs`` holds one entry per input file — ``{"path", "topic", "bytes",
"sha256"}`` — and ``runs.info.config_sha256`` the SHA-256 of the configuration's UTF-8 text,
so that a finding (and the evidence pack or audit report that carries these) can be tied to
the exact bytes it was computed from: anyone holding the archived files can check them with
``sha256sum``.  The hash is of the file's bytes as stored (a ``.jsonl.gz`` is hashed
compressed), read in 1 MiB chunks (memory bounded whatever the file's size); ``bytes`` is the
number of bytes hashed, so the size and the hash always describe the same content.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["file_sha256", "input_files", "text_sha256"]

_CHUNK = 1 << 20


def file_sha256(path: str | Path) -> tuple[str, int]:
    """(hex SHA-256, number of bytes) of a file's contents."""
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
            n += len(chunk)
    return h.hexdigest(), n


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def input_files(paths: Iterable[tuple[Path, str]]) -> list[dict[str, Any]]:
    """``runs.info.inputs``: path, topic, bytes and SHA-256 of each (path, topic)."""
    out = []
    for path, topic in paths:
        digest, size = file_sha256(path)
        out.append({"path": str(path), "topic": topic, "bytes": size, "sha256": digest})
    return out
