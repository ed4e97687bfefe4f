"""Scale-out on Kafka: stage one with 1, 2, 3 workers, stage two per tick, end to end (issue 14).

    .venv/bin/python benchmarks/bench_scale.py [--scenario demo] [--scale 2] [--partitions 6]
        [--workers 1,2,3] [--e2e-workers 1,2] [--timeout 240] [--out benchmarks/results]

On one embedded broker (Tansu), in one run.  The simulated election
(``scenario(S, seed=1, scale=X)``: duplicates, malformed lines and late deliveries included)
is produced, keyed by ``user`` as ``amplimon produce`` sends it, into input topics with
``--partitions`` P partitions (P units), followed by the end-of-stream markers (one per
partition of the exposure, ranking and panel topics).  Every phase below reads those same
topics, each in consumer groups and with internal/output topics of its own:

* **reference** — a child process assigned every input partition reads the P × 3 partitions
  as bytes with aiokafka ``getmany`` (stage one's client and batch size): records/s from the
  first record to the last, CPU µs per record, peak RSS (``_raw_consumers.py``).
* **stage one alone** with N = 1, 2, 3 ``amplimon worker`` processes in one group (no stage
  two, no sink).  Clock: from the first ``holding units`` line of any worker (assignment
  done, the first fetch follows) to the broker timestamp of the last unit's ``finished``
  progress message — the moment every partial and every progress message of every unit was
  sent (progress is sent after the partials it covers are acknowledged).  CPU: the sum over
  the worker processes (every thread) over that span, sampled every 50 ms and interpolated
  at both ends; per *input record* (records produced, markers excluded).  Peak RSS: each
  worker's ``VmHWM``.  ``rebalances`` counts ``gave up units`` lines: 0 means all N workers
  joined in one generation and no unit moved during the run.
* **stage two alone**: ``amplimon merge`` over the complete partials topic of the N = 1 run
  (it reads it from the beginning, as after any start).  Clock: from its ``merging partials
  partitions`` line to the broker timestamp of the last row it sent (the final updates and
  detectability after every unit finished).  Per merged tick (distinct (platform, tick)
  pairs holding partials: each is one ``Analysis.run``), per partial message and per event
  carried in the partials.  Reference: kafka-python (stage two's client) reading the partials
  topic as bytes; and the same without CRC checks (kafka-python's CRC-32C is pure Python
  unless the ``crc32c`` package is installed: part of stage two's cost per byte).
* **end to end** with N = 1 and 2 workers: workers + merge + sink (``LiveStack``) from the
  first ``holding units`` line to the last DuckDB write (the newest modification time of the
  database file and its WAL, read once the sink has committed every output offset); CPU of
  every process, the broker's included; the store's tables compared between runs.

Counts are exact, checked and recorded: every input message was read (``worker stopped``
lines), the units' final counters account for every record produced, stage two merged every
partial message and every tick (its ``merge:`` status line), and the end-to-end runs wrote the
same finding ids and the same numbers of rows.  A failed check raises ``BenchError`` (one
line).  The machine (cores, load) is recorded: with more processes than cores, the scaling
figure measures the cores, not the design (``docs/live.md``).

Prints a table and writes ``benchmarks/results/scale.json``.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform as _platform
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # imported from the tests
    sys.path.insert(0, str(HERE))

import psutil  # noqa: E402

from streams.kafka.broker import EmbeddedBroker  # noqa: E402
from streams.kafka.stack import LiveStack, Service  # noqa: E402
from streams.kafka.topics import create_topics, group_lag  # noqa: E402
from streams.settings import Settings  # noqa: E402

__all__ = ["BenchError", "run"]

_INTERNAL = ("findings", "deadletter", "measurements", "detectability", "state", "partials")
_OUTPUTS = ("findings", "measurements", "deadletter", "detectability")


class BenchError(RuntimeError):
    """A phase failed or a count is not exact (one-line message)."""


# -- processes: CPU and memory ----------------------------------------------------------------
class CpuSampler(threading.Thread):
    """Every ``interval`` s: wall clock (``time.time()``) and CPU seconds (user + system, every
    thread) of each named process; :meth:`cpu_between` interpolates at any two instants."""

    def __init__(self, pids: dict[str, int], interval: float = 0.05) -> None:
        super().__init__(name="cpu-sampler", daemon=True)
        self.procs = {n: psutil.Process(p) for n, p in pids.items()}
        self.interval = interval
        self.rows: list[tuple[float, dict[str, float]]] = []
        self.halt = threading.Event()
        psutil.cpu_percent()  # starts the machine-wide interval
        self._sample()

    def _sample(self) -> None:
        cpu = {}
        for name, p in self.procs.items():
            try:
                t = p.cpu_times()
                cpu[name] = t.user + t.system
            except psutil.Error:
                cpu[name] = self.rows[-1][1].get(name, 0.0) if self.rows else 0.0
        self.rows.append((time.time(), cpu))

    def run(self) -> None:
        while not self.halt.wait(self.interval):
            self._sample()

    def stop(self) -> float:
        """Stop sampling; returns the machine's CPU % since creation."""
        self.halt.set()
        self.join()
        self._sample()
        return psutil.cpu_percent()

    def _at(self, t: float) -> dict[str, float]:
        rows = self.rows
        if t <= rows[0][0]:
            return dict(rows[0][1])
        for (t0, a), (t1, b) in zip(rows, rows[1:], strict=False):
            if t0 <= t <= t1:
                w = (t - t0) / (t1 - t0) if t1 > t0 else 1.0
                return {n: a[n] + w * (b[n] - a[n]) for n in a}
        return dict(rows[-1][1])

    def cpu_between(self, t0: float, t1: float) -> dict[str, float]:
        a, b = self._at(t0), self._at(t1)
        return {n: b[n] - a[n] for n in a}


def peak_rss_mb(pid: int) -> float:
    """A process's peak resident set size (``VmHWM``), MB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise BenchError(f"no VmHWM for process {pid}")


def machine() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            model = next(
                (ln.split(":", 1)[1].strip() for ln in info if ln.startswith("model name")), ""
            )
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": _platform.python_version(),
        "memory_gb": psutil.virtual_memory().total / 2**30,
        "load_avg_start": os.getloadavg()[0],
    }


# -- Kafka helpers ----------------------------------------------------------------------------
def _consumer(bootstrap: str, topics: list[str]) -> tuple[Any, list[Any]]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, max_partition_fetch_bytes=16 << 20
    )
    tps = [
        TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())
    ]
    consumer.assign(tps)
    return consumer, tps


def read_all(
    bootstrap: str,
    topics: list[str],
    each: Callable[[Any], None],
    *,
    start: str = "beginning",
    timeout: float = 120.0,
) -> None:
    """Call ``each`` on every message of ``topics`` up to each partition's high-water mark
    (from the beginning, or from the last batch: ``start="last"``).  High-water marks from
    fetches, not ListOffsets: the embedded broker's ListOffsets can answer less."""
    consumer, tps = _consumer(bootstrap, topics)
    try:
        if start == "last":
            ends = consumer.end_offsets(tps)
            for tp in tps:
                consumer.seek(tp, max(0, ends[tp] - 1))
        else:
            consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200, max_records=20_000).values():
                for r in records:
                    each(r)
            highs = [consumer.highwater(tp) for tp in tps]
            if all(
                h is not None and consumer.position(tp) >= h
                for tp, h in zip(tps, highs, strict=True)
            ):
                return
        raise BenchError(f"{', '.join(topics)}: not read to the end within {timeout:g} s")
    finally:
        consumer.close(autocommit=False)


def last_timestamp_ms(bootstrap: str, topics: list[str]) -> int:
    """The newest broker timestamp (the producer's send time) on ``topics``."""
    newest = [0]

    def see(r: Any) -> None:
        newest[0] = max(newest[0], r.timestamp)

    read_all(bootstrap, topics, see, start="last")
    return newest[0]


def read_partials(bootstrap: str, topic: str) -> dict[str, Any]:
    """Everything stage one sent: partial and progress messages, ticks, events carried, and
    per unit its first ``finished`` progress (time and final counters)."""
    from monitor.engine.partials import TickPartial, decode

    out: dict[str, Any] = {
        "partial_messages": 0,
        "progress_messages": 0,
        "events": 0,
        "partial_bytes": 0,
        "max_partial_bytes": 0,
    }
    ticks: set[tuple[str, int]] = set()
    units: set[int] = set()
    finished: dict[int, tuple[int, dict[str, Any]]] = {}

    def see(r: Any) -> None:
        m = decode(r.value)
        if isinstance(m, TickPartial):
            out["partial_messages"] += 1
            out["events"] += len(m.exposures) + len(m.rankings) + len(m.panel)
            out["partial_bytes"] += len(r.value)
            out["max_partial_bytes"] = max(out["max_partial_bytes"], len(r.value))
            ticks.add((m.platform, m.index))
            units.add(m.unit)
            return
        out["progress_messages"] += 1
        if m.finished and m.unit not in finished:
            import msgspec

            finished[m.unit] = (r.timestamp, msgspec.to_builtins(m.counts))

    read_all(bootstrap, [topic], see)
    out["ticks"] = len(ticks)
    out["platforms"] = len({p for p, _ in ticks})
    out["units_with_partials"] = len(units)
    out["units_finished"] = len(finished)
    out["finished_ms"] = max((t for t, _ in finished.values()), default=0)
    totals: dict[str, int] = {}
    for _, counts in finished.values():
        for key, value in counts.items():
            totals[key] = totals.get(key, 0) + (
                sum(value.values()) if isinstance(value, dict) else value
            )
    out["counts"] = totals
    return out


def checkpoint_bytes(bootstrap: str, topic: str) -> dict[str, int]:
    """Size of each unit's last checkpoint (its last manifest in the state topic)."""
    sizes: dict[str, int] = {}

    def see(r: Any) -> None:
        key = (r.key or b"").decode()
        if key.endswith("/manifest") and r.value:
            sizes[key.removesuffix("/manifest").rsplit("/", 1)[-1]] = json.loads(r.value)["bytes"]

    read_all(bootstrap, [topic], see)
    return sizes


# -- one run's context ------------------------------------------------------------------------
class Bench:
    """The broker, the simulated election on the input topics, and each phase."""

    def __init__(
        self,
        broker: EmbeddedBroker,
        work: Path,
        partitions: int,
        timeout: float,
        session_timeout: float = 6.0,
    ) -> None:
        self.broker, self.work, self.partitions = broker, work, partitions
        self.timeout, self.session_timeout = timeout, session_timeout
        self.inputs = {
            "topic_exposure": "scale.exposure",
            "topic_ranking": "scale.ranking",
            "topic_panel": "scale.panel",
        }
        self.config: Path | None = None
        self.records = 0  # produced
        self.messages = 0  # on the input topics: records + end-of-stream markers

    def settings(self, prefix: str) -> Settings:
        return Settings(
            broker=self.broker.bootstrap,
            partitions=self.partitions,
            group_id=f"{prefix}-amplimon",
            data_dir=str(self.work / "data"),
            **self.inputs,
            **{f"topic_{t}": f"{prefix}.{t}" for t in _INTERNAL},
        )

    def stack(self, prefix: str, workers: int = 0) -> LiveStack:
        assert self.config is not None
        (self.work / prefix).mkdir(parents=True, exist_ok=True)
        # a later --session-timeout overrides the stack's own (6 s)
        timeouts = ("--session-timeout", f"{self.session_timeout:g}")
        return LiveStack(
            self.config,
            self.work / f"{prefix}.duckdb",
            self.work / prefix,
            settings=self.settings(prefix),
            bootstrap=self.broker.bootstrap,
            checkpoint_seconds=5.0,
            workers=workers,
            worker_args=timeouts,
            merge_args=timeouts,
            sink_args=timeouts,
        )

    @property
    def broker_pid(self) -> int:
        assert self.broker.process is not None
        return self.broker.process.pid

    # -- input -----------------------------------------------------------------------------
    def load(self, scenario_name: str, scale: float) -> dict[str, Any]:
        from streams.kafka.producer import produce
        from streams.simulator import scenario, write_simulation

        paths = write_simulation(
            self.work / "sim", scenario(scenario_name, seed=1, scale=scale), fmt="jsonl.gz"
        )
        self.config = Path(paths["config"])
        settings = self.settings("input")
        create_topics(settings)
        produced = produce(
            settings,
            [(paths["exposure"], "exposure"), (paths["ranking"], "ranking")],
            end_of_stream=True,
        )
        self.records = produced.total
        self.messages = produced.total + 3 * self.partitions
        return {
            "scenario": scenario_name,
            "scale": scale,
            "partitions": self.partitions,
            "records": produced.total,
            "by_topic": dict(produced.sent),
            "end_of_stream_markers": 3 * self.partitions,
            "produce_seconds": produced.seconds,
            "produce_rate": produced.total / produced.seconds,
        }

    def reference(self, kind: str, topics: list[str], records: int) -> dict[str, Any]:
        out = self.work / f"ref-{kind}-{uuid.uuid4().hex[:6]}.json"
        cmd = [
            sys.executable,
            str(HERE / "_raw_consumers.py"),
            "--kind",
            kind,
            "--bootstrap",
            self.broker.bootstrap,
            "--topics",
            ",".join(topics),
            "--records",
            str(records),
            "--timeout",
            str(self.timeout),
            "--out",
            str(out),
        ]
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            cwd=ROOT,  # noqa: S603
            timeout=self.timeout + 60,
            check=False,
        )
        if not out.exists():
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise BenchError(f"reference {kind}: exit {proc.returncode} without a result ({tail})")
        result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
        if "error" in result:
            raise BenchError(f"reference {result['error']}")
        return result

    # -- waiting ---------------------------------------------------------------------------
    def _wait(
        self, stack: LiveStack, predicate: Callable[[], bool], what: str, interval: float = 0.02
    ) -> float:
        """Poll until ``predicate``; returns the wall clock (``time.time()``) when it held."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if predicate():
                return time.time()
            for s in stack.services.values():
                if s.process is not None and s.process.poll() is not None:
                    raise BenchError(
                        f"{s.name} exited with {s.process.returncode} while "
                        f"waiting for {what}: "
                        f"{(s.log_text().strip().splitlines() or [''])[-1]}"
                    )
            time.sleep(interval)
        raise BenchError(f"timed out after {self.timeout:g} s waiting for {what}")

    def _lag_zero(self, settings: Settings, group: str, topics: list[str]) -> Callable[[], bool]:
        return lambda: group_lag(settings, group, topics) == 0

    def _inputs(self) -> list[str]:
        return list(self.inputs.values())

    # -- stage one -------------------------------------------------------------------------
    def stage_one(self, n: int) -> dict[str, Any]:
        prefix = f"s1w{n}"
        stack = self.stack(prefix)
        settings = stack.settings
        create_topics(settings)
        workers: list[Service] = []
        try:
            workers = [stack.start_worker() for _ in range(n)]
            sampler = CpuSampler({w.name: _pid(w) for w in workers} | {"broker": self.broker_pid})
            sampler.start()
            t_start = self._wait(
                stack,
                lambda: any("holding units" in w.log_text() for w in workers),
                "a worker to join",
            )
            self._wait(
                stack,
                self._lag_zero(settings, settings.group_id, self._inputs()),
                f"{n} worker(s) to commit every input offset",
                interval=0.1,
            )
            peaks = {w.name: peak_rss_mb(_pid(w)) for w in workers}
            machine_pct = sampler.stop()
        finally:
            stack.stop()
        logs = {w.name: w.log_text() for w in workers}
        stopped = [_stopped(w.name, text) for w, text in zip(workers, logs.values(), strict=True)]
        sent = read_partials(self.broker.bootstrap, settings.topic_partials)
        t_end = sent["finished_ms"] / 1000
        cpu = sampler.cpu_between(t_start, t_end)
        worker_cpu = sum(v for k, v in cpu.items() if k != "broker")
        seconds = t_end - t_start
        read = sum(s["messages"] for s in stopped)
        result = {
            "workers": n,
            "seconds": seconds,
            "rate": self.records / seconds,
            "cpu_s": worker_cpu,
            "cpu_us_per_record": 1e6 * worker_cpu / self.records,
            "broker_cpu_s": cpu["broker"],
            "machine_cpu_pct": machine_pct,
            "peak_rss_mb": peaks,
            "messages_read": read,
            "messages_read_by_worker": {s["name"]: s["messages"] for s in stopped},
            "units_held_at_stop": {s["name"]: s.get("units_held") for s in stopped},
            "rebalances": sum(text.count("gave up units") for text in logs.values()),
            "partials": sent,
            "load_avg_end": os.getloadavg()[0],
        }
        if n == 1:
            result["checkpoint_bytes"] = checkpoint_bytes(
                self.broker.bootstrap, settings.topic_state
            )
        self._check_stage_one(result)
        return result

    def _check_stage_one(self, r: dict[str, Any]) -> None:
        n, sent = r["workers"], r["partials"]
        if r["messages_read"] != self.messages and not r["rebalances"]:
            raise BenchError(
                f"stage one with {n} worker(s) read {r['messages_read']:,} input "
                f"messages, not {self.messages:,}"
            )
        if sent["units_finished"] != self.partitions:
            raise BenchError(
                f"stage one with {n} worker(s): {sent['units_finished']} of "
                f"{self.partitions} units finished"
            )
        c = sent["counts"]
        accounted = sum(c.get(k, 0) for k in ("accepted", "duplicates", "late", "rejected"))
        if accounted != self.records:
            raise BenchError(
                f"stage one with {n} worker(s): the units account for "
                f"{accounted:,} records, not {self.records:,} ({c})"
            )

    # -- stage two -------------------------------------------------------------------------
    def stage_two(self, prefix: str, sent: dict[str, Any]) -> dict[str, Any]:
        stack = self.stack(prefix)
        settings = stack.settings
        messages = sent["partial_messages"] + sent["progress_messages"]
        reference = self.reference("kafka-python", [settings.topic_partials], messages)
        nocrc = self.reference("kafka-python-nocrc", [settings.topic_partials], messages)
        try:
            merge = stack.start_merge()
            sampler = CpuSampler({"merge": _pid(merge), "broker": self.broker_pid})
            sampler.start()
            t_start = self._wait(
                stack,
                lambda: (
                    re.search(r"merging partials partitions \[\d", merge.log_text()) is not None
                ),
                "stage two to take its partition",
            )
            self._wait(
                stack,
                self._lag_zero(settings, f"{settings.group_id}-merge", [settings.topic_partials]),
                "stage two to commit every partial",
                interval=0.1,
            )
            peak = peak_rss_mb(_pid(merge))
            machine_pct = sampler.stop()
        finally:
            stack.stop()
        status = _merge_status(merge.log_text())
        outputs = [getattr(settings, f"topic_{t}") for t in _OUTPUTS]
        t_end = last_timestamp_ms(self.broker.bootstrap, outputs) / 1000
        cpu = sampler.cpu_between(t_start, t_end)
        ticks, partials = sent["ticks"], sent["partial_messages"]
        result = {
            "seconds": t_end - t_start,
            "cpu_s": cpu["merge"],
            "broker_cpu_s": cpu["broker"],
            "machine_cpu_pct": machine_pct,
            "peak_rss_mb": peak,
            "merged": status,
            "ticks": ticks,
            "partial_messages": partials,
            "progress_messages": sent["progress_messages"],
            "events": sent["events"],
            "partials_per_tick": partials / ticks,
            "cpu_ms_per_tick": 1e3 * cpu["merge"] / ticks,
            "cpu_ms_per_partial": 1e3 * cpu["merge"] / partials,
            "cpu_us_per_event": 1e6 * cpu["merge"] / sent["events"],
            "ticks_per_s": ticks / (t_end - t_start),
            "events_per_s": sent["events"] / (t_end - t_start),
            "reference_kafka_python": reference,
            "kafka_python_without_crc_check": nocrc,
            "ratios": {
                "rate": (messages / (t_end - t_start)) / reference["rate"],
                "cpu_per_message": (1e6 * cpu["merge"] / messages) / reference["cpu_us_per_record"],
            },
        }
        if (
            status["messages"] != messages
            or status["ticks"] != ticks
            or status["stale"]
            or not status["finished"]
        ):
            raise BenchError(
                f"stage two merged {status}, expected {messages:,} messages and "
                f"{ticks:,} ticks, none stale, finished"
            )
        return result

    # -- end to end ------------------------------------------------------------------------
    def end_to_end(self, n: int) -> dict[str, Any]:
        prefix = f"e2e{n}"
        stack = self.stack(prefix, workers=n)
        settings = stack.settings
        outputs = [getattr(settings, f"topic_{t}") for t in _OUTPUTS]
        try:
            stack.start()
            services = list(stack.services.values())
            workers = [s for s in services if s.name.startswith("worker")]
            sampler = CpuSampler({s.name: _pid(s) for s in services} | {"broker": self.broker_pid})
            sampler.start()
            t_start = self._wait(
                stack,
                lambda: any("holding units" in w.log_text() for w in workers),
                "a worker to join",
            )
            self._wait(
                stack,
                self._lag_zero(settings, settings.group_id, self._inputs()),
                "the workers to commit every input offset",
                interval=0.1,
            )
            self._wait(
                stack,
                self._lag_zero(settings, f"{settings.group_id}-merge", [settings.topic_partials]),
                "stage two to commit every partial",
                interval=0.1,
            )
            t_done = self._wait(
                stack,
                self._lag_zero(settings, f"{settings.group_id}-sink", outputs),
                "the sink to commit every output",
                interval=0.1,
            )
            db = stack.db
            t_end = max(
                p.stat().st_mtime for p in (db, db.with_name(db.name + ".wal")) if p.exists()
            )
            peaks = {s.name: peak_rss_mb(_pid(s)) for s in services}
            machine_pct = sampler.stop()
        finally:
            stack.stop()
        stopped = [_stopped(w.name, w.log_text()) for w in workers]
        cpu = sampler.cpu_between(t_start, t_end)
        seconds = t_end - t_start
        total = sum(cpu.values())
        return {
            "workers": n,
            "seconds": seconds,
            "rate": self.records / seconds,
            "detected_after_s": t_done - t_end,
            "cpu_s": cpu,
            "cpu_s_total": total,
            "cpu_us_per_record": {
                "total": 1e6 * total / self.records,
                "workers": 1e6
                * sum(v for k, v in cpu.items() if k.startswith("worker"))
                / self.records,
                **{k: 1e6 * v / self.records for k, v in cpu.items() if not k.startswith("worker")},
            },
            "machine_cpu_pct": machine_pct,
            "peak_rss_mb": peaks,
            "messages_read": sum(s["messages"] for s in stopped),
            "rebalances": sum(w.log_text().count("gave up units") for w in workers),
            "store": _store_summary(stack.db),
            "load_avg_end": os.getloadavg()[0],
        }


def _pid(service: Service) -> int:
    assert service.process is not None
    return service.process.pid


def _stopped(name: str, log_text: str) -> dict[str, Any]:
    """The counters of a worker's ``worker stopped: {...}`` line."""
    found = re.findall(r"^worker stopped: (\{.*\})$", log_text, flags=re.M)
    if not found:
        raise BenchError(f"{name} did not report its counters on stopping")
    return {"name": name, **ast.literal_eval(found[-1])}


def _merge_status(log_text: str) -> dict[str, Any]:
    """The last ``merge: M messages, T ticks, R rows sent[, S stale dropped], finished
    partitions [...]`` line."""
    found = re.findall(
        r"^merge: ([\d,]+) messages, ([\d,]+) ticks, ([\d,]+) rows sent, "
        r"(?:([\d,]+) stale dropped, )?finished partitions \[(.*)\]$",
        log_text,
        flags=re.M,
    )
    if not found:
        raise BenchError("stage two did not report its counters")
    m, t, r, stale, f = found[-1]
    return {
        "messages": int(m.replace(",", "")),
        "ticks": int(t.replace(",", "")),
        "rows_sent": int(r.replace(",", "")),
        "stale": int(stale.replace(",", "") or 0),
        "finished": [int(x) for x in f.split(",") if x.strip()],
    }


def _store_summary(db: Path) -> dict[str, Any]:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:

        def count(table: str) -> int:
            return int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608

        ids = sorted(r[0] for r in con.execute("SELECT finding_id FROM findings").fetchall())
        return {
            "findings": len(ids),
            "finding_ids": ids,
            "amplification": count("amplification"),
            "deadletter": count("deadletter"),
            "detectability": count("detectability"),
        }
    finally:
        con.close()


# -- the whole run ----------------------------------------------------------------------------
def run(
    scenario: str = "demo",
    scale: float = 2.0,
    partitions: int = 6,
    workers: tuple[int, ...] = (1, 2, 3),
    e2e_workers: tuple[int, ...] = (1, 2),
    timeout: float = 240.0,
    session_timeout: float = 6.0,
) -> dict[str, Any]:
    """The whole benchmark on a fresh embedded broker; see the module docstring."""
    if 1 not in workers:
        raise ValueError("workers must include 1 (stage two reads the 1-worker partials)")
    result: dict[str, Any] = {"machine": machine()}
    with (
        tempfile.TemporaryDirectory(prefix="amplimon-scale-") as tmp,
        EmbeddedBroker(log_file=Path(tmp) / "broker.log") as broker,
    ):
        bench = Bench(broker, Path(tmp), partitions, timeout, session_timeout)
        result["session_timeout_s"] = session_timeout
        result["input"] = bench.load(scenario, scale)
        ref = bench.reference("aiokafka", bench._inputs(), bench.messages)
        result["reference_aiokafka"] = ref
        # the other client, same topics and records: why stage one reads with aiokafka
        kp = bench.reference("kafka-python", bench._inputs(), bench.messages)
        kp["ratios"] = {
            "rate": kp["rate"] / ref["rate"],
            "cpu_per_record": kp["cpu_us_per_record"] / ref["cpu_us_per_record"],
        }
        result["reference_kafka_python"] = kp
        stage_one = {}
        for n in workers:
            r = bench.stage_one(n)
            r["ratios"] = {
                "rate": r["rate"] / ref["rate"],
                "cpu_per_record": r["cpu_us_per_record"] / ref["cpu_us_per_record"],
            }
            stage_one[str(n)] = r
        one = stage_one["1"]
        for r in stage_one.values():
            r["vs_one_worker"] = {
                "rate": r["rate"] / one["rate"],
                "cpu_per_record": r["cpu_us_per_record"] / one["cpu_us_per_record"],
            }
        result["stage_one"] = stage_one
        result["stage_two"] = bench.stage_two("s1w1", one["partials"])
        e2e = {}
        for n in e2e_workers:
            r = bench.end_to_end(n)
            r["ratio_to_reference"] = r["rate"] / ref["rate"]
            e2e[str(n)] = r
        stores = {json.dumps(r["store"], sort_keys=True) for r in e2e.values()}
        if len(stores) > 1:
            raise BenchError(
                "the end-to-end runs wrote different stores: "
                + "; ".join(f"{n} worker(s): {_brief(r['store'])}" for n, r in e2e.items())
            )
        for n, r in e2e.items():
            if r["messages_read"] != bench.messages and not r["rebalances"]:
                raise BenchError(
                    f"end to end with {n} worker(s) read {r['messages_read']:,} "
                    f"input messages, not {bench.messages:,}"
                )
        result["end_to_end"] = e2e
        result["machine"]["load_avg_end"] = os.getloadavg()[0]
    return result


def _brief(store: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in store.items() if k != "finding_ids")


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def print_table(result: dict[str, Any]) -> None:
    inp, ref = result["input"], result["reference_aiokafka"]
    print(
        f"{inp['records']:,} records ({inp['scenario']}, scale {inp['scale']:g}), "
        f"{inp['partitions']} partitions, {result['machine']['cpus']} cores"
    )
    print(f"{'':<28}{'records/s':>11}{'÷ ref':>8}{'CPU µs/rec':>12}{'× ref':>8}{'peak RSS MB':>14}")
    print(
        f"{'aiokafka bytes (reference)':<28}{ref['rate']:>11,.0f}{1:>8.2f}"
        f"{ref['cpu_us_per_record']:>12.1f}{1:>8.1f}{ref['peak_rss_mb']:>14.0f}"
    )
    kp = result.get("reference_kafka_python")
    if kp:
        print(
            f"{'kafka-python bytes':<28}{kp['rate']:>11,.0f}{kp['ratios']['rate']:>8.2f}"
            f"{kp['cpu_us_per_record']:>12.1f}{kp['ratios']['cpu_per_record']:>8.1f}"
            f"{kp['peak_rss_mb']:>14.0f}"
        )
    for n, r in result["stage_one"].items():
        rss = "/".join(f"{v:.0f}" for v in r["peak_rss_mb"].values())
        print(
            f"{'stage one, ' + n + ' worker(s)':<28}{r['rate']:>11,.0f}"
            f"{r['ratios']['rate']:>8.2f}{r['cpu_us_per_record']:>12.1f}"
            f"{r['ratios']['cpu_per_record']:>8.1f}{rss:>14}"
        )
    s2 = result["stage_two"]
    print(
        f"stage two: {s2['ticks']:,} ticks, {s2['partial_messages']:,} partials, "
        f"{s2['events']:,} events in {s2['seconds']:.1f} s; {s2['cpu_ms_per_tick']:.1f} CPU "
        f"ms/tick, {s2['cpu_ms_per_partial']:.2f} ms/partial, {s2['cpu_us_per_event']:.1f} "
        f"µs/event, peak RSS {s2['peak_rss_mb']:.0f} MB"
    )
    for n, r in result["end_to_end"].items():
        print(
            f"end to end, {n} worker(s): {r['rate']:,.0f} records/s "
            f"({r['ratio_to_reference']:.2f} of the reference), "
            f"{r['cpu_us_per_record']['total']:.1f} CPU µs/record in all processes"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="demo")
    parser.add_argument("--scale", type=float, default=2.0)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--workers", type=_ints, default=(1, 2, 3))
    parser.add_argument("--e2e-workers", type=_ints, default=(1, 2))
    parser.add_argument(
        "--timeout", type=float, default=240.0, help="seconds any one wait may take"
    )
    parser.add_argument(
        "--session-timeout",
        type=float,
        default=6.0,
        help="group session timeout of every process, s (the first join on "
        "the embedded broker takes about half of it; outside the clocks)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    try:
        result = run(
            args.scenario,
            args.scale,
            args.partitions,
            args.workers,
            args.e2e_workers,
            args.timeout,
            args.session_timeout,
        )
    except BenchError as err:
        print(f"bench_scale: {err}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scale.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
