"""``amplimon archive``: the raw event topics → Parquet, partitioned by platform, topic and date.

Layout (Hive style, so DuckDB reads the partition columns from the path)::

    DIR/platform=chirp/topic=exposure/date=2026-05-04/part-20260504T101500-4711-0001.parquet

Columns are the contract's (§1), ``items`` a list of structs; ``ts`` is stored as epoch
milliseconds (a contract-valid form) plus ``event_time`` (UTC timestamp) for SQL.  The files
are inputs of ``amplimon replay`` as they are::

    amplimon replay --config C --db D \\
        --exposure DIR/platform=chirp/topic=exposure/*/*.parquet \\
        --ranking  DIR/platform=chirp/topic=ranking/*/*.parquet

and of DuckDB: ``SELECT * FROM read_parquet('DIR/*/topic=exposure/*/*.parquet',
hive_partitioning = true)``.

Only contract-valid events are archived (the worker dead-letters the others), and ``user``
holds the keyed pseudonym (:mod:`monitor.core.privacy`, the worker's key), never the raw key.
Offsets are committed after the files are in place (at-least-once): after a crash a few
events may be archived twice, which replay's deduplication by ``event_id`` absorbs.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq

from monitor.core.contract import Rejected, decode
from monitor.core.privacy import Pseudonymiser, load_pseudonymiser
from streams.kafka._config import Topics, kafka_python_options
from streams.kafka._heartbeat import Heartbeat
from streams.kafka.driver import Message, is_end_of_stream
from streams.settings import Settings

__all__ = ["SCHEMAS", "ArchiveOptions", "ArchiveStats", "Archiver", "run_archive"]

log = logging.getLogger("amplimon.archive")

_STR, _INT, _F64 = pa.string(), pa.int64(), pa.float64()
_TIME = pa.timestamp("ms", tz="UTC")
SCHEMAS = {
    "exposure": pa.schema(
        [
            ("event_id", _STR),
            ("platform", _STR),
            ("ts", _INT),
            ("user", _STR),
            ("region", _STR),
            ("surface", _STR),
            ("arm", _STR),
            ("request", _STR),
            ("item", _STR),
            ("actor", _STR),
            ("position", _INT),
            ("label", _STR),
            ("event_time", _TIME),
        ]
    ),
    "ranking": pa.schema(
        [
            ("event_id", _STR),
            ("platform", _STR),
            ("ts", _INT),
            ("user", _STR),
            ("region", _STR),
            ("surface", _STR),
            ("arm", _STR),
            ("request", _STR),
            (
                "items",
                pa.list_(
                    pa.struct(
                        [
                            ("item", _STR),
                            ("actor", _STR),
                            ("position", _INT),
                            ("score", _F64),
                            ("organic_score", _F64),
                            ("interventions", pa.list_(_STR)),
                        ]
                    )
                ),
            ),
            ("event_time", _TIME),
        ]
    ),
}


@dataclass(frozen=True)
class ArchiveOptions:
    flush_rows: int = 200_000
    flush_seconds: float = 60.0
    poll_ms: int = 500
    session_timeout_ms: int = 10_000
    heartbeat_ms: int = 1_000


@dataclass
class ArchiveStats:
    archived: dict[str, int] = field(default_factory=lambda: {"exposure": 0, "ranking": 0})
    skipped: int = 0  # malformed records and end-of-stream markers
    files: int = 0


def _part(value: str) -> str:
    return urllib.parse.quote(value, safe="")


class Archiver:
    """Buffers decoded events per (platform, topic, date) and writes them as Parquet."""

    def __init__(
        self, out: str | Path, inputs: dict[str, str], pseudonymiser: Pseudonymiser
    ) -> None:
        self.out = Path(out)
        self.inputs = inputs
        self.pseudonymise = pseudonymiser
        self.stats = ArchiveStats()
        self._rows: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        self._buffered = 0
        self._seq = 0

    @property
    def buffered(self) -> int:
        return self._buffered

    def add(self, m: Message) -> None:
        topic = self.inputs[m.topic]
        result = decode(topic, m.value) if m.value else None
        if result is None or isinstance(result, Rejected) or is_end_of_stream(m):
            self.stats.skipped += 1
            return
        row = msgspec.to_builtins(result)
        row["user"] = self.pseudonymise(row["user"])
        ts: int = row["ts"]
        row["event_time"] = dt.datetime.fromtimestamp(ts / 1000, tz=dt.UTC)
        day = row["event_time"].strftime("%Y-%m-%d")
        self._rows.setdefault((row["platform"], topic, day), []).append(row)
        self._buffered += 1

    def flush(self) -> list[Path]:
        """Write every buffered group to its own file (temp name, then ``os.replace``)."""
        written = []
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        for (platform, topic, day), rows in self._rows.items():
            folder = self.out / f"platform={_part(platform)}" / f"topic={topic}" / f"date={day}"
            folder.mkdir(parents=True, exist_ok=True)
            self._seq += 1
            final = folder / f"part-{stamp}-{os.getpid()}-{self._seq:04d}.parquet"
            tmp = folder / f".{final.name}.tmp"
            rows.sort(key=lambda r: r["ts"])  # replay expects files in (rough) time order
            pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMAS[topic]), tmp)
            os.replace(tmp, final)
            self.stats.archived[topic] += len(rows)
            self.stats.files += 1
            written.append(final)
        self._rows.clear()
        self._buffered = 0
        return written


def run_archive(
    settings: Settings,
    out: str | Path,
    *,
    options: ArchiveOptions | None = None,
    stop: threading.Event | None = None,
    on_flush: Callable[[ArchiveStats], None] | None = None,
) -> ArchiveStats:
    """Consume the input topics until ``stop`` is set, flushing by size and time."""
    from kafka import KafkaConsumer

    opts = options or ArchiveOptions()
    stop = stop or threading.Event()
    topics = Topics.from_settings(settings)
    archiver = Archiver(out, topics.inputs, load_pseudonymiser(settings))
    consumer = KafkaConsumer(
        *topics.inputs,
        **kafka_python_options(settings),
        group_id=f"{settings.group_id}-archive",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=opts.session_timeout_ms,
        heartbeat_interval_ms=opts.heartbeat_ms,
        max_poll_records=10_000,
    )
    heartbeat = Heartbeat(settings.heartbeat_file)  # the container healthcheck reads it
    try:
        last_flush = time.monotonic()
        while not stop.is_set():
            heartbeat.beat()
            polled = consumer.poll(timeout_ms=opts.poll_ms)
            for batch in polled.values():
                for r in batch:
                    archiver.add(
                        Message(r.topic, r.partition, r.offset, r.value, tuple(r.headers or ()))
                    )
            due = time.monotonic() - last_flush >= opts.flush_seconds
            if archiver.buffered >= opts.flush_rows or (due and archiver.buffered):
                archiver.flush()
                consumer.commit()
                last_flush = time.monotonic()
                if on_flush is not None:
                    on_flush(archiver.stats)
        if archiver.buffered:
            archiver.flush()
            consumer.commit()
        return archiver.stats
    finally:
        consumer.close(autocommit=False)
