"""The demo election as one arrival-ordered stream, and what one engine makes of it: the
reference the two-stage tests compare with."""

from __future__ import annotations

from typing import Any

from monitor.core.config import parse_config
from monitor.core.contract import Rejected, decode_obj
from monitor.core.privacy import Pseudonymiser
from monitor.engine.ingest import StreamStats
from monitor.engine.run import Engine
from streams.files import merge_by_time
from streams.memory import ListOutput, records_from_dicts
from streams.simulator import scenario, simulate
from tests.factories import FAR_FUTURE_MS

KEY = Pseudonymiser(b"k" * 32)


def demo_stream() -> dict[str, Any]:
    """The demo election (duplicates, malformed and late-within-allowance records) as
    ``(topic, record)`` in arrival order, both topics interleaved by event time."""
    sim = simulate(scenario("demo", seed=2, scale=0.25))
    lists = {"exposure": sim.exposures, "ranking": sim.rankings}
    merged = merge_by_time([records_from_dicts(t, lists[t], source=t) for t in lists])
    records = [(r.topic, lists[r.topic][int(r.location.rsplit(":", 1)[1]) - 1]) for r in merged]
    return {"config": parse_config(sim.config), "records": records}


def single(config: Any, records: list[tuple[str, dict]]) -> tuple[ListOutput, StreamStats]:
    out = ListOutput()
    eng = Engine(config, out, now_ms=lambda: FAR_FUTURE_MS, pseudonymiser=KEY)
    for topic, rec in records:
        result = decode_obj(topic, dict(rec))
        if isinstance(result, Rejected):
            eng.reject(result, source="sim")
        else:
            eng.push(topic, result, source="sim")
    return out, eng.close()


def summary(out: ListOutput) -> dict[str, Any]:
    latest = out.latest_findings
    return {
        "findings": {
            fid: (
                f.kind,
                f.subject,
                round(f.effect or 0, 9),
                f.p_value,
                f.n_exposures,
                f.event_time,
            )
            for fid, f in latest.items()
        },
        "measurements": {
            k: (m.ratio, m.n_ranked, m.n_holdout, m.users_ranked, m.users_holdout)
            for k, m in out.latest_measurements.items()
        },
        "detectability": sorted(
            ((d.detector, d.platform, d.window_id, d.subject), (d.mde_up, d.mde_down, d.flagged))
            for d in out.detectability_rows
        ),
    }
