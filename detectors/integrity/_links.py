"""Exposure → slate links: exposures that no logged slate explains (module docstring,
"Exposure links")."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from detectors.sequential import adjusted_p
from detectors.severity import by_contradiction_share
from detectors.stats import clopper_pearson, label_share_log_e
from monitor.core.contract import Exposure, Ranking
from monitor.core.records import Finding, ms_to_datetime

from ._frame import Frame, Key, Running, Scope
from ._slates import compact, position

__all__ = ["LinkCheck"]


@dataclass
class _Links(Running):
    checked: int = 0
    unexplained: int = 0
    problems: Counter[str] = field(default_factory=Counter)  # unknown_request, item_not_in_slate
    position_mismatch: int = 0
    user_mismatch: int = 0
    without_request: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)


class LinkCheck:
    """Subject ``exposure_links``."""

    def __init__(
        self, frame: Frame, *, link_tolerance: float, link_hours: float, max_examples: int
    ) -> None:
        self.frame = frame
        self.link_tolerance = link_tolerance
        self.link_hours = link_hours
        self.max_examples = max_examples
        self.links: dict[Key, _Links] = {}
        self.changed: set[Key] = set()
        self._slates: dict[tuple[str, str], tuple[str, str | dict[str, int]]] = {}
        self._order: deque[tuple[int, tuple[str, str]]] = deque()
        self._held: list[tuple[Exposure, list[Scope]]] = []

    def ranking(self, r: Ranking) -> None:
        key = (r.platform, r.request)
        if key not in self._slates:
            self._order.append((r.ts, key))  # type: ignore[arg-type]
        self._slates[key] = (r.user, compact(r.items))

    def release_held(self) -> None:
        """Exposures held a tick for a slate logged after them: check them now."""
        held, self._held = self._held, []
        for e, scopes in held:
            self.exposure(e, scopes, final=True)

    def exposure(self, e: Exposure, scopes: list[Scope], final: bool = False) -> None:
        keys = [(e.platform, s.window.id) for s in scopes]
        if e.request is None:
            for k in keys:
                self.links.setdefault(k, _Links()).without_request += 1
            return
        slate = self._slates.get((e.platform, e.request))
        if slate is None and not final:
            self._held.append((e, scopes))  # its slate may be logged in the next tick
            return
        pos = None if slate is None else position(slate[1], e.item)
        problem = (
            "unknown_request" if slate is None else "item_not_in_slate" if pos is None else None
        )
        for k in keys:
            links = self.links.setdefault(k, _Links())
            links.checked += 1
            self.changed.add(k)
            if problem is not None:
                links.unexplained += 1
                links.problems[problem] += 1
                if len(links.examples) < self.max_examples:
                    links.examples.append(
                        {
                            "problem": problem,
                            "event_id": e.event_id,
                            "request": e.request,
                            "item": e.item,
                            "ts": ms_to_datetime(e.ts).isoformat(),  # type: ignore[arg-type]
                        }
                    )
            elif slate is not None:
                links.position_mismatch += pos != e.position
                links.user_mismatch += slate[0] != e.user

    def expire(self, now_ms: int) -> None:
        cutoff = now_ms - int(self.link_hours * 3_600_000)
        order = self._order
        while order and order[0][0] < cutoff:
            self._slates.pop(order.popleft()[1], None)

    def evaluate(self, end_ms: int, keys: set[Key] | None = None) -> list[Finding]:
        out = []
        threshold = self.frame.threshold
        for key in sorted(self.changed if keys is None else keys):
            links = self.links[key]
            log_e = label_share_log_e(links.unexplained, links.checked, self.link_tolerance)
            if links.look(log_e, threshold, end_ms):
                out.append(self._finding(key, links, threshold))
        self.changed.clear()
        return out

    def _finding(self, key: Key, links: _Links, threshold: float) -> Finding:
        assert links.crossed_ms is not None
        rate = links.unexplained / links.checked if links.checked else 0.0
        lo, hi = clopper_pearson(links.unexplained, links.checked)
        m = self.frame.TESTS
        evidence = {
            "rule": "exposures that reference a slate the ranking log does not contain "
            "(unknown request, or item not in that slate)",
            "exposures_checked": links.checked,
            "unexplained": links.unexplained,
            "unexplained_share": rate,
            "unexplained_share_ci95": [lo, hi],
            "unknown_request": links.problems["unknown_request"],
            "item_not_in_slate": links.problems["item_not_in_slate"],
            "position_mismatch": links.position_mismatch,
            "user_mismatch": links.user_mismatch,
            "exposures_without_request": links.without_request,
            "examples": links.examples,
            "test": {
                "name": "mixture e-process, H0: unexplained share <= tolerance",
                "tolerance": self.link_tolerance,
                "link_hours": self.link_hours,
                "log_e_max": links.max_log_e,
                "log_threshold": threshold,
                "tests_in_window": m,
                "alpha_share": self.frame.alpha,
            },
        }
        return self.frame.finding(
            key,
            "exposure_links",
            p_value=adjusted_p(links.max_log_e, m),
            n=links.checked,
            severity=by_contradiction_share(rate),
            event_ms=links.crossed_ms,
            evidence=evidence,
        )
