"""Helpers shared by the live-pipeline benchmarks (``bench_e2e.py``, ``bench_soak.py``).

Imported after ``bench_*.py`` has put the repository root on ``sys.path``.
"""

from __future__ import annotations

import bisect
import itertools
import json
import os
import statistics
import threading
import time
from array import array
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pyarrow as pa

from streams.kafka._config import kafka_python_options
from streams.kafka.broker import EmbeddedBroker, admin_client
from streams.kafka.stack import LiveStack
from streams.kafka.topics import group_lag
from streams.settings import Settings
from streams.snapshot import read_table_file

__all__ = [
    "PROCESSES",
    "Sampler",
    "SendLog",
    "broker_growth",
    "drained",
    "lag_summary",
    "memory_verdict",
    "settings_for",
    "summary",
    "watch_findings",
]

#: The processes a live benchmark samples.
PROCESSES = ("broker", "worker", "sink", "benchmark")

#: Columns of a visible finding passed to ``watch_findings``' callback.
FindingRow = dict[str, Any]


def settings_for(broker: EmbeddedBroker | str, prefix: str, **extra: Any) -> Settings:
    """Six partitions and topics (inputs, outputs, worker state, partials) and groups named
    ``<prefix>.*`` on ``broker``."""
    bootstrap = broker if isinstance(broker, str) else broker.bootstrap
    return Settings(
        broker=bootstrap,
        partitions=6,
        group_id=f"{prefix}-amplimon",
        **{
            f"topic_{t}": f"{prefix}.{t}"
            for t in (
                "exposure",
                "ranking",
                "panel",
                "findings",
                "deadletter",
                "measurements",
                "detectability",
                "state",
                "partials",
            )
        },
        **extra,
    )


def drained(stack: LiveStack) -> bool:
    """Every input record committed by the workers, every partial by stage two and every
    output by the sink.  In that order: stage two's lag is final only once the workers have
    sent everything, and the sink's once stage two has."""
    s = stack.settings
    outs = [s.topic_findings, s.topic_measurements, s.topic_deadletter, s.topic_detectability]
    return (
        group_lag(s, s.group_id, [s.topic_exposure, s.topic_ranking, s.topic_panel]) == 0
        and group_lag(s, f"{s.group_id}-merge", [s.topic_partials]) == 0
        and group_lag(s, f"{s.group_id}-sink", outs) == 0
    )


def watch_findings(
    directory: Path,
    seen: dict[str, tuple[float, int]],
    stop: threading.Event,
    *,
    interval: float = 0.05,
    on_new: Callable[[FindingRow], None] | None = None,
) -> None:
    """Poll the sink's ``findings.parquet`` snapshot until ``stop``; for each finding id not in
    ``seen`` record (``time.perf_counter()`` when first readable, ``event_time`` in epoch ms)
    and call ``on_new`` with its row (``finding_id``, ``detector``, ``kind``, ``subject``,
    ``event_ms``, ``visible``).

    The snapshot file is replaced atomically by the sink, so "readable here" is what the
    dashboard can show.
    """
    path = Path(directory) / "findings.parquet"
    while not stop.is_set():
        try:
            table = read_table_file(path)
        except Exception:  # noqa: BLE001  # counted as not yet visible
            table = None
        now = time.perf_counter()
        if table is not None and table.num_rows > len(seen):
            ids = table.column("finding_id").to_pylist()
            fresh = [i for i, fid in enumerate(ids) if fid not in seen]
            if fresh:
                rows = table.take(fresh)
                event_ms = _epoch_ms(rows.column("event_time"))
                cols = {c: rows.column(c).to_pylist() for c in ("detector", "kind", "subject")}
                for j, i in enumerate(fresh):
                    seen[ids[i]] = (now, event_ms[j])
                    if on_new is not None:
                        on_new(
                            {
                                "finding_id": ids[i],
                                "event_ms": event_ms[j],
                                "visible": now,
                                **{c: v[j] for c, v in cols.items()},
                            }
                        )
        time.sleep(interval)


def _epoch_ms(column: pa.ChunkedArray) -> list[int]:
    per_ms = {"s": 0.001, "ms": 1, "us": 1000, "ns": 1_000_000}[column.type.unit]
    return [int(v // per_ms) for v in column.cast(pa.int64()).to_pylist()]


def summary(values: Sequence[float], quantiles: Sequence[float] = (0.95,)) -> dict:
    """``n``, ``p50`` (the median), ``p<q>`` for each quantile (nearest rank above) and ``max``."""
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    out: dict[str, float] = {"n": len(ordered), "p50": statistics.median(ordered)}
    for q in quantiles:
        out[f"p{round(q * 100):d}"] = ordered[min(len(ordered) - 1, int(q * len(ordered)))]
    out["max"] = ordered[-1]
    return out


class SendLog:
    """Wall time at which each event was sent, looked up by event time; the last ``keep_s``
    seconds only, so a long run's look-ups cost no growing memory.

    Event times are stored as their running maximum, so a slightly out-of-order stream (late
    deliveries) still bisects: "the last event with ``ts <= t``" is the last one sent before
    the stream first passed ``t``.
    """

    def __init__(self, keep_s: float) -> None:
        self.keep_s = keep_s
        self.ts = array("q")
        self.wall = array("d")

    def add(self, ts: int, wall: float) -> None:
        self.ts.append(max(ts, self.ts[-1]) if self.ts else ts)
        self.wall.append(wall)
        if len(self.wall) > 4096 and self.wall[0] < wall - 2 * self.keep_s:
            cut = bisect.bisect_left(self.wall, wall - self.keep_s)
            del self.ts[:cut]
            del self.wall[:cut]

    def last_at_or_before(self, ts: int) -> float | None:
        i = bisect.bisect_right(self.ts, ts) - 1
        return self.wall[i] if i >= 0 else None

    def first_at_or_after(self, ts: int) -> float | None:
        i = bisect.bisect_left(self.ts, ts)
        return self.wall[i] if i < len(self.ts) else None


class Sampler(threading.Thread):
    """Every ``interval`` s: RSS (MB, process tree) and CPU % of each named process, the
    machine's load average and CPU %, input and
    output end offsets, the worker's and the sink's committed offsets, the DuckDB file
    (+ WAL) size, messages in the worker-state topic and the size of the latest checkpoint,
    and whatever ``extra()`` returns; rows in :attr:`samples`, ``t`` = s since creation."""

    def __init__(
        self,
        pids: dict[str, int],
        settings: Settings,
        db: Path,
        interval: float,
        extra: Callable[[], dict[str, Any]],
    ) -> None:
        super().__init__(name="sampler", daemon=True)
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.settings, self.db, self.interval, self.extra = settings, db, interval, extra
        self.samples: list[dict[str, Any]] = []
        self.stop = threading.Event()
        self.t0 = time.perf_counter()
        self.errors = 0
        self.first_error: str | None = None

    def run(self) -> None:
        from kafka import KafkaConsumer, TopicPartition

        s = self.settings
        options = kafka_python_options(s)
        admin = admin_client(**options)
        consumer = KafkaConsumer(**options, enable_auto_commit=False)
        inputs = [s.topic_exposure, s.topic_ranking]
        outputs = [
            s.topic_findings,
            s.topic_measurements,
            s.topic_deadletter,
            s.topic_detectability,
        ]
        tps = {
            t: [TopicPartition(t, p) for p in sorted(consumer.partitions_for_topic(t) or ())]
            for t in inputs + outputs
        }
        tp_in = [tp for t in inputs for tp in tps[t]]
        tp_out = [tp for t in outputs for tp in tps[t]]
        state = KafkaConsumer(
            **options, enable_auto_commit=False, max_partition_fetch_bytes=1 << 20
        )
        state.assign([TopicPartition(s.topic_state, 0)])
        psutil.cpu_percent()
        for p in self.procs.values():
            p.cpu_percent()  # the first call only starts the interval
        try:
            while True:
                row = self._sample(admin, consumer, tp_in, tp_out)
                row.update(self._checkpoint(state))
                self.samples.append(row)
                if self.stop.wait(self.interval):
                    break
        finally:
            state.close(autocommit=False)
            consumer.close(autocommit=False)
            admin.close()

    def _checkpoint(self, state: Any) -> dict[str, Any]:
        """Messages in the worker-state topic, and generation and compressed size of the
        worker's latest checkpoint (its manifest, when it is the topic's last message)."""
        try:
            (tp,) = state.assignment()
            end = state.end_offsets([tp])[tp]
            out: dict[str, Any] = {"state_messages": end}
            if end:
                state.seek(tp, end - 1)
                for rec in state.poll(timeout_ms=1000, max_records=1).get(tp, []):
                    if (rec.key or b"").endswith(b"/manifest"):
                        manifest = json.loads(rec.value)
                        out["checkpoint_generation"] = manifest["generation"]
                        out["checkpoint_mb"] = manifest["bytes"] / 2**20
            return out
        except Exception as err:  # noqa: BLE001  # a missed sample, not a failed run
            self.errors += 1
            self.first_error = self.first_error or repr(err)
            return {}

    def _sample(
        self, admin: Any, consumer: Any, tp_in: list[Any], tp_out: list[Any]
    ) -> dict[str, Any]:
        row: dict[str, Any] = {
            "t": time.perf_counter() - self.t0,
            "rss_mb": {},
            "cpu_pct": {},
            "load_avg_1m": os.getloadavg()[0],
            "machine_cpu_pct": psutil.cpu_percent(),
        }
        trees = {name: self._tree(p) for name, p in self.procs.items()}
        for name, p in self.procs.items():
            # each process with its own children, not those of another named process
            others = {q.pid for n, tree in trees.items() if n != name for q in tree}
            try:
                own = [q for q in trees[name] if q.pid not in others or q.pid == p.pid]
                row["rss_mb"][name] = sum(q.memory_info().rss for q in own) / 2**20
                row["cpu_pct"][name] = p.cpu_percent()
            except psutil.Error:
                row["rss_mb"][name] = row["cpu_pct"][name] = None
        try:
            # commits first, then end offsets: a commit can never pass the end read after it
            worker = self._committed(admin, self.settings.group_id, tp_in)
            sink = self._committed(admin, f"{self.settings.group_id}-sink", tp_out)
            ends = consumer.end_offsets(tp_in + tp_out)
            row["input_end"] = sum(ends[tp] for tp in tp_in)
            row["worker_committed"] = worker
            row["output_end"] = sum(ends[tp] for tp in tp_out)
            row["sink_committed"] = sink
        except Exception as err:  # noqa: BLE001  # a missed sample, not a failed run
            self.errors += 1
            self.first_error = self.first_error or repr(err)
        files = (self.db, self.db.with_name(self.db.name + ".wal"))
        row["db_mb"] = sum(f.stat().st_size for f in files if f.exists()) / 2**20
        row.update(self.extra())
        return row

    @staticmethod
    def _tree(p: psutil.Process) -> list[psutil.Process]:
        try:
            return [p, *p.children(recursive=True)]
        except psutil.Error:
            return [p]

    @staticmethod
    def _committed(admin: Any, group: str, tps: list[Any]) -> int:
        offsets = admin.list_group_offsets({group: tps}).get(group, {})
        return sum(max(0, offsets[tp].offset) for tp in tps if tp in offsets)


# -- analysis of Sampler rows ----------------------------------------------------------------
def memory_verdict(
    samples: list[dict[str, Any]],
    start: float,
    end: float,
    speed: float,
    flat_mb: float = 10.0,
    flat_share: float = 0.05,
) -> dict[str, Any]:
    """Per process: peak RSS over the whole run; over the soak ``[start, end]`` the mean RSS
    of its 2nd and 4th quarters, the growth between them, and the least-squares slope over its
    second half (MB per wall hour and per simulated hour)."""
    span = end - start
    out: dict[str, Any] = {
        "rule": f"flat when Q4 mean - Q2 mean <= max({flat_mb:g} MB, {flat_share:.0%} of Q2 mean)",
        "soak_window_s": [start, end],
    }
    for name in PROCESSES:
        every = [r["rss_mb"].get(name) for r in samples]
        pts = [
            (r["t"], r["rss_mb"][name])
            for r in samples
            if start <= r["t"] <= end and r["rss_mb"].get(name) is not None
        ]
        q2 = [v for t, v in pts if start + span / 4 <= t < start + span / 2]
        q4 = [v for t, v in pts if t >= start + 3 * span / 4]
        half = [(t, v) for t, v in pts if t >= start + span / 2]
        row: dict[str, Any] = {"peak_mb": max((v for v in every if v is not None), default=None)}
        if q2 and q4 and len(half) >= 2:
            q2m, q4m = float(np.mean(q2)), float(np.mean(q4))
            slope = float(np.polyfit([t for t, _ in half], [v for _, v in half], 1)[0]) * 3600
            row.update(
                q2_mean_mb=q2m,
                q4_mean_mb=q4m,
                growth_mb=q4m - q2m,
                growth_pct=100 * (q4m - q2m) / q2m,
                slope_mb_per_wall_h=slope,
                slope_mb_per_sim_h=slope / speed,
                flat=q4m - q2m <= max(flat_mb, flat_share * q2m),
            )
        out[name] = row
    return out


def broker_growth(samples: list[dict[str, Any]], phase: str) -> dict[str, Any]:
    """What was written to the broker during ``phase`` against its RSS growth: input bytes
    sent and worker checkpoints (generations × compressed size, trapezoid)."""
    rows = [r for r in samples if r.get("phase") == phase]
    ckpt = [r for r in rows if r.get("checkpoint_generation")]
    written = sum(
        (b["checkpoint_generation"] - a["checkpoint_generation"])
        * (a["checkpoint_mb"] + b["checkpoint_mb"])
        / 2
        for a, b in itertools.pairwise(ckpt)
    )
    if not rows:
        return {}
    first, last = rows[0], rows[-1]
    return {
        "rss_growth_mb": last["rss_mb"]["broker"] - first["rss_mb"]["broker"],
        "input_sent_mb": last["sent_mb"] - first["sent_mb"],
        "checkpoints_written_mb": written,
        "checkpoints": (
            ckpt[-1]["checkpoint_generation"] - ckpt[0]["checkpoint_generation"] if ckpt else 0
        ),
        "checkpoint_mb_first_last": [ckpt[0]["checkpoint_mb"], ckpt[-1]["checkpoint_mb"]]
        if ckpt
        else None,
    }


def lag_summary(samples: list[dict[str, Any]], phase: str) -> dict[str, Any]:
    """Worker input and sink output lag over the samples of ``phase``."""
    soak = [r for r in samples if r.get("phase") == phase and "input_end" in r]
    worker = [r["input_end"] - r["worker_committed"] for r in soak]
    sink = [r["output_end"] - r["sink_committed"] for r in soak]
    return {
        "worker_input": summary(worker, (0.9, 0.99)),
        "sink_output": summary(sink, (0.9, 0.99)),
        "note": "committed offsets vs ListOffsets(latest).  The worker commits at its 5-s "
        "checkpoints, from the first event of a still-open tick.  Tansu 0.6 "
        "answers ListOffsets(latest) with the base offset of a partition's last "
        "batch, so end offsets (and these lags) are under-counted by the last "
        "batch; the sink's lag can read negative.",
    }
