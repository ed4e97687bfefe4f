"""Faust's per-event throughput on the embedded broker, against plain aiokafka (issue 14).

    .venv/bin/python benchmarks/bench_faust.py [--records 100000] [--partitions 6]
        [--timeout 240] [--session-timeout 10] [--out benchmarks/results]

Why stage one of the live pipeline (every exposure event: decode, dedup, per-user state) is
not on Faust (faust-streaming).  On one embedded broker (Tansu), in one
run, ``--records`` N exposure records of the simulated election (``scenario("default")``:
realistic records, malformed lines included) are produced to a topic with ``--partitions``
P partitions, keyed by ``user`` exactly as ``amplimon produce`` sends them.  Then four
consumers read that topic one after another, each in its own child process
(``_faust_consumers.py``, so each peak RSS is its own) and its own consumer group, each the
topic's only consumer:

* ``aiokafka`` — a plain aiokafka ``getmany`` loop reading every record's bytes: the floor
  (the reference);
* ``aiokafka_decode`` — the same loop, decoding each record with
  :func:`monitor.core.contract.decode` (what a stage-1 worker does per event before any state);
* ``faust_agent`` — a Faust app (memory store, ``web_enabled=False``) whose agent iterates
  the stream (``stream.events()``) and decodes each record the same way;
* ``faust_table`` — the same plus ``table[user] += 1`` in a Faust ``Table`` with a changelog
  topic: what a naive Faust stage 1 keeping per-user state would do.

Each consumer stops by itself once it has seen all N (partition, offset) pairs (a child
that has not seen them within ``--timeout`` s fails with a one-line error naming the count),
and reports, with ``t_1``/``t_N`` the wall clock at its first/N-th record and ``c_1``/``c_N``
its process CPU time (every thread) there:

* ``rate`` = (N − 1) / (t_N − t_1) records/s: the clock starts at the first record
  consumed, not at process or app start (process start → first record, group join and
  Faust's rebalance included, is ``startup_s``, reported apart);
* ``cpu_us_per_record`` = 10⁶ · (c_N − c_1) / (N − 1);
* ``peak_rss_mb`` = the child's ``VmHWM`` at its N-th record (imports and start-up
  included);
* ``deliveries`` (records handed to the loop, re-deliveries included; equal to N when no
  rebalance interrupted the run), ``accepted`` / ``rejected`` by the decoder (checked equal
  across the decoding consumers);
* ``faust_table`` also: ``changelog_records`` (read back from the changelog topic: checked
  equal to ``accepted``, one record per update) and ``changelog_flush_s`` (N-th record →
  changelog producer flushed; outside the clock).

Ratios are against ``aiokafka`` measured in the same run: ``rate / rate_ref`` and
``cpu_us_per_record / cpu_us_per_record_ref``.  The source topic and the table's changelog
are created beforehand with P partitions (Tansu creates a topic Faust names with 4, and a
Table's changelog must have its source's count).

Faust settings (``_faust_consumers.FAUST_SETTINGS``): the defaults except what a one-member
group needs — no leader topic, no standby replicas, ``stream_wait_empty=False`` (nothing to
drain at shutdown), Faust's terminal spinner off (it sets the root logger to DEBUG) — and the
session timeout (``--session-timeout``, 10 s as the stage-1 worker; heartbeat a tenth of it,
at most 3 s).  On Tansu the first group join takes about half the session timeout for every
client: Faust's default 60 s is the "~30 s first rebalance" (``docs/live.md``).

Prints a table and writes ``benchmarks/results/faust.json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # imported from the tests
    sys.path.insert(0, str(HERE))

from _faust_consumers import (  # noqa: E402
    KINDS,
    REFERENCE,
    SESSION_TIMEOUT,
    changelog,
    faust_settings,
)

from streams.kafka.broker import EmbeddedBroker, admin_client  # noqa: E402
from streams.kafka.producer import produce  # noqa: E402
from streams.settings import Settings  # noqa: E402

__all__ = ["KINDS", "REFERENCE", "BenchError", "load", "measure", "run", "simulated_exposures"]


class BenchError(RuntimeError):
    """A consumer failed, or the consumers disagree (one-line message)."""


def create_topic(bootstrap: str, name: str, partitions: int, *, compact: bool = False) -> None:
    """Create ``name`` with ``partitions`` partitions (an existing topic is left as it is)."""
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = admin_client(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    try:
        configs = {"cleanup.policy": "compact"} if compact else {}
        admin.create_topics([NewTopic(name, partitions, 1, topic_configs=configs)])
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()


def count_messages(bootstrap: str, topic: str, timeout: float = 60.0) -> int:
    """Messages in ``topic``, read from the start up to each partition's high-water mark (the
    embedded broker's ListOffsets can answer less than a partition's end; a fetch cannot)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, max_partition_fetch_bytes=4 << 20
    )
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        count, deadline = 0, time.monotonic() + timeout
        while time.monotonic() < deadline:
            count += sum(len(r) for r in consumer.poll(timeout_ms=200, max_records=50_000).values())
            highs = [consumer.highwater(tp) for tp in tps]
            if all(
                h is not None and consumer.position(tp) >= h
                for tp, h in zip(tps, highs, strict=True)
            ):
                return count
        raise BenchError(f"{topic}: not read to its end within {timeout:g} s")
    finally:
        consumer.close(autocommit=False)


def simulated_exposures(records: int, work: Path, seed: int = 1) -> Path:
    """A JSON Lines file of the first ``records`` lines of the simulated election's exposure
    log (``scenario("default")``, arrival order: duplicates and malformed lines included),
    simulated at the smallest scale that has that many."""
    from streams.simulator import scenario, write_simulation

    scale = max(0.005, records / 180_000)
    while True:
        paths = write_simulation(
            work / "sim", scenario("default", seed=seed, scale=scale), fmt="jsonl"
        )
        with open(paths["exposure"], "rb") as f:
            lines = list(itertools.islice(f, records))
        if len(lines) == records:
            break
        scale *= 1.2 * records / max(1, len(lines))
    out = work / "exposure.jsonl"
    out.write_bytes(b"".join(lines))
    return out


def load(bootstrap: str, topic: str, records: int, partitions: int, work: Path) -> dict:
    """Create ``topic`` with ``partitions`` partitions and send it ``records`` simulated
    exposure records the way ``amplimon produce`` does (kafka-python, key = ``user``)."""
    path = simulated_exposures(records, work)
    create_topic(bootstrap, topic, partitions)
    settings = Settings(broker=bootstrap, partitions=partitions, topic_exposure=topic)
    produced = produce(settings, [(path, "exposure")])
    if produced.total != records:
        raise BenchError(f"produced {produced.total:,} records, not {records:,}")
    return {
        "records": produced.total,
        "seconds": produced.seconds,
        "rate": produced.total / produced.seconds,
        "bytes": path.stat().st_size,
    }


def _consume(
    kind: str,
    bootstrap: str,
    topic: str,
    records: int,
    partitions: int,
    timeout: float,
    session_timeout: float,
    work: Path,
) -> dict[str, Any]:
    out = work / f"{kind}.json"
    out.unlink(missing_ok=True)
    group = f"bench-{kind}-{uuid.uuid4().hex[:8]}"
    if kind == "faust_table":  # Tansu would create it with 4 partitions when Faust names it
        create_topic(bootstrap, changelog(group), partitions, compact=True)
    cmd = [
        sys.executable,
        str(HERE / "_faust_consumers.py"),
        "--kind",
        kind,
        "--bootstrap",
        bootstrap,
        "--topic",
        topic,
        "--group",
        group,
        "--partitions",
        str(partitions),
        "--records",
        str(records),
        "--timeout",
        str(timeout),
        "--out",
        str(out),
        "--session-timeout",
        str(session_timeout),
    ]
    try:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            cwd=ROOT,  # noqa: S603
            timeout=timeout + 60,
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"{kind}: did not exit within {timeout + 60:g} s") from None
    result = json.loads(out.read_text(encoding="utf-8")) if out.exists() else None
    if result is None:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise BenchError(f"{kind}: exit {proc.returncode} without a result ({tail})")
    if "error" in result:
        raise BenchError(result["error"])
    if kind == "faust_table":
        result["changelog"] = changelog(group)
        result["changelog_records"] = count_messages(bootstrap, changelog(group))
    return dict(result)


def measure(
    bootstrap: str,
    topic: str,
    records: int,
    partitions: int,
    work: Path,
    *,
    kinds: tuple[str, ...] = KINDS,
    timeout: float = 240.0,
    session_timeout: float = SESSION_TIMEOUT,
) -> dict[str, Any]:
    """Run each consumer of ``kinds`` (the reference first) on ``topic`` in its own child
    process, check that they agree, and add the ratios to the reference."""
    if kinds[0] != REFERENCE:
        raise ValueError(f"kinds must start with the reference {REFERENCE!r}")
    consumers = {
        k: _consume(k, bootstrap, topic, records, partitions, timeout, session_timeout, work)
        for k in kinds
    }
    decoded = {(c["accepted"], c["rejected"]) for k, c in consumers.items() if k != REFERENCE}
    if len(decoded) > 1:
        raise BenchError(f"the decoding consumers disagree on (accepted, rejected): {decoded}")
    table = consumers.get("faust_table")
    if table is not None and table["changelog_records"] != table["accepted"]:
        raise BenchError(
            f"faust_table: {table['changelog_records']:,} changelog records for "
            f"{table['accepted']:,} table updates"
        )
    ref = consumers[REFERENCE]
    ratios = {
        k: {
            "rate": c["rate"] / ref["rate"],
            "cpu_per_record": c["cpu_us_per_record"] / ref["cpu_us_per_record"],
        }
        for k, c in consumers.items()
    }
    return {"consumers": consumers, "ratios": ratios}


def run(
    records: int, partitions: int, timeout: float, session_timeout: float = SESSION_TIMEOUT
) -> dict[str, Any]:
    """The whole benchmark on a fresh embedded broker."""
    with tempfile.TemporaryDirectory(prefix="amplimon-faust-") as tmp, EmbeddedBroker() as broker:
        work = Path(tmp)
        topic = f"bench-faust.exposure.{uuid.uuid4().hex[:8]}"
        result: dict[str, Any] = {
            "cpus": os.cpu_count(),
            "load_avg_start": os.getloadavg()[0],
            "records": records,
            "partitions": partitions,
            "versions": {p: version(p) for p in ("faust-streaming", "mode-streaming", "aiokafka")},
            "session_timeout_s": session_timeout,
            "faust_settings": faust_settings(session_timeout),
        }
        result["produce"] = load(broker.bootstrap, topic, records, partitions, work)
        result.update(
            measure(
                broker.bootstrap,
                topic,
                records,
                partitions,
                work,
                timeout=timeout,
                session_timeout=session_timeout,
            )
        )
        result["load_avg_end"] = os.getloadavg()[0]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument(
        "--timeout",
        type=float,
        default=240.0,
        help="seconds each consumer may take to see every record",
    )
    parser.add_argument(
        "--session-timeout",
        type=float,
        default=SESSION_TIMEOUT,
        help="consumer group session timeout, s (Faust's default: 60)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    if args.records < 2 or args.partitions < 1:
        parser.error("--records must be >= 2 and --partitions >= 1")
    try:
        result = run(args.records, args.partitions, args.timeout, args.session_timeout)
    except BenchError as err:
        print(f"bench_faust: {err}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "faust.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(f"{result['records']:,} exposure records, {result['partitions']} partitions")
    print(
        f"{'consumer':<16}{'records/s':>11}{'ratio':>9}{'CPU µs/rec':>12}{'ratio':>9}"
        f"{'peak RSS MB':>13}{'start-up s':>12}"
    )
    for kind, c in result["consumers"].items():
        r = result["ratios"][kind]
        print(
            f"{kind:<16}{c['rate']:>11,.0f}{r['rate']:>9.4f}{c['cpu_us_per_record']:>12.1f}"
            f"{r['cpu_per_record']:>9.1f}{c['peak_rss_mb']:>13.0f}{c['startup_s']:>12.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
