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
from dataclasses import dataclass
from typing import Any

import msgspec

from monitor.config import Config
from monitor.engine import Engine
from monitor.privacy import load_pseudonymiser
from monitor.settings import Settings
from streams.kafka._config import Topics, aiokafka_options
from streams.kafka._errors import PipelineError
from streams.kafka._heartbeat import Heartbeat
from streams.kafka.checkpoints import CheckpointStore
from streams.kafka.driver import Checkpoint, EngineDriver, Message
from streams.kafka.output import KafkaOutput
from streams.kafka.topics import missing_topics

__all__ = ["WorkerError", "WorkerOptions", "run_worker"]

log = logging.getLogger("amplimon.worker")


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


async def run_worker(settings: Settings, config: Config, *, options: WorkerOptions | None = None,
                     stop: asyncio.Event | None = None,
                     on_status: Callable[[dict[str, Any]], None] | None = None,
                     announce: Callable[[str], None] = log.info) -> dict[str, Any]:
    """Run until ``stop`` is set (then checkpoint and leave the group); returns counters."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
    from aiokafka.errors import KafkaError

    opts = options or WorkerOptions()
    stop_event = stop or asyncio.Event()
    topics = Topics.from_settings(settings)
    missing = missing_topics(settings, [*topics.inputs, *topics.outputs, topics.state])
    if missing:
        raise WorkerError(f"missing topics {', '.join(missing)} on {settings.broker}; "
                          "run `amplimon topics create`")
    output = KafkaOutput(topics)
    pseudonymiser = load_pseudonymiser(settings)
    announce(f"pseudonymising user keys with key {pseudonymiser.key_id} "
             f"from {pseudonymiser.source}")
    engine = Engine(config, output, auto_watermark=False, pseudonymiser=pseudonymiser)
    driver = EngineDriver(engine, topics.inputs,
                          idle_ms=int(settings.idle_partition_seconds * 1000))
    client = aiokafka_options(settings)
    store = CheckpointStore(client, topics.state, settings.group_id)
    # Not idempotent: Tansu answers aiokafka's InitProducerId with UnknownError, and a retried
    # duplicate is harmless here (every output row is an upsert by key).
    producer = AIOKafkaProducer(**client, acks="all", linger_ms=2,
                                max_batch_size=512 * 1024, max_request_size=2 * 1024 * 1024)
    consumer = AIOKafkaConsumer(
        **client, group_id=settings.group_id, enable_auto_commit=False,
        auto_offset_reset="earliest", max_partition_fetch_bytes=4 * 1024 * 1024,
        session_timeout_ms=opts.session_timeout_ms, heartbeat_interval_ms=opts.heartbeat_ms,
        rebalance_timeout_ms=opts.session_timeout_ms)
    problem: list[str] = []
    held_all = [False]  # this worker has had every partition: it is the incumbent

    class Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
        async def on_partitions_revoked(self, revoked: Any) -> None:
            pass

        async def on_partitions_assigned(self, assigned: Any) -> None:
            expected = {(t, p) for t in topics.inputs
                        for p in consumer.partitions_for_topic(t) or ()}
            got = {(tp.topic, tp.partition) for tp in assigned}
            if got != expected and held_all[0]:
                # The incumbent keeps its state and reads nothing until the newcomer, which
                # is refused below, has left the group and every partition is back.
                consumer.pause(*assigned)
                announce(f"paused: holding {len(got)} of {len(expected)} input partitions "
                         "while another worker is in the group")
                return
            if got != expected:
                problem.append(
                    f"worker got {len(got)} of {len(expected)} input partitions: another "
                    f"worker is in group {settings.group_id!r}; one engine must see the "
                    "whole stream (scale out by topic pair, see `amplimon worker --help`)")
                return  # the loop stops at its next poll; the caller's stop event is theirs
            held_all[0] = True
            consumer.resume(*assigned)
            driver.assign(got)
            announce(f"assigned {len(got)} input partitions")
            for tp in assigned:
                start = driver.start_offset((tp.topic, tp.partition))
                if start is None:
                    await consumer.seek_to_beginning(tp)
                else:
                    consumer.seek(tp, start)

    await producer.start()
    try:
        if opts.reset_state:
            await store.clear(producer)
        else:
            saved = await store.load()
            if saved is not None:
                try:
                    driver.restore(Checkpoint.decode(saved))
                except (ValueError, msgspec.MsgspecError, pickle.UnpicklingError,
                        AttributeError, ImportError, TypeError, KeyError) as err:
                    raise WorkerError(f"cannot resume from the checkpoint ({err}); start with "
                                      "--reset-state to rebuild the state from the topics"
                                      ) from None
                announce(f"restored checkpoint generation {store.generation} "
                         f"({len(saved):,} bytes)")
        consumer.subscribe(list(topics.inputs), listener=Rebalance())
        await consumer.start()
        try:
            await _loop(consumer, producer, driver, output, store, settings, opts, stop_event,
                        on_status, problem)
        finally:
            with contextlib.suppress(KafkaError):
                await consumer.stop()
    finally:
        await producer.stop()
    if problem:
        raise WorkerError(problem[0])
    return {**driver.stats.__dict__, **output.counts, "ticks": engine.stats.ticks,
            "closed": driver.closed, "checkpoint_generation": store.generation}


async def _loop(consumer: Any, producer: Any, driver: EngineDriver, output: KafkaOutput,
                store: CheckpointStore, settings: Settings, opts: WorkerOptions,
                stop: asyncio.Event, on_status: Callable[[dict[str, Any]], None] | None,
                problem: list[str]) -> None:
    from aiokafka import TopicPartition

    engine = driver.engine
    heartbeat = Heartbeat(settings.heartbeat_file)
    last_checkpoint = time.monotonic()
    last_status = time.monotonic()
    dirty = False
    while not stop.is_set():
        heartbeat.beat()
        batch = await consumer.getmany(timeout_ms=opts.poll_ms, max_records=opts.batch)
        if problem:
            break
        messages = [Message(r.topic, r.partition, r.offset, r.value, tuple(r.headers or ()))
                    for records in batch.values() for r in records]
        was_closed, ticks = driver.closed, engine.stats.ticks
        driver.process(messages)
        driver.advance(await _lagging(consumer))
        engine.flush_measurements()
        dirty = dirty or bool(messages) or engine.stats.ticks != ticks
        await _send(producer, output)
        now = time.monotonic()
        if dirty and (now - last_checkpoint >= settings.checkpoint_seconds
                      or driver.closed != was_closed):
            await _checkpoint(consumer, producer, driver, store, TopicPartition)
            last_checkpoint, dirty = now, False
        if on_status is not None and now - last_status >= opts.status_every_s:
            on_status(_status(driver, output))
            last_status = now
    if dirty and not problem:  # after a partial assignment the last checkpoint stands
        engine.flush_measurements()
        await _send(producer, output)
        await _checkpoint(consumer, producer, driver, store, TopicPartition)
    if on_status is not None:
        on_status(_status(driver, output))


async def _lagging(consumer: Any) -> set[tuple[str, int]]:
    """Partitions with records on the broker that this consumer has not read yet."""
    out = set()
    for tp in consumer.assignment():
        high = consumer.highwater(tp)
        if high is not None and await consumer.position(tp) < high:
            out.add((tp.topic, tp.partition))
    return out


async def _send(producer: Any, output: KafkaOutput) -> None:
    pending = output.drain()
    if not pending:
        return
    futures = [await producer.send(topic, key=key, value=value) for topic, key, value in pending]
    await asyncio.gather(*futures)


async def _checkpoint(consumer: Any, producer: Any, driver: EngineDriver,
                      store: CheckpointStore, topic_partition: Any) -> None:
    try:
        checkpoint = driver.checkpoint()
    except (pickle.PicklingError, TypeError, AttributeError) as err:
        raise WorkerError(f"cannot checkpoint the detectors' state ({err})") from None
    await store.save(producer, checkpoint.encode())
    offsets = {topic_partition(*tp): o for tp, o in driver.replay_from().items()}
    if offsets:
        from aiokafka.errors import KafkaError

        try:  # for lag monitoring only: a restart seeks to the checkpoint's offsets itself
            await consumer.commit(offsets)
        except KafkaError as err:
            log.warning("offset commit skipped (%s); the checkpoint is saved", err)


def _status(driver: EngineDriver, output: KafkaOutput) -> dict[str, Any]:
    s = driver.engine.stats
    return {"messages": driver.stats.messages, "accepted": sum(s.accepted.values()),
            "duplicates": sum(s.duplicates.values()), "late": sum(s.late.values()),
            "rejected": sum(s.rejected.values()), "ticks": s.ticks,
            "watermark_ms": driver.engine.closed_until_ms, "closed": driver.closed,
            **output.counts}
