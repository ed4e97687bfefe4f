"""``amplimon sink``: the output topics → the DuckDB store (+ Parquet snapshots for readers).

Loop (kafka-python, ``enable_auto_commit=False``):

1. ``poll`` a batch from ``amplimon.findings``, ``.measurements``, ``.deadletter`` and
   ``.detectability``;
2. write it in **one DuckDB transaction** with the store's idempotent upserts (findings keep
   ``detected_at``, the first ``event_time`` and the triage status; measurements and
   detectability rows are replaced by key; dead letters are keyed by ``dl_id``);
3. commit the consumed offsets — only after the transaction;
4. at most once per second, publish the changed tables as atomic Parquet snapshots
   (:mod:`streams.snapshot`) for the dashboard, which never opens the database.

At-least-once delivery plus idempotent writes: a sink killed anywhere in the loop re-reads
the uncommitted batch and writes the same rows again — nothing lost, nothing duplicated.
No offsets are committed inside a rebalance callback (kafka-python 3 raises there); a
partition moved to another sink is re-read from its last commit, which is harmless.
A message that cannot be decoded is counted and skipped (it is not a platform record: the
worker wrote it), never a crash.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import pyarrow as pa

from monitor.records import DeadLetter, Detectability, Finding, Measurement, utc_now
from monitor.settings import Settings
from monitor.store import Store, StoreError
from streams.kafka._config import Topics, kafka_python_options
from streams.kafka._heartbeat import Heartbeat
from streams.kafka.output import decode_row
from streams.snapshot import SnapshotPublisher, default_snapshot_dir

__all__ = ["SinkOptions", "SinkStats", "run_sink"]

log = logging.getLogger("amplimon.sink")


class _BatchStore(Store):
    """A :class:`Store` whose upserts can share one transaction (:meth:`transaction`)."""

    _in_batch = False

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        self.con.begin()
        self._in_batch = True
        try:
            yield
            self.con.commit()
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                self.con.rollback()
            raise
        finally:
            self._in_batch = False

    def _run(self, sql: str, params: list[Any] | None = None, batch: pa.Table | None = None
             ) -> None:
        if not self._in_batch:
            super()._run(sql, params, batch)
            return
        try:
            if batch is not None:
                self.con.register("batch", batch)
            self.con.execute(sql, params or [])
            if batch is not None:
                self.con.unregister("batch")
        except duckdb.Error as err:
            raise StoreError(f"{self.path}: write failed ({str(err).splitlines()[0]})"
                             ) from None


@dataclass(frozen=True)
class SinkOptions:
    batch: int = 5000
    poll_ms: int = 200
    snapshot_interval_s: float = 1.0
    session_timeout_ms: int = 10_000
    heartbeat_ms: int = 1_000
    status_every_s: float = 10.0


@dataclass
class SinkStats:
    messages: int = 0
    batches: int = 0
    undecodable: int = 0
    written: dict[str, int] = field(default_factory=lambda: {
        "findings": 0, "amplification": 0, "deadletter": 0, "detectability": 0})
    snapshots: int = 0


def run_sink(settings: Settings, db: str | Path, *, snapshot_dir: str | Path | None = None,
             options: SinkOptions | None = None, stop: threading.Event | None = None,
             on_status: Callable[[SinkStats], None] | None = None) -> SinkStats:
    """Consume until ``stop`` is set; see the module docstring."""
    from kafka import KafkaConsumer

    opts = options or SinkOptions()
    stop = stop or threading.Event()
    topics = Topics.from_settings(settings)
    tables = topics.outputs
    directory = Path(snapshot_dir or settings.snapshot_dir or default_snapshot_dir(db))
    store = _BatchStore(db)
    stats = SinkStats()
    consumer = None
    try:
        publisher = SnapshotPublisher(store, directory, min_interval=opts.snapshot_interval_s)
        consumer = KafkaConsumer(
            *tables, **kafka_python_options(settings), group_id=f"{settings.group_id}-sink",
            enable_auto_commit=False, auto_offset_reset="earliest",
            max_poll_records=opts.batch, session_timeout_ms=opts.session_timeout_ms,
            heartbeat_interval_ms=opts.heartbeat_ms, max_partition_fetch_bytes=8 << 20)
        started = utc_now()
        last_status = time.monotonic()
        heartbeat = Heartbeat(settings.heartbeat_file)
        while not stop.is_set():
            heartbeat.beat()
            polled = consumer.poll(timeout_ms=opts.poll_ms, max_records=opts.batch)
            records = [r for batch in polled.values() for r in batch]
            if records:
                changed = _write(store, tables, records, stats)
                consumer.commit()  # after the transaction: at-least-once
                publisher.mark(changed)
            if publisher.maybe_publish():
                stats.snapshots += 1
            if on_status is not None and time.monotonic() - last_status >= opts.status_every_s:
                on_status(stats)
                last_status = time.monotonic()
        store.record_run(f"sink-{started:%Y%m%dT%H%M%S}", "sink", started,
                         {"stats": msgspec.to_builtins(stats.__dict__)})
        publisher.mark(["runs"])
        if publisher.maybe_publish(force=True):
            stats.snapshots += 1
        return stats
    finally:
        if consumer is not None:
            consumer.close(autocommit=False)
        store.close()


def _write(store: _BatchStore, tables: dict[str, str], records: list[Any], stats: SinkStats
           ) -> set[str]:
    rows: dict[str, list[Any]] = {t: [] for t in tables.values()}
    for rec in records:
        table = tables[rec.topic]
        try:
            rows[table].append(decode_row(table, rec.value))
        except (msgspec.DecodeError, msgspec.ValidationError, TypeError) as err:
            stats.undecodable += 1
            log.warning("skipping undecodable message %s/%d@%d: %s", rec.topic,
                        rec.partition, rec.offset, err)
    with store.transaction():
        _upsert(store, rows, stats)
    stats.messages += len(records)
    stats.batches += 1
    return {t for t, r in rows.items() if r}


def _upsert(store: _BatchStore, rows: dict[str, list[Any]], stats: SinkStats) -> None:
    findings: list[Finding] = rows["findings"]
    measurements: list[Measurement] = rows["amplification"]
    dead: list[DeadLetter] = rows["deadletter"]
    detect: list[Detectability] = rows["detectability"]
    if findings:
        # Several versions of one finding in a batch: the last one's numbers, the first
        # event_time and detected_at — what the store keeps across batches.
        first: dict[str, tuple[Any, Any]] = {}
        for f in findings:
            et, da = first.get(f.finding_id, (f.event_time, f.detected_at))
            first[f.finding_id] = (min(et, f.event_time), min(da, f.detected_at))
        for f in findings:
            f.event_time, f.detected_at = first[f.finding_id]
        stats.written["findings"] += store.upsert_findings(findings)
    if measurements:
        stats.written["amplification"] += store.upsert_measurements(measurements)
    if dead:
        stats.written["deadletter"] += store.add_deadletters(dead)
    if detect:
        stats.written["detectability"] += store.upsert_detectability(detect)
