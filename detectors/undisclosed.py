"""``undisclosed_intervention`` — a logged ranking intervention nobody declared.

Rule: a ranking slate served during a window (``ts`` in ``[start, end)``, region covered by
the window's jurisdiction) contains an item of a registered actor monitored in that window,
with an intervention id in ``interventions`` that **no disclosure covers** (same platform and
intervention id; the actor or its group listed, or none listed; the region covered; ``ts`` in
the disclosure's period — :meth:`monitor.core.config.Disclosure.covers`).

This is a logged fact, not a statistical inference: it spends no false-alarm budget and its
``p_value`` is null.  ``effect`` (with CI) is the actor's ranked ÷ holdout exposure ratio in
the window so far, for context.  One finding per (platform, window, actor); its evidence lists
every undisclosed intervention id with placement counts, the first slates, and the disclosures
that were checked.  ``n_exposures`` counts exposures linked to the flagged slate entries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import detectors.evidence as evidence
import detectors.severity as severity
from detectors._links import SlateLinks
from detectors.amplification import measure
from detectors.base import Detector, DetectorContext, Tick
from monitor.core.records import Finding, ms_to_datetime

__all__ = ["UndisclosedIntervention"]

_Key = tuple[str, str, str]  # platform, window_id, actor


@dataclass
class _Case:
    region: str
    first_ts: int
    placements: dict[str, int] = field(default_factory=dict)  # intervention → placements
    exposures: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)


class UndisclosedIntervention(Detector):
    name: ClassVar[str] = "undisclosed_intervention"
    display_name: ClassVar[str] = "Undisclosed ranking intervention"
    kinds: ClassVar[tuple[str, ...]] = ("undisclosed_intervention",)

    def __init__(self, context: DetectorContext, max_examples: int = 5) -> None:
        super().__init__(context)
        if max_examples < 0:
            raise ValueError(f"max_examples must be >= 0, got {max_examples}")
        self.max_examples = max_examples
        self._cases: dict[_Key, _Case] = {}
        self._changed: set[_Key] = set()
        self._links: SlateLinks[list[_Key]] = SlateLinks()

    def observe(self, tick: Tick) -> UndisclosedIntervention:
        config, ledger = self.context.config, self.context.ledger
        registry = config.registry
        for r in sorted(tick.rankings, key=lambda r: (r.ts, r.event_id)):
            ts: int = r.ts  # type: ignore[assignment]
            windows = None
            for it in r.items:
                if not it.interventions or it.actor not in registry:
                    continue
                if windows is None:
                    windows = ledger.windows_at(r.region, ts)
                keys: list[_Key] = []
                for w in windows:
                    if not registry[it.actor].monitored_in(w.jurisdiction):
                        continue
                    for iv in it.interventions:
                        if config.disclosures_for(r.platform, iv, it.actor, r.region, ts):
                            continue
                        key = (r.platform, w.id, it.actor)
                        case = self._cases.setdefault(key, _Case(w.jurisdiction, ts))
                        case.placements[iv] = case.placements.get(iv, 0) + 1
                        if len(case.examples) < self.max_examples:
                            case.examples.append(
                                {
                                    "ranking_event_id": r.event_id,
                                    "request": r.request,
                                    "item": it.item,
                                    "intervention": iv,
                                    "ts": ts,
                                    "score": it.score,
                                    "organic_score": it.organic_score,
                                }
                            )
                        self._changed.add(key)
                        keys.append(key)
                if keys:
                    self._links.add(r.request, r.user, it.item, ts, sorted(set(keys)))
        for e in tick.exposures:
            hit = self._links.find(e)
            if hit:
                for key in hit:
                    self._cases[key].exposures += 1
                    self._changed.add(key)
        self._links.expire(tick.end_ms)
        return self

    def evaluate(self, tick: Tick) -> list[Finding]:
        out = [self._finding(key) for key in sorted(self._changed)]
        self._changed.clear()
        return out

    def _finding(self, key: _Key) -> Finding:
        platform, window_id, actor = key
        case = self._cases[key]
        cell = self.context.ledger.cell(platform, window_id, "window")
        m = measure(cell, ("actor", actor)) if cell is not None else None
        placements = sum(case.placements.values())
        checked = [
            d.model_dump(mode="json")
            for d in self.context.config.disclosures
            if d.platform == platform
        ]
        fields = {
            "rule": "logged intervention on a registered actor's item, no disclosure covers it",
            "interventions": dict(sorted(case.placements.items())),
            "placements": placements,
            "linked_exposures": case.exposures,
            "examples": case.examples,
            "disclosures_checked": checked,
            "exposure_ratio": None
            if m is None
            else {
                "ratio": m.ratio,
                "ci_low": m.ci_low,
                "ci_high": m.ci_high,
                "n_ranked": m.n_ranked,
                "n_holdout": m.n_holdout,
                "users_ranked": m.users_ranked,
                "users_holdout": m.users_holdout,
            },
        }
        return Finding.new(
            detector=self.name,
            kind="undisclosed_intervention",
            platform=platform,
            region=case.region,
            window_id=window_id,
            subject_kind="actor",
            subject=actor,
            effect=m.ratio if m else None,
            ci_low=m.ci_low if m else None,
            ci_high=m.ci_high if m else None,
            p_value=None,
            n_exposures=case.exposures,
            severity=severity.by_placements(placements),
            event_time=ms_to_datetime(case.first_ts),
            evidence=evidence.build(self.name, fields),
        )
