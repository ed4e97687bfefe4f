"""Detectors: calibration, power and delay, cost per tick at 10,000 subjects, replay throughput.

    .venv/bin/python benchmarks/bench_detectors.py [--null 100] [--power 40] [--subjects 10000]
        [--scale 5] [--skip calibration,power,cost,replay] [--out benchmarks/results]

1. **Calibration** — ``--null`` simulated null elections at the simulator's default size
   (no intervention; a ×3 posting surge, a disclosed labelled boost, ranking noise), every
   detector on, ``alpha = 0.05``: share of runs with any ``amplification``, ``suppression``,
   ``undisclosed_intervention`` or ``missing_label`` finding, with a Clopper–Pearson 95 %
   interval, and per detector.
2. **Power and delay** — ``--power`` runs of each planted scenario (``hidden_boost`` ×1.5,
   ``suppression`` ×0.6, ``organic_logged_boost`` ×1.5, ``group_boost`` ×1.3 at group
   level): share found (Clopper–Pearson 95 %), which detectors found it, and the distribution of
   the delay = event time of the first finding − onset (window start).
3. **Cost per tick** — a synthetic platform with ``--subjects`` registered actors (groups of
   5; ~``--subjects`` / 5 groups on top), 15-minute ticks: wall time per tick of the ledger
   and of each detector's ``observe`` + ``evaluate`` in the baseline and in the window
   (every detector looks every tick).
4. **Replay throughput** — ``scenario("default", scale=--scale)`` (≈ 1M exposures at 5) written
   as JSON Lines and replayed in-process with all detectors, and with the foundation's
   detectors only: events per second and the detectors' share of the time.

Prints tables and writes ``results/detectors.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from detectors import REGISTRY, Tick, build  # noqa: E402
from detectors.ledger import ExposureLedger  # noqa: E402
from monitor.app.replay import drive  # noqa: E402
from monitor.core.config import parse_config  # noqa: E402
from monitor.core.contract import decode_obj  # noqa: E402
from monitor.engine.run import Engine  # noqa: E402
from streams.files import merge_by_time  # noqa: E402
from streams.memory import ListOutput, records_from_dicts  # noqa: E402

ALARMS = {"amplification", "suppression", "undisclosed_intervention", "missing_label"}
FOUNDATION = ["amplification", "undisclosed_intervention", "missing_label"]
FAR = 4_000_000_000_000


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(stats.beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


def run_sim(name: str, seed: int, **overrides: Any) -> tuple[dict[str, Any], list[Any]]:
    from streams.simulator import scenario, simulate

    sim = simulate(scenario(name, seed=seed, **overrides))
    out = ListOutput()
    engine = Engine(parse_config(sim.config), out, now_ms=lambda: FAR)
    drive(
        engine,
        merge_by_time(
            [
                records_from_dicts("exposure", sim.exposures),
                records_from_dicts("ranking", sim.rankings),
            ]
        ),
    )
    return sim.truth, list(out.latest_findings.values())


# -- 1. calibration ------------------------------------------------------------------------
def calibration(n: int) -> dict[str, Any]:
    alarmed = 0
    by_detector: dict[str, int] = defaultdict(int)
    t0 = time.perf_counter()
    for seed in range(n):
        _, findings = run_sim("null", 50_000 + seed)
        hits = [f for f in findings if f.kind in ALARMS]
        alarmed += bool(hits)
        for det in {f.detector for f in hits}:
            by_detector[det] += 1
        print(f"\r  null run {seed + 1}/{n}: {alarmed} with alarms", end="", flush=True)
    print()
    lo, hi = clopper_pearson(alarmed, n)
    res = {
        "runs": n,
        "runs_with_alarm": alarmed,
        "share": alarmed / n,
        "ci95": [lo, hi],
        "by_detector": dict(by_detector),
        "seconds": time.perf_counter() - t0,
    }
    print(
        f"  false-alarm share {alarmed}/{n} = {alarmed / n:.3f} "
        f"(95% CI {lo:.3f}–{hi:.3f}); alpha = 0.05; by detector: {dict(by_detector)}"
    )
    return res


# -- 2. power ------------------------------------------------------------------------------
CASES = {
    "hidden_boost": ("hidden_boost", "amplification"),
    "suppression": ("hidden_suppression", "suppression"),
    "organic_logged_boost": ("organic_logged_boost", "amplification"),
    "group_boost": ("group_boost", "amplification"),
}


def power(n: int) -> dict[str, Any]:
    res: dict[str, Any] = {}
    print(
        f"  {'scenario':22s} {'found':>7s} {'95% CI':>13s}  delay h: median  p25   p75   "
        "p90   max   by detector"
    )
    for name, (kind, expected) in CASES.items():
        found, delays, detectors = 0, [], defaultdict(int)
        for seed in range(n):
            truth, findings = run_sim(name, 60_000 + seed)
            iv = next(i for i in truth["interventions"] if i["kind"] == kind)
            start = dt.datetime.fromisoformat(iv["start"].replace("Z", "+00:00"))
            hits = [
                f
                for f in findings
                if f.subject == iv["subject"]
                and f.subject_kind == iv["subject_kind"]
                and f.kind == expected
            ]
            if hits:
                found += 1
                delays.append((min(f.event_time for f in hits) - start).total_seconds() / 3600)
                for det in {f.detector for f in hits}:
                    detectors[det] += 1
        lo, hi = clopper_pearson(found, n)
        q = np.percentile(delays, [50, 25, 75, 90, 100]) if delays else [np.nan] * 5
        res[name] = {
            "runs": n,
            "found": found,
            "share": found / n,
            "ci95": [lo, hi],
            "delay_hours": {
                "median": q[0],
                "p25": q[1],
                "p75": q[2],
                "p90": q[3],
                "max": q[4],
                "all": delays,
            },
            "by_detector": dict(detectors),
        }
        print(
            f"  {name:22s} {found:3d}/{n:<3d} {lo:6.3f}–{hi:5.3f}  "
            f"{q[0]:13.2f} {q[1]:5.2f} {q[2]:5.2f} {q[3]:5.2f} {q[4]:5.2f}   "
            f"{dict(detectors)}"
        )
    return res


# -- 3. cost per tick ----------------------------------------------------------------------
def cost_per_tick(
    n_subjects: int,
    n_users: int = 50_000,
    exposures_per_tick: int = 10_000,
    slates_per_tick: int = 1_000,
    ticks_per_period: int = 8,
) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    tick_ms = 15 * 60_000
    t0 = 1_777_852_800_000  # window start
    base0 = t0 - ticks_per_period * tick_ms
    iso = lambda ms: dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat()  # noqa: E731
    actors = [f"a{i}" for i in range(n_subjects)]
    cfg = parse_config(
        {
            "windows": [
                {
                    "id": "w",
                    "jurisdiction": "DE",
                    "start": iso(t0),
                    "end": iso(t0 + ticks_per_period * tick_ms),
                    "baseline": {"start": iso(base0), "end": iso(t0)},
                }
            ],
            "actors": [
                {"actor": a, "group": f"g{i // 5}", "regions": ["DE"]} for i, a in enumerate(actors)
            ],
            "detection": {
                "alpha": 0.05,
                "holdout_shift": {"min_window_hours": 0},
                "score_shift": {"horizon_hours": ticks_per_period * 0.25},
            },
        }
    )
    ledger = ExposureLedger(cfg)
    names = list(REGISTRY)
    dets = build(cfg, ledger, names)
    holdout = rng.random(n_users) < 0.2
    items_per_actor = 4
    n_items = n_subjects * items_per_actor
    timings: dict[str, list[float]] = defaultdict(list)
    period_of: list[str] = []
    for k in range(2 * ticks_per_period):
        start = base0 + k * tick_ms
        users = rng.integers(0, n_users, exposures_per_tick)
        item_idx = rng.integers(0, n_items, exposures_per_tick)
        ts = start + rng.integers(0, tick_ms, exposures_per_tick)
        exps = [
            decode_obj(
                "exposure",
                {
                    "event_id": f"x{k}.{j}",
                    "platform": "chirp",
                    "ts": int(ts[j]),
                    "user": f"u{users[j]}",
                    "region": "DE-BY",
                    "surface": "feed",
                    "arm": "holdout" if holdout[users[j]] else "ranked",
                    "item": f"i{item_idx[j]}",
                    "actor": actors[item_idx[j] // items_per_actor],
                    "position": 1,
                },
            )
            for j in range(exposures_per_tick)
        ]
        ranks = []
        for j in range(slates_per_tick):
            u = int(rng.integers(0, n_users))
            its = rng.integers(0, n_items, 10)
            q = rng.normal(0, 0.3, 10)
            ranks.append(
                decode_obj(
                    "ranking",
                    {
                        "event_id": f"r{k}.{j}",
                        "platform": "chirp",
                        "ts": int(start + rng.integers(0, tick_ms)),
                        "user": f"u{u}",
                        "region": "DE-BY",
                        "surface": "feed",
                        "arm": "holdout" if holdout[u] else "ranked",
                        "request": f"q{k}.{j}",
                        "items": [
                            {
                                "item": f"i{it}",
                                "actor": actors[it // items_per_actor],
                                "position": p + 1,
                                "score": float(q[p]),
                                "organic_score": float(q[p]),
                            }
                            for p, it in enumerate(its)
                        ],
                    },
                )
            )
        tick = Tick(start, start + tick_ms, exps, ranks)
        t = time.perf_counter()
        ledger.observe(exps)
        timings["ledger"].append(time.perf_counter() - t)
        for det in dets:
            t = time.perf_counter()
            det.observe(tick)
            det.evaluate(tick)
            timings[det.name].append(time.perf_counter() - t)
        period_of.append("baseline" if start < t0 else "window")
    t = time.perf_counter()
    rows = [r for d in dets for r in d.detectability()]
    detectability_s = time.perf_counter() - t
    per = np.array(period_of)
    res: dict[str, Any] = {
        "subjects": n_subjects + n_subjects // 5,
        "exposures_per_tick": exposures_per_tick,
        "slates_per_tick": slates_per_tick,
        "ms_per_tick": {},
        "detectability_rows": len(rows),
        "detectability_s": detectability_s,
    }
    print(
        f"  {n_subjects} actors + {n_subjects // 5} groups; {exposures_per_tick} exposures "
        f"and {slates_per_tick} slates (×10 entries) per 15-min tick"
    )
    print(f"  {'component':26s} {'baseline ms/tick':>17s} {'window ms/tick':>15s}")
    for name, ts_ in timings.items():
        arr = np.array(ts_) * 1000
        b, w = float(np.median(arr[per == "baseline"])), float(np.median(arr[per == "window"]))
        res["ms_per_tick"][name] = {"baseline": b, "window": w}
        print(f"  {name:26s} {b:17.1f} {w:15.1f}")
    print(f"  detectability() for {len(rows)} rows: {detectability_s * 1000:.0f} ms")
    return res


# -- 4. replay throughput ------------------------------------------------------------------
def replay_throughput(scale: float) -> dict[str, Any]:
    from monitor.app.replay import replay
    from monitor.core.config import load_config
    from streams.simulator import scenario, write_simulation

    res: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        t = time.perf_counter()
        write_simulation(work, scenario("default", seed=7, scale=scale), fmt="jsonl")
        res["simulate_s"] = time.perf_counter() - t
        cfg = load_config(work / "amplimon.yaml")
        for label, names in (
            ("foundation detectors", FOUNDATION),
            ("all detectors", list(REGISTRY)),
        ):
            db = work / f"{label.split()[0]}.duckdb"
            t, c = time.perf_counter(), time.process_time()
            r = replay(
                cfg,
                db,
                [work / "exposure.jsonl"],
                [work / "ranking.jsonl"],
                detectors=names,
                show_progress=False,
            )
            secs, cpu = time.perf_counter() - t, time.process_time() - c
            ev = r.stats.accepted["exposure"]
            res[label] = {
                "seconds": secs,
                "cpu_seconds": cpu,
                "exposures": ev,
                "records": r.stats.records,
                "exposures_per_s": ev / secs,
                "records_per_s": r.stats.records / secs,
                "records_per_cpu_s": r.stats.records / cpu,
                "findings": r.findings,
            }
            print(
                f"  {label:22s} {ev:>9,d} exposures, {r.stats.records:>9,d} records in "
                f"{secs:6.1f} s wall / {cpu:6.1f} s CPU → {ev / secs:>9,.0f} exposures/s, "
                f"{r.stats.records / secs:>9,.0f} records/s "
                f"({r.stats.records / cpu:,.0f} records per CPU-s); {r.findings} findings"
            )
    extra = res["all detectors"]["cpu_seconds"] - res["foundation detectors"]["cpu_seconds"]
    res["new_detectors_share_of_cpu"] = extra / res["all detectors"]["cpu_seconds"]
    print(
        f"  holdout_shift + rank_uplift + score_shift: {extra:.1f} CPU-s "
        f"({100 * res['new_detectors_share_of_cpu']:.0f} % of the replay)"
    )
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--null", type=int, default=100, help="null elections (calibration)")
    ap.add_argument("--power", type=int, default=40, help="runs per planted scenario")
    ap.add_argument("--subjects", type=int, default=10_000, help="actors for the cost test")
    ap.add_argument("--scale", type=float, default=5.0, help="simulator scale for replay")
    ap.add_argument("--skip", default="", help="comma-separated sections to skip")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    results: dict[str, Any] = {}
    sections = (
        ("calibration", lambda: calibration(args.null)),
        ("power", lambda: power(args.power)),
        ("cost", lambda: cost_per_tick(args.subjects)),
        ("replay", lambda: replay_throughput(args.scale)),
    )
    for name, fn in sections:
        if name in skip:
            continue
        print(f"\n== {name} ==")
        results[name] = fn()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "detectors.json"
    path.write_text(json.dumps(results, indent=2, default=float))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
