"""``amplimon merge``: stage two of the live pipeline — partials of every unit → the detectors.

Stage one (``amplimon worker``, any number of them) sends per-tick partials and unit progress
to the partials topic, partitioned by platform (:mod:`monitor.engine.partials`).  Stage two owns
partitions of that topic in its own consumer group (``<group>-merge``; at most one instance
per partition does work): for each partition a :class:`monitor.engine.merge.Merger` turns the
partials of every unit into complete ticks, in order, and runs the detectors
(:class:`monitor.engine.analysis.Analysis`, one per platform).  Findings, measurements,
detectability and late-partial dead letters go to the output topics the sink reads.

**State is event-sourced.**  The partials topic *is* stage two's changelog: it holds, per
tick and unit, exactly the input the detectors need, and is kept for the window (its
retention).  A stage-two process that takes a partition — at start, after a kill, after a
rebalance — reads it from the beginning and rebuilds its merger and detectors
deterministically; what it sends again are the same rows, which the sink upserts.  Nothing
of the detectors is ever serialised (no pickle, nothing to forge); messages are msgpack,
data only.  The volume is per tick, not per event (today's partial payload carries the
unit's events of the tick; per-detector aggregates are the seam to make it smaller), so
re-reading is cheap next to stage one's work.

**Why not faust-streaming here.**  A Faust agent over this topic with the merged state in a
Faust Table was built and works until its first restart: on the embedded Tansu broker the
Table's changelog recovery never receives the changelog records ("No event received for
active tp … since recovery start") and stage two stalls; group rebalances also take ~30 s.
Event sourcing on kafka-python needs no table recovery at all and behaves the same on Tansu
and on Apache Kafka.  Faust's per-event throughput is measured in
``benchmarks/bench_faust.py`` (``docs/live.md``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from monitor.core.config import Config
from monitor.core.records import DeadLetter
from monitor.engine.analysis import Analysis, Output
from monitor.engine.merge import Merger
from monitor.engine.partials import TickPartial, decode
from streams.kafka._config import EPOCH_HEADER, Topics, kafka_python_options
from streams.kafka._errors import PipelineError
from streams.kafka._heartbeat import Heartbeat
from streams.kafka.broker import probe_broker
from streams.kafka.metrics import MetricsOutput, WorkerMetrics, serve
from streams.kafka.output import KafkaOutput
from streams.settings import Settings

__all__ = ["MergeError", "MergeState", "run_merge"]

log = logging.getLogger("amplimon.merge")


class MergeError(PipelineError):
    """Stage two cannot run (one-line message)."""


@dataclass
class MergeState:
    """The mergers of the partials partitions this process owns."""

    config: Config
    output: KafkaOutput
    detectors: list[str] | None = None
    metrics: WorkerMetrics | None = None
    mergers: dict[int, Merger] = field(default_factory=dict)
    undecodable: int = 0
    # the cluster id of the broker read from (probed when partitions are assigned); a
    # message stamped with another broker's id is stale (see EPOCH_HEADER) and dropped
    epoch: str | None = None
    stale: int = 0

    def is_stale(self, headers: Iterable[tuple[str, bytes]] | None) -> bool:
        """True for a message a worker meant for another broker than the one it is on."""
        if not self.epoch:
            return False
        for name, value in headers or ():
            if name == EPOCH_HEADER and value and value.decode(errors="replace") != self.epoch:
                self.stale += 1
                return True
        return False

    @property
    def results(self) -> Output:
        """Where analyses write: the Kafka output, counted by the metrics if any."""
        return self.output if self.metrics is None else MetricsOutput(self.output, self.metrics)

    def handle(self, partition: int, value: bytes | None) -> int:
        """One message of the partials topic; returns how many ticks ran."""
        try:
            message = decode(value or b"")
        except (msgspec.DecodeError, msgspec.ValidationError) as err:
            self.undecodable += 1
            log.warning(
                "partials partition %d: not a partial or progress message (%s)",
                partition,
                " ".join(str(err).split()),
            )
            return 0
        merger = self.merger(partition)
        if merger.closed:
            return 0
        ran = merger.add(message)
        if merger.finished:
            merger.close()
        elif ran:
            for analysis in merger.analyses.values():
                analysis.flush_measurements()
        return ran

    def merger(self, partition: int) -> Merger:
        merger = self.mergers.get(partition)
        if merger is None:
            merger = self.mergers[partition] = Merger(
                lambda _platform: Analysis(self.config, self.results, detectors=self.detectors),
                late=self._late,
            )
        return merger

    def restart(self, partitions: Iterable[int]) -> None:
        """Partitions (re)assigned: their mergers start afresh (they are read again from
        the beginning)."""
        for p in partitions:
            self.mergers.pop(p, None)

    def _late(self, part: TickPartial) -> None:
        rows = []
        for topic, events in (("exposure", part.exposures), ("ranking", part.rankings)):
            for e in events:
                rows.append(
                    DeadLetter(
                        source="merge",
                        raw=msgspec.json.encode(e).decode(),
                        reason=(
                            f"{topic}.ts: arrived after its tick was merged (unit "
                            f"{part.unit} had fallen silent and stage two went on)"
                        ),
                        location=f"{part.platform}:{part.index}:{e.event_id}",
                    )
                )
        if rows:
            self.results.deadletters(rows)


@dataclass(frozen=True)
class MergeOptions:
    poll_ms: int = 200
    batch: int = 2000
    session_timeout_ms: int = 10_000
    retries: int = 20  # sessions ended by a Kafka error in a row before giving up
    reconnect_s: float = 1.0
    status_every_s: float = 10.0


@dataclass
class MergeStats:
    messages: int = 0
    ticks: int = 0
    sent: int = 0
    rebuilds: int = 0
    stale: int = 0  # messages meant for a broker that has been replaced (dropped)
    finished: list[int] = field(default_factory=list)


def run_merge(
    settings: Settings,
    config: Config,
    *,
    options: MergeOptions | None = None,
    stop: threading.Event | None = None,
    announce: Callable[[str], None] = log.info,
    on_status: Callable[[MergeStats], None] | None = None,
) -> MergeStats:
    """Consume the partials topic until ``stop`` is set; see the module docstring."""
    from kafka.errors import KafkaError

    opts = options or MergeOptions()
    stop = stop or threading.Event()
    topics = Topics.from_settings(settings)
    stats = MergeStats()
    heartbeat = Heartbeat(settings.heartbeat_file)
    metrics = WorkerMetrics()
    server = serve(metrics.registry, settings.metrics_port)
    if server is not None:
        announce(f"metrics on port {settings.metrics_port} (/metrics)")
    errors = 0
    try:
        while not stop.is_set():
            state = MergeState(config, KafkaOutput(topics), metrics=metrics)
            try:
                _session(settings, topics, state, stats, opts, stop, announce, on_status, heartbeat)
                errors = 0
            except KafkaError as err:
                errors += 1
                if errors > opts.retries:
                    raise MergeError(f"Kafka: {type(err).__name__}: {err}") from None
                announce(
                    f"Kafka error ({type(err).__name__}); reconnecting in "
                    f"{opts.reconnect_s:g} s; stage two is rebuilt from the partials "
                    "topic"
                )
                stop.wait(opts.reconnect_s)
    finally:
        if server is not None:
            server.shutdown()
    return stats


def _session(
    settings: Settings,
    topics: Topics,
    state: MergeState,
    stats: MergeStats,
    opts: MergeOptions,
    stop: threading.Event,
    announce: Callable[[str], None],
    on_status: Callable[[MergeStats], None] | None,
    heartbeat: Heartbeat,
) -> None:
    from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer

    client = kafka_python_options(settings)
    consumer = KafkaConsumer(
        **client,
        group_id=f"{settings.group_id}-merge",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        session_timeout_ms=opts.session_timeout_ms,
        heartbeat_interval_ms=max(1000, opts.session_timeout_ms // 5),
    )
    # not idempotent: Tansu answers InitProducerId with UnknownError; rows are upserts
    producer = KafkaProducer(
        **client,
        acks="all",
        linger_ms=5,
        enable_idempotence=False,
        max_request_size=2 * 1024 * 1024,
    )

    class Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
        def on_partitions_revoked(self, revoked: Any) -> None:
            state.restart(tp.partition for tp in revoked)

        def on_partitions_assigned(self, assigned: Any) -> None:
            parts = sorted(tp.partition for tp in assigned)
            state.restart(parts)
            # the broker now answering may have replaced the one of the last assignment
            state.epoch = probe_broker(client).cluster_id  # None (no answer): nothing dropped
            if assigned:
                consumer.seek_to_beginning(*assigned)  # event sourcing: rebuild from the start
                stats.rebuilds += 1
            announce(f"merging partials partitions {parts}: rebuilding from the beginning")

    try:
        consumer.subscribe([topics.partials], listener=Rebalance())
        last_status = time.monotonic()
        while not stop.is_set():
            heartbeat.beat()
            batch = consumer.poll(timeout_ms=opts.poll_ms, max_records=opts.batch)
            n = 0
            for tp, records in batch.items():
                for r in records:
                    n += 1
                    if state.is_stale(r.headers):
                        stats.stale += 1
                        continue
                    stats.ticks += state.handle(tp.partition, r.value)
                if state.metrics is not None:
                    state.metrics.records.labels(tp.topic).inc(len(records))
            stats.messages += n
            pending = state.output.drain()
            futures = [producer.send(topic, key=key, value=value) for topic, key, value in pending]
            if futures:
                producer.flush()
                for f in futures:  # acknowledged before the offsets that produced them
                    f.get(timeout=30)  # raises the send's error (a new session follows)
                stats.sent += len(pending)
            if n:
                consumer.commit()  # for lag monitoring: a restart reads from the start
            stats.finished = sorted(p for p, m in state.mergers.items() if m.closed)
            now = time.monotonic()
            if on_status is not None and now - last_status >= opts.status_every_s:
                on_status(stats)
                last_status = now
    finally:
        try:
            producer.flush(timeout=10)
        finally:
            producer.close(timeout=5)
            consumer.close(autocommit=False)
