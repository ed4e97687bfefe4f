"""``replay --workers N``: groups of detectors in parallel processes give the store of one.

A simulated election on two platforms (planted cases on one, duplicates, malformed lines) is replayed with 1, 2 and 3 workers; every result table — findings
with their evidence, amplification rows, detectability, dead letters — and the run's
counters must be identical, bit for bit (only wall-clock columns differ).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import monitor.app.replay as replay_module
from monitor.app.replay import replay
from monitor.app.shards import plan
from monitor.core.config import load_config
from monitor.core.privacy import Pseudonymiser
from monitor.core.store import Store
from streams.simulator import scenario, write_simulation

KEY = Pseudonymiser(b"k" * 32)
NAMES = [
    "amplification",
    "undisclosed_intervention",
    "holdout_shift",
    "rank_uplift",
    "score_shift",
    "missing_label",
    "log_integrity",
]


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("sim")
    params = scenario("demo", seed=11, scale=0.08, platforms=("chirp", "yodel"))
    paths = write_simulation(out, params, fmt="jsonl")
    return {**paths, "config": load_config(paths["config"])}


def tables(sim: dict[str, Any], db: Path, workers: int) -> dict[str, Any]:
    result = replay(
        sim["config"],
        db,
        [sim["exposure"]],
        [sim["ranking"]],
        show_progress=False,
        pseudonymiser=KEY,
        workers=workers,
    )
    with Store(db, read_only=True) as store:
        q = store.query
        got: dict[str, Any] = {
            "findings": q("""SELECT * EXCLUDE (detected_at, updated_at) FROM findings
                             ORDER BY finding_id"""),
            "amplification": q("SELECT * EXCLUDE (computed_at) FROM amplification ORDER BY ALL"),
            "detectability": q("SELECT * EXCLUDE (computed_at) FROM detectability ORDER BY ALL"),
            "deadletter": q("SELECT * EXCLUDE (received_at) FROM deadletter ORDER BY ALL"),
        }
        (info,) = q("SELECT info FROM runs")[0]
    got["runs"] = {k: v for k, v in json.loads(info).items() if k != "inputs"}
    got["stats"] = result.stats.as_dict()
    return got


@pytest.fixture(scope="module")
def one(sim: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The one-process run every parallel one must reproduce."""
    return tables(sim, tmp_path_factory.mktemp("one") / "one.duckdb", 1)


def test_workers_one_two_three_give_identical_stores(sim, one, tmp_path: Path) -> None:
    assert {row[0] for row in one["amplification"]} == {"chirp", "yodel"}
    assert len(one["findings"]) >= 5 and one["deadletter"] and one["detectability"]
    for workers in (2, 3):
        got = tables(sim, tmp_path / f"w{workers}.duckdb", workers)
        for key, value in one.items():
            assert got[key] == value, f"{key} differs with {workers} workers"


def test_a_shard_that_reads_only_exposures_changes_nothing(
    sim, one, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plan of a large archive: holdout_shift (and the ledger-only amplification table)
    in a shard that decodes no ranking, the run's counters from the other shard."""
    alone = ["amplification", "holdout_shift"]
    rest = [n for n in NAMES if n not in alone]
    monkeypatch.setattr(replay_module, "plan", lambda *_a, **_k: [alone, rest])
    got = tables(sim, tmp_path / "two.duckdb", 2)
    for key, value in one.items():
        assert got[key] == value, f"{key} differs"


def test_plan_splits_every_detector_once_and_balances() -> None:
    for events in (10_000, 240_000, 2_400_000):
        for workers in range(1, 9):
            groups = plan(NAMES, workers, events=events, ticks=480)
            assert sorted(n for g in groups for n in g) == sorted(NAMES)
            assert len(groups) <= workers
    assert plan(NAMES, 1, events=240_000, ticks=480) == [NAMES]
    # the per-event holdout comparison dominates a large archive: it gets a process alone,
    # and more processes than that gain nothing
    big = plan(NAMES, 4, events=2_400_000, ticks=480)
    assert ["holdout_shift"] in big and len(big) == 2
