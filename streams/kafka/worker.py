"""``amplimon worker``: stage one of the live pipeline — Kafka in, ingest per unit, partials out.

**Scale-out.**  Input messages are keyed by ``user``, so every event of a user, and every
copy of an event, is on one partition, in the order the platform logged it; both input topics
have the same number of partitions, so partition ``i`` of the exposure topic and partition
``i`` of the ranking topic hold the same users.  That pair is a *unit*.  Any number of
workers share the units in one consumer group (the range assignor gives each worker whole
pairs); each unit has its own :class:`monitor.engine.unit.UnitEngine` — decode, dedup over the
window, pseudonymise, frontier and lateness — driven by the same
:class:`~streams.kafka.driver.EngineDriver` as before.  A unit's closed ticks leave as
per-tick partials on the partials topic (key = platform), followed by the unit's progress
(sent to every partition of that topic, after the partials it covers are acknowledged);
stage two (``amplimon merge``, :mod:`streams.kafka.merge`) merges the units and runs the
detectors.  A worker joining, leaving or dying is normal operation: partitions move, the new
owner of a unit resumes it from the unit's checkpoint.

**Delivery.**  A unit's partials and dead letters are sent, and acknowledged, before the
checkpoint that covers them, so a crash loses nothing: the unit is resumed from its last
checkpoint and sends the partials after it again — the same partials (ingest is
deterministic), which stage two recognises (:mod:`monitor.engine.merge`).  Checkpoints are per unit
(``<group>/unit-<i>`` in the state topic): the unit's ingest state as sealed msgpack
(:mod:`monitor.core.sealed`; HMAC under a key derived from the deployment secret) — no pickle,
nothing a record on the broker could turn into code.

**Broker outages.**  A watchdog probes the broker every ``probe_s`` seconds (one metadata
request that creates no topic, :func:`streams.kafka.broker.probe_broker`).  When it stops
answering, the worker says so in one line, closes its Kafka clients (so that they cannot make
a restarted Tansu create the topics with its default partition count), keeps the engine in
memory, and probes until the broker answers *and* has every topic again.  Then:

* the broker kept its data (same cluster id, the last checkpoint manifest still at its
  offset): the worker goes on from the offsets it had read, with the same engine —
  outputs not acknowledged before the outage are sent again;
* the broker came back empty (a new cluster id — :class:`EmbeddedBroker` draws one per
  start —, the last checkpoint manifest gone, or a new one written at a lower offset):
  everything it had acknowledged is gone, including outputs the sink had not read yet and
  the checkpoint, so the worker starts over like a fresh deployment on the new broker: a
  new engine reads the recreated input topics from the beginning.  The platform must
  re-produce the stream (the archive can be replayed); the engine is deterministic in
  event time, so the results — and the sink's upserts — converge on replay's, and dead
  letters, named by content (:mod:`streams.kafka.driver`), are not stored twice.  (Input
  end offsets are no evidence: Tansu's ListOffsets can answer less than a partition's end.)

**Metrics** (``AMPLIMON_METRICS_PORT``): records read, consumer lag, watermark and its delay,
dead letters by reason, finding versions, checkpoint size and age
(:mod:`streams.kafka.metrics`; the hooks are one line each in the loop).

Kafka errors while the broker answers (Tansu's ``UnknownError`` on a topic created a moment
ago, say) end the session and start a new one, up to ``retries`` times in a row; then the
worker exits with one line, and a restart resumes from the checkpoint.

faust-streaming runs stage two, where the volume is per tick, not per event; this per-event
loop uses aiokafka's batch ``getmany`` directly (``benchmarks/bench_faust.py``,
``docs/live.md``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from monitor.core.config import Config
from monitor.core.privacy import Pseudonymiser, load_pseudonymiser
from monitor.core.sealed import Sealer, SealError
from monitor.engine.partials import TickPartial, UnitProgress
from monitor.engine.partials import encode as encode_message
from monitor.engine.unit import UnitEngine
from streams.kafka._config import EPOCH_HEADER, Topics, aiokafka_options, kafka_python_options
from streams.kafka._errors import PipelineError
from streams.kafka._heartbeat import Heartbeat
from streams.kafka.broker import (
    BrokerState,
    BrokerWatch,
    probe_broker,
    quiet_client_repeats,
    wait_for_broker,
)
from streams.kafka.checkpoints import BrokerDataLost, CheckpointStore
from streams.kafka.driver import Checkpoint, EngineDriver, Message
from streams.kafka.metrics import MetricsOutput, WorkerMetrics, serve
from streams.kafka.output import KafkaOutput
from streams.settings import Settings

__all__ = ["WorkerError", "WorkerOptions", "run_worker"]

log = logging.getLogger("amplimon.worker")

# Producer requests (and unsent batches after an outage) expire after this: a session's
# clients are closed within it once the broker is gone.
_REQUEST_TIMEOUT_S = 10.0


class WorkerError(PipelineError):
    """The worker cannot run (one-line message)."""


@dataclass(frozen=True)
class WorkerOptions:
    batch: int = 5000
    poll_ms: int = 100
    session_timeout_ms: int = 10_000
    heartbeat_ms: int = 1_000
    reset_state: bool = False
    status_every_s: float = 10.0
    probe_s: float = 1.0  # broker watchdog interval
    probe_misses: int = 2  # unanswered probes in a row that make an outage
    retries: int = 5  # Kafka errors in a row (broker answering) before the worker gives up


@dataclass
class _Unit:
    """One unit (input partition pair) held by this worker."""

    index: int
    engine: UnitEngine
    driver: EngineDriver
    store: CheckpointStore
    dirty: bool = True
    last_checkpoint: float = 0.0


@dataclass
class _Pipeline:
    """What feeds and drains the units: replaced as a whole when the broker loses its data."""

    config: Config
    settings: Settings
    topics: Topics
    pseudonymiser: Pseudonymiser
    metrics: WorkerMetrics
    output: KafkaOutput  # dead letters
    sealer: Sealer
    units: dict[int, _Unit] = field(default_factory=dict)
    units_total: int = 0
    partials_partitions: int = 0
    # the cluster id of the broker this pipeline's session verified: stamped on every partial
    # and progress message (header EPOCH_HEADER), so that stage two can drop messages an old
    # session's producer delivers to a broker that replaced the one they were meant for
    epoch: bytes = b""
    cleared: set[int] = field(default_factory=set)  # units whose checkpoint was cleared
    # messages not acknowledged when the broker went away, sent first once it is back
    held_first: list[tuple[str, bytes, bytes, int | None]] = field(default_factory=list)
    held_then: list[tuple[str, bytes, bytes, int | None]] = field(default_factory=list)
    stats: dict[str, int] = field(
        default_factory=lambda: {"messages": 0, "partials": 0, "progress": 0, "units_held": 0}
    )

    def unit_of(self, partition: int) -> _Unit | None:
        return self.units.get(partition)

    def new_unit(self, index: int) -> _Unit:
        engine = UnitEngine(
            self.config,
            MetricsOutput(self.output, self.metrics),
            unit=index,
            units=self.units_total,
            pseudonymiser=self.pseudonymiser,
        )
        driver = EngineDriver(
            engine, self.topics.inputs, idle_ms=int(self.settings.idle_partition_seconds * 1000)
        )
        store = CheckpointStore(
            aiokafka_options(self.settings),
            self.topics.state,
            f"{self.settings.group_id}/unit-{index}",
        )
        return _Unit(index, engine, driver, store)


@dataclass
class _Outcome:
    kind: str  # "stopped", "unreachable", "lost" or "error" (a Kafka error, broker fine)
    detail: str = ""


@dataclass
class _Context:
    settings: Settings
    opts: WorkerOptions
    topics: Topics
    client: dict[str, Any]  # aiokafka options
    watch: BrokerWatch  # probes with kafka-python options
    stop: asyncio.Event
    announce: Callable[[str], None]
    on_status: Callable[[dict[str, Any]], None] | None
    heartbeat: Heartbeat
    metrics: WorkerMetrics = field(default_factory=WorkerMetrics)
    problem: list[str] = field(default_factory=list)
    clear_state: bool = False  # units start by clearing their checkpoints (reset, lost data)
    closing: set[asyncio.Task[None]] = field(default_factory=set)  # producers of past sessions

    @property
    def wanted_topics(self) -> list[str]:
        t = self.topics
        return [*t.inputs, *t.outputs, t.state, t.partials]


async def run_worker(
    settings: Settings,
    config: Config,
    *,
    options: WorkerOptions | None = None,
    stop: asyncio.Event | None = None,
    on_status: Callable[[dict[str, Any]], None] | None = None,
    announce: Callable[[str], None] = log.info,
) -> dict[str, Any]:
    """Run until ``stop`` is set (then checkpoint and leave the group); returns counters."""
    with quiet_client_repeats():
        return await _run(settings, config, options or WorkerOptions(), stop, on_status, announce)


async def _run(
    settings: Settings,
    config: Config,
    opts: WorkerOptions,
    stop: asyncio.Event | None,
    on_status: Callable[[dict[str, Any]], None] | None,
    announce: Callable[[str], None],
) -> dict[str, Any]:
    topics = Topics.from_settings(settings)
    probe_options = kafka_python_options(settings)
    state = await asyncio.to_thread(probe_broker, probe_options)
    if not state.reachable:
        raise WorkerError(f"cannot reach the broker at {settings.broker} ({state.error})")
    ctx = _Context(
        settings=settings,
        opts=opts,
        topics=topics,
        client=aiokafka_options(settings),
        watch=BrokerWatch(probe_options, state.cluster_id, misses=opts.probe_misses),
        stop=stop or asyncio.Event(),
        announce=announce,
        on_status=on_status,
        heartbeat=Heartbeat(settings.heartbeat_file),
        clear_state=opts.reset_state,
    )
    missing = [n for n in ctx.wanted_topics if n not in state.topics]
    if missing:
        raise WorkerError(
            f"missing topics {', '.join(missing)} on {settings.broker}; "
            "run `amplimon topics create`"
        )
    pseudonymiser = load_pseudonymiser(settings)
    announce(
        f"pseudonymising user keys with key {pseudonymiser.key_id} from {pseudonymiser.source}"
    )

    def build() -> _Pipeline:
        return _Pipeline(
            config,
            settings,
            topics,
            pseudonymiser,
            ctx.metrics,
            KafkaOutput(topics),
            Sealer(pseudonymiser.derive_key("checkpoint")),
        )

    pipeline = build()
    metrics_server = serve(ctx.metrics.registry, settings.metrics_port)
    if metrics_server is not None:
        announce(f"metrics on port {settings.metrics_port} (/metrics)")
    try:
        errors = 0
        while True:
            started = time.monotonic()
            outcome = await _session(ctx, pipeline)
            if outcome.kind == "stopped" or ctx.problem:
                break
            if outcome.kind == "error":
                # e.g. Tansu's UnknownError on a topic created a moment ago: try again, a few
                # times; a session that ran for a while starts the count again
                errors = 1 if time.monotonic() - started > 60 else errors + 1
                if errors > opts.retries:
                    raise WorkerError(f"Kafka: {outcome.detail}")
                announce(
                    f"Kafka error from broker {settings.broker} ({outcome.detail}): "
                    f"reconnecting in {opts.probe_s:g} s ({errors} of {opts.retries})"
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ctx.stop.wait(), opts.probe_s)
                continue
            pipeline, carry_on = await _recover(ctx, pipeline, outcome, build)
            if not carry_on:
                break
    finally:  # producers of sessions cut short by an outage
        if ctx.closing:
            await asyncio.wait(ctx.closing)
        if metrics_server is not None:
            metrics_server.shutdown()
    if ctx.problem:
        raise WorkerError(ctx.problem[0])
    return {**pipeline.stats, **pipeline.output.counts}


async def _recover(
    ctx: _Context, pipeline: _Pipeline, outcome: _Outcome, build: Callable[[], _Pipeline]
) -> tuple[_Pipeline, bool]:
    """After an outage: wait for the broker and its topics, then keep or rebuild the state.
    Returns the pipeline to go on with and False if the worker was stopped meanwhile."""
    broker = ctx.settings.broker
    lost = outcome.detail if outcome.kind == "lost" else ""
    while True:
        state = await asyncio.to_thread(
            wait_for_broker,
            ctx.watch.options,
            ctx.wanted_topics,
            stopped=ctx.stop.is_set,
            every=ctx.opts.probe_s,
            announce=ctx.announce,
            beat=ctx.heartbeat.beat,
        )
        if state is None:
            ctx.announce(
                f"stopped while broker {broker} was unreachable: no final "
                "checkpoint, the last one stands"
            )
            return pipeline, False
        try:
            lost = lost or await _lost_data(ctx, pipeline, state)
            break
        except _kafka_error() as err:
            if not (await asyncio.to_thread(probe_broker, ctx.watch.options)).reachable:
                continue  # gone again while checking: wait again
            lost = f"its checkpoint topic cannot be read ({type(err).__name__})"
            break
    ctx.watch.cluster_id = state.cluster_id
    if not lost:
        ctx.announce(f"broker {broker} came back with its data: resuming where the units left off")
        return pipeline, True
    ctx.announce(
        f"broker {broker} came back without its data ({lost}): the topics were "
        "recreated empty; starting over with new units from the beginning of "
        "the input topics (re-produce the stream)"
    )
    ctx.clear_state = True  # a checkpoint saved on the new broker by the old units goes
    return build(), True


async def _lost_data(ctx: _Context, pipeline: _Pipeline, state: BrokerState) -> str:
    """Why the broker evidently lost what it had acknowledged, or "" if it did not.

    Not by comparing end offsets with the offsets read: Tansu's ListOffsets can answer less
    than the end of a partition that kept every record.
    """
    known = ctx.watch.cluster_id
    if known and state.cluster_id and state.cluster_id != known:
        return f"its cluster id changed from {known} to {state.cluster_id}"
    for unit in pipeline.units.values():
        if not await unit.store.verify():
            return (
                f"unit {unit.index}'s checkpoint generation {unit.store.generation} is "
                f"no longer at offset {unit.store.offset} of {ctx.topics.state}"
            )
    return ""


async def _session(ctx: _Context, p: _Pipeline) -> _Outcome:
    """Connect, run the loop and the broker watchdog until stopped or the broker fails."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.coordinator.assignors.range import RangePartitionAssignor

    opts, client = ctx.opts, ctx.client
    # Not idempotent: Tansu answers aiokafka's InitProducerId with UnknownError, and a retried
    # duplicate is harmless here (partials are stored by key, every output row is an upsert).
    producer = AIOKafkaProducer(
        **client,
        acks="all",
        linger_ms=2,
        request_timeout_ms=int(_REQUEST_TIMEOUT_S * 1000),
        max_batch_size=512 * 1024,
        max_request_size=2 * 1024 * 1024,
    )
    # The range assignor gives a worker partition i of both input topics together (topics
    # with equal partition counts): a unit is never split between workers.
    consumer = AIOKafkaConsumer(
        **client,
        group_id=ctx.settings.group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
        session_timeout_ms=opts.session_timeout_ms,
        heartbeat_interval_ms=opts.heartbeat_ms,
        rebalance_timeout_ms=opts.session_timeout_ms,
        partition_assignment_strategy=(RangePartitionAssignor,),
    )
    stopped = False
    try:
        await producer.start()
        p.epoch = (ctx.watch.cluster_id or "").encode()
        p.partials_partitions = len(await producer.partitions_for(ctx.topics.partials))
        consumer.subscribe(list(ctx.topics.inputs), listener=_rebalance(ctx, p, consumer, producer))
        await consumer.start()
        loop = asyncio.create_task(_loop(ctx, p, consumer, producer))
        watch = asyncio.create_task(_watch(ctx))
        try:
            await asyncio.wait({loop, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (loop, watch):
                task.cancel()
            await asyncio.gather(loop, watch, return_exceptions=True)
        if not loop.cancelled():  # the loop ended: stopped, or an error
            error = loop.exception()
            if error is not None:
                raise error
            stopped = True
            return _Outcome("stopped")
        return _said(ctx, watch.result())  # the watchdog ended it (or raises its error)
    except BrokerDataLost as err:
        return _Outcome("lost", str(err))
    except _kafka_error() as err:
        found = await asyncio.to_thread(ctx.watch.probe)
        if found is not None:
            return _said(ctx, _Outcome(*found))
        return _Outcome("error", f"{type(err).__name__}: {' '.join(str(err).split())}")
    finally:
        await _stop_quietly(consumer)
        if stopped:
            await _stop_quietly(producer, _REQUEST_TIMEOUT_S + 5)
        else:  # batches for a broker that is gone expire after the request timeout: the
            # next session need not wait for that
            task = asyncio.create_task(_stop_quietly(producer, _REQUEST_TIMEOUT_S + 5))
            ctx.closing.add(task)
            task.add_done_callback(ctx.closing.discard)


def _said(ctx: _Context, outcome: _Outcome) -> _Outcome:
    """Report an outage the moment it is seen (closing the clients may take a while)."""
    if outcome.kind == "unreachable":
        ctx.announce(
            f"broker {ctx.settings.broker} unreachable ({outcome.detail}): "
            f"retrying every {ctx.opts.probe_s:g} s; the units' state is kept in "
            "memory"
        )
    return outcome


async def _load_unit(ctx: _Context, p: _Pipeline, index: int, producer: Any) -> _Unit:
    """A unit newly assigned to this worker: from its checkpoint, or from the beginning."""
    unit = p.new_unit(index)
    if ctx.clear_state and index not in p.cleared:
        await unit.store.clear(producer)
        p.cleared.add(index)
        return unit
    saved = await unit.store.load()
    if saved is None:
        return unit
    try:
        unit.driver.restore(Checkpoint.decode(p.sealer.open(saved)))
    except (ValueError, SealError, msgspec.MsgspecError, KeyError) as err:
        raise WorkerError(
            f"cannot resume unit {index} from its checkpoint ({err}); start "
            "with --reset-state to rebuild the state from the topics"
        ) from None
    ctx.announce(
        f"unit {index}: restored checkpoint generation {unit.store.generation} "
        f"({len(saved):,} bytes)"
    )
    return unit


def _rebalance(ctx: _Context, p: _Pipeline, consumer: Any, producer: Any) -> Any:
    from aiokafka import ConsumerRebalanceListener

    topics, announce = ctx.topics, ctx.announce

    class Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
        async def on_partitions_revoked(self, revoked: Any) -> None:
            """Save the units this worker gives up (their new owner resumes them)."""
            gone = {tp.partition for tp in revoked} & set(p.units)
            if not gone:
                return
            try:
                await _send(producer, p)
                for index in sorted(gone):
                    await _checkpoint(consumer, producer, p, p.units[index])
            except _kafka_error() as err:  # their new owner reads again from older offsets
                log.warning("could not checkpoint revoked units (%s)", err)
            for index in gone:
                del p.units[index]
            announce(f"gave up units {sorted(gone)}")

        async def on_partitions_assigned(self, assigned: Any) -> None:
            counts = {t: len(consumer.partitions_for_topic(t) or ()) for t in topics.inputs}
            if len(set(counts.values())) != 1:
                ctx.problem.append(
                    "the input topics have different partition counts "
                    f"({', '.join(f'{t}: {n}' for t, n in counts.items())}); partition i of "
                    "each must hold the same users"
                )
                return
            p.units_total = next(iter(counts.values()))
            by_unit: dict[int, set[str]] = {}
            for tp in assigned:
                by_unit.setdefault(tp.partition, set()).add(tp.topic)
            split = [i for i, ts in by_unit.items() if ts != set(topics.inputs)]
            if split:
                ctx.problem.append(
                    f"units {split} arrived without both input topics: the "
                    "group must use the range assignor"
                )
                return
            for index in sorted(by_unit):
                if index not in p.units:
                    p.units[index] = await _load_unit(ctx, p, index, producer)
                unit = p.units[index]
                tps = {(t, index) for t in topics.inputs}
                unit.driver.assign(tps)
                # Every position set here, before the fetcher starts: it would otherwise
                # start at the group's committed offsets.  Offset 0 below the log start
                # resets to it (auto_offset_reset="earliest").
                for tp in assigned:
                    if tp.partition == index:
                        consumer.seek(tp, unit.driver.start_offset((tp.topic, index)) or 0)
            p.stats["units_held"] = len(p.units)
            announce(f"holding units {sorted(p.units)} of {p.units_total}")

    return Rebalance()


async def _watch(ctx: _Context) -> _Outcome:
    """Probe the broker; return when it stopped answering or is another one."""
    while True:
        await asyncio.sleep(ctx.opts.probe_s)
        found = await asyncio.to_thread(ctx.watch.check)
        if found is not None:
            return _Outcome(*found)


async def _stop_quietly(client: Any, timeout: float = 5.0) -> None:
    """Stop an aiokafka client whose broker may be gone, without raising."""
    try:
        await asyncio.wait_for(client.stop(), timeout)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise  # our own cancellation, not aiokafka's fetcher tasks dying with the broker
    except (_kafka_error(), TimeoutError, OSError):
        pass


async def _loop(ctx: _Context, p: _Pipeline, consumer: Any, producer: Any) -> None:
    opts = ctx.opts
    last_status = time.monotonic()
    while not ctx.stop.is_set():
        ctx.heartbeat.beat()
        batch = await consumer.getmany(timeout_ms=opts.poll_ms, max_records=opts.batch)
        if ctx.problem:
            break
        by_unit: dict[int, list[Message]] = {}
        for records in batch.values():
            for r in records:
                by_unit.setdefault(r.partition, []).append(
                    Message(r.topic, r.partition, r.offset, r.value, tuple(r.headers or ()))
                )
        lags = await _lags(consumer)
        lagging = [tp for tp, n in lags.items() if n > 0]
        for index, unit in list(p.units.items()):
            messages = by_unit.get(index, [])
            was_closed = unit.driver.closed
            unit.driver.process(messages)
            unit.driver.advance(tp for tp in lagging if tp[1] == index)
            unit.engine.report(idle=unit.driver.idle)
            unit.dirty = unit.dirty or bool(messages) or unit.driver.closed != was_closed
            p.stats["messages"] += len(messages)
            ctx.metrics.read(m.topic for m in messages)
        ctx.metrics.lags(lags)
        if p.units:
            ctx.metrics.watermarked(min(u.engine.closed_until_ms for u in p.units.values()))
        await _send(producer, p)
        now = time.monotonic()
        for unit in list(p.units.values()):
            if unit.dirty and (
                now - unit.last_checkpoint >= ctx.settings.checkpoint_seconds or unit.driver.closed
            ):
                await _checkpoint(consumer, producer, p, unit)
        if ctx.on_status is not None and now - last_status >= opts.status_every_s:
            ctx.on_status(_status(p))
            last_status = now
    if not ctx.problem:
        await _send(producer, p)
        for unit in list(p.units.values()):
            if unit.dirty:
                await _checkpoint(consumer, producer, p, unit)
    if ctx.on_status is not None:
        ctx.on_status(_status(p))


async def _lags(consumer: Any) -> dict[tuple[str, int], int]:
    """Per assigned partition whose high-water mark is known: records on the broker that
    this consumer has not read yet."""
    out = {}
    for tp in consumer.assignment():
        high = consumer.highwater(tp)
        if high is not None:
            out[(tp.topic, tp.partition)] = max(0, high - await consumer.position(tp))
    return out


def partial_partition(platform: str, partitions: int) -> int:
    """The partials partition of a platform: CRC-32 of its id (stage two is partitioned by
    platform; one platform's partials always land on one partition)."""
    return zlib.crc32(platform.encode("utf-8", "surrogatepass")) % partitions


async def _send(producer: Any, p: _Pipeline) -> None:
    """Send what the units emitted: dead letters and partials first, then — once those are
    acknowledged — the progress messages that vouch for them (on every partials partition).
    On any failure (or cancellation) the unsent messages are held, in order, to be sent
    before anything new once the broker is back: partials are stored by key and rows are
    upserts, so a second copy is harmless."""
    first, then = p.held_first, p.held_then
    p.held_first, p.held_then = [], []
    first += [(t, k, v, None) for t, k, v in p.output.drain()]
    topic, n = p.topics.partials, max(1, p.partials_partitions)
    for unit in p.units.values():
        for message in unit.engine.drain():
            data = encode_message(message)
            if isinstance(message, TickPartial):
                first.append(
                    (topic, message.platform.encode(), data, partial_partition(message.platform, n))
                )
                p.stats["partials"] += 1
            elif isinstance(message, UnitProgress):
                then.extend((topic, b"", data, part) for part in range(n))
                p.stats["progress"] += 1
    for group in (first, then):
        if not group:
            continue
        futures: list[asyncio.Future[Any]] = []
        epoch = [(EPOCH_HEADER, p.epoch)] if p.epoch else None
        try:
            for t, key, value, part in group:
                headers = epoch if t == topic else None
                futures.append(
                    await producer.send(t, key=key, value=value, partition=part, headers=headers)
                )
            await asyncio.gather(*futures)
        except BaseException:
            if group is first:
                p.held_first, p.held_then = first, then
            else:
                p.held_then = then
            for fut in futures:  # they fail later, when the batches expire: nobody waits then
                fut.add_done_callback(_retrieved)
            raise


def _retrieved(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


async def _checkpoint(consumer: Any, producer: Any, p: _Pipeline, unit: _Unit) -> int:
    """Save a unit's checkpoint (sealed) and commit its offsets; returns its size."""
    from aiokafka import TopicPartition

    data = p.sealer.seal(unit.driver.checkpoint().encode())
    await unit.store.save(producer, data)
    unit.dirty, unit.last_checkpoint = False, time.monotonic()
    p.metrics.checkpointed(len(data))
    offsets = {TopicPartition(*tp): o for tp, o in unit.driver.replay_from().items()}
    if offsets:
        from aiokafka.errors import KafkaError

        try:  # for lag monitoring only: a restart seeks to the checkpoint's offsets itself
            await consumer.commit(offsets)
        except KafkaError as err:
            log.warning("offset commit skipped (%s); the checkpoint is saved", err)
    return len(data)


def _status(p: _Pipeline) -> dict[str, Any]:
    accepted = duplicates = late = rejected = 0
    for unit in p.units.values():
        s = unit.engine.stats
        accepted += sum(s.accepted.values())
        duplicates += sum(s.duplicates.values())
        late += sum(s.late.values())
        rejected += sum(s.rejected.values())
    closed = [u.engine.closed_until_ms for u in p.units.values()]
    return {
        "units": sorted(p.units),
        "messages": p.stats["messages"],
        "accepted": accepted,
        "duplicates": duplicates,
        "late": late,
        "rejected": rejected,
        "partials": p.stats["partials"],
        "watermark_ms": min(closed, default=None),
        "finished": all(u.driver.closed for u in p.units.values()) and bool(p.units),
        **p.output.counts,
    }


def _kafka_error() -> type[Exception]:
    """aiokafka's base error (imported when an exception is matched, not at import)."""
    from aiokafka.errors import KafkaError

    return KafkaError  # type: ignore[no-any-return]
