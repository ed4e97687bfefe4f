"""Power and false alarms of ``log_integrity`` against lying platforms (issue 13).

    .venv/bin/python benchmarks/bench_integrity.py [--runs 20] [--users 1500]
        [--panels 25,50,100,200,400] [--sweep-runs 10] [--out benchmarks/results]

Every run is a small simulated election (``--users`` users, ``time_scale`` 0.15: two
staggered windows of 7.2 h with 7.2 h baselines) through the real engine with the
``log_integrity`` detector alone at the simulator's ``alpha`` = 0.05 (all of it for this
detector: the figures are its own).

1. **False alarms** — ``honest_panel`` (an honest platform, 300 panellists) and ``null``,
   and honest platforms of the larger adversaries' sizes (``null`` with 8,000 users,
   ``null_surfaces`` with 4,000, ``honest_panel`` with 6,000 users and 1,500 panellists):
   the share of runs with any ``log_integrity`` finding, per check.
2. **Power per adversary** — each scenario of :mod:`streams.simulator.adversary`: the share
   of runs in which the check that answers it fires (in at least one window);
   ``holdout_thinning`` (half the holdout users deleted from the window start, no share
   declared), ``holdout_region``, ``holdout_surface``, ``holdout_exposure_deletion`` and
   ``panel_hidden_boost`` with their scenarios' sizes.
3. **Panel size** — ``falsified_log`` (``adversary_share`` 0.25 of the registered actors'
   ranked exposures deleted, half as many moved) with 25…400 panellists: power, the mean
   mismatch rate observed, the comparisons per panellist and window, and the minimum
   detectable mismatch rate (the smallest rate at which the e-process would cross its
   threshold with that many comparisons).

4. **How much hiding is found** — ``holdout_exposure_deletion`` with 10–40 % of the holdout
   arm's exposures deleted, and ``holdout_region`` with 25–75 % of one region's holdout
   users deleted (8,000 users; ``--sweep-runs``, default 10 per point): power.

5. **At the simulator's default size** (4,000 users, 3-day periods; ``--sweep-runs`` runs):
   an honest platform with 400 panellists, 20 % of the holdout exposures deleted, half of
   DE-BE's holdout users deleted, one candidate's ×2 boost hidden for 400 panellists.

Prints tables and writes ``results/integrity.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from detectors.sequential import log_threshold  # noqa: E402
from detectors.stats import label_share_log_e  # noqa: E402
from monitor.app.replay import drive  # noqa: E402
from monitor.core.config import parse_config  # noqa: E402
from monitor.engine.run import Engine  # noqa: E402
from streams.files import merge_by_time  # noqa: E402
from streams.memory import ListOutput, records_from_dicts  # noqa: E402
from streams.simulator import scenario, simulate  # noqa: E402

FAR = 4_000_000_000_000
# keep their scenario's size (8,000 / 4,000 / 6,000 users: too few returners, regional or
# holdout users, or panellists' exposures of one actor below)
OWN_SIZE = {
    "holdout_thinning",
    "holdout_region",
    "holdout_surface",
    "holdout_exposure_deletion",
    "panel_hidden_boost",
}
#: honest platforms of the adversaries' sizes (name, label, overrides)
NULLS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("honest_panel", "honest_panel", {}),
    ("null", "null", {}),
    ("null", "null_8000_users", {"n_users": 8000}),
    ("null_surfaces", "null_surfaces_4000_users", {"n_users": 4000}),
    (
        "honest_panel",
        "honest_panel_6000_users_1500_panellists",
        {"n_users": 6000, "panel_users": 1500},
    ),
)
ANSWERS = {
    "alias_disguise": "actor_lookalike",
    "holdout_deletion": "holdout_silent",
    "holdout_thinning": "holdout_share",
    "holdout_move": "holdout_assignment",
    "stripped_interventions": "label_consistency",
    "conflicting_duplicates": "conflicting_duplicates",
    "falsified_log": "panel_mismatch",
    "label_without_intervention": "label_without_intervention",
    "holdout_region": "holdout_share_region",
    "holdout_surface": "holdout_share_surface",
    "holdout_exposure_deletion": "holdout_exposure_share",
    "panel_hidden_boost": "panel_amplification",
}


def checks(name: str, seed: int, users: int, **extra: Any) -> tuple[set[str], list[Any]]:
    if name not in OWN_SIZE:
        extra.setdefault("n_users", users)
    sim = simulate(scenario(name, seed=seed, time_scale=0.15, **extra))
    found = _run(sim)
    return {f.evidence["check"] for f in found}, found


def _run(sim: Any) -> list[Any]:
    """``log_integrity`` alone on a simulation: its latest findings."""
    out = ListOutput()
    engine = Engine(parse_config(sim.config), out, detectors=["log_integrity"], now_ms=lambda: FAR)
    streams = [
        records_from_dicts("exposure", sim.exposures),
        records_from_dicts("ranking", sim.rankings),
    ]
    if sim.panel:
        streams.append(records_from_dicts("panel", sim.panel))
    drive(engine, merge_by_time(streams))
    return [f for f in out.latest_findings.values() if f.kind == "log_integrity"]


def mde_rate(n: int, tolerance: float, threshold: float) -> float | None:
    """Smallest mismatch rate whose e-value crosses ``threshold`` after ``n`` comparisons."""
    if n <= 0 or label_share_log_e(n, n, tolerance) < threshold:
        return None
    lo, hi = tolerance, 1.0
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if label_share_log_e(mid * n, n, tolerance) >= threshold else (mid, hi)
    return hi


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--users", type=int, default=1500)
    parser.add_argument("--panels", default="25,50,100,200,400")
    parser.add_argument("--sweep-runs", type=int, default=10)
    parser.add_argument("--skip", default="", help="comma-separated sections to skip (1-4)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    began = time.perf_counter()
    result: dict[str, Any] = {"runs": args.runs, "users": args.users}
    seeds = range(90_000, 90_000 + args.runs)
    skip = set(args.skip.split(",")) - {""}
    if skip:  # a partial run keeps the other sections of the last full one
        last = args.out / "integrity.json"
        if last.exists():
            result.update(
                {k: v for k, v in json.loads(last.read_text()).items() if k not in result}
            )

    honest: dict[str, Any] = {}
    print("1. false alarms (share of honest runs with a log_integrity finding)")
    for name, label, extra in NULLS if "1" not in skip else ():
        per: Counter[str] = Counter()
        runs_with = 0
        for seed in seeds:
            fired, _ = checks(name, seed, args.users, **extra)
            per.update(fired)
            runs_with += bool(fired)
        honest[label] = {"runs_with_finding": runs_with, "runs": args.runs, "by_check": dict(per)}
        print(f"  {label:40s} {runs_with}/{args.runs}  {dict(per) or ''}")
    if "1" not in skip:
        result["false_alarms"] = honest

    print("2. power per adversary (share of runs where the answering check fires)")
    power: dict[str, Any] = {}
    for name, check in ANSWERS.items() if "2" not in skip else ():
        hits = 0
        other: Counter[str] = Counter()
        for seed in seeds:
            fired, _ = checks(name, seed, args.users)
            hits += check in fired
            other.update(fired - {check})
        power[name] = {"check": check, "power": hits / args.runs, "also": dict(other)}
        print(f"  {name:28s} {check:28s} {hits}/{args.runs}  also: {dict(other) or '-'}")
    if "2" not in skip:
        result["power"] = power

    print("3. panel size (falsified_log, 25 % of politics' ranked exposures deleted)")
    threshold = log_threshold(6, 0.05)
    panels: list[dict[str, Any]] = []
    for n_panel in [int(x) for x in args.panels.split(",")] if "3" not in skip else []:
        hits, rates, compared = 0, [], []
        for seed in seeds:
            fired, found = checks("falsified_log", seed, args.users, panel_users=n_panel)
            hits += "panel_mismatch" in fired
            for f in found:
                if f.evidence["check"] == "panel_mismatch":
                    rates.append(f.effect)
                    compared.append(f.evidence["compared"] / max(f.evidence["panellists"], 1))
        per_panellist = sum(compared) / len(compared) if compared else None
        n_cmp = round(n_panel * per_panellist) if per_panellist else 0
        row = {
            "panellists": n_panel,
            "power": hits / args.runs,
            "mean_mismatch_rate": sum(rates) / len(rates) if rates else None,
            "comparisons_per_panellist_window": per_panellist,
            "mde_mismatch_rate": mde_rate(n_cmp, 0.02, threshold),
        }
        panels.append(row)
        print(
            f"  {n_panel:4d} panellists: power {row['power']:.2f}, mismatch "
            f"{row['mean_mismatch_rate'] or float('nan'):.3f}, "
            f"{per_panellist or float('nan'):.1f} comparisons/panellist/window, MDE "
            f"{row['mde_mismatch_rate'] or float('nan'):.3f}"
        )
    if "3" not in skip:
        result["panel"] = panels
    result["mde_by_comparisons"] = {
        n: mde_rate(n, 0.02, threshold) for n in (100, 300, 1000, 3000, 10_000, 30_000)
    }
    print(
        "  MDE by comparisons per window (tolerance 0.02, m = 6, alpha 0.05): "
        + ", ".join(
            f"{n}: {r:.4f}" for n, r in result["mde_by_comparisons"].items() if r is not None
        )
    )
    if "4" not in skip:
        print("4. how much hiding is found (8,000 users; power per share)")
        sweep: dict[str, Any] = {}
        for name, check, shares in (
            ("holdout_exposure_deletion", "holdout_exposure_share", (0.1, 0.2, 0.3, 0.4)),
            ("holdout_region", "holdout_share_region", (0.25, 0.5, 0.75)),
        ):
            rows = {}
            for share in shares:
                hits = sum(
                    check in checks(name, seed, args.users, adversary_share=share)[0]
                    for seed in range(91_000, 91_000 + args.sweep_runs)
                )
                rows[str(share)] = hits / args.sweep_runs
                print(f"  {name:28s} share {share:.2f}: {hits}/{args.sweep_runs}")
            sweep[name] = {"check": check, "power_by_share": rows, "runs": args.sweep_runs}
        result["sweep"] = sweep
    if "5" not in skip:
        print("5. at the simulator's default size (4,000 users, 3-day periods)")
        full: dict[str, Any] = {}
        cases: tuple[tuple[str, str | None, dict[str, Any]], ...] = (
            ("honest_panel", None, {"panel_users": 400}),
            ("holdout_exposure_deletion", "holdout_exposure_share", {"adversary_share": 0.2}),
            ("holdout_region", "holdout_share_region", {}),
            ("panel_hidden_boost", "panel_amplification", {"panel_users": 400}),
        )
        for name, answer, extra in cases:
            hits = 0
            for seed in range(92_000, 92_000 + args.sweep_runs):
                sim = simulate(scenario(name, seed=seed, **{"n_users": 4000, **extra}))
                fired = {f.evidence["check"] for f in _run(sim)}
                hits += bool(fired) if answer is None else answer in fired
            key = f"{name}:{answer or 'any finding'}"
            full[key] = {"runs": args.sweep_runs, "rate": hits / args.sweep_runs, **extra}
            print(f"  {name:28s} {answer or 'any finding':24s} {hits}/{args.sweep_runs}")
        result["default_size"] = full
    result["seconds_partial" if skip else "seconds"] = time.perf_counter() - began
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "integrity.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"took {time.perf_counter() - began:.0f} s; wrote {args.out / 'integrity.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
