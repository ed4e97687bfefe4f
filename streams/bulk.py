"""Columnar shards of decoded events: the contract decoder decides, DuckDB writes the columns.

Pass 1 of staging (:mod:`streams.staging`) turns every accepted record into typed columns.
Validation stays with the one exact decoder (:mod:`monitor.core.contract`, msgspec — the decoder
the live worker uses), so the accept/reject decision and the dead-letter reason are the live
ones *by construction*: there is no second validator to drift from it.  What would be slow in
Python — building a column value by value — is done in bulk: a batch of decoded events is
re-encoded by msgspec as one *canonical* JSON array (time in epoch ms, region upper case, an
empty label as null, unknown fields dropped) and DuckDB's JSON reader, in C++, writes it to
a Parquet shard with the typed schema :data:`EVENT_SCHEMAS`.  Canonical JSON of a validated
event is unambiguous (no duplicate keys, no lenient literals, one time format), so the columns
hold exactly the decoded values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import duckdb
import msgspec
import pyarrow as pa

from monitor.core.contract import Exposure, Ranking

__all__ = ["EVENT_SCHEMAS", "ShardWriter"]

_ITEM = pa.struct(
    [
        ("item", pa.string()),
        ("actor", pa.string()),
        ("position", pa.int64()),
        ("score", pa.float64()),
        ("organic_score", pa.float64()),
        ("interventions", pa.list_(pa.string())),
    ]
)
_COMMON = [
    ("event_id", pa.string()),
    ("platform", pa.string()),
    ("ts", pa.int64()),
    ("user", pa.string()),
    ("region", pa.string()),
    ("surface", pa.string()),
    ("arm", pa.string()),
]
EVENT_SCHEMAS: Final = {
    "exposure": pa.schema(
        [
            *_COMMON,
            ("item", pa.string()),
            ("actor", pa.string()),
            ("position", pa.int64()),
            ("request", pa.string()),
            ("label", pa.string()),
        ]
    ),
    "ranking": pa.schema([*_COMMON, ("request", pa.string()), ("items", pa.list_(_ITEM))]),
}
EVENT_SCHEMAS["panel"] = EVENT_SCHEMAS["exposure"]
_DUCK_TYPES: Final = {
    "exposure": (
        'STRUCT(event_id VARCHAR, platform VARCHAR, ts BIGINT, "user" VARCHAR, '
        "region VARCHAR, surface VARCHAR, arm VARCHAR, item VARCHAR, actor VARCHAR, "
        "position BIGINT, request VARCHAR, label VARCHAR)"
    ),
    "ranking": (
        'STRUCT(event_id VARCHAR, platform VARCHAR, ts BIGINT, "user" VARCHAR, '
        "region VARCHAR, surface VARCHAR, arm VARCHAR, request VARCHAR, "
        "items STRUCT(item VARCHAR, actor VARCHAR, position BIGINT, score DOUBLE, "
        "organic_score DOUBLE, interventions VARCHAR[])[])"
    ),
}
_DUCK_TYPES["panel"] = _DUCK_TYPES["exposure"]
_BATCH: Final = 65_536


class _StagedExposure(msgspec.Struct):
    src: int
    line: int
    e: Exposure


class _StagedRanking(msgspec.Struct):
    src: int
    line: int
    e: Ranking


_WRAP: Final = {"exposure": _StagedExposure, "ranking": _StagedRanking, "panel": _StagedExposure}
_ENCODE = msgspec.json.Encoder().encode


def _quote(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


class ShardWriter:
    """Accepted events of one topic → Parquet shards ``<prefix>-<k>.parquet`` with the
    columns of :data:`EVENT_SCHEMAS` plus ``src`` (input file index) and ``line``."""

    def __init__(
        self, directory: Path, prefix: str, topic: str, con: duckdb.DuckDBPyConnection
    ) -> None:
        self.directory = directory
        self.prefix = prefix
        self.topic = topic
        self.con = con
        self._wrap = _WRAP[topic]
        self._columns = (
            "{src: 'INTEGER', line: 'BIGINT', e: '" + _DUCK_TYPES[topic].replace("'", "''") + "'}"
        )
        self._pending: list[msgspec.Struct] = []
        self._parts = 0
        self.rows = 0

    def add(self, src: int, line: int, event: Exposure | Ranking) -> None:
        self._pending.append(self._wrap(src, line, event))  # type: ignore[arg-type]
        if len(self._pending) >= _BATCH:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        tmp = self.directory / f"{self.prefix}-{self._parts}.json"
        out = self.directory / f"{self.prefix}-{self._parts}.parquet"
        tmp.write_bytes(_ENCODE(self._pending))
        self.con.execute(
            f"COPY (SELECT src, line, unnest(e) FROM read_json({_quote(tmp)}, "
            f"format='array', columns={self._columns})) TO {_quote(out)} "
            "(FORMAT parquet, COMPRESSION lz4)"
        )
        tmp.unlink()
        self.rows += len(self._pending)
        self._parts += 1
        self._pending = []

    def close(self) -> None:
        self.flush()
