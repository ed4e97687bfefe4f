"""`amplimon replay` end to end on simulated elections, checked against the ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
import yaml

from monitor.cli import main
from streams.simulator import scenario, write_simulation

DISCLOSURE_KINDS = {"undisclosed_intervention", "missing_label"}


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, Path]:
    out = tmp_path_factory.mktemp("sim")
    write_simulation(out, scenario("default", seed=3), fmt="jsonl.gz")
    truth = json.loads((out / "truth.json").read_text())
    db = out / "out.duckdb"
    rc = main(
        [
            "replay",
            "--config",
            str(out / "amplimon.yaml"),
            "--db",
            str(db),
            "--exposure",
            str(out / "exposure.jsonl.gz"),
            "--ranking",
            str(out / "ranking.jsonl.gz"),
            "--no-progress",
        ]
    )
    assert rc == 0
    return out, truth, db


def rows(db: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_amplification_counts_exact_despite_duplicates_and_late_events(default_run) -> None:
    _, truth, db = default_run
    assert sum(truth["faults"]["duplicates"].values()) > 0
    assert sum(truth["faults"]["late"].values()) > 0
    got = {
        r[:6]: r[6:]
        for r in rows(
            db,
            """
        SELECT platform, region, window_id, period, subject_kind, subject,
               n_ranked, n_holdout, users_ranked, users_holdout, reach_ranked, reach_holdout
        FROM amplification""",
        )
    }
    expected = {
        (
            t["platform"],
            t["region"],
            t["window_id"],
            t["period"],
            t["subject_kind"],
            t["subject"],
        ): (
            t["n_ranked"],
            t["n_holdout"],
            t["users_ranked"],
            t["users_holdout"],
            t["reach_ranked"],
            t["reach_holdout"],
        )
        for t in truth["amplification"]
    }
    assert got == expected


def test_every_breakage_dead_lettered_with_exact_count(default_run) -> None:
    _, truth, db = default_run
    malformed = truth["faults"]["malformed"]
    expected = sum(sum(kinds.values()) for kinds in malformed.values())
    reasons = [r[0] for r in rows(db, "SELECT reason FROM deadletter")]
    assert len(reasons) == expected
    assert all(r.split(":")[0].split(".")[0] in ("exposure", "ranking") for r in reasons)
    joined = "\n".join(reasons)
    for needle in (
        "truncated JSON",
        "not valid JSON",
        "required field is missing",
        "expected integer",
        "expected RFC 3339",
        "expected one of 'ranked', 'holdout'",
        "expected integer >= 1, got 0",
        "expected array of length >= 1",
    ):
        assert needle in joined, needle


def test_planted_disclosure_violations_found_and_nothing_else(default_run) -> None:
    _, truth, db = default_run
    found = {
        (k, sk, s)
        for k, sk, s in rows(
            db,
            "SELECT kind, subject_kind, subject FROM findings WHERE kind IN "
            "('undisclosed_intervention', 'missing_label')",
        )
    }
    planted = {
        (i["expected_finding"], i["subject_kind"], i["subject"])
        for i in truth["interventions"]
        if i["expected_finding"] in DISCLOSURE_KINDS
    }
    acceptable = planted | {
        (a["kind"], a["subject_kind"], a["subject"])
        for i in truth["interventions"]
        for a in i["also_acceptable"]
    }
    assert planted and planted <= found
    assert found <= acceptable


def test_findings_carry_evidence_and_valid_columns(default_run) -> None:
    _, _, db = default_run
    for sev, status, evidence, n in rows(
        db, "SELECT severity, status, evidence, n_exposures FROM findings"
    ):
        assert sev in {"low", "medium", "high", "critical"}
        assert status == "new"
        assert isinstance(json.loads(evidence), dict) and json.loads(evidence)
        assert n >= 0


def test_rerun_gives_the_same_findings(default_run, tmp_path: Path) -> None:
    out, _, db = default_run
    db2 = tmp_path / "again.duckdb"
    assert (
        main(
            [
                "replay",
                "--config",
                str(out / "amplimon.yaml"),
                "--db",
                str(db2),
                "--exposure",
                str(out / "exposure.jsonl.gz"),
                "--ranking",
                str(out / "ranking.jsonl.gz"),
                "--no-progress",
            ]
        )
        == 0
    )
    q = (
        "SELECT finding_id, kind, subject, effect, p_value, n_exposures, event_time, "
        "evidence FROM findings ORDER BY finding_id"
    )
    assert rows(db, q) == rows(db2, q)


def test_parquet_input_gives_the_same_results(default_run, tmp_path: Path) -> None:
    out, _, db = default_run
    pq_dir = tmp_path / "pq"
    write_simulation(pq_dir, scenario("default", seed=3), fmt="parquet")
    db2 = tmp_path / "pq.duckdb"
    assert (
        main(
            [
                "replay",
                "--config",
                str(pq_dir / "amplimon.yaml"),
                "--db",
                str(db2),
                "--exposure",
                str(pq_dir / "exposure.parquet"),
                "--ranking",
                str(pq_dir / "ranking.parquet"),
                "--no-progress",
            ]
        )
        == 0
    )
    q = (
        "SELECT platform, window_id, period, subject, n_ranked, n_holdout, users_ranked "
        "FROM amplification ORDER BY ALL"
    )
    assert rows(db, q) == rows(db2, q)
    q = "SELECT finding_id, kind FROM findings ORDER BY ALL"
    assert rows(db, q) == rows(db2, q)


def test_config_written_by_simulator_is_contract_yaml(default_run) -> None:
    out, _, _ = default_run
    cfg = yaml.safe_load((out / "amplimon.yaml").read_text())
    assert set(cfg) >= {"windows", "actors", "disclosures", "detection"}
