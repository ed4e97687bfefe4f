"""What every integrity check shares: the window scopes, the Bonferroni threshold and the
finding factory (one place for ``kind``, ``subject_kind`` and the ``check`` evidence key)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from detectors.sequential import log_threshold
from monitor.core.config import Config, Window, covers
from monitor.core.records import Finding, ms_to_datetime

__all__ = ["Frame", "Key", "Running", "Scope"]

Key = tuple[str, str]  # platform, window_id


@dataclass
class Scope:
    """A window's region scope over both its periods (baseline, window)."""

    window: Window
    periods: tuple[tuple[int, int], ...]  # (start_ms, end_ms) of baseline and window

    def contains(self, ts: int) -> bool:
        return any(s <= ts < e for s, e in self.periods)

    def period(self, ts: int) -> str | None:
        """``"baseline"``, ``"window"`` or None."""
        (b0, b1), (w0, w1) = self.periods
        return "baseline" if b0 <= ts < b1 else "window" if w0 <= ts < w1 else None


@dataclass
class Running:
    """A statistical check's sequential state: ``max_t log E_t`` and the end of the tick at
    which it first reached the threshold (the finding's event time; never reset)."""

    max_log_e: float = -math.inf
    crossed_ms: int | None = None

    def look(self, log_e: float, threshold: float, end_ms: int) -> bool:
        """One look at ``log_e``; True once the check has crossed ``threshold``."""
        self.max_log_e = max(self.max_log_e, log_e)
        if self.crossed_ms is None and self.max_log_e >= threshold:
            self.crossed_ms = end_ms
        return self.crossed_ms is not None


class Frame:
    """Scopes of a configuration, the statistical threshold per platform, and findings."""

    #: statistical tests per platform and window (Bonferroni ``m``): the holdout share, the
    #: holdout share between regions and surfaces, the holdout share of exposures, the
    #: exposure links, the panel comparison and the panel's amplification estimate; the other
    #: checks are logged facts.
    TESTS = 6

    def __init__(self, config: Config, alpha: float, detector: str) -> None:
        self.config = config
        self.alpha = alpha
        self.detector = detector
        self.tick_ms = config.detection.tick_ms
        self.scopes = [
            Scope(
                w,
                (
                    (w.baseline_period.start_ms, w.baseline_period.end_ms),
                    (w.window_period.start_ms, w.window_period.end_ms),
                ),
            )
            for w in config.windows
        ]
        self._windows = {s.window.id: s for s in self.scopes}
        self._by_region: dict[str, list[Scope]] = {}

    def scopes_of(self, region: str) -> list[Scope]:
        found = self._by_region.get(region)
        if found is None:
            found = self._by_region[region] = [
                s for s in self.scopes if covers(s.window.jurisdiction, region)
            ]
        return found

    def scope(self, window_id: str) -> Scope:
        return self._windows[window_id]

    def keys_at(self, platform: str, region: str, ts: int) -> list[tuple[Key, Scope]]:
        return [((platform, s.window.id), s) for s in self.scopes_of(region) if s.contains(ts)]

    @property
    def threshold(self) -> float:
        """``log(m / α_d)``: a statistical check is flagged when its e-value reaches it."""
        return log_threshold(self.TESTS, self.alpha)

    def finding(
        self,
        key: Key,
        check: str,
        *,
        subject: str | None = None,
        effect: float | None = None,
        ci: tuple[float | None, float | None] = (None, None),
        p_value: float | None,
        n: int,
        severity: str,
        event_ms: int,
        evidence: dict[str, Any],
        version: int = 1,
    ) -> Finding:
        """A ``log_integrity`` finding of ``check`` (subject = the check's name unless
        given); the evidence dict starts with ``"check"``."""
        window = self._windows[key[1]].window
        return Finding.new(
            detector=self.detector,
            kind="log_integrity",
            platform=key[0],
            region=window.jurisdiction,
            window_id=key[1],
            subject_kind="log",
            subject=subject or check,
            effect=effect,
            ci_low=ci[0],
            ci_high=ci[1],
            p_value=p_value,
            n_exposures=n,
            severity=severity,
            event_time=ms_to_datetime(event_ms),
            # the stored form of detectors.evidence.IntegrityEvidence (flat, tagged)
            evidence={"kind": "log_integrity", "version": version, "check": check, **evidence},
        )
