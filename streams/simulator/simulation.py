"""Run a simulation in memory: :func:`simulate` → :class:`Simulation`."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np

import streams.simulator.adversary as adversary

from .config import build_config
from .faults import arrange, drop_logs, malformed_lines
from .feeds import serve
from .params import SimParams
from .population import Users, draw_follows, draw_users, registry, stream
from .posting import draw_items, draw_sessions
from .records import (
    Columns,
    concat,
    exposure_records,
    format_ts,
    platform_columns,
    ranking_records,
)
from .timeline import resolve
from .truth import amplification_rows, intervention_truth, params_dict

__all__ = ["Simulation", "simulate"]

TOPICS = ("exposure", "ranking")


@dataclasses.dataclass
class Simulation:
    """The output of one run.

    Attributes:
        params: The parameters that produced it.
        exposures: Exposure records (contract §1 dicts) in arrival order, duplicates included.
        rankings: Ranking records in arrival order, duplicates included.
        malformed: ``(topic, raw_line)`` of every injected malformed record.
        malformed_at: For each ``malformed`` entry, the index in its topic's record list
            before which the line is delivered (``len(records)`` = after the last).
        config: The configuration (contract §2 structure, aware datetimes).
        truth: Ground truth (planted interventions, fault counts, exact counts).
        panel: Panel observations (exposure dicts recorded on panellists' devices, contract
            v1.1 §5); empty unless ``params.panel_users``.
    """

    params: SimParams
    exposures: list[dict[str, Any]]
    rankings: list[dict[str, Any]]
    malformed: list[tuple[str, str]]
    malformed_at: list[int]
    config: dict[str, Any]
    truth: dict[str, Any]
    panel: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def records(self, topic: str) -> list[dict[str, Any]]:
        """``exposures``, ``rankings`` or ``panel`` by topic name."""
        return {"exposure": self.exposures, "ranking": self.rankings, "panel": self.panel}[topic]


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC: building ~10^6 acyclic dicts otherwise triggers repeated full
    collections that triple the run time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def simulate(params: SimParams) -> Simulation:
    """Simulate every platform of ``params`` and assemble the streams, config and truth.

    Deterministic: the same ``params`` (including ``seed``) give identical output.
    """
    with _gc_paused():
        return _simulate(params)


def _simulate(params: SimParams) -> Simulation:
    accounts = registry(params)
    users = draw_users(params)
    timeline = resolve(params, accounts)
    exp_parts: list[Columns] = []
    rank_parts: list[Columns] = []
    iv_seen = np.zeros(len(timeline.interventions), dtype=np.int64)
    iv_cf = np.zeros(len(timeline.interventions), dtype=np.int64)
    for p, name in enumerate(params.platforms):
        holdout = stream(params.seed, 6, p).random(users.n) < params.holdout_share
        growth = [
            (iv.members, iv.spec.multiplier, iv.interval.start_ms)
            for iv in timeline.interventions
            if iv.spec.kind == "popularity_change" and iv.spec.platform == name
        ]
        follows = draw_follows(params, accounts, users, p, growth)
        items = draw_items(params, accounts, timeline, p, name)
        sessions = draw_sessions(params, users.n, timeline, p)
        feed = serve(params, name, p, users.region, holdout, follows, items, sessions, timeline)
        iv_seen += feed.iv_seen
        iv_cf += feed.iv_counterfactual
        exposures, rankings = platform_columns(name, p, feed, items)
        exp_parts.append(exposures)
        rank_parts.append(rankings)
    exp, rank = concat(exp_parts), concat(rank_parts)
    log_faults = None
    if params.has_log_faults:
        exp, rank, log_faults = drop_logs(
            params, exp, rank, users.n, lambda p: stream(params.seed, 8, p)
        )

    x = exp.extra
    counts = amplification_rows(
        params,
        accounts,
        timeline,
        exp.platform,
        exp.t_ms,
        exp.user,
        users.region[exp.user],
        exp.holdout,
        x["actor"],
    )
    planted = intervention_truth(
        params, accounts, timeline, x["applied"], x["label"] >= 0, iv_seen, iv_cf
    )

    rng = stream(params.seed, 7)
    shared = (params.platforms, users.ids, params.regions, users.region, accounts.ids)
    faults: dict[str, Any] = {"duplicates": {}, "late": {}, "out_of_order": {}, "malformed": {}}
    out: dict[str, list[dict[str, Any]]] = {}
    malformed: list[tuple[str, str]] = []
    malformed_at: list[int] = []
    for topic, cols in (("exposure", exp), ("ranking", rank)):
        ts = format_ts(rng, cols.t_ms, params.ts_format)
        arrival = arrange(
            rng, cols.t_ms, params.duplicate_share, params.late_share, params.max_late_minutes
        )
        if topic == "exposure":
            records = exposure_records(
                cols,
                arrival.source,
                ts,
                *shared,
                tuple(iv.label for iv in params.interventions),
                params.surface_names,
            )
        else:
            records = ranking_records(
                cols,
                arrival.source,
                ts,
                *shared,
                tuple(iv.id for iv in params.interventions),
                params.surface_names,
                arrival.duplicate,
            )
        out[topic] = records
        faults["duplicates"][topic] = int(arrival.duplicate.sum())
        faults["late"][topic] = arrival.n_late
        faults["out_of_order"][topic] = arrival.n_out_of_order
        samples = [records[int(i)] for i in rng.integers(0, len(records), 16)] if records else []
        kinds, lines, positions = malformed_lines(
            rng, topic, samples, params.malformed_per_kind, len(records), params.platforms[0]
        )
        malformed += [(topic, line) for line in lines]
        malformed_at += positions
        faults["malformed"][topic] = dict(Counter(kinds))
    if log_faults is not None:
        faults["log"] = log_faults

    truth = {
        "params": params_dict(params),
        "interventions": planted,
        "faults": faults,
        "events": {"exposure": len(exp), "ranking": len(rank)},
        "users": _user_summary(params, users, exp),
        "amplification": counts,
    }
    sim = Simulation(
        params,
        out["exposure"],
        out["ranking"],
        malformed,
        malformed_at,
        build_config(accounts, timeline, _declared(params)),
        truth,
    )
    if params.adversaries or params.panel_users:
        adversary.apply(sim, stream(params.seed, 9))
    return sim


def _declared(params: SimParams) -> dict[str, dict[str, float]] | None:
    """``platforms:`` of the configuration: each platform's declared holdout share."""
    if not params.declare_holdout_share:
        return None
    return {name: {"holdout_share": params.holdout_share} for name in params.platforms}


def _user_summary(params: SimParams, users: Users, exp: Columns) -> dict[str, Any]:
    """Users per region, and exposed users per arm (all platforms)."""
    per_region = np.bincount(users.region, minlength=len(params.regions))
    return {
        "n": users.n,
        "by_region": dict(zip(params.regions, per_region.tolist(), strict=True)),
        "exposed_ranked": int(np.unique(exp.user[~exp.holdout]).size),
        "exposed_holdout": int(np.unique(exp.user[exp.holdout]).size),
    }
