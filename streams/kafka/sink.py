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

Metrics (``AMPLIMON_METRICS_PORT``): messages per table, undecodable ones, consumer lag,
findings in the store per kind and severity, snapshot age (:mod:`streams.kafka.metrics`).

At-least-once delivery plus idempotent writes: a sink killed anywhere in the loop re-reads
the uncommitted batch and writes the same rows again — nothing lost, nothing duplicated.
No offsets are committed inside a rebalance callback (kafka-python 3 raises there); a
partition moved to another sink is re-read from its last commit, which is harmless.
A message that cannot be decoded is counted and skipped (it is not a platform record: the
worker wrote it), never a crash.

**Faults.**  A DuckDB write that fails (disk full, read-only file) rolls the whole batch back
and ends the sink with one line (:class:`~monitor.core.store.StoreError`; the CLI prints it and
exits 2) before the offsets are committed: restarted with space, the sink reads the batch
again.  A snapshot that cannot be written changes nothing the dashboard reads
(:mod:`streams.snapshot`) and also ends the sink.  A broker that stops answering (probed every
``probe_s`` s, :func:`streams.kafka.broker.probe_broker`) is reported in one line; the sink
closes its consumer and waits until the broker answers and has the output topics again, then
reads from the group's committed offsets — the same place after a short outage, the
beginning of the recreated topics after a broker that lost its data, where the worker writes
its results again.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import msgspec

from monitor.core.records import DeadLetter, Detectability, Finding, Measurement, utc_now
from monitor.core.store import Store
from monitor.core.triagelog import TriageInbox, state_candidates
from streams.kafka._config import Topics, kafka_python_options
from streams.kafka._errors import PipelineError
from streams.kafka._heartbeat import Heartbeat
from streams.kafka.broker import (
    BrokerWatch,
    probe_broker,
    quiet_client_repeats,
    wait_for_broker,
)
from streams.kafka.metrics import SinkMetrics, serve
from streams.kafka.output import decode_row
from streams.settings import Settings
from streams.snapshot import SnapshotPublisher, default_snapshot_dir

__all__ = ["SinkError", "SinkOptions", "SinkStats", "run_sink"]

log = logging.getLogger("amplimon.sink")


class SinkError(PipelineError):
    """The sink cannot run (one-line message)."""


@dataclass(frozen=True)
class SinkOptions:
    batch: int = 5000
    poll_ms: int = 200
    snapshot_interval_s: float = 1.0
    session_timeout_ms: int = 10_000
    heartbeat_ms: int = 1_000
    status_every_s: float = 10.0
    commit_timeout_ms: int = 5_000
    probe_s: float = 1.0  # broker watchdog interval
    probe_misses: int = 2  # unanswered probes in a row that make an outage
    retries: int = 5  # Kafka errors in a row (broker answering) before the sink gives up


@dataclass
class SinkStats:
    messages: int = 0
    batches: int = 0
    undecodable: int = 0
    written: dict[str, int] = field(
        default_factory=lambda: {
            "findings": 0,
            "amplification": 0,
            "deadletter": 0,
            "detectability": 0,
        }
    )
    snapshots: int = 0


def run_sink(
    settings: Settings,
    db: str | Path,
    *,
    snapshot_dir: str | Path | None = None,
    options: SinkOptions | None = None,
    stop: threading.Event | None = None,
    on_status: Callable[[SinkStats], None] | None = None,
) -> SinkStats:
    """Consume until ``stop`` is set; see the module docstring."""
    opts = options or SinkOptions()
    stop = stop or threading.Event()
    topics = Topics.from_settings(settings)
    directory = Path(snapshot_dir or settings.snapshot_dir or default_snapshot_dir(db))
    store = Store(db)
    stats = SinkStats()
    metrics = SinkMetrics()
    server = None
    try:
        publisher = SnapshotPublisher(store, directory, min_interval=opts.snapshot_interval_s)
        sink = _Sink(
            settings, opts, topics.outputs, store, publisher, stats, stop, on_status, metrics
        )
        server = serve(metrics.registry, settings.metrics_port)
        sink.triage = TriageInbox(state_candidates(db, directory))  # the dashboard's outbox
        started = utc_now()
        with quiet_client_repeats():
            sink.run()
        store.record_run(
            f"sink-{started:%Y%m%dT%H%M%S}",
            "sink",
            started,
            {"stats": msgspec.to_builtins(stats.__dict__)},
        )
        publisher.mark(["runs"])
        if publisher.maybe_publish(force=True):
            stats.snapshots += 1
        return stats
    finally:
        if server is not None:
            server.shutdown()
        with contextlib.suppress(duckdb.Error):
            store.close()


class _Sink:
    """The loop of :func:`run_sink`, in sessions: one consumer per stretch of broker uptime."""

    def __init__(
        self,
        settings: Settings,
        opts: SinkOptions,
        tables: dict[str, str],
        store: Store,
        publisher: SnapshotPublisher,
        stats: SinkStats,
        stop: threading.Event,
        on_status: Callable[[SinkStats], None] | None,
        metrics: SinkMetrics,
    ) -> None:
        self.settings, self.opts, self.tables = settings, opts, tables
        self.store, self.publisher, self.stats = store, publisher, stats
        self.metrics = metrics
        self.stop, self.on_status = stop, on_status
        self.options = kafka_python_options(settings)
        self.heartbeat = Heartbeat(settings.heartbeat_file)
        self.watch = BrokerWatch(self.options, None, misses=opts.probe_misses)
        self.last_status = time.monotonic()
        self.triage: TriageInbox | None = None

    def run(self) -> None:
        state = probe_broker(self.options)
        if not state.reachable:
            raise SinkError(f"cannot reach the broker at {self.settings.broker} ({state.error})")
        missing = sorted(set(self.tables) - state.topics)
        if missing:
            raise SinkError(
                f"missing topics {', '.join(missing)} on {self.settings.broker}; "
                "run `amplimon topics create`"
            )
        self.watch.cluster_id = state.cluster_id
        broker = self.settings.broker
        errors = 0
        while not self.stop.is_set():
            started = time.monotonic()
            outcome = self._session()
            if outcome is None:
                return
            kind, detail = outcome
            if kind == "error":  # the broker answers: e.g. a commit after a rebalance
                errors = 1 if time.monotonic() - started > 60 else errors + 1
                if errors > self.opts.retries:
                    raise SinkError(f"Kafka: {detail}")
                log.warning(
                    "Kafka error from broker %s (%s): reconnecting in %g s (%d of %d)",
                    broker,
                    detail,
                    self.opts.probe_s,
                    errors,
                    self.opts.retries,
                )
                self.stop.wait(self.opts.probe_s)
                continue
            if kind == "unreachable":
                log.warning(
                    "broker %s unreachable (%s): retrying every %g s; rows written "
                    "so far are kept, the uncommitted batch is read again",
                    broker,
                    detail,
                    self.opts.probe_s,
                )
            back = wait_for_broker(
                self.options,
                self.tables,
                stopped=self.stop.is_set,
                every=self.opts.probe_s,
                announce=log.warning,
                beat=self.heartbeat.beat,
            )
            if back is None:
                return
            known = self.watch.cluster_id
            if kind == "lost" or (known and back.cluster_id != known):
                log.warning(
                    "broker %s came back without its data (%s): reading the "
                    "recreated output topics from the beginning; the worker writes "
                    "its results again and the upserts keep the store exact",
                    broker,
                    detail
                    if kind == "lost"
                    else f"its cluster id changed from {known} to {back.cluster_id}",
                )
            else:
                log.warning(
                    "broker %s came back with its data: resuming from the committed offsets", broker
                )
            self.watch.cluster_id = back.cluster_id

    def _consumer(self) -> Any:
        from kafka import KafkaConsumer

        o = self.opts
        return KafkaConsumer(
            *self.tables,
            **self.options,
            group_id=f"{self.settings.group_id}-sink",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            allow_auto_create_topics=False,
            max_poll_records=o.batch,
            session_timeout_ms=o.session_timeout_ms,
            heartbeat_interval_ms=o.heartbeat_ms,
            max_partition_fetch_bytes=8 << 20,
        )

    def _session(self) -> tuple[str, str] | None:
        """Consume until stopped (None) or the broker fails: (kind, why), kind one of
        "unreachable", "lost" and "error" (a Kafka error while the broker answers)."""
        from kafka.errors import KafkaError

        opts, stats = self.opts, self.stats
        consumer = None
        last_probe = time.monotonic()
        try:
            consumer = self._consumer()
            while not self.stop.is_set():
                self.heartbeat.beat()
                polled = consumer.poll(timeout_ms=opts.poll_ms, max_records=opts.batch)
                records = [r for batch in polled.values() for r in batch]
                if records:
                    undecodable = stats.undecodable
                    changed = _write(self.store, self.tables, records, stats)
                    # after the transaction: at-least-once
                    consumer.commit(timeout_ms=opts.commit_timeout_ms)
                    self.publisher.mark(changed)
                    self.metrics.wrote(
                        (self.tables[r.topic] for r in records), stats.undecodable - undecodable
                    )
                    self.metrics.lags(_lags(consumer))
                if self.triage is not None and self.triage.poll(self.store):
                    self.publisher.mark(["findings"])  # analysts' triage: findings.status
                if self.publisher.maybe_publish():
                    stats.snapshots += 1
                    self.metrics.published(
                        self.store.query(
                            "SELECT kind, severity, count(*) FROM findings GROUP BY ALL"
                        )
                    )
                now = time.monotonic()
                if self.on_status is not None and now - self.last_status >= opts.status_every_s:
                    self.on_status(stats)
                    self.last_status = now
                if now - last_probe >= opts.probe_s:
                    last_probe = now
                    failed = self.watch.check()
                    if failed is not None:
                        return failed
            return None
        except KafkaError as err:
            return self.watch.probe() or (
                "error",
                f"{type(err).__name__}: {' '.join(str(err).split())}",
            )
        finally:
            if consumer is not None:
                with contextlib.suppress(KafkaError, OSError):
                    consumer.close(autocommit=False, timeout_ms=2000)


def _lags(consumer: Any) -> dict[tuple[str, int], int]:
    """Records on the broker not read yet, per assigned partition with a known end."""
    out = {}
    for tp in consumer.assignment():
        high = consumer.highwater(tp)
        if high is not None:
            out[(tp.topic, tp.partition)] = max(0, high - consumer.position(tp))
    return out


def _write(store: Store, tables: dict[str, str], records: list[Any], stats: SinkStats) -> set[str]:
    rows: dict[str, list[Any]] = {t: [] for t in tables.values()}
    for rec in records:
        table = tables[rec.topic]
        try:
            rows[table].append(decode_row(table, rec.value))
        except (msgspec.DecodeError, msgspec.ValidationError, TypeError) as err:
            stats.undecodable += 1
            log.warning(
                "skipping undecodable message %s/%d@%d: %s",
                rec.topic,
                rec.partition,
                rec.offset,
                err,
            )
    with store.transaction():
        _upsert(store, rows, stats)
    stats.messages += len(records)
    stats.batches += 1
    return {t for t, r in rows.items() if r}


def _upsert(store: Store, rows: dict[str, list[Any]], stats: SinkStats) -> None:
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
