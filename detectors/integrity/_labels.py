"""Labels without intervention ids: what the exposure log alone says about labels (module
docstring, "Labels").  Two rules on logged facts (no alpha)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from detectors.severity import by_unlabelled_share
from monitor.core.config import Disclosure
from monitor.core.contract import Exposure, Ranking
from monitor.core.records import Finding

from ._frame import Frame, Key, Scope

__all__ = ["LabelCheck"]

_Cover = tuple[Disclosure, int, int]  # disclosure, start_ms, end_ms (open ends as ±inf-ish)
_FAR = 2**62


@dataclass
class _Mixed:
    # (item, surface, label) → [labelled, unlabelled] ranked-arm exposures a disclosure covers
    counts: dict[tuple[str, str, str], list[int]] = field(default_factory=dict)
    first_ms: int | None = None


@dataclass
class _Unexplained:
    by_item: Counter[tuple[str, str]] = field(default_factory=Counter)  # (item, label)
    actors: dict[str, str] = field(default_factory=dict)  # item → actor
    first_ms: int | None = None


class LabelCheck:
    """Subjects ``label_consistency`` and ``label_without_intervention``."""

    def __init__(
        self,
        frame: Frame,
        *,
        label_grace_minutes: float,
        min_missing_labels: int,
        max_examples: int,
    ) -> None:
        self.frame = frame
        self.grace_ms = int(label_grace_minutes * 60_000)
        self.min_missing_labels = min_missing_labels
        self.max_examples = max_examples
        self._covers: dict[tuple[str, str], list[_Cover]] = {}
        self._intervened: set[tuple[str, str]] = set()  # (platform, item) with a logged id
        self.mixed: dict[Key, _Mixed] = {}
        self.unexplained: dict[Key, _Unexplained] = {}
        self.changed: set[Key] = set()

    def _disclosures(self, platform: str, actor: str) -> list[_Cover]:
        found = self._covers.get((platform, actor))
        if found is None:
            entry = self.frame.config.registry.get(actor)
            group = entry.group if entry is not None else None
            found = [
                (
                    d,
                    d.start_ms if d.start_ms is not None else -_FAR,
                    d.end_ms if d.end_ms is not None else _FAR,
                )
                for d in self.frame.config.disclosures
                if d.platform == platform and d.names(actor, group)
            ]
            self._covers[(platform, actor)] = found
        return found

    def ranking(self, r: Ranking) -> None:
        for it in r.items:
            if it.interventions:
                self._intervened.add((r.platform, it.item))

    def exposure(self, e: Exposure, scopes: list[Scope]) -> None:
        covers_ = self._disclosures(e.platform, e.actor)
        if not covers_ and e.label is None:
            return
        ts: int = e.ts  # type: ignore[assignment]
        here = [(d, a, b) for d, a, b in covers_ if d.in_region(e.region)]
        if e.label is not None and not any(
            d.label == e.label and a - self.grace_ms <= ts < b + self.grace_ms for d, a, b in here
        ):
            for scope in scopes:
                key = (e.platform, scope.window.id)
                state = self.unexplained.setdefault(key, _Unexplained(first_ms=ts))
                state.by_item[(e.item, e.label)] += 1
                state.actors[e.item] = e.actor
                self.changed.add(key)
        if e.arm != "ranked":
            return
        for d, a, b in here:
            if d.label is None or not a + self.grace_ms <= ts < b - self.grace_ms:
                continue
            for scope in scopes:
                key = (e.platform, scope.window.id)
                mixed = self.mixed.setdefault(key, _Mixed())
                c = mixed.counts.setdefault((e.item, e.surface, d.label), [0, 0])
                c[0 if e.label == d.label else 1] += 1
                if c[0] and c[1] and mixed.first_ms is None:
                    mixed.first_ms = ts
                self.changed.add(key)

    def evaluate(self, end_ms: int, keys: set[Key] | None = None) -> list[Finding]:
        out = []
        for key in sorted(self.changed if keys is None else keys):
            for finding in (self._mixed_finding(key), self._unexplained_finding(key)):
                if finding is not None:
                    out.append(finding)
        self.changed.clear()
        return out

    def _mixed_finding(self, key: Key) -> Finding | None:
        mixed = self.mixed.get(key)
        if mixed is None or mixed.first_ms is None:
            return None
        both = {k: c for k, c in mixed.counts.items() if c[0] and c[1]}
        missing = sum(c[1] for c in both.values())
        if missing < self.min_missing_labels:
            return None
        labelled = sum(c[0] for c in both.values())
        share = missing / (missing + labelled)
        worst = sorted(both.items(), key=lambda kv: -kv[1][1])[: self.max_examples]
        evidence = {
            "rule": "a disclosure with a label covers these items, and the exposure log "
            "shows the label on some of an item's ranked-arm exposures (same surface, "
            "inside the disclosure's period and regions) and not on others",
            "items": len(both),
            "exposures_without_label": missing,
            "exposures_with_label": labelled,
            "unlabelled_share": share,
            "items_covered": len(mixed.counts),
            "examples": [
                {"item": i, "surface": s, "label": lab, "with_label": c[0], "without_label": c[1]}
                for (i, s, lab), c in worst
            ],
            "grace_minutes": self.grace_ms / 60_000,
            "min_missing_labels": self.min_missing_labels,
        }
        return self.frame.finding(
            key,
            "label_consistency",
            effect=share,
            p_value=None,
            n=missing + labelled,
            severity=by_unlabelled_share(share),
            event_ms=mixed.first_ms,
            evidence=evidence,
        )

    def _unexplained_finding(self, key: Key) -> Finding | None:
        state = self.unexplained.get(key)
        if state is None or state.first_ms is None:
            return None
        platform = key[0]
        left = {k: n for k, n in state.by_item.items() if (platform, k[0]) not in self._intervened}
        n = sum(left.values())
        if n < self.min_missing_labels:
            return None
        worst = sorted(left.items(), key=lambda kv: -kv[1])[: self.max_examples]
        labels: Counter[str] = Counter()
        for (_, lab), c in left.items():
            labels[lab] += c
        evidence = {
            "rule": "exposures carrying a label that no disclosure of the platform declares "
            "for the actor there and then, of items no ranking event logs an "
            "intervention on",
            "exposures": n,
            "items": len(left),
            "labels": dict(labels.most_common()),
            "actors": sorted({state.actors[i] for i, _ in left}),
            "examples": [
                {"item": i, "label": lab, "exposures": c, "actor": state.actors[i]}
                for (i, lab), c in worst
            ],
            "min_exposures": self.min_missing_labels,
        }
        return self.frame.finding(
            key,
            "label_without_intervention",
            p_value=None,
            n=n,
            severity="medium",
            event_ms=state.first_ms,
            evidence=evidence,
        )

    def keys(self) -> set[Key]:
        return set(self.mixed) | set(self.unexplained)
