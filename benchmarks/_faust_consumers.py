"""The four consumers of ``bench_faust.py``, each run as its own child process.

    .venv/bin/python benchmarks/_faust_consumers.py --kind KIND --bootstrap HOST:PORT \\
        --topic T --group G --partitions P --records N --timeout S --out RESULT.json

The child reads topic ``T`` (``P`` partitions holding exactly ``N`` records) in a consumer
group of its own, stops once it has seen every (partition, offset) pair, and writes one JSON
object to ``RESULT.json``: the measurement (see ``bench_faust.py`` for the formulas), or
``{"error": "<one line>"}`` when it had not seen ``N`` records within ``S`` seconds (exit 3).
For ``faust_table`` the table's changelog, ``changelog(G)``, must exist beforehand with ``P``
partitions.  The child imports only the contract decoder and the client libraries (not
``streams.kafka``, whose imports alone would add ~170 MB to its peak RSS).
The bookkeeping per record (:class:`Tally`) is the same code in all four, so the figures
differ only by what each kind adds: decoding, Faust's stream, a Faust table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from monitor.core.contract import Event, Rejected, decode  # noqa: E402

__all__ = [
    "FAUST_SETTINGS",
    "KINDS",
    "REFERENCE",
    "SESSION_TIMEOUT",
    "TABLE",
    "Tally",
    "changelog",
    "faust_settings",
    "heartbeat",
    "main",
    "peak_rss_mb",
]

#: The consumers, in the order they run; the first is the reference.
KINDS = ("aiokafka", "aiokafka_decode", "faust_agent", "faust_table")
REFERENCE = KINDS[0]

#: Faust app settings of the two Faust consumers (besides broker, id, store, partitions and
#: the session timeout): what a one-member group on one broker needs; the rest are Faust's
#: defaults.
FAUST_SETTINGS: dict[str, Any] = {
    "web_enabled": False,
    "topic_disable_leader": True,  # no leader-election topic (no on_leader timers)
    "table_standby_replicas": 0,  # one member: nobody to stand by
    "topic_replication_factor": 1,
    "consumer_auto_offset_reset": "earliest",
    "stream_wait_empty": False,  # nothing to drain at shutdown
}

#: The group session timeout of every consumer (s): the stage-1 worker's own.  On the
#: embedded broker the first group join takes about half of it; Faust's default is 60 s.
SESSION_TIMEOUT = 10.0

#: The name of the ``faust_table`` consumer's table (one counter per user).
TABLE = "per_user"

_FETCH_BYTES = 4 * 1024 * 1024  # the stage-1 worker's max_partition_fetch_bytes
_BATCH = 5000  # and its getmany max_records


def faust_settings(session_timeout: float = SESSION_TIMEOUT) -> dict[str, Any]:
    """:data:`FAUST_SETTINGS` with ``session_timeout`` and :func:`heartbeat` (both s)."""
    return {
        **FAUST_SETTINGS,
        "broker_session_timeout": session_timeout,
        "broker_heartbeat_interval": heartbeat(session_timeout),
    }


def changelog(app_id: str) -> str:
    """The changelog topic Faust gives the :data:`TABLE` of app ``app_id``."""
    return f"{app_id}-{TABLE}-changelog"


def heartbeat(session_timeout: float) -> float:
    """Heartbeat interval (s): a tenth of the session timeout, at most Faust's default 3 s."""
    return min(3.0, session_timeout / 10)


class Tally:
    """Counts deliveries and distinct records, decodes, and takes the clocks.

    ``see`` starts the clocks at the first delivery; a delivery whose offset is below the
    partition's next expected offset is a re-delivery (after a rebalance), counted in
    ``deliveries`` only.  ``finish`` stops the clocks at the ``records``-th distinct record.
    """

    def __init__(self, kind: str, records: int) -> None:
        self.kind, self.records = kind, records
        self.started = time.perf_counter()
        self.next_offset: dict[int, int] = {}
        self.distinct = self.deliveries = self.accepted = self.rejected = 0
        self.t_first = self.c_first = self.t_last = 0.0
        self.result: dict[str, Any] | None = None

    def see(self, partition: int, offset: int) -> bool:
        """One delivery; True when it is a record not seen before."""
        if not self.deliveries:
            self.t_first, self.c_first = time.perf_counter(), time.process_time()
        self.deliveries += 1
        if offset < self.next_offset.get(partition, 0):
            return False
        self.next_offset[partition] = offset + 1
        self.distinct += 1
        return True

    def decoded(self, raw: bytes | None) -> Event | None:
        """The contract decoder on one record; None (and counted) when it rejects it."""
        result = decode("exposure", raw or b"")
        if isinstance(result, Rejected):
            self.rejected += 1
            return None
        self.accepted += 1
        return result

    @property
    def complete(self) -> bool:
        return self.distinct >= self.records

    def finish(self) -> dict[str, Any]:
        self.t_last, c_last = time.perf_counter(), time.process_time()
        gaps = max(1, self.distinct - 1)
        wall, cpu = self.t_last - self.t_first, c_last - self.c_first
        self.result = {
            "kind": self.kind,
            "records": self.distinct,
            "deliveries": self.deliveries,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "seconds": wall,
            "rate": gaps / wall if wall > 0 else float("inf"),
            "cpu_s": cpu,
            "cpu_us_per_record": 1e6 * cpu / gaps,
            "peak_rss_mb": peak_rss_mb(),
            "startup_s": self.t_first - self.started,
        }
        return self.result


def peak_rss_mb() -> float:
    """This process's peak resident set size (``VmHWM``).  Not ``ru_maxrss``: Linux keeps
    that across ``execve``, so a child would report its parent's peak if that was higher."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def write_result(path: Path, obj: dict[str, Any]) -> None:
    """``obj`` as JSON at ``path``, atomically (the parent reads it once the child ends)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj), encoding="utf-8")
    tmp.replace(path)


def _watchdog(
    tally: Tally, done: threading.Event, timeout: float, out: Path, grace: float = 30.0
) -> None:
    """Fail the child with a one-line error if ``N`` records have not come within
    ``timeout``; once they have, give a shutdown ``grace`` s before leaving anyway (the
    result is already written)."""
    if not done.wait(timeout) and not (tally.complete and done.wait(grace)):
        write_result(
            out,
            {
                "error": f"{tally.kind}: saw {tally.distinct:,} of {tally.records:,} "
                f"records within {timeout:g} s"
            },
        )
        os._exit(3)
    time.sleep(grace)
    os._exit(0)


async def _aiokafka(args: argparse.Namespace, tally: Tally, decode_each: bool) -> None:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        args.topic,
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=_FETCH_BYTES,
        session_timeout_ms=round(args.session_timeout * 1000),
        heartbeat_interval_ms=round(heartbeat(args.session_timeout) * 1000),
    )
    await consumer.start()
    try:
        while not tally.complete:
            batch = await consumer.getmany(timeout_ms=100, max_records=_BATCH)
            for messages in batch.values():
                for m in messages:
                    if tally.see(m.partition, m.offset) and decode_each:
                        tally.decoded(m.value)
                    if tally.complete:
                        tally.finish()
                        return
    finally:
        await consumer.stop()


def _faust(
    args: argparse.Namespace, tally: Tally, with_table: bool, on_done: threading.Event
) -> None:
    import faust

    app = faust.App(
        args.group,
        broker=f"kafka://{args.bootstrap}",
        store="memory://",
        topic_partitions=args.partitions,
        **faust_settings(args.session_timeout),
    )
    topic = app.topic(
        args.topic,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=args.partitions,
    )
    table = app.Table(TABLE, default=int, partitions=args.partitions) if with_table else None
    if table is not None and table.changelog_topic.get_topic_name() != changelog(args.group):
        raise RuntimeError(
            f"Faust names the changelog {table.changelog_topic.get_topic_name()}"
            f", not {changelog(args.group)} (created beforehand)"
        )

    @app.agent(topic)
    async def consume(stream: Any) -> None:
        async for event in stream.events():
            if tally.result is not None:
                continue  # shutting down
            message = event.message
            if tally.see(message.partition, message.offset):
                decoded = tally.decoded(event.value)
                if table is not None and decoded is not None:
                    table[decoded.user] += 1
            if tally.complete:
                result = tally.finish()
                if table is not None:  # the changelog writes still buffered, outside the clock
                    await app.producer.flush()
                    result["changelog_flush_s"] = time.perf_counter() - tally.t_last
                write_result(args.out, result)
                on_done.set()
                os.kill(os.getpid(), signal.SIGTERM)  # mode.Worker's graceful shutdown

    worker = faust.Worker(app, loglevel="WARNING", quiet=True)
    # Faust's terminal spinner sets the root logger to DEBUG at loglevel >= WARNING, so every
    # aiokafka debug call on the hot path would build a LogRecord; a service has no terminal.
    worker.spinner = None
    try:
        worker.execute_from_commandline()
    except SystemExit:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=KINDS, required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument(
        "--group", required=True, help="consumer group id (the Faust app id); fresh for each run"
    )
    parser.add_argument("--partitions", type=int, required=True)
    parser.add_argument("--records", type=int, required=True)
    parser.add_argument("--timeout", type=float, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--session-timeout", type=float, default=SESSION_TIMEOUT)
    args = parser.parse_args(argv)
    tally = Tally(args.kind, args.records)
    done = threading.Event()
    threading.Thread(
        target=_watchdog, args=(tally, done, args.timeout, args.out), daemon=True
    ).start()
    if args.kind.startswith("aiokafka"):
        asyncio.run(_aiokafka(args, tally, decode_each=args.kind == "aiokafka_decode"))
        assert tally.result is not None
        write_result(args.out, tally.result)
        done.set()
    else:
        _faust(args, tally, with_table=args.kind == "faust_table", on_done=done)
    return 0 if tally.result is not None else 1


if __name__ == "__main__":
    sys.exit(main())
