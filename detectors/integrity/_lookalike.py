"""Look-alike actor ids: an unregistered id in the logs that mimics a registered id or alias
(:meth:`monitor.core.identity.IdentityIndex.near_miss`) — the disguise of a registered actor's
items.  A rule on logged facts (no p-value, no alpha); the evidence holds a sensitivity
analysis: the registered actor's amplification ratio with and without the disguised
exposures."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from detectors.ledger import ExposureLedger
from detectors.severity import by_placements
from detectors.stats import ratio_ci
from monitor.core.contract import Exposure, Ranking
from monitor.core.identity import IdentityIndex, NearMiss
from monitor.core.records import Finding

from ._frame import Frame, Key, Scope

__all__ = ["LookalikeCheck"]

_RANKED, _HOLDOUT = 0, 1
_PERIODS = ("baseline", "window")
_MAX_MISSES = 200_000


@dataclass
class _Disguise:
    """Records of one registered actor (or one ambiguous id) logged under look-alike ids."""

    ids: dict[str, dict[str, Any]] = field(default_factory=dict)  # observed id → summary
    # per period, per arm: user → disguised exposures (the sensitivity analysis)
    per_user: dict[str, tuple[dict[str, int], dict[str, int]]] = field(default_factory=dict)
    exposures: int = 0
    ranking_items: int = 0
    examples: list[str] = field(default_factory=list)  # event ids
    first_ms: int | None = None


class LookalikeCheck:
    """Subjects ``actor_lookalike:<registered actor>`` (``actor_lookalike:?<id>`` when the
    id resembles several registered actors equally)."""

    def __init__(self, frame: Frame, ledger: ExposureLedger, *, max_examples: int) -> None:
        self.frame = frame
        self.ledger = ledger
        self.max_examples = max_examples
        self.index = IdentityIndex.from_config(frame.config)
        self._registered = set(frame.config.registry)
        # one look-up per distinct id: hits are kept, misses (nearly every account of a large
        # platform) in a set cleared when it reaches _MAX_MISSES (memory stays bounded)
        self._hits: dict[str, NearMiss] = {}
        self._misses: set[str] = set()
        self.found: dict[tuple[Key, str], _Disguise] = {}
        self.changed: set[tuple[Key, str]] = set()

    def _near(self, actor: str) -> NearMiss | None:
        if actor in self._registered or actor in self._misses:
            return None
        hit = self._hits.get(actor)
        if hit is None:
            hit = self.index.near_miss(actor)
            if hit is None:
                if len(self._misses) >= _MAX_MISSES:
                    self._misses.clear()
                self._misses.add(actor)
                return None
            self._hits[actor] = hit
        return hit

    @staticmethod
    def _subject(hit: NearMiss) -> str:
        return f"actor_lookalike:{hit.actor}" if hit.actor else f"actor_lookalike:?{hit.observed}"

    def _state(self, key: Key, hit: NearMiss, ts: int) -> _Disguise:
        sub = (key, self._subject(hit))
        state = self.found.get(sub)
        if state is None:
            state = self.found[sub] = _Disguise(first_ms=ts)
        summary = state.ids.get(hit.observed)
        if summary is None:
            summary = state.ids[hit.observed] = {
                "observed": hit.observed,
                "rule": hit.rule,
                "distance": hit.distance,
                "matched": list(hit.matched),
                "candidates": list(hit.candidates),
                "reasons": list(hit.reasons),
                "characters": list(hit.characters),
                "detail": hit.detail,
                "exposures": {"ranked": 0, "holdout": 0},
                "ranking_items": 0,
            }
        self.changed.add(sub)
        return state

    def exposure(self, e: Exposure, scopes: list[Scope]) -> None:
        hit = self._near(e.actor)
        if hit is None:
            return
        ts: int = e.ts  # type: ignore[assignment]
        arm = _HOLDOUT if e.arm == "holdout" else _RANKED
        for scope in scopes:
            state = self._state((e.platform, scope.window.id), hit, ts)
            state.exposures += 1
            state.ids[hit.observed]["exposures"][e.arm] += 1
            period = scope.period(ts)
            if period is not None:
                users = state.per_user.setdefault(period, ({}, {}))[arm]
                users[e.user] = users.get(e.user, 0) + 1
            if len(state.examples) < self.max_examples:
                state.examples.append(e.event_id)

    def ranking(self, r: Ranking, scopes: list[Scope]) -> None:
        for it in r.items:
            hit = self._near(it.actor)
            if hit is None:
                continue
            for scope in scopes:
                state = self._state((r.platform, scope.window.id), hit, r.ts)  # type: ignore[arg-type]
                state.ranking_items += 1
                state.ids[hit.observed]["ranking_items"] += 1

    def evaluate(self, end_ms: int) -> list[Finding]:
        out = [self._finding(sub, self.found[sub], end_ms) for sub in sorted(self.changed)]
        self.changed.clear()
        return out

    def _finding(self, sub: tuple[Key, str], state: _Disguise, end_ms: int) -> Finding:
        key, subject = sub
        ids = sorted(state.ids.values(), key=lambda s: s["observed"])
        actors = sorted({a for s in ids for a in s["candidates"]})
        actor = actors[0] if len(actors) == 1 else None
        evidence: dict[str, Any] = {
            "rule": "actor ids the registry does not list that read as a registered id or "
            "alias (Unicode normalisation, confusable characters, case, white space, "
            "punctuation, or a small cosmetic edit distance: monitor.core.identity)",
            "actor": actor,
            "candidates": actors,
            "ids": ids,
            "exposures": state.exposures,
            "ranking_items": state.ranking_items,
            "example_event_ids": state.examples,
        }
        if actor is not None:
            evidence["sensitivity"] = self._sensitivity(key, actor, state)
        n = state.exposures
        return self.frame.finding(
            key,
            "actor_lookalike",
            subject=subject,
            p_value=None,
            n=n,
            severity=by_placements(n + state.ranking_items),
            event_ms=state.first_ms or end_ms,
            evidence=evidence,
        )

    def _sensitivity(self, key: Key, actor: str, state: _Disguise) -> dict[str, Any]:
        """The actor's amplification ratio per period, as logged and with the disguised
        exposures counted for the actor (users as clusters, :func:`ratio_ci`)."""
        out: dict[str, Any] = {
            "label": "SENSITIVITY ANALYSIS: the look-alike ids' exposures counted for the "
            "registered actor; the detectors' findings use the logs as written"
        }
        for period in _PERIODS:
            cell = self.ledger.cell(key[0], key[1], period)
            if cell is None:
                continue
            arms = cell.subjects.get(("actor", actor))
            extra = state.per_user.get(period, ({}, {}))
            rows: dict[str, Any] = {}
            for label, add in (("as_logged", False), ("with_lookalikes", True)):
                s_q = []
                for a in (_RANKED, _HOLDOUT):
                    base = arms[a] if arms else None
                    s = base.total if base else 0
                    q = base.sumsq if base else 0
                    if add:
                        per = base.per_user if base else {}
                        for u, d in extra[a].items():
                            x = per.get(u, 0)
                            s += d
                            q += 2 * x * d + d * d
                    s_q.append((s, q))
                est = ratio_ci(
                    s_q[0][0],
                    s_q[0][1],
                    cell.users_ranked,
                    s_q[1][0],
                    s_q[1][1],
                    cell.users_holdout,
                )
                rows[label] = {
                    "ratio": est.ratio,
                    "ci95": [est.ci_low, est.ci_high],
                    "exposures_ranked": s_q[0][0],
                    "exposures_holdout": s_q[1][0],
                }
            rows["users_ranked"] = cell.users_ranked
            rows["users_holdout"] = cell.users_holdout
            out[period] = rows
        return out
