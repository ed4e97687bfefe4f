"""``log_integrity`` against a platform that lies in its logs (issue 13): every adversary of
:mod:`streams.simulator.adversary` becomes a finding on a small simulated election run
through the real engine, and declared aliases count for their actor in every detector."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from detectors import default_names
from monitor.app.replay import drive
from monitor.core.config import parse_config
from monitor.engine.run import Engine
from streams.files import merge_by_time
from streams.memory import ListOutput, records_from_dicts
from streams.simulator import scenario, simulate
from streams.simulator.simulation import Simulation

FAR = 4_000_000_000_000
SMALL = {"n_users": 1500, "time_scale": 0.15}


def run(
    sim: Simulation,
    detectors: list[str] | None = None,
    config: dict[str, Any] | None = None,
    exposures: list[dict[str, Any]] | None = None,
    rankings: list[dict[str, Any]] | None = None,
) -> ListOutput:
    out = ListOutput()
    engine = Engine(
        parse_config(config or sim.config),
        out,
        detectors=detectors or ["log_integrity"],
        now_ms=lambda: FAR,
    )
    streams = [
        records_from_dicts("exposure", sim.exposures if exposures is None else exposures),
        records_from_dicts("ranking", sim.rankings if rankings is None else rankings),
    ]
    if sim.panel:
        streams.append(records_from_dicts("panel", sim.panel))
    drive(engine, merge_by_time(streams))
    return out


def integrity(out: ListOutput) -> dict[tuple[str, str], Any]:
    """(window, subject) → the latest log_integrity finding."""
    return {
        (f.window_id, f.subject): f
        for f in out.latest_findings.values()
        if f.kind == "log_integrity"
    }


def subjects(out: ListOutput) -> set[str]:
    return {s for _, s in integrity(out)}


def test_look_alike_ids_name_the_registered_actor_with_a_sensitivity_analysis() -> None:
    sim = simulate(scenario("alias_disguise", seed=1, **SMALL))
    found = integrity(run(sim))
    assert subjects_of(found) == {"actor_lookalike:de-a-cand-1"}, found.keys()
    f = found[("de-bundestag-sim", "actor_lookalike:de-a-cand-1")]
    ev = f.evidence
    assert ev["check"] == "actor_lookalike" and ev["actor"] == "de-a-cand-1"
    assert f.p_value is None and f.severity in ("high", "critical")
    by_id = {i["observed"]: i for i in ev["ids"]}
    assert by_id["de\u200b-a-cand-1"]["reasons"] == ["invisible"]
    assert by_id["de\u200b-a-cand-1"]["characters"] == ["U+200B ZERO WIDTH SPACE"]
    assert by_id["DE-A-CAND-1"]["reasons"] == ["case"]
    assert by_id["de-a-cand-1 "]["reasons"] == ["whitespace"]
    assert ev["exposures"] == sum(sum(i["exposures"].values()) for i in ev["ids"]) > 0
    assert ev["example_event_ids"]
    sens = ev["sensitivity"]
    assert sens["label"].startswith("SENSITIVITY ANALYSIS")
    win = sens["window"]
    # every one of the actor's items was disguised: as logged, the actor had no exposure
    assert win["as_logged"]["exposures_ranked"] == 0 and win["as_logged"]["ratio"] is None
    assert win["with_lookalikes"]["exposures_ranked"] > 0
    assert win["with_lookalikes"]["ratio"] > 1  # the hidden x1.5 boost reappears


def subjects_of(found: dict[tuple[str, str], Any]) -> set[str]:
    return {s for _, s in found}


def test_declared_aliases_count_for_their_actor_in_every_detector() -> None:
    """The platform logs de-a-cand-1 under an account id the registry declares as its
    alias: every detector's findings and every measurement are those of the run that logs
    the actor's own id, and no look-alike finding appears."""
    sim = simulate(scenario("hidden_boost", seed=2, **SMALL))
    alias = "de-a-cand-1-official"
    renamed = [{**r, "actor": alias} if r["actor"] == "de-a-cand-1" else r for r in sim.exposures]
    slates = [
        {
            **r,
            "items": [
                {**it, "actor": alias} if it["actor"] == "de-a-cand-1" else it for it in r["items"]
            ],
        }
        for r in sim.rankings
    ]
    config = json.loads(json.dumps(sim.config, default=str))
    for a in config["actors"]:
        if a["actor"] == "de-a-cand-1":
            a["aliases"] = [alias]
    names = default_names()
    honest, aliased = run(sim, names, config), run(sim, names, config, renamed, slates)

    def view(out: ListOutput) -> tuple[list[Any], list[Any]]:
        findings = sorted(
            (f.finding_id, f.subject, f.effect, f.p_value, f.n_exposures)
            for f in out.latest_findings.values()
        )
        rows = sorted(
            (m.window_id, m.period, m.subject, m.n_ranked, m.n_holdout)
            for m in out.latest_measurements.values()
        )
        return findings, rows

    assert view(aliased) == view(honest)
    assert [
        m
        for m in aliased.latest_measurements.values()
        if m.subject == "de-a-cand-1" and m.n_ranked > 0
    ]
    assert honest.latest_findings  # the comparison is not vacuous
    assert not [s for s in subjects(aliased) if s.startswith("actor_lookalike")]


def test_deleted_holdout_logs_are_a_silent_holdout_arm() -> None:
    sim = simulate(scenario("holdout_deletion", seed=3, n_users=3000, time_scale=0.15))
    assert "platforms" not in sim.config  # nothing declared: the baseline is the reference
    found = integrity(run(sim))
    silent = {w: f for (w, s), f in found.items() if s == "holdout_silent"}
    assert set(silent) == {"de-bundestag-sim", "at-nationalrat-sim"}
    for f in silent.values():
        assert f.evidence["check"] == "holdout_silent" and f.severity == "critical"
        assert f.evidence["window"]["users_holdout"] == 0 and f.evidence["scope_silent"]
        assert f.evidence["expected_holdout_users"] >= 20
    share = found[("de-bundestag-sim", "holdout_share")]
    ev = share.evidence
    assert ev["reference"] == "baseline" and ev["observed_holdout_share"] == 0
    assert 0.15 < ev["reference_holdout_share"] < 0.25 and share.effect == 0
    assert share.p_value is not None and share.p_value < 0.05


def test_a_holdout_arm_deleted_in_one_region_is_a_silent_region() -> None:
    sim = simulate(
        scenario(
            "holdout_deletion", seed=0, n_users=3000, time_scale=0.15, adversary_regions=("DE-BE",)
        )
    )
    found = integrity(run(sim))
    f = found[("de-bundestag-sim", "holdout_silent")]
    ev = f.evidence
    assert not ev["scope_silent"] and set(ev["regions"]) == {"DE-BE"}
    assert ev["regions"]["DE-BE"]["expected_holdout_users"] >= 20 and f.severity == "high"
    assert ("at-nationalrat-sim", "holdout_silent") not in found


def test_a_thinned_holdout_arm_is_found_against_the_baseline() -> None:
    """Half of the holdout users vanish from the window start, no share declared: fewer
    holdout users come back than the baseline's arms predict."""
    sim = simulate(scenario("holdout_thinning", seed=0, time_scale=0.15))
    found = integrity(run(sim))
    f = found[("de-bundestag-sim", "holdout_share")]
    ev = f.evidence
    assert ev["reference"] == "baseline" and ev["direction"] == "low"
    back = ev["returning_users"]
    assert back["return_rate"]["holdout"] < 0.7 * back["return_rate"]["ranked"]
    assert back["returned"]["holdout"] < back["expected_holdout_returners"]
    assert not [s for _, s in found if s != "holdout_share"]


def test_users_moved_into_the_holdout_arm_are_found() -> None:
    sim = simulate(scenario("holdout_move", seed=4, n_users=3000, time_scale=0.15))
    found = integrity(run(sim))
    moved = {w: f for (w, s), f in found.items() if s == "holdout_assignment"}
    assert moved, found.keys()
    for f in moved.values():
        assert f.evidence["users_in_both_arms"] >= 10 and f.effect >= 0.01
    share = found.get(("de-bundestag-sim", "holdout_share"))
    assert share is not None and share.evidence["direction"] == "high"


def test_stripped_intervention_ids_leave_the_labels_inconsistent() -> None:
    sim = simulate(scenario("stripped_interventions", seed=5, **SMALL))
    assert sim.truth["adversary"]["strip_interventions"]["ranking_items_stripped"] > 0
    out = run(sim, ["missing_label", "log_integrity"])
    # missing_label needs the ids and finds nothing; the exposure log alone still shows it
    assert not [f for f in out.latest_findings.values() if f.kind == "missing_label"]
    f = integrity(out)[("de-bundestag-sim", "label_consistency")]
    ev = f.evidence
    assert ev["check"] == "label_consistency" and ev["examples"][0]["label"] == "promoted"
    assert 0.15 < f.effect < 0.45  # 30 % of the labels were left off


def test_label_without_a_declared_or_logged_intervention() -> None:
    sim = simulate(scenario("label_without_intervention", seed=6, **SMALL))
    found = integrity(run(sim))
    hits = [f for (w, s), f in found.items() if s == "label_without_intervention"]
    assert hits
    for f in hits:
        assert f.evidence["labels"].keys() == {"sponsored"}
        assert f.evidence["actors"] == ["de-a-cand-1"]


def test_conflicting_duplicates_are_counted_and_order_does_not_matter() -> None:
    sim = simulate(scenario("conflicting_duplicates", seed=7, **SMALL))
    copies = sim.truth["adversary"]["conflicting_duplicates"]["conflicting_copies"]
    first = run(sim, ["amplification", "log_integrity"])
    # the same records with every conflicting pair's copies swapped
    swapped = list(sim.exposures)
    i = 0
    while i < len(swapped) - 1:
        a, b = swapped[i], swapped[i + 1]
        if a["event_id"] == b["event_id"] and a != b:
            swapped[i], swapped[i + 1] = b, a
            i += 2
        else:
            i += 1
    second = run(sim, ["amplification", "log_integrity"], exposures=swapped)
    found = integrity(first)
    hits = [f for (w, s), f in found.items() if s == "conflicting_duplicates"]
    assert hits and all(f.n_exposures == 2 * copies for f in hits)
    assert hits[0].evidence["conflicting_copies"] == {"exposure": 2 * copies}

    def rows(out: ListOutput) -> list[Any]:
        return sorted(
            (m.window_id, m.period, m.subject, m.n_ranked, m.n_holdout, m.ratio)
            for m in out.latest_measurements.values()
        )

    assert rows(first) == rows(second)
    assert sum(1 for d in first.dead if "conflicting duplicate" in d.reason) == 2 * copies


def test_a_log_falsified_against_the_panel_is_found_and_no_panellist_named() -> None:
    sim = simulate(scenario("falsified_log", seed=8, **SMALL))
    found = integrity(run(sim))
    hits = {w: f for (w, s), f in found.items() if s == "panel_mismatch"}
    assert set(hits) == {"de-bundestag-sim", "at-nationalrat-sim"}
    for f in hits.values():
        ev = f.evidence
        assert ev["kinds"]["missing_from_log"] > 0 and ev["kinds"]["position_mismatch"] > 0
        assert ev["kinds"]["not_seen_by_panel"] == 0
        assert f.ci_low <= f.effect <= f.ci_high and f.ci_low > 0.02
        assert f.p_value < 0.01
        lo, hi = ev["mismatch_rate_ci95_users_clustered"]
        assert lo <= f.effect <= hi
    text = msgspec.json.encode([f.evidence for f in found.values()]).decode()
    panellists = {r["user"] for r in sim.panel}
    assert not [u for u in panellists if u in text]
    assert "item" not in text and '"ts"' not in text


@pytest.mark.parametrize("name", ["honest_panel", "null"])
def test_honest_platforms_raise_no_integrity_finding(name: str) -> None:
    for seed in (11, 12, 13):
        sim = simulate(scenario(name, seed=seed, **SMALL))
        out = run(sim)
        assert not integrity(out), (seed, integrity(out).keys())


def test_staged_replay_reads_the_panel_and_counts_conflicting_duplicates(tmp_path) -> None:
    """The files path (`amplimon replay --panel`): staged, order-independent replay finds
    the falsified log against the panel file and the conflicting duplicates."""
    from monitor.app.replay import replay
    from monitor.core.store import Store
    from streams.simulator import write_simulation

    sim = simulate(
        scenario(
            "falsified_log",
            seed=9,
            adversaries=("falsified_log", "conflicting_duplicates"),
            **SMALL,
        )
    )
    paths = write_simulation(tmp_path / "sim", sim, fmt="jsonl")
    result = replay(
        parse_config(sim.config),
        tmp_path / "run.duckdb",
        [paths["exposure"]],
        [paths["ranking"]],
        panel=[paths["panel"]],
        detectors=["log_integrity"],
        show_progress=False,
        workers=1,
    )
    assert result.stats.accepted["panel"] == len(sim.panel)
    store = Store(tmp_path / "run.duckdb", read_only=True)
    try:
        rows = store.con.execute("select subject from findings").fetchall()
    finally:
        store.close()
    assert {"panel_mismatch", "conflicting_duplicates"} <= {r[0] for r in rows}
