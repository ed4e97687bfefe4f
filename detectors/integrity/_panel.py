"""Panel observations against the platform's exposure log (module docstring, "Panel").

Nothing here is written anywhere but into ``log_integrity`` findings, and those must not let
the platform find a panellist: counts and shares per window and region only — no user, and
no item with its time (the platform could look up who was shown it then)."""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from detectors.sequential import adjusted_p
from detectors.severity import by_contradiction_share
from detectors.stats import clopper_pearson, label_share_log_e
from monitor.core.contract import Exposure
from monitor.core.records import Finding

from ._frame import Frame, Key, Running

__all__ = ["PanelCheck"]

_KINDS = ("missing_from_log", "not_seen_by_panel", "position_mismatch", "label_mismatch")


@dataclass
class _Compare(Running):
    compared: int = 0  # trials: matched pairs + unmatched records on either side
    mismatched: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    panel_records: int = 0
    per_user: dict[str, list[int]] = field(default_factory=dict)  # user → [compared, bad]
    by_region: dict[str, list[int]] = field(default_factory=dict)  # region → [compared, bad]


class _Slot:
    """One tick's records waiting to be matched."""

    __slots__ = ("panel", "logged", "matched")

    def __init__(self) -> None:
        self.panel: list[Exposure] = []
        self.logged: list[Exposure] = []
        self.matched: set[int] = set()  # id() of logged records already matched


class PanelCheck:
    """Subject ``panel_mismatch``."""

    def __init__(self, frame: Frame, *, panel_tolerance: float, panel_match_seconds: float) -> None:
        self.frame = frame
        self.tolerance = panel_tolerance
        self.match_ms = int(panel_match_seconds * 1000)
        self.since: dict[tuple[str, str], int] = {}  # (platform, panellist) → first panel ts
        self.compare: dict[Key, _Compare] = {}
        self.changed: set[Key] = set()
        self._slots: deque[_Slot] = deque()

    def tick(self, panel: Sequence[Exposure], exposures: Sequence[Exposure]) -> None:
        """One tick: buffer its panel records and the panellists' logged exposures; match
        the previous tick's panel records (their twins may be logged a tick either side),
        then settle the logged records of two ticks ago (no panel record can match them
        any more)."""
        slot = _Slot()
        for p in panel:
            who = (p.platform, p.user)
            ts: int = p.ts  # type: ignore[assignment]
            if who not in self.since or ts < self.since[who]:
                self.since[who] = ts
            slot.panel.append(p)
        if self.since:
            since = self.since
            for e in exposures:
                first = since.get((e.platform, e.user))
                if first is not None and e.ts >= first - self.match_ms:  # type: ignore[operator]
                    slot.logged.append(e)
        self._slots.append(slot)
        if len(self._slots) >= 2:
            self._match(self._slots[-2])
        if len(self._slots) >= 3:
            self._settle(self._slots.popleft())

    def close(self) -> None:
        if self._slots:
            self._match(self._slots[-1])
        while self._slots:
            self._settle(self._slots.popleft())

    def _match(self, slot: _Slot) -> None:
        candidates: dict[tuple[str, str, str], list[Exposure]] = {}
        matched_in: dict[int, _Slot] = {}
        for s in self._slots:
            for e in s.logged:
                if id(e) not in s.matched:
                    candidates.setdefault((e.platform, e.user, e.item), []).append(e)
                    matched_in[id(e)] = s
        for p in slot.panel:
            twins = candidates.get((p.platform, p.user, p.item), [])
            ts = _ms(p)
            best = min(
                (
                    e
                    for e in twins
                    if id(e) not in matched_in[id(e)].matched and abs(_ms(e) - ts) <= self.match_ms
                ),
                key=lambda e: abs(_ms(e) - ts),
                default=None,
            )
            problems = []
            if best is None:
                problems.append("missing_from_log")
            else:
                matched_in[id(best)].matched.add(id(best))
                if best.position != p.position:
                    problems.append("position_mismatch")
                if best.label != p.label:
                    problems.append("label_mismatch")
            self._count(p, problems, panel=True)

    def _settle(self, slot: _Slot) -> None:
        for e in slot.logged:
            if id(e) not in slot.matched:
                self._count(e, ["not_seen_by_panel"], panel=False)

    def _count(self, e: Exposure, problems: list[str], panel: bool) -> None:
        ts: int = e.ts  # type: ignore[assignment]
        for key, _ in self.frame.keys_at(e.platform, e.region, ts):
            c = self.compare.setdefault(key, _Compare())
            c.compared += 1
            c.panel_records += panel
            bad = bool(problems)
            c.mismatched += bad
            c.kinds.update(problems)
            u = c.per_user.setdefault(e.user, [0, 0])
            u[0] += 1
            u[1] += bad
            r = c.by_region.setdefault(e.region, [0, 0])
            r[0] += 1
            r[1] += bad
            self.changed.add(key)

    def evaluate(self, end_ms: int, keys: set[Key] | None = None) -> list[Finding]:
        out = []
        threshold = self.frame.threshold
        for key in sorted(self.changed if keys is None else keys):
            c = self.compare[key]
            log_e = label_share_log_e(c.mismatched, c.compared, self.tolerance)
            if c.look(log_e, threshold, end_ms):
                out.append(self._finding(key, c, threshold))
        self.changed.clear()
        return out

    def _finding(self, key: Key, c: _Compare, threshold: float) -> Finding:
        assert c.crossed_ms is not None
        rate = c.mismatched / c.compared
        lo, hi = clopper_pearson(c.mismatched, c.compared)
        m = self.frame.TESTS
        evidence = {
            "rule": "what panellists' devices recorded differs from the platform's exposure "
            "log for the same users (missing from the log, logged but never seen, "
            "other position or label)",
            "compared": c.compared,
            "mismatched": c.mismatched,
            "mismatch_rate": rate,
            "mismatch_rate_ci95": [lo, hi],
            "mismatch_rate_ci95_users_clustered": _clustered_ci(c, rate),
            "panellists": len(c.per_user),
            "panel_records": c.panel_records,
            "kinds": {k: c.kinds[k] for k in _KINDS},
            "by_region": {
                r: {
                    "compared": n,
                    "mismatched": k,
                    "mismatch_rate": k / n,
                    "ci95": list(clopper_pearson(k, n)),
                }
                for r, (n, k) in sorted(c.by_region.items())
            },
            "test": {
                "name": "mixture e-process, H0: mismatch rate <= tolerance",
                "tolerance": self.tolerance,
                "match_seconds": self.match_ms / 1000,
                "log_e_max": c.max_log_e,
                "log_threshold": threshold,
                "tests_in_window": m,
                "alpha_share": self.frame.alpha,
            },
        }
        return self.frame.finding(
            key,
            "panel_mismatch",
            effect=rate,
            ci=(lo, hi),
            p_value=adjusted_p(c.max_log_e, m),
            n=c.compared,
            severity=by_contradiction_share(rate),
            event_ms=c.crossed_ms,
            evidence=evidence,
        )


def _ms(e: Exposure) -> int:
    """Event time in epoch ms (``Exposure.ts`` is normalised to it on decode)."""
    return e.ts  # type: ignore[return-value]


def _clustered_ci(c: _Compare, rate: float) -> list[float] | None:
    """95 % interval of the ratio ``Σ k_u / Σ n_u`` with panellists as clusters (delta
    method: ``se² = U/(U−1) · Σ (k_u − r n_u)² / N²``)."""
    users = len(c.per_user)
    if users < 2:
        return None
    ss = sum((k - rate * n) ** 2 for n, k in c.per_user.values())
    se = math.sqrt(users / (users - 1) * ss) / c.compared
    return [max(0.0, rate - 1.96 * se), min(1.0, rate + 1.96 * se)]
