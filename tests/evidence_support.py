"""Findings from a real run: a small seeded simulated election through the real engine.

Every test that needs a finding's evidence takes it from here (never an invented dict): the
null background plus a ×10 hidden boost (holdout_shift, score_shift, rank_uplift), an
organic-logged boost, an unlabelled disclosed boost (missing_label) and an undeclared
intervention (undisclosed_intervention).  1,500 users, 0.4-day periods: ~4 s, once per test
process (:func:`real_run` is cached; ``tests/conftest.py`` shares it as a session fixture).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import yaml

from monitor.core.config import Config, parse_config
from monitor.core.records import Finding, Measurement
from streams.files import merge_by_time
from streams.memory import records_from_dicts
from streams.simulator import scenario, simulate
from streams.simulator.params import Intervention

__all__ = ["RealRun", "real_evidence", "real_finding", "real_run"]


@dataclasses.dataclass(frozen=True)
class RealRun:
    config: Config
    config_yaml: str
    findings: tuple[Finding, ...]  # the latest version of each finding
    measurements: tuple[Measurement, ...]

    def finding(self, detector: str, kind: str | None = None) -> Finding:
        """The first finding of ``detector`` (of ``kind``), by finding id."""
        for f in sorted(self.findings, key=lambda f: f.finding_id):
            if f.detector == detector and (kind is None or f.kind == kind):
                return f
        raise LookupError(f"the real run has no {detector} {kind or ''} finding")


@functools.cache
def real_run() -> RealRun:
    from tests.monitor.stream_support import single  # the engine as the demo tests drive it

    params = scenario("null", seed=3, n_users=1500, time_scale=0.4)
    params = dataclasses.replace(
        params,
        interventions=(
            *params.interventions,
            Intervention("hidden_boost", "de-c-party", 10.0),
            Intervention("organic_logged_boost", "at-a-cand-2", 2.0),
            Intervention(
                "unlabelled_disclosed_boost",
                "at-media-1",
                1.5,
                id="civic-info-at",
                label="promoted",
                unlabelled_share=0.3,
            ),
            Intervention("undeclared_intervention", "de-c-cand-1", 1.3, id="reach-test-7"),
        ),
    )
    sim = simulate(params)
    config = parse_config(sim.config)
    lists = {"exposure": sim.exposures, "ranking": sim.rankings}
    merged = merge_by_time([records_from_dicts(t, lists[t], source=t) for t in lists])
    records = [(r.topic, lists[r.topic][int(r.location.rsplit(":", 1)[1]) - 1]) for r in merged]
    out, _ = single(config, records)
    return RealRun(
        config=config,
        config_yaml=yaml.safe_dump(_plain(sim.config)),
        findings=tuple(out.latest_findings.values()),
        measurements=tuple(out.latest_measurements.values()),
    )


def real_finding(detector: str, kind: str | None = None) -> Finding:
    return real_run().finding(detector, kind)


def real_evidence(detector: str = "holdout_shift", kind: str | None = None) -> dict[str, Any]:
    """The evidence (JSON form) of a real finding of ``detector``."""
    return real_finding(detector, kind).evidence


def _plain(value: Any) -> Any:
    """The simulator's configuration as YAML-safe builtins (datetimes as RFC 3339)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    iso = getattr(value, "isoformat", None)
    return iso() if callable(iso) else value
