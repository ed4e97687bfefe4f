"""``amplimon worker``: the live detector pipeline — Kafka in, the replay engine, Kafka out.

One loop (aiokafka): read a batch of both input topics (``getmany``), push it through the
:class:`~streams.kafka.driver.EngineDriver` (the same :class:`monitor.engine.Engine` that
``amplimon replay`` drives, so the same detectors and the same findings), send what the engine
emitted to the output topics, and every ``checkpoint_seconds`` — after those sends are
acknowledged — save a checkpoint and commit the input offsets it starts from.

**Delivery.**  Outputs are sent before the checkpoint that covers them, so a crash loses no
output: the restarted worker resumes from the last checkpoint and emits the rows after it
again — the same rows (the engine is deterministic in event time) that the sink upserts.

**Partitioning.**  Input messages are keyed by ``user``, so every event of a user, and every
duplicate of an event, is on one partition, in the order the platform logged it.  The
statistics are sums over users (exposure counts ``S``, ``Q``, active-user sets per arm;
:mod:`detectors.ledger`), and the decisions are made on the totals, so one engine must see
every partition of a stream: a worker takes all partitions of its topic pair and refuses to
run on a partial assignment (a second worker in the same group).  Partitions still pay off:
the watermark is per partition (a lagging partition never makes events late), and the
broker spreads the load.  **Scaling out** is by stream: give each platform (or group of
platforms) its own topic pair and worker (``AMPLIMON_TOPIC_EXPOSURE=amplimon.exposure.chirp``,
``AMPLIMON_GROUP_ID=amplimon-chirp``); findings of all workers go to the same output topics
and one sink.  One worker handles tens of thousands of events per second (see
``benchmarks/bench_e2e.py``).  Restart is fast: a checkpoint holds the detectors' state, not
the stream.

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

faust-streaming was evaluated for this loop and works against the embedded broker, but its
per-event stream machinery delivered 2.6–5.5 k events/s on the reference machine against
120 k/s for aiokafka's batch ``getmany``, so the worker uses aiokafka directly (Faust itself
runs on aiokafka); see ``docs/live.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle  # noqa: S403  # only to name its error type
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from monitor.config import Config
from monitor.engine import Engine
from monitor.privacy import Pseudonymiser, load_pseudonymiser
from monitor.settings import Settings
from streams.kafka._config import Topics, aiokafka_options, kafka_python_options
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
class _Pipeline:
    """The engine and what feeds and drains it: replaced as a whole when the broker loses
    its data."""

    engine: Engine
    driver: EngineDriver
    output: KafkaOutput


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
    store: CheckpointStore
    stop: asyncio.Event
    announce: Callable[[str], None]
    on_status: Callable[[dict[str, Any]], None] | None
    heartbeat: Heartbeat
    metrics: WorkerMetrics = field(default_factory=WorkerMetrics)
    problem: list[str] = field(default_factory=list)
    held_all: bool = False  # this worker has had every partition: it is the incumbent
    loaded: bool = False  # the checkpoint has been read (or cleared) in a session
    clear_state: bool = False  # the next session starts by clearing the checkpoint
    closing: set[asyncio.Task[None]] = field(default_factory=set)  # producers of past sessions

    @property
    def wanted_topics(self) -> list[str]:
        t = self.topics
        return [*t.inputs, *t.outputs, t.state]


async def run_worker(settings: Settings, config: Config, *, options: WorkerOptions | None = None,
                     stop: asyncio.Event | None = None,
                     on_status: Callable[[dict[str, Any]], None] | None = None,
                     announce: Callable[[str], None] = log.info) -> dict[str, Any]:
    """Run until ``stop`` is set (then checkpoint and leave the group); returns counters."""
    with quiet_client_repeats():
        return await _run(settings, config, options or WorkerOptions(), stop, on_status,
                          announce)


async def _run(settings: Settings, config: Config, opts: WorkerOptions,
               stop: asyncio.Event | None, on_status: Callable[[dict[str, Any]], None] | None,
               announce: Callable[[str], None]) -> dict[str, Any]:
    topics = Topics.from_settings(settings)
    probe_options = kafka_python_options(settings)
    state = await asyncio.to_thread(probe_broker, probe_options)
    if not state.reachable:
        raise WorkerError(f"cannot reach the broker at {settings.broker} ({state.error})")
    ctx = _Context(settings=settings, opts=opts, topics=topics,
                   client=aiokafka_options(settings),
                   watch=BrokerWatch(probe_options, state.cluster_id, misses=opts.probe_misses),
                   store=CheckpointStore(aiokafka_options(settings), topics.state,
                                         settings.group_id),
                   stop=stop or asyncio.Event(), announce=announce, on_status=on_status,
                   heartbeat=Heartbeat(settings.heartbeat_file), clear_state=opts.reset_state)
    missing = [n for n in ctx.wanted_topics if n not in state.topics]
    if missing:
        raise WorkerError(f"missing topics {', '.join(missing)} on {settings.broker}; "
                          "run `amplimon topics create`")
    pseudonymiser = load_pseudonymiser(settings)
    announce(f"pseudonymising user keys with key {pseudonymiser.key_id} "
             f"from {pseudonymiser.source}")
    pipeline = _build(config, topics, settings, pseudonymiser, ctx.metrics)
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
                announce(f"Kafka error from broker {settings.broker} ({outcome.detail}): "
                         f"reconnecting in {opts.probe_s:g} s ({errors} of {opts.retries})")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ctx.stop.wait(), opts.probe_s)
                continue
            pipeline, carry_on = await _recover(ctx, pipeline, outcome,
                                                lambda: _build(config, topics, settings,
                                                               pseudonymiser, ctx.metrics))
            if not carry_on:
                break
    finally:  # producers of sessions cut short by an outage
        if ctx.closing:
            await asyncio.wait(ctx.closing)
        if metrics_server is not None:
            metrics_server.shutdown()
    if ctx.problem:
        raise WorkerError(ctx.problem[0])
    engine, driver = pipeline.engine, pipeline.driver
    return {**driver.stats.__dict__, **pipeline.output.counts, "ticks": engine.stats.ticks,
            "closed": driver.closed, "checkpoint_generation": ctx.store.generation}


def _build(config: Config, topics: Topics, settings: Settings, pseudonymiser: Pseudonymiser,
           metrics: WorkerMetrics) -> _Pipeline:
    output = KafkaOutput(topics)
    engine = Engine(config, MetricsOutput(output, metrics), auto_watermark=False,
                    pseudonymiser=pseudonymiser)
    driver = EngineDriver(engine, topics.inputs,
                          idle_ms=int(settings.idle_partition_seconds * 1000))
    return _Pipeline(engine, driver, output)


async def _recover(ctx: _Context, pipeline: _Pipeline, outcome: _Outcome,
                   build: Callable[[], _Pipeline]) -> tuple[_Pipeline, bool]:
    """After an outage: wait for the broker and its topics, then keep or rebuild the state.
    Returns the pipeline to go on with and False if the worker was stopped meanwhile."""
    broker = ctx.settings.broker
    lost = outcome.detail if outcome.kind == "lost" else ""
    while True:
        state = await asyncio.to_thread(
            wait_for_broker, ctx.watch.options, ctx.wanted_topics, stopped=ctx.stop.is_set,
            every=ctx.opts.probe_s, announce=ctx.announce, beat=ctx.heartbeat.beat)
        if state is None:
            ctx.announce(f"stopped while broker {broker} was unreachable: no final "
                         "checkpoint, the last one stands")
            return pipeline, False
        try:
            lost = lost or await _lost_data(ctx, state)
            break
        except _kafka_error() as err:
            if not (await asyncio.to_thread(probe_broker, ctx.watch.options)).reachable:
                continue  # gone again while checking: wait again
            lost = f"its checkpoint topic cannot be read ({type(err).__name__})"
            break
    ctx.watch.cluster_id = state.cluster_id
    if not lost:
        ctx.announce(f"broker {broker} came back with its data: resuming where the engine "
                     "left off")
        return pipeline, True
    ctx.announce(f"broker {broker} came back without its data ({lost}): the topics were "
                 "recreated empty; starting over with a new engine from the beginning of "
                 "the input topics (re-produce the stream)")
    ctx.store.forget()
    ctx.clear_state = True  # a checkpoint saved on the new broker by the old engine goes
    return build(), True


async def _lost_data(ctx: _Context, state: BrokerState) -> str:
    """Why the broker evidently lost what it had acknowledged, or "" if it did not.

    Not by comparing end offsets with the offsets read: Tansu's ListOffsets can answer less
    than the end of a partition that kept every record.
    """
    known = ctx.watch.cluster_id
    if known and state.cluster_id and state.cluster_id != known:
        return f"its cluster id changed from {known} to {state.cluster_id}"
    if not await ctx.store.verify():
        return (f"checkpoint generation {ctx.store.generation} is no longer at offset "
                f"{ctx.store.offset} of {ctx.topics.state}")
    return ""


async def _session(ctx: _Context, p: _Pipeline) -> _Outcome:
    """Connect, run the loop and the broker watchdog until stopped or the broker fails."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    opts, client = ctx.opts, ctx.client
    # Not idempotent: Tansu answers aiokafka's InitProducerId with UnknownError, and a retried
    # duplicate is harmless here (every output row is an upsert by key).
    producer = AIOKafkaProducer(**client, acks="all", linger_ms=2,
                                request_timeout_ms=int(_REQUEST_TIMEOUT_S * 1000),
                                max_batch_size=512 * 1024, max_request_size=2 * 1024 * 1024)
    consumer = AIOKafkaConsumer(
        **client, group_id=ctx.settings.group_id, enable_auto_commit=False,
        auto_offset_reset="earliest", max_partition_fetch_bytes=4 * 1024 * 1024,
        session_timeout_ms=opts.session_timeout_ms, heartbeat_interval_ms=opts.heartbeat_ms,
        rebalance_timeout_ms=opts.session_timeout_ms)
    stopped = False
    try:
        await producer.start()
        await _start_state(ctx, p, producer)
        consumer.subscribe(list(ctx.topics.inputs), listener=_rebalance(ctx, p, consumer))
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
        ctx.announce(f"broker {ctx.settings.broker} unreachable ({outcome.detail}): "
                     f"retrying every {ctx.opts.probe_s:g} s; the engine state is kept in "
                     "memory")
    return outcome


async def _start_state(ctx: _Context, p: _Pipeline, producer: Any) -> None:
    """Clear or load the checkpoint, once (a later session keeps the engine it has)."""
    store = ctx.store
    if ctx.clear_state:
        await store.clear(producer)
        ctx.clear_state, ctx.loaded = False, True
    if ctx.loaded:
        return
    saved = await store.load()
    ctx.loaded = True
    if saved is None:
        return
    try:
        p.driver.restore(Checkpoint.decode(saved))
    except (ValueError, msgspec.MsgspecError, pickle.UnpicklingError,
            AttributeError, ImportError, TypeError, KeyError) as err:
        raise WorkerError(f"cannot resume from the checkpoint ({err}); start with "
                          "--reset-state to rebuild the state from the topics") from None
    ctx.announce(f"restored checkpoint generation {store.generation} ({len(saved):,} bytes)")


def _rebalance(ctx: _Context, p: _Pipeline, consumer: Any) -> Any:
    from aiokafka import ConsumerRebalanceListener

    topics, driver, announce = ctx.topics, p.driver, ctx.announce

    class Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
        async def on_partitions_revoked(self, revoked: Any) -> None:
            pass

        async def on_partitions_assigned(self, assigned: Any) -> None:
            expected = {(t, q) for t in topics.inputs
                        for q in consumer.partitions_for_topic(t) or ()}
            got = {(tp.topic, tp.partition) for tp in assigned}
            if got != expected and ctx.held_all:
                # The incumbent keeps its state and reads nothing until the newcomer, which
                # is refused below, has left the group and every partition is back.
                consumer.pause(*assigned)
                announce(f"paused: holding {len(got)} of {len(expected)} input partitions "
                         "while another worker is in the group")
                return
            if got != expected:
                ctx.problem.append(
                    f"worker got {len(got)} of {len(expected)} input partitions: another "
                    f"worker is in group {ctx.settings.group_id!r}; one engine must see the "
                    "whole stream (scale out by topic pair, see `amplimon worker --help`)")
                return  # the loop stops at its next poll; the caller's stop event is theirs
            ctx.held_all = True
            consumer.resume(*assigned)
            driver.assign(got)
            # Every position set here, before this callback awaits anything: the fetcher
            # would otherwise start at the group's committed offsets (those of an engine
            # that was reset), and the driver would skip what it reads first afterwards.
            # Offset 0 below the log start resets to it (auto_offset_reset="earliest").
            for tp in assigned:
                consumer.seek(tp, driver.start_offset((tp.topic, tp.partition)) or 0)
            announce(f"assigned {len(got)} input partitions")

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
    from aiokafka import TopicPartition

    engine, driver, output, opts = p.engine, p.driver, p.output, ctx.opts
    last_checkpoint = time.monotonic()
    last_status = time.monotonic()
    dirty = True  # a new session saves a checkpoint soon: the broker may be a new one
    while not ctx.stop.is_set():
        ctx.heartbeat.beat()
        batch = await consumer.getmany(timeout_ms=opts.poll_ms, max_records=opts.batch)
        if ctx.problem:
            break
        messages = [Message(r.topic, r.partition, r.offset, r.value, tuple(r.headers or ()))
                    for records in batch.values() for r in records]
        was_closed, ticks = driver.closed, engine.stats.ticks
        driver.process(messages)
        lags = await _lags(consumer)
        driver.advance(tp for tp, n in lags.items() if n > 0)
        engine.flush_measurements()
        ctx.metrics.read(m.topic for m in messages)
        ctx.metrics.lags(lags)
        ctx.metrics.watermarked(engine.closed_until_ms)
        dirty = dirty or bool(messages) or engine.stats.ticks != ticks
        await _send(producer, output)
        now = time.monotonic()
        if dirty and (now - last_checkpoint >= ctx.settings.checkpoint_seconds
                      or driver.closed != was_closed):
            ctx.metrics.checkpointed(
                await _checkpoint(consumer, producer, driver, ctx.store, TopicPartition))
            last_checkpoint, dirty = now, False
        if ctx.on_status is not None and now - last_status >= opts.status_every_s:
            ctx.on_status(_status(driver, output))
            last_status = now
    if dirty and not ctx.problem:  # after a partial assignment the last checkpoint stands
        engine.flush_measurements()
        await _send(producer, output)
        ctx.metrics.checkpointed(
            await _checkpoint(consumer, producer, driver, ctx.store, TopicPartition))
    if ctx.on_status is not None:
        ctx.on_status(_status(driver, output))


async def _lags(consumer: Any) -> dict[tuple[str, int], int]:
    """Per assigned partition whose high-water mark is known: records on the broker that
    this consumer has not read yet."""
    out = {}
    for tp in consumer.assignment():
        high = consumer.highwater(tp)
        if high is not None:
            out[(tp.topic, tp.partition)] = max(0, high - await consumer.position(tp))
    return out


async def _send(producer: Any, output: KafkaOutput) -> None:
    """Send what the engine emitted; on any failure (or cancellation) it is queued again, to
    be sent once the broker is back — rows are upserts, so a second copy is harmless."""
    pending = output.drain()
    if not pending:
        return
    futures: list[asyncio.Future[Any]] = []
    try:
        for topic, key, value in pending:
            futures.append(await producer.send(topic, key=key, value=value))
        await asyncio.gather(*futures)
    except BaseException:
        output.pending[:0] = pending
        for fut in futures:  # they fail later, when the batches expire: nobody waits then
            fut.add_done_callback(_retrieved)
        raise


def _retrieved(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


async def _checkpoint(consumer: Any, producer: Any, driver: EngineDriver,
                      store: CheckpointStore, topic_partition: Any) -> int:
    """Save a checkpoint and commit its offsets; returns its size in bytes."""
    try:
        checkpoint = driver.checkpoint()
    except (pickle.PicklingError, TypeError, AttributeError) as err:
        raise WorkerError(f"cannot checkpoint the detectors' state ({err})") from None
    data = checkpoint.encode()
    await store.save(producer, data)
    offsets = {topic_partition(*tp): o for tp, o in driver.replay_from().items()}
    if offsets:
        from aiokafka.errors import KafkaError

        try:  # for lag monitoring only: a restart seeks to the checkpoint's offsets itself
            await consumer.commit(offsets)
        except KafkaError as err:
            log.warning("offset commit skipped (%s); the checkpoint is saved", err)
    return len(data)


def _status(driver: EngineDriver, output: KafkaOutput) -> dict[str, Any]:
    s = driver.engine.stats
    return {"messages": driver.stats.messages, "accepted": sum(s.accepted.values()),
            "duplicates": sum(s.duplicates.values()), "late": sum(s.late.values()),
            "rejected": sum(s.rejected.values()), "ticks": s.ticks,
            "watermark_ms": driver.engine.closed_until_ms, "closed": driver.closed,
            **output.counts}


def _kafka_error() -> type[Exception]:
    """aiokafka's base error (imported when an exception is matched, not at import)."""
    from aiokafka.errors import KafkaError

    return KafkaError  # type: ignore[no-any-return]
