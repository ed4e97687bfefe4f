"""``amplimon produce``: archived streams into Kafka — and the reference platform adapter.

A platform that wants to feed amplimon copies :func:`send_event`: one JSON object per message
on ``amplimon.exposure`` / ``amplimon.ranking`` (contract §1), **message key = user**, with
the idempotent kafka-python producer (the 3.x default: ``acks=all``, retries without
duplicates).  Everything else here is replay plumbing:

* files of both topics are merged in event time (like ``amplimon replay``), so each partition
  receives its events in the order the platform logged them;
* ``speed=X`` paces the stream at X × real time (event time → wall clock), ``speed=None``
  sends as fast as possible;
* records are sent as read — a malformed line is sent too, so the worker dead-letters it;
* ``end_of_stream=True`` finally sends an *end-of-stream marker* to every partition of every
  input topic (both event topics and the panel topic): an empty message with header
  ``amplimon-control: end-of-stream``.  It is not a record (no value); a worker closes a
  unit when it has seen one on every partition of the unit, which finishes the detectors
  exactly as ``amplimon replay`` does at the end of its files.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import msgspec

from monitor.core.contract import Rejected
from streams.files import Record, check_readable, merge_by_time, read_file
from streams.kafka._config import Topics, kafka_python_options
from streams.settings import Settings

__all__ = [
    "CONTROL_HEADER",
    "END_OF_STREAM",
    "ProduceResult",
    "guess_topic",
    "produce",
    "send_end_of_stream",
    "send_event",
]

CONTROL_HEADER: Final = "amplimon-control"
END_OF_STREAM: Final = b"end-of-stream"


@dataclass
class ProduceResult:
    sent: dict[str, int] = field(default_factory=lambda: {"exposure": 0, "ranking": 0})
    seconds: float = 0.0
    max_behind_s: float = 0.0  # how far the paced producer fell behind its schedule

    @property
    def total(self) -> int:
        return sum(self.sent.values())


def guess_topic(path: str | Path) -> str:
    """``exposure`` or ``ranking`` from a file name (``exposure.jsonl.gz``, ``topic=ranking/``)."""
    text = str(path).lower()
    found = [t for t in ("exposure", "ranking") if t in text]
    if len(found) != 1:
        raise ValueError(f"{path}: cannot tell the topic from the name; use --topic")
    return found[0]


def send_event(producer: Any, topic: str, user: str | None, value: bytes) -> Any:
    """The whole adapter: one record, keyed by user, to its topic."""
    return producer.send(topic, key=user.encode() if user else None, value=value)


def _value(rec: Record) -> bytes:
    if rec.raw is not None:
        return rec.raw
    if isinstance(rec.result, Rejected):
        return rec.result.raw.encode("utf-8", "replace")
    return msgspec.json.encode(rec.result)  # a Parquet row: ts as epoch ms is contract-valid


def make_producer(settings: Settings, **overrides: Any) -> Any:
    from kafka import KafkaProducer

    options: dict[str, Any] = {
        "linger_ms": 5,
        "batch_size": 256 * 1024,
        "max_request_size": 2 * 1024 * 1024,
    }
    options.update(overrides)
    return KafkaProducer(**kafka_python_options(settings), **options)


def produce(
    settings: Settings,
    files: Sequence[tuple[str | Path, str]],
    *,
    speed: float | None = None,
    end_of_stream: bool = False,
    progress: Callable[[int], None] | None = None,
    on_send: Callable[[Record, float], None] | None = None,
    producer: Any = None,
) -> ProduceResult:
    """Send ``files`` (path, ``exposure``/``ranking``) to Kafka; see the module docstring."""
    if speed is not None and not speed > 0:
        raise ValueError(f"speed must be > 0, got {speed}")
    topics = Topics.from_settings(settings)
    names = {"exposure": topics.exposure, "ranking": topics.ranking, "panel": topics.panel}
    sources = [read_file(check_readable(p), topic) for p, topic in files]
    own = producer is None
    producer = producer or make_producer(settings)
    result = ProduceResult()
    started = time.monotonic()
    try:
        for n, rec in enumerate(_paced(merge_by_time(sources), speed, result), start=1):
            user = None if isinstance(rec.result, Rejected) else rec.result.user
            send_event(producer, names[rec.topic], user, _value(rec))
            result.sent[rec.topic] += 1
            if on_send is not None:
                on_send(rec, time.monotonic())
            if progress is not None and n % 1000 == 0:
                progress(1000)
        if progress is not None:
            progress(result.total % 1000)
        producer.flush()
        if end_of_stream:
            send_end_of_stream(producer, list(topics.inputs))
    finally:
        if own:
            producer.close()
    result.seconds = time.monotonic() - started
    return result


def _paced(
    records: Iterable[Record], speed: float | None, result: ProduceResult
) -> Iterable[Record]:
    """Hold each record until its event time, scaled by ``speed``, has come."""
    if speed is None:
        yield from records
        return
    t0_event: int | None = None
    t0_wall = time.monotonic()
    for rec in records:
        ts = None if isinstance(rec.result, Rejected) else rec.result.ts
        if isinstance(ts, int):
            if t0_event is None:
                t0_event, t0_wall = ts, time.monotonic()
            due = t0_wall + (ts - t0_event) / 1000 / speed
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                result.max_behind_s = max(result.max_behind_s, -delay)
        yield rec


def send_end_of_stream(producer: Any, topics: Iterable[str]) -> None:
    """The end-of-stream marker on every partition of ``topics`` (see module docstring)."""
    for topic in topics:
        for partition in sorted(producer.partitions_for(topic) or ()):
            producer.send(
                topic, value=b"", partition=partition, headers=[(CONTROL_HEADER, END_OF_STREAM)]
            )
    producer.flush()
