"""Live pipeline end to end: throughput against raw Kafka consumption, and finding latency.

    .venv/bin/python benchmarks/bench_e2e.py [--scale 1] [--speed 10] [--paced-seconds 90]

On one embedded broker (Tansu), in one run:

**Throughput.**  The simulated election (``scenario("demo", scale=S)``) is produced into the
input topics (with end-of-stream markers).  Then

* *raw*: a plain kafka-python consumer reads both topics (no decoding) — the reference;
* *end to end*: ``amplimon worker`` + ``amplimon sink`` (processes, fresh groups) read the
  same topics, run every detector and write DuckDB; the clock runs from the worker's
  partition assignment to the moment every input and every output offset is committed
  (i.e. all findings, measurements and dead letters are in DuckDB).  Since the two-stage
  pipeline: ``amplimon worker`` + ``amplimon merge`` + ``amplimon sink``, and the clock stops
  when the workers, stage two and the sink have each committed everything
  (``_live.drained``).  Stage one alone, several workers and stage two's cost per tick:
  ``bench_scale.py``.

Both rates count input records per second from the first fetch; the ratio is the target
(≥ 0.5).  Process start-up and group joins are reported apart.

**Latency** (``--latency-workers 1,2``: one run per stage-one worker count, same input).
A denser election (10 × the users, timeline 20 × shorter) is fed as fast as
possible up to 2 min (event time) before the first window opens; once every stage has drained
that backlog, the rest is fed at ``--speed`` × real time for ``--paced-seconds``.  The config
uses ticks of 15 s and a lateness allowance of 6 s (the defaults, 15 min and 10 min, would
put (15 + 10) min / speed of pure event-time waiting into every figure).  For each finding
first written during the paced phase: *latency* = time it becomes readable in the sink's
Parquet snapshot − time the producer sent its evidence event (the last event with
``ts ≤ event_time``).  Part of it is event time: the tick must end and the lateness pass —
``(tick_end + lateness − ts) / speed``; *pipeline latency* = readable − sent time of the
first event at ``tick_end + lateness`` (the one that lets the watermark close the tick).

Prints a table and writes ``benchmarks/results/e2e.json``.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402
from _live import drained, settings_for, summary, watch_findings  # noqa: E402

from monitor.core.config import load_config  # noqa: E402
from monitor.core.contract import Rejected  # noqa: E402
from streams.files import merge_by_time, read_file  # noqa: E402
from streams.kafka.broker import EmbeddedBroker  # noqa: E402
from streams.kafka.producer import (  # noqa: E402
    make_producer,
    produce,
    send_event,
)
from streams.kafka.stack import LiveStack  # noqa: E402
from streams.kafka.topics import create_topics  # noqa: E402
from streams.settings import Settings  # noqa: E402
from streams.snapshot import read_snapshot  # noqa: E402


def simulate(
    out: Path,
    scale: float,
    tick_minutes: float | None = None,
    lateness_minutes: float | None = None,
    **overrides: float,
) -> dict:
    from streams.simulator import scenario, write_simulation

    paths = write_simulation(
        out, scenario("demo", seed=1, scale=scale, **overrides), fmt="jsonl.gz"
    )
    if tick_minutes is not None:
        cfg = yaml.safe_load(Path(paths["config"]).read_text(encoding="utf-8"))
        cfg.setdefault("detection", {}).update(
            tick_minutes=tick_minutes, lateness_minutes=lateness_minutes
        )
        Path(paths["config"]).write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return paths


def raw_consume(settings: Settings, total: int) -> dict:
    from kafka import KafkaConsumer

    t0 = time.perf_counter()
    consumer = KafkaConsumer(
        settings.topic_exposure,
        settings.topic_ranking,
        bootstrap_servers=settings.broker,
        group_id=f"raw-{time.time()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
        max_poll_records=5000,
    )
    n, first = 0, None
    while n < total:
        for records in consumer.poll(timeout_ms=1000).values():
            first = first or time.perf_counter()
            n += len(records)
    end = time.perf_counter()
    consumer.close()
    return {"records": n, "seconds": end - first, "rate": n / (end - first), "join_s": first - t0}


def throughput(broker: EmbeddedBroker, work: Path, scale: float) -> dict:
    paths = simulate(work / "sim", scale)
    settings = settings_for(broker, "tp")
    create_topics(settings)
    produced = produce(
        settings,
        [(paths["exposure"], "exposure"), (paths["ranking"], "ranking")],
        end_of_stream=True,
    )
    total = produced.total + 2 * settings.partitions  # + end-of-stream markers
    raw = raw_consume(settings, total)
    t_launch = time.perf_counter()
    with LiveStack(
        paths["config"],
        work / "tp.duckdb",
        work / "tp",
        settings=settings,
        bootstrap=broker.bootstrap,
        checkpoint_seconds=5.0,
    ) as stack:
        worker = stack.services["worker"]
        stack.wait_for(
            lambda: "holding units" in worker.log_text(), 120, "worker join", interval=0.05
        )
        t_assigned = time.perf_counter()
        stack.wait_for(lambda: drained(stack), 600, "drain", interval=0.1)
        t_done = time.perf_counter()
        con = read_snapshot(stack.snapshot_dir)  # written at most 1 s after the last batch
        con.close()
    e2e_s = t_done - t_assigned
    return {
        "records": produced.total,
        "produce_rate": produced.total / produced.seconds,
        "raw_kafka_python": raw,
        "end_to_end": {
            "seconds": e2e_s,
            "rate": produced.total / e2e_s,
            "startup_and_join_s": t_assigned - t_launch,
        },
        "ratio": (produced.total / e2e_s) / raw["rate"],
    }


def latency(
    broker: EmbeddedBroker,
    work: Path,
    scale: float,
    speed: float,
    paced_seconds: float,
    workers: int = 1,
) -> dict:
    tick_min, late_min = 0.25, 0.1
    # 10 × the users on a 20 × shorter timeline: the event rate of a mid-size platform, so
    # that minutes of event time hold enough evidence for findings
    paths = simulate(
        work / "lat-sim",
        scale * 10,
        tick_minutes=tick_min,
        lateness_minutes=late_min,
        time_scale=0.05,
    )
    first_start = min(w.window_period.start_ms for w in load_config(paths["config"]).windows)
    switch_ms = first_start - 2 * 60_000
    settings = settings_for(broker, f"lat{workers}")
    create_topics(settings)
    sent_ts: list[int] = []
    sent_wall: list[float] = []
    seen: dict[str, tuple[float, int]] = {}  # finding id → (first readable, event_time ms)
    stop = threading.Event()
    with LiveStack(
        paths["config"],
        work / f"lat{workers}.duckdb",
        work / f"lat{workers}",
        settings=settings,
        bootstrap=broker.bootstrap,
        checkpoint_seconds=5.0,
        workers=workers,
    ) as stack:
        stage_one = [s for name, s in stack.services.items() if name.startswith("worker")]
        stack.wait_for(
            lambda: all("holding units" in w.log_text() for w in stage_one), 120, "workers join"
        )
        watcher = threading.Thread(target=watch_findings, args=(stack.snapshot_dir, seen, stop))
        watcher.start()
        producer = make_producer(settings, linger_ms=1)
        names = {"exposure": settings.topic_exposure, "ranking": settings.topic_ranking}
        records = merge_by_time(
            [read_file(paths["exposure"], "exposure"), read_file(paths["ranking"], "ranking")]
        )
        paced_from: float | None = None
        t0_event = t0_wall = 0.0
        for rec in records:
            if isinstance(rec.result, Rejected):
                continue
            ts = rec.result.ts
            if ts >= switch_ms:
                if paced_from is None:
                    producer.flush()
                    # the backlog fed fast must be through every stage first: else the
                    # first paced findings wait behind it and the figure is drain time
                    stack.wait_for(lambda: drained(stack), 600, "backlog drained", interval=0.2)
                    paced_from = time.perf_counter()
                    t0_event, t0_wall = ts, paced_from
                due = t0_wall + (ts - t0_event) / 1000 / speed
                if due - paced_from > paced_seconds:
                    break
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            send_event(producer, names[rec.topic], rec.result.user, rec.raw)
            if paced_from is not None:
                producer.flush()  # a live platform sends each event as it happens
                sent_ts.append(ts)
                sent_wall.append(time.perf_counter())
        producer.flush()
        time.sleep(5)  # let the last paced ticks close and reach the snapshot
        stop.set()
        watcher.join()
        producer.close()
        dead = [name for name, service in stack.services.items() if not service.running]
        if dead:  # a figure from a pipeline that stopped would be a false "no findings"
            tail = stack.services[dead[0]].log_text().strip().splitlines()[-1:]
            raise RuntimeError(f"{', '.join(dead)} exited during the latency run: {tail}")
    assert paced_from is not None
    tick_ms, late_ms = int(tick_min * 60_000), int(late_min * 60_000)
    lat, pipe = [], []
    for _fid, (visible, event_ms) in seen.items():
        if visible < paced_from or event_ms < switch_ms:
            continue  # written before the paced phase: its evidence was not paced
        i = bisect.bisect_right(sent_ts, event_ms) - 1
        if i < 0:
            continue
        lat.append(visible - sent_wall[i])
        closing = (event_ms // tick_ms + 1) * tick_ms + late_ms
        j = bisect.bisect_left(sent_ts, closing)
        if j < len(sent_ts):
            pipe.append(visible - sent_wall[j])
    return {
        "workers": workers,
        "speed": speed,
        "tick_s": tick_ms / 1000,
        "lateness_s": late_ms / 1000,
        "paced_seconds": paced_seconds,
        "paced_events": len(sent_ts),
        "findings_measured": len(lat),
        "latency_s": summary(lat),
        "pipeline_latency_s": summary(pipe),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--speed", type=float, default=10.0)
    parser.add_argument("--paced-seconds", type=float, default=150.0)
    parser.add_argument("--only", choices=("throughput", "latency"))
    parser.add_argument(
        "--latency-workers",
        default="1,2",
        help="stage-one worker counts of the latency runs (comma-separated), one run each",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="amplimon-e2e-") as tmp, EmbeddedBroker() as broker:
        work = Path(tmp)
        result = {"load_avg_start": os.getloadavg()[0], "cpus": os.cpu_count()}
        if args.only != "latency":
            result["throughput"] = throughput(broker, work, args.scale)
        if args.only != "throughput":
            runs = {
                n: latency(broker, work, args.scale, args.speed, args.paced_seconds, workers=n)
                for n in (int(x) for x in args.latency_workers.split(","))
            }
            result["latency"] = next(iter(runs.values()))
            result["latency_by_workers"] = {str(n): r for n, r in runs.items()}
        result["load_avg_end"] = os.getloadavg()[0]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "e2e.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    if "throughput" in result:
        tp = result["throughput"]
        print(f"records                      {tp['records']:>10,}")
        print(f"produce (kafka-python)       {tp['produce_rate']:>10,.0f} records/s")
        print(f"raw consume (kafka-python)   {tp['raw_kafka_python']['rate']:>10,.0f} records/s")
        print(f"end to end → DuckDB          {tp['end_to_end']['rate']:>10,.0f} records/s")
        print(f"ratio (target ≥ 0.5)         {tp['ratio']:>10.2f}")
    for lt in result.get("latency_by_workers", {}).values():
        print(
            f"latency, {lt['workers']} worker(s), at {lt['speed']:g}× (target ≤ 5 s) "
            f"{json.dumps(lt['latency_s'])}"
        )
        print(f"  pipeline part              {json.dumps(lt['pipeline_latency_s'])}")
        print(
            f"  tick {lt['tick_s']:g} s, lateness {lt['lateness_s']:g} s, "
            f"{lt['findings_measured']} findings, {lt['paced_events']:,} paced events"
        )


if __name__ == "__main__":
    main()
