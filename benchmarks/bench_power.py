"""The holdout test's minimum detectable effect, power on planted boosts, CI coverage.

    .venv/bin/python benchmarks/bench_power.py [--null 40] [--planted 12] [--jobs 2]
        [--scoped 0] [--skip mde,power,coverage] [--name power] [--out benchmarks/results]

1. **MDE, (a) vs (b)** (issue 18, item 1) — ``--null`` null elections of the project's
   simulator at its default size.  For every subject of ``holdout_shift`` (whole scope):

   * the *true* null standard deviation ``σ`` of the final statistic: its standard deviation
     over the elections (the subjects are the same registry entries in every election);
   * **(a)** the MDE of a fixed-horizon two-sided z-test at the same level as the subject's
     always-valid test (``α_test = α_scope / m``) with ``σ`` known — the data's limit:
     ``z_{1−α_test/2} · σ`` (50 % power) and ``(z_{1−α_test/2} + z_{0.8}) · σ`` (80 %);
   * **(b)** the MDE of amplimon's always-valid test as run: the effect at which the
     e-process, evaluated every tick with its own estimated variances ``V̂_t`` and its ``τ``,
     crosses its threshold with probability 50 % / 80 %, for a statistic that is Brownian in
     information time with the true variance schedule (``V̂_t`` rescaled by the measured
     ``σ² / mean V̂_T``) — Monte Carlo, 4,000 paths;
   * the ratio (b)/(a) in log effect (target ≤ 1.25), by subject size.

2. **Power** — ``--planted`` elections of ``uninformative_scores`` (scores that carry no
   information, no intervention ids: hidden ×3, ×2.5, ×0.3, a ×2 party-wide boost and ×2.5 on
   a media outlet): the share found by ``holdout_shift`` alone, their exposure effect (truth)
   next to the subject's (a) and (b), false flags; and the ``default`` scenario for every
   detector.

3. **Coverage** — every finding of a planted intervention (subject and kind match): the share
   whose ``[ci_low, ci_high]`` (the test's own always-valid interval) and whose
   ``evidence.effect.ci95`` (fixed-time 95 %) contain the simulator's ground truth
   ``exposure_effect`` (the counterfactual change in exposure), per detector.

4. **Scopes** (``--scoped N``) — ``N`` elections of ``surface_and_region`` (a hidden ×3 boost
   on the search surface only, a ×2 boost in the subdivision DE-BE only): found by
   ``holdout_shift`` in its own scope and in the whole scope, and whether the scope finding's
   interval covers the exposure effect.

Prints tables and writes ``results/<name>.json`` (``power.json``).
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

FAR = 4_000_000_000_000
ALARMS = {"amplification", "suppression"}
NULL_SKIP = {"de-a-cand-2", "de-media-1"}  # the null background's surge and disclosed boost


def replay(
    name: str, seed: int, overrides: dict[str, Any] | None = None
) -> tuple[dict[str, Any], list[Any], Any]:
    from monitor.app.replay import drive
    from monitor.core.config import parse_config
    from monitor.engine.run import Engine
    from streams.files import merge_by_time
    from streams.memory import ListOutput, records_from_dicts
    from streams.simulator import scenario, simulate

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
    return sim.truth, list(out.latest_findings.values()), engine


def _holdout_histories(engine: Any) -> list[dict[str, Any]]:
    det = next(d for d in engine.detectors if d.name == "holdout_shift")
    rows = []
    for (_platform, wid), panel in det._panels.items():
        if panel is None:
            continue
        st = panel.scopes[("*",)]
        a = st.last
        for i, (kind, subject) in enumerate(panel.info.subjects):
            rows.append(
                {
                    "window": wid,
                    "kind": kind,
                    "subject": subject,
                    "estimate": [float(h[1][i]) for h in st.history],
                    "variance": [float(h[2][i]) for h in st.history],
                    "tau": float(st.tau[i]),
                    "threshold": st.tests.log_thresh,
                    "alpha_test": st.tests.alpha / st.tests.n,
                    "exposures": float(a.s_rb[i] + a.s_hb[i] + a.s_rw[i] + a.s_hw[i])
                    if a is not None
                    else 0.0,
                    "max_log_e": float(st.tests.max_log_e[i]),
                }
            )
    return rows


def null_run(seed: int) -> list[dict[str, Any]]:
    _, _, engine = replay("null", seed)
    return _holdout_histories(engine)


def crossing_prob(
    theta: float,
    v_hat: np.ndarray,
    v_true: np.ndarray,
    tau: float,
    thr: float,
    n: int = 4000,
    seed: int = 1,
) -> float:
    """``P(max_t log E(θ̂_t, V̂_t) ≥ thr)`` for ``θ̂_t`` Brownian in information time
    (``S_t = θ̂_t / V_t = θ I_t + B(I_t)``, ``I_t = 1/V_true,t``)."""
    from detectors.sequential import mixture_log_e

    rng = np.random.default_rng(seed)
    info = 1 / v_true
    d_info = np.diff(np.r_[0.0, info])
    b = np.cumsum(rng.normal(size=(n, info.size)) * np.sqrt(np.maximum(d_info, 0)), axis=1)
    est = (theta * info + b) / info
    log_e, _ = mixture_log_e(est.ravel(), np.tile(v_hat, n), tau, 0.0)
    return float((log_e.reshape(n, -1).max(axis=1) >= thr).mean())


def mde_b(v_hat: np.ndarray, v_true: np.ndarray, tau: float, thr: float, power: float) -> float:
    lo, hi = 0.0, 4.0
    for _ in range(22):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if crossing_prob(mid, v_hat, v_true, tau, thr) < power else (lo, mid)
    return hi


def mde_study(runs: list[list[dict[str, Any]]]) -> dict[str, Any]:
    by_subject: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for rows in runs:
        for r in rows:
            if r["subject"] not in NULL_SKIP:
                by_subject[(r["window"], r["kind"], r["subject"])].append(r)
    z80 = stats.norm.ppf(0.8)
    table = []
    for (window, kind, subject), rs in sorted(by_subject.items()):
        looks = min(len(r["estimate"]) for r in rs)
        est = np.array([r["estimate"][:looks] for r in rs])
        var = np.array([r["variance"][:looks] for r in rs])
        final = est[:, -1]
        ok = np.isfinite(final)
        if ok.sum() < 10:
            continue
        sigma = float(np.std(final[ok], ddof=1))
        rms = math.sqrt(float(np.nanmean(var[:, -1])))
        with np.errstate(invalid="ignore"):
            v_hat = np.nanmean(np.where(np.isfinite(var), var, np.nan), axis=0)
        v_hat = np.where(np.isfinite(v_hat), v_hat, 1e6)
        v_true = np.minimum.accumulate((v_hat * (sigma / rms) ** 2)[::-1])[::-1]
        tau = float(np.median([r["tau"] for r in rs]))
        thr = rs[0]["threshold"]
        zf = float(stats.norm.ppf(1 - rs[0]["alpha_test"] / 2))
        a50, a80 = zf * sigma, (zf + z80) * sigma
        b50 = mde_b(v_hat, v_true, tau, thr, 0.5)
        b80 = mde_b(v_hat, v_true, tau, thr, 0.8)
        table.append(
            {
                "window": window,
                "kind": kind,
                "subject": subject,
                "exposures": float(np.median([r["exposures"] for r in rs])),
                "sigma": sigma,
                "se_estimated": rms,
                "a50": math.exp(a50),
                "b50": math.exp(b50),
                "ratio50": b50 / a50,
                "a80": math.exp(a80),
                "b80": math.exp(b80),
                "ratio80": b80 / a80,
                "z_sd": float(np.std(final[ok] / np.sqrt(var[ok, -1]))),
            }
        )
        print(
            f"  {subject:14s} {kind:5s} exposures {table[-1]['exposures']:7.0f} "
            f"σ {sigma:.3f} (est {rms:.3f})  MDE50 a ×{math.exp(a50):.2f} b "
            f"×{math.exp(b50):.2f} ({b50 / a50:.2f})  MDE80 a ×{math.exp(a80):.2f} "
            f"b ×{math.exp(b80):.2f} ({b80 / a80:.2f})",
            flush=True,
        )
    # by size class: exposure terciles of actors, and groups
    out: dict[str, Any] = {"subjects": table, "by_size": []}
    actors = [t for t in table if t["kind"] == "actor"]
    cuts = np.quantile([t["exposures"] for t in actors], [1 / 3, 2 / 3]) if actors else []
    classes = [
        ("actors, smallest third", lambda t: t["kind"] == "actor" and t["exposures"] <= cuts[0]),
        (
            "actors, middle third",
            lambda t: t["kind"] == "actor" and cuts[0] < t["exposures"] <= cuts[1],
        ),
        ("actors, largest third", lambda t: t["kind"] == "actor" and t["exposures"] > cuts[1]),
        ("groups (parties)", lambda t: t["kind"] == "group"),
    ]
    print(
        f"\n  {'subjects':24s} {'n':>3s} {'exposures':>9s} {'σ':>6s} {'a50':>6s} {'b50':>6s} "
        f"{'b/a':>5s} {'a80':>6s} {'b80':>6s} {'b/a':>5s}"
    )
    for label, pick in classes:
        rows = [t for t in table if pick(t)]
        if not rows:
            continue
        med = {
            k: float(np.median([r[k] for r in rows]))
            for k in ("exposures", "sigma", "a50", "b50", "ratio50", "a80", "b80", "ratio80")
        }
        out["by_size"].append({"class": label, "subjects": len(rows), **med})
        print(
            f"  {label:24s} {len(rows):3d} {med['exposures']:9.0f} {med['sigma']:6.3f} "
            f"×{med['a50']:.2f} ×{med['b50']:.2f} {med['ratio50']:5.2f} ×{med['a80']:.2f} "
            f"×{med['b80']:.2f} {med['ratio80']:5.2f}"
        )
    return out


def planted_run(name: str, seed: int) -> dict[str, Any]:
    truth, findings, _ = replay(name, seed)
    return {
        "seed": seed,
        "scenario": name,
        "truth": truth["interventions"],
        "findings": [
            {
                "detector": f.detector,
                "kind": f.kind,
                "subject": f.subject,
                "subject_kind": f.subject_kind,
                "region": f.region,
                "surface": f.surface,
                "effect": f.effect,
                "ci_low": f.ci_low,
                "ci_high": f.ci_high,
                "event_time": f.event_time.isoformat(),
                "ci95": _ci95(f),
            }
            for f in findings
        ],
    }


def _ci95(finding: Any) -> list[float | None] | None:
    """The fixed-time 95 % interval of a statistical finding's effect (typed evidence)."""
    from detectors import evidence

    ev = evidence.decode_finding(finding).evidence
    if isinstance(
        ev,
        evidence.HoldoutShiftEvidence | evidence.ScoreShiftEvidence | evidence.RankUpliftEvidence,
    ):
        return ev.effect.ci95
    return None


def _expected(iv: dict[str, Any]) -> str | None:
    if iv["expected_finding"] in ("amplification", "suppression"):
        return str(iv["expected_finding"])
    return None


def power_study(runs: list[dict[str, Any]], detector: str | None) -> dict[str, Any]:
    found: dict[str, list[bool]] = defaultdict(list)
    effects: dict[str, list[float]] = defaultdict(list)
    false_flags = []
    for run in runs:
        for iv in run["truth"]:
            kind = _expected(iv)
            if kind is None:
                continue
            hits = [
                f
                for f in run["findings"]
                if f["subject"] == iv["target"]
                and f["kind"] == kind
                and f["region"] == iv["region"]
                and f["surface"] is None
                and (detector is None or f["detector"] == detector)
            ]
            key = f"{iv['kind']} {iv['target']} ×{iv['multiplier']:g}"
            found[key].append(bool(hits))
            effects[key].append(iv["exposure_effect"])
        # correct findings: a planted target, or what its truth entry also accepts (the
        # group of a boosted candidate, the members of a boosted party)
        accepted = {
            (iv["subject_kind"], iv["target"])
            for iv in run["truth"]
            if _expected(iv) or iv["expected_finding"] != "none"
        }
        accepted |= {
            (a["subject_kind"], a["subject"]) for iv in run["truth"] for a in iv["also_acceptable"]
        }
        for f in run["findings"]:
            if (
                f["kind"] in ALARMS
                and (f["subject_kind"], f["subject"]) not in accepted
                and (detector is None or f["detector"] == detector)
            ):
                false_flags.append(
                    (run["seed"], f["detector"], f["kind"], f["subject"], f["region"])
                )
    res = {
        k: {"found": sum(v), "runs": len(v), "exposure_effect": float(np.median(effects[k]))}
        for k, v in found.items()
    }
    for k, v in res.items():
        print(
            f"  {k:42s} found {v['found']}/{v['runs']}  (exposure effect ×"
            f"{v['exposure_effect']:.2f})"
        )
    print(f"  false flags: {len(false_flags)} {false_flags[:6]}")
    return {"planted": res, "false_flags": false_flags}


def coverage_study(runs: list[dict[str, Any]]) -> dict[str, Any]:
    cover: dict[str, list[tuple[bool, bool | None]]] = defaultdict(list)
    for run in runs:
        scenario = run["scenario"]
        for iv in run["truth"]:
            kind, truth = _expected(iv), iv["exposure_effect"]
            if kind is None or truth is None:
                continue
            for f in run["findings"]:
                if (
                    f["subject"] == iv["target"]
                    and f["kind"] == kind
                    and f["region"] == iv["region"]
                    and f["surface"] is None
                ):
                    cs = f["ci_low"] <= truth <= f["ci_high"]
                    ci95 = f["ci95"]
                    c95 = None if not ci95 else ci95[0] <= truth <= ci95[1]
                    cover[f["detector"]].append((cs, c95))
                    cover[f"{f['detector']} ({scenario})"].append((cs, c95))
    res = {}
    for det, v in sorted(cover.items()):
        cs = [a for a, _ in v]
        c95 = [b for _, b in v if b is not None]
        res[det] = {
            "findings": len(v),
            "cs_covers": sum(cs),
            "ci95_covers": sum(c95),
            "ci95_findings": len(c95),
        }
        print(
            f"  {det:38s} findings {len(v):4d}: always-valid CI covers the exposure effect "
            f"{sum(cs)}/{len(v)}; fixed-time 95% CI {sum(c95)}/{len(c95)}"
        )
    return res


def scoped_study(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Boosts confined to one surface or one subdivision (``surface_and_region``): found by
    ``holdout_shift`` in their own scope, in the whole scope, and whether the scope finding's
    interval covers the exposure effect (measured in the sessions the boost applied to)."""
    rows: dict[str, dict[str, Any]] = {}
    false_flags = []
    for run in runs:
        for iv in run["truth"]:
            kind = _expected(iv)
            scoped = iv["surfaces"] or [r for r in iv["regions"] if r != iv["region"]]
            if kind is None or not scoped:
                continue

            def in_scope(f: dict[str, Any], iv: dict[str, Any] = iv) -> bool:
                return (
                    f["surface"] in iv["surfaces"]
                    if iv["surfaces"]
                    else f["surface"] is None and f["region"] in iv["regions"]
                )

            hits = [
                f
                for f in run["findings"]
                if f["detector"] == "holdout_shift"
                and f["subject"] == iv["target"]
                and f["kind"] == kind
            ]
            scope_hits = [f for f in hits if in_scope(f)]
            whole = [f for f in hits if f["surface"] is None and f["region"] == iv["region"]]
            key = (
                f"{iv['kind']} {iv['target']} ×{iv['multiplier']:g} in "
                f"{'surface ' + iv['surfaces'][0] if iv['surfaces'] else iv['regions'][0]}"
            )
            row = rows.setdefault(
                key,
                {
                    "runs": 0,
                    "found_in_scope": 0,
                    "found_whole": 0,
                    "scope_ci_covers": 0,
                    "exposure_effect": [],
                },
            )
            row["runs"] += 1
            row["found_in_scope"] += bool(scope_hits)
            row["found_whole"] += bool(whole)
            row["exposure_effect"].append(iv["exposure_effect"])
            truth = iv["exposure_effect"]
            row["scope_ci_covers"] += (
                bool(scope_hits)
                and truth is not None
                and scope_hits[0]["ci_low"] <= truth <= scope_hits[0]["ci_high"]
            )
        accepted = {
            (iv["subject_kind"], iv["target"])
            for iv in run["truth"]
            if _expected(iv) or iv["expected_finding"] != "none"
        }
        accepted |= {
            (a["subject_kind"], a["subject"]) for iv in run["truth"] for a in iv["also_acceptable"]
        }
        false_flags += [
            (run["seed"], f["detector"], f["kind"], f["subject"], f["region"], f["surface"])
            for f in run["findings"]
            if f["kind"] in ALARMS and (f["subject_kind"], f["subject"]) not in accepted
        ]
    for key, row in rows.items():
        row["exposure_effect"] = float(
            np.median([e for e in row["exposure_effect"] if e is not None])
        )
        print(
            f"  {key:52s} found in its scope {row['found_in_scope']}/{row['runs']}, in the "
            f"whole {row['found_whole']}/{row['runs']}; scope CI covers the exposure effect "
            f"×{row['exposure_effect']:.2f} in {row['scope_ci_covers']}"
        )
    print(f"  false flags (any detector, any scope): {len(false_flags)} {false_flags[:6]}")
    return {"planted": rows, "false_flags": false_flags}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--null", type=int, default=40, help="null elections for the MDE study")
    ap.add_argument("--planted", type=int, default=12, help="elections per planted scenario")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument(
        "--scoped",
        type=int,
        default=0,
        help="surface_and_region elections (boosts confined to a surface / a "
        "subdivision); 0 = skip",
    )
    ap.add_argument("--skip", default="")
    ap.add_argument("--name", default="power", help="results file name (without .json)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    res: dict[str, Any] = {}
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        if "mde" not in skip:
            print(
                "== MDE: fixed-horizon with known variance (a) vs amplimon's always-valid "
                "holdout test (b)"
            )
            runs = list(pool.map(null_run, range(80_000, 80_000 + args.null)))
            res["mde"] = mde_study(runs)
        planted: dict[str, list[dict[str, Any]]] = {}
        if "power" not in skip or "coverage" not in skip:
            for name in ("uninformative_scores", "default", "late_onset"):
                seeds = range(81_000, 81_000 + args.planted)
                planted[name] = list(pool.map(planted_run, [name] * len(seeds), seeds))
        if "power" not in skip:
            print("\n== power: scores that carry no information, holdout_shift alone")
            res["power_uninformative"] = power_study(
                planted["uninformative_scores"], "holdout_shift"
            )
            print("\n== power: default scenario, any detector")
            res["power_default"] = power_study(planted["default"], None)
            print("\n== power: hidden ×2.5 boost from 18 h into the window, any detector")
            res["power_late_onset"] = power_study(planted["late_onset"], None)
        if "coverage" not in skip:
            print("\n== coverage of the planted exposure effect")
            res["coverage"] = coverage_study([r for v in planted.values() for r in v])
        if args.scoped:
            print("\n== boosts confined to one surface / one subdivision, holdout_shift")
            seeds = range(82_000, 82_000 + args.scoped)
            res["scoped"] = scoped_study(
                list(pool.map(planted_run, ["surface_and_region"] * len(seeds), seeds))
            )
    res["seconds"] = time.perf_counter() - t0
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{args.name}.json"
    path.write_text(json.dumps(res, indent=1, default=str))
    print(f"\nwrote {path} ({res['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
