"""Calibration of every statistical detector on simulated null elections (issue 18, item 2).

    .venv/bin/python benchmarks/bench_calibration.py [--runs 30] [--jobs 2]
        [--scenarios null,null_few_users,...] [--out benchmarks/results]

Each scenario of the suite is a *null* election of the project's simulator (nothing that a
detector should flag: a posting surge, a disclosed labelled promotion, ranking noise) with
one stress added:

* ``null`` — the simulator's defaults (4,000 users, two staggered 2-day windows);
* ``null_few_users`` — 800 users (few clusters, small counts);
* ``null_few_sessions`` — 0.5 sessions per user and day;
* ``null_heavy_tails`` — Student-t(3) item quality with twice the spread (a few items do far
  better than the rest);
* ``null_item_adjustments`` — legitimate per-item score adjustments (``score − organic_score``
  varies by item, sd 0.3, no intervention);
* ``null_model_update`` — a new ranking model for every account at the DE window start
  (every score ×1.3: exposure shares reshuffled for all accounts alike);
* ``null_surfaces`` — three surfaces (feed, search, trending): more tests in the budget.

``--runs`` elections per scenario (seeds 70_000…; 30 × 7 = 210 by default).  Two checks:

1. **Run-level false alarms** — the share of elections with any ``amplification``,
   ``suppression``, ``undisclosed_intervention`` or ``missing_label`` finding must stay
   within ``detection.alpha = 0.05`` (Clopper–Pearson 95 % interval reported), overall and per
   scenario; per detector too (each has its share ``α_d``).
2. **Ville's inequality per test** — for every always-valid test (subject × scope × detector ×
   window, :meth:`detectors.base.Detector.test_states`) whose null holds, ``max_t E_t``; for
   ``a`` in 0.5, 0.2, 0.1, 0.05, 0.01 the share of tests with ``max E ≥ 1/a`` must be
   ``≤ a`` (Ville: ``P(sup_t E_t ≥ 1/a) ≤ a``), with a one-sided binomial 99 % upper bound.

Prints tables and writes ``results/calibration.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SUITE = (
    "null",
    "null_few_users",
    "null_few_sessions",
    "null_heavy_tails",
    "null_item_adjustments",
    "null_model_update",
    "null_surfaces",
)
ALARMS = {"amplification", "suppression", "undisclosed_intervention", "missing_label"}
LEVELS = (0.5, 0.2, 0.1, 0.05, 0.01)
FAR = 4_000_000_000_000


def run_one(name: str, seed: int, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Simulate and replay one election; its alarms and its tests' maximal log e-values."""
    from monitor.app.replay import drive
    from monitor.core.config import parse_config
    from monitor.engine.run import Engine
    from streams.files import merge_by_time
    from streams.memory import ListOutput, records_from_dicts
    from streams.simulator import scenario, simulate

    t = time.perf_counter()
    sim = simulate(scenario(name, seed=seed, **(overrides or {})))
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
    findings = list(out.latest_findings.values())
    tests = []
    for det in engine.detectors:
        for ts in det.test_states():
            for j, subject in enumerate(ts.subjects):
                if ts.null[j]:
                    tests.append(
                        (ts.detector, ts.scope, subject, float(ts.max_log_e[j]), ts.log_threshold)
                    )
    return {
        "scenario": name,
        "seed": seed,
        "seconds": time.perf_counter() - t,
        "families": sorted(
            {
                (p, w["jurisdiction"])
                for p in (sim.config.get("platforms") or {"?": None})
                for w in sim.config["windows"]
            }
        ),
        "alarms": sorted(
            {
                (f.detector, f.kind, f.subject, f.region, f.surface or "")
                for f in findings
                if f.kind in ALARMS
            }
        ),
        "informational": sorted(
            {(f.detector, f.kind, f.subject) for f in findings if f.kind not in ALARMS}
        ),
        "tests": tests,
    }


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(stats.beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


def window_of(region: str) -> str:
    """The window jurisdiction of a finding's region (a subdivision scope ``DE-BY`` → ``DE``)."""
    return region.split("-")[0]


def per_window(runs: list[dict[str, Any]], windows_per_run: int = 2) -> dict[str, Any]:
    """The guarantee's own unit: P(any false finding in a (platform, window)) ≤ α.  The share
    of (election, window) pairs with an alarm-kind finding, overall and per detector (each
    detector's bound is its share ``α_d``).  The simulator has one platform and
    ``windows_per_run`` windows (DE, AT)."""
    n = sum(len(r["families"]) if "families" in r else windows_per_run for r in runs)
    hit = {(r["scenario"], r["seed"], window_of(a[3])) for r in runs for a in r["alarms"]}
    by_det: dict[str, int] = defaultdict(int)
    for det in {a[0] for r in runs for a in r["alarms"]}:
        by_det[det] = len(
            {
                (r["scenario"], r["seed"], window_of(a[3]))
                for r in runs
                for a in r["alarms"]
                if a[0] == det
            }
        )
    return {
        "windows": n,
        "alarmed": len(hit),
        "share": len(hit) / n if n else 0.0,
        "ci95": clopper_pearson(len(hit), n),
        "by_detector": dict(by_det),
    }


def summarise(runs: list[dict[str, Any]], alpha: float = 0.05) -> dict[str, Any]:
    res: dict[str, Any] = {"runs": len(runs), "alpha": alpha}
    by_scenario: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in runs:
        by_scenario[r["scenario"]].append(r)
    alarmed = [bool(r["alarms"]) for r in runs]
    k = sum(alarmed)
    res["run_level"] = {
        "alarmed": k,
        "share": k / len(runs),
        "ci95": clopper_pearson(k, len(runs)),
        "by_scenario": {
            s: {"runs": len(v), "alarmed": sum(bool(r["alarms"]) for r in v)}
            for s, v in by_scenario.items()
        },
    }
    det_runs: dict[str, int] = defaultdict(int)
    for r in runs:
        for d in {a[0] for a in r["alarms"]}:
            det_runs[d] += 1
    res["run_level"]["by_detector"] = dict(det_runs)
    res["per_window"] = per_window(runs)
    res["alarms"] = [(r["scenario"], r["seed"], a) for r in runs for a in r["alarms"]]
    tests = [t for r in runs for t in r["tests"]]
    ville: dict[str, Any] = {}
    by_det: dict[str, list[float]] = defaultdict(list)
    for det, _scope, _subject, max_le, _thr in tests:
        by_det[det].append(max_le)
    by_det["all"] = [t[3] for t in tests]
    for det, values in sorted(by_det.items()):
        arr = np.array(values)
        rows = {}
        for a in LEVELS:
            hits = int((arr >= math.log(1 / a)).sum())
            bound = float(stats.binom.ppf(0.99, arr.size, a)) / arr.size if arr.size else 0.0
            rows[str(a)] = {
                "share": hits / arr.size if arr.size else 0.0,
                "hits": hits,
                "bound99": bound,
                "ok": hits / max(arr.size, 1) <= bound,
            }
        ville[det] = {"tests": int(arr.size), "levels": rows}
    res["ville"] = ville
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=30, help="elections per scenario")
    ap.add_argument("--jobs", type=int, default=1, help="processes")
    ap.add_argument("--scenarios", default=",".join(SUITE))
    ap.add_argument("--seed", type=int, default=70_000)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    names = [s for s in args.scenarios.split(",") if s]
    jobs = [(n, args.seed + i) for n in names for i in range(args.runs)]
    t0 = time.perf_counter()
    runs: list[dict[str, Any]] = []
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for r in pool.map(run_one, *zip(*jobs, strict=True)):
            runs.append(r)
            flag = f"  ALARM {r['alarms']}" if r["alarms"] else ""
            print(
                f"  {len(runs):4d}/{len(jobs)} {r['scenario']:22s} seed {r['seed']} "
                f"{r['seconds']:5.1f}s{flag}",
                flush=True,
            )
    res = summarise(runs)
    res["seconds"] = time.perf_counter() - t0
    rl = res["run_level"]
    lo, hi = rl["ci95"]
    print(
        f"\nrun-level false alarms: {rl['alarmed']}/{res['runs']} = {rl['share']:.3f} "
        f"(95% CI {lo:.3f}-{hi:.3f}; alpha 0.05); by detector {rl['by_detector']}"
    )
    for s, v in rl["by_scenario"].items():
        print(f"  {s:22s} {v['alarmed']}/{v['runs']}")
    pw = res["per_window"]
    print(
        f"per (platform, window) — the guarantee's unit: {pw['alarmed']}/{pw['windows']} = "
        f"{pw['share']:.3f} (95% CI {pw['ci95'][0]:.3f}-{pw['ci95'][1]:.3f}; alpha 0.05); "
        f"by detector {pw['by_detector']}"
    )
    print("\nVille per test: share of null tests with max E >= 1/a (bound: binomial 99%)")
    print(f"  {'detector':18s} {'tests':>7s} " + " ".join(f"{'a=' + str(a):>16s}" for a in LEVELS))
    for det, v in res["ville"].items():
        cells = " ".join(
            f"{c['share']:7.4f}<={c['bound99']:.4f}{'' if c['ok'] else '!'}"
            for c in v["levels"].values()
        )
        print(f"  {det:18s} {v['tests']:7d} {cells}")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "calibration.json"
    path.write_text(json.dumps({k: v for k, v in res.items()}, indent=1, default=str))
    print(f"\nwrote {path} ({res['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
