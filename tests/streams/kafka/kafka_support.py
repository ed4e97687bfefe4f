"""Helpers of the live-pipeline tests (imported by the tests and their conftest)."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from monitor.core.config import Config, load_config


@dataclass(frozen=True)
class Simulation:
    dir: Path
    exposure: Path
    ranking: Path
    config_path: Path

    @property
    def config(self) -> Config:
        return load_config(self.config_path)

    @property
    def files(self) -> list[tuple[Path, str]]:
        return [(self.exposure, "exposure"), (self.ranking, "ranking")]


@dataclass(frozen=True)
class Tables:
    """What a run wrote, comparable between replay and the live pipeline."""

    findings: dict[str, dict[str, Any]]
    amplification: dict[tuple[str, ...], dict[str, Any]]
    deadletters: int
    deadletter_reasons: list[str]
    detectability: int


def read_tables(con: Any) -> Tables:
    def rows(sql: str) -> list[dict[str, Any]]:
        cur = con.execute(sql)
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]

    findings = {r["finding_id"]: r for r in rows("SELECT * FROM findings")}
    amp = {
        (
            r["platform"],
            r["region"],
            r["window_id"],
            r["period"],
            r["subject_kind"],
            r["subject"],
        ): r
        for r in rows("SELECT * FROM amplification")
    }
    reasons = sorted(r["reason"] for r in rows("SELECT reason FROM deadletter"))
    n_det = con.execute("SELECT count(*) FROM detectability").fetchone()[0]
    return Tables(findings, amp, len(reasons), reasons, n_det)


def close(a: float | None, b: float | None) -> bool:
    """Equal within float tolerance (the order of events inside a tick follows arrival, and
    so may the last bits of a sum); None only equals None."""
    if a is None or b is None:
        return a is b
    return a == pytest.approx(b, rel=1e-9, abs=1e-300)


def assert_same_results(got: Tables, want: Tables) -> None:
    """Same finding ids, kinds, subjects and numbers; same amplification rows."""
    assert sorted(got.findings) == sorted(want.findings)
    for fid, w in want.findings.items():
        g = got.findings[fid]
        for col in (
            "kind",
            "detector",
            "platform",
            "region",
            "window_id",
            "surface",
            "subject_kind",
            "subject",
            "severity",
            "n_exposures",
            "event_time",
        ):
            assert g[col] == w[col], (fid, col)
        for col in ("effect", "ci_low", "ci_high", "p_value"):
            assert close(g[col], w[col]), (fid, col, g[col], w[col])
    assert sorted(got.amplification) == sorted(want.amplification)
    for key, w in want.amplification.items():
        g = got.amplification[key]
        for col in ("n_ranked", "n_holdout", "users_ranked", "users_holdout"):
            assert g[col] == w[col], (key, col)
        for col in ("ratio", "ci_low", "ci_high", "reach_ratio"):
            assert close(g[col], w[col]), (key, col, g[col], w[col])
    assert got.detectability == want.detectability


# Malformed messages a live topic may carry: not UTF-8, not an object, empty, incomplete,
# deeply nested, larger than a file line may be.
GARBAGE = [
    b"\xff\xfe\x00 not utf-8",
    b"[1, 2, 3]",
    b"",
    b"null",
    b'{"event_id": "x", "platform": "chirp"}',
    b"{" * 300_000,
    b'{"event_id": "big", "junk": "' + b"x" * 1_200_000 + b'"}',
]


def load_benchmark(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` imported as a module (the benchmarks are scripts, not a
    package), registered in ``sys.modules`` so that its dataclasses resolve."""
    path = Path(__file__).resolve().parents[3] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
