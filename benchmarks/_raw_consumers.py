"""The reference consumers of ``bench_scale.py``, each run as its own child process.

    .venv/bin/python benchmarks/_raw_consumers.py --kind aiokafka|kafka-python \\
        --bootstrap HOST:PORT --topics T1,T2,... --records N --timeout S --out RESULT.json

The child assigns itself every partition of the topics (no consumer group: no join to wait
for), reads them from the beginning as bytes — no decoding, nothing kept — and stops once it
has seen ``N`` distinct (topic, partition, offset) triples.  It writes one JSON object to
``RESULT.json``: ``records``, ``seconds`` (first record → ``N``-th), ``rate`` =
(N − 1) / seconds, ``cpu_s`` and ``cpu_us_per_record`` = 10⁶ · cpu_s / (N − 1) (process CPU,
every thread, over the same span), ``peak_rss_mb`` (``VmHWM``) and ``startup_s``; or
``{"error": "<one line>"}`` when it had not seen ``N`` records within ``S`` seconds (exit 3).

``aiokafka`` reads as stage one's worker does (``getmany``, 5,000 records, 4 MiB per
partition fetch); ``kafka-python`` as stage two and the sink do (``poll``);
``kafka-python-nocrc`` the same without checking record batch CRCs (kafka-python computes
CRC-32C in pure Python unless the ``crc32c`` package is installed).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from _faust_consumers import peak_rss_mb, write_result  # noqa: E402

__all__ = ["KINDS", "Tally", "main"]

KINDS = ("aiokafka", "kafka-python", "kafka-python-nocrc")
_FETCH_BYTES = 4 * 1024 * 1024
_BATCH = 5000


class Tally:
    """Distinct (topic, partition, offset) triples and the clocks (first → ``records``-th)."""

    def __init__(self, kind: str, records: int) -> None:
        self.kind, self.records = kind, records
        self.started = time.perf_counter()
        self.next_offset: dict[tuple[str, int], int] = {}
        self.distinct = self.deliveries = 0
        self.t_first = self.c_first = 0.0
        self.result: dict[str, Any] | None = None

    def see(self, topic: str, partition: int, offset: int) -> None:
        if not self.deliveries:
            self.t_first, self.c_first = time.perf_counter(), time.process_time()
        self.deliveries += 1
        if offset >= self.next_offset.get((topic, partition), 0):
            self.next_offset[(topic, partition)] = offset + 1
            self.distinct += 1

    @property
    def complete(self) -> bool:
        return self.distinct >= self.records

    def finish(self) -> dict[str, Any]:
        t_last, c_last = time.perf_counter(), time.process_time()
        gaps = max(1, self.distinct - 1)
        wall, cpu = t_last - self.t_first, c_last - self.c_first
        self.result = {
            "kind": self.kind,
            "records": self.distinct,
            "deliveries": self.deliveries,
            "seconds": wall,
            "rate": gaps / wall if wall > 0 else float("inf"),
            "cpu_s": cpu,
            "cpu_us_per_record": 1e6 * cpu / gaps,
            "peak_rss_mb": peak_rss_mb(),
            "startup_s": self.t_first - self.started,
        }
        return self.result


async def _aiokafka(args: argparse.Namespace, tally: Tally) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=args.bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=_FETCH_BYTES,
    )
    await consumer.start()
    try:
        tps = [
            TopicPartition(t, p)
            for t in args.topics
            for p in sorted(await _partitions(consumer, t))
        ]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while not tally.complete:
            batch = await consumer.getmany(timeout_ms=100, max_records=_BATCH)
            for messages in batch.values():
                for m in messages:
                    tally.see(m.topic, m.partition, m.offset)
        tally.finish()
    finally:
        await consumer.stop()


async def _partitions(consumer: Any, topic: str) -> set[int]:
    for _ in range(50):
        parts = consumer.partitions_for_topic(topic)
        if parts:
            return set(parts)
        await consumer._client.force_metadata_update()  # noqa: SLF001  # first lookup
        await asyncio.sleep(0.1)
    raise RuntimeError(f"topic {topic} has no partitions")


def _kafka_python(args: argparse.Namespace, tally: Tally) -> None:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=args.bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        check_crcs=args.kind != "kafka-python-nocrc",
    )
    try:
        tps = [
            TopicPartition(t, p)
            for t in args.topics
            for p in sorted(consumer.partitions_for_topic(t) or ())
        ]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        while not tally.complete:
            for records in consumer.poll(timeout_ms=100, max_records=2000).values():
                for r in records:
                    tally.see(r.topic, r.partition, r.offset)
        tally.finish()
    finally:
        consumer.close(autocommit=False)


def _watchdog(tally: Tally, done: threading.Event, timeout: float, out: Path) -> None:
    if not done.wait(timeout):
        write_result(
            out,
            {
                "error": f"{tally.kind}: saw {tally.distinct:,} of {tally.records:,} "
                f"records within {timeout:g} s"
            },
        )
        os._exit(3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=KINDS, required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topics", required=True, type=lambda s: s.split(","))
    parser.add_argument("--records", type=int, required=True)
    parser.add_argument("--timeout", type=float, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    tally = Tally(args.kind, args.records)
    done = threading.Event()
    threading.Thread(
        target=_watchdog, args=(tally, done, args.timeout, args.out), daemon=True
    ).start()
    if args.kind == "aiokafka":
        asyncio.run(_aiokafka(args, tally))
    else:
        _kafka_python(args, tally)
    assert tally.result is not None
    write_result(args.out, tally.result)
    done.set()
    return 0


if __name__ == "__main__":
    sys.exit(main())
