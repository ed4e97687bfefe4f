"""The ``log_integrity`` detector: one object driving the integrity checks of
:mod:`detectors.integrity` tick by tick (the statistics are in the package docstring)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from detectors.base import Detector, DetectorContext, Tick
from detectors.sequential import TestState
from monitor.core.records import Detectability, Finding

from ._duplicates import DuplicateCheck
from ._exposures import ExposureShareTest
from ._frame import Frame, Key
from ._gaps import GapCheck
from ._holdout import HoldoutChecks
from ._labels import LabelCheck
from ._links import LinkCheck
from ._lookalike import LookalikeCheck
from ._panel import PanelCheck
from ._panel_amp import PanelAmplificationTest

__all__ = ["LogIntegrity"]


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


class LogIntegrity(Detector):
    """Can the platform's logs be trusted?  (:mod:`detectors.integrity`)"""

    name: ClassVar[str] = "log_integrity"
    display_name: ClassVar[str] = "Log integrity (holdout arm, links, gaps, ids, labels, panel)"
    kinds: ClassVar[tuple[str, ...]] = ("log_integrity",)
    version: ClassVar[str] = "4"  # 4: between regions, exposure share, panel amplification

    def __init__(
        self,
        context: DetectorContext,
        srm_tolerance: float = 0.01,
        prior_sd: float = 0.15,
        link_tolerance: float = 0.01,
        link_hours: float = 6.0,
        max_gap_ticks: int = 4,
        min_expected_users: float = 20.0,
        max_examples: int = 5,
        min_baseline_users: int = 100,
        switch_tolerance: float = 0.01,
        min_switched_users: int = 10,
        min_conflicting: int = 1,
        return_tolerance: float = 0.05,
        label_grace_minutes: float = 30.0,
        min_missing_labels: int = 10,
        panel_tolerance: float = 0.02,
        panel_match_seconds: float | None = None,
        between_tolerance: float = 0.05,
        exposure_tolerance: float = 0.10,
        exposure_tau: float = 0.15,
        min_arm_users: int = 30,
        panel_amplification_tolerance: float = 0.10,
        panel_tau: float = 0.3,
        min_panel_users: int = 10,
    ) -> None:
        super().__init__(context)
        _check(0 <= srm_tolerance < 1, f"srm_tolerance must be in [0, 1), got {srm_tolerance}")
        _check(prior_sd > 0, f"prior_sd must be > 0, got {prior_sd}")
        _check(0 < link_tolerance < 1, f"link_tolerance must be in (0, 1), got {link_tolerance}")
        _check(link_hours > 0, f"link_hours must be > 0, got {link_hours}")
        _check(
            int(max_gap_ticks) == max_gap_ticks and max_gap_ticks >= 1,
            f"max_gap_ticks must be an integer >= 1, got {max_gap_ticks}",
        )
        _check(
            min_expected_users >= 0, f"min_expected_users must be >= 0, got {min_expected_users}"
        )
        _check(
            min_baseline_users >= 1, f"min_baseline_users must be >= 1, got {min_baseline_users}"
        )
        _check(
            0 <= switch_tolerance < 1, f"switch_tolerance must be in [0, 1), got {switch_tolerance}"
        )
        _check(
            min_switched_users >= 1, f"min_switched_users must be >= 1, got {min_switched_users}"
        )
        _check(min_conflicting >= 1, f"min_conflicting must be >= 1, got {min_conflicting}")
        _check(
            0 <= return_tolerance < 1,
            f"return_tolerance must be in [0, 1), got {return_tolerance}",
        )
        _check(
            label_grace_minutes >= 0, f"label_grace_minutes must be >= 0, got {label_grace_minutes}"
        )
        _check(
            min_missing_labels >= 1, f"min_missing_labels must be >= 1, got {min_missing_labels}"
        )
        _check(0 < panel_tolerance < 1, f"panel_tolerance must be in (0, 1), got {panel_tolerance}")
        _check(
            panel_match_seconds is None or panel_match_seconds >= 0,
            f"panel_match_seconds must be >= 0, got {panel_match_seconds}",
        )
        _check(
            0 <= between_tolerance < 1,
            f"between_tolerance must be in [0, 1), got {between_tolerance}",
        )
        _check(
            0 < exposure_tolerance < 1,
            f"exposure_tolerance must be in (0, 1), got {exposure_tolerance}",
        )
        _check(exposure_tau > 0, f"exposure_tau must be > 0, got {exposure_tau}")
        _check(min_arm_users >= 2, f"min_arm_users must be >= 2, got {min_arm_users}")
        _check(
            panel_amplification_tolerance >= 0,
            f"panel_amplification_tolerance must be >= 0, got {panel_amplification_tolerance}",
        )
        _check(panel_tau > 0, f"panel_tau must be > 0, got {panel_tau}")
        _check(min_panel_users >= 2, f"min_panel_users must be >= 2, got {min_panel_users}")
        self.panel_amplification_tolerance = panel_amplification_tolerance
        self.panel_tau = panel_tau
        self.min_panel_users = min_panel_users
        self.exposure_tolerance = exposure_tolerance
        self.exposure_tau = exposure_tau
        self.min_arm_users = min_arm_users
        self.srm_tolerance = srm_tolerance
        self.between_tolerance = between_tolerance
        self.prior_sd = prior_sd
        self.link_tolerance = link_tolerance
        self.link_hours = link_hours
        self.max_gap_ticks = int(max_gap_ticks)
        self.min_expected_users = min_expected_users
        self.max_examples = max_examples
        self.min_baseline_users = min_baseline_users
        self.switch_tolerance = switch_tolerance
        self.min_switched_users = min_switched_users
        self.min_conflicting = min_conflicting
        self.return_tolerance = return_tolerance
        self.label_grace_minutes = label_grace_minutes
        self.min_missing_labels = min_missing_labels
        self.panel_tolerance = panel_tolerance
        frame = self._frame = Frame(context.config, context.alpha, self.name)
        if panel_match_seconds is None:  # default: 2 min, or one tick when ticks are shorter
            panel_match_seconds = min(120.0, frame.tick_ms / 1000)
        self.panel_match_seconds = panel_match_seconds
        ledger = context.ledger
        self._holdout = HoldoutChecks(
            frame,
            ledger,
            srm_tolerance=srm_tolerance,
            prior_sd=prior_sd,
            min_baseline_users=min_baseline_users,
            switch_tolerance=switch_tolerance,
            min_switched_users=min_switched_users,
            min_expected_users=min_expected_users,
            return_tolerance=return_tolerance,
            between_tolerance=between_tolerance,
        )
        self._links = LinkCheck(
            frame, link_tolerance=link_tolerance, link_hours=link_hours, max_examples=max_examples
        )
        self._exposure_share = ExposureShareTest(
            frame, tolerance=exposure_tolerance, tau=exposure_tau, min_users=min_arm_users
        )
        self._gaps = GapCheck(
            frame, max_gap_ticks=self.max_gap_ticks, min_expected_users=min_expected_users
        )
        self._lookalike = LookalikeCheck(frame, ledger, max_examples=max_examples)
        self._duplicates = DuplicateCheck(frame, min_conflicting=min_conflicting)
        self._labels = LabelCheck(
            frame,
            label_grace_minutes=label_grace_minutes,
            min_missing_labels=min_missing_labels,
            max_examples=max_examples,
        )
        match_ms = panel_match_seconds * 1000
        _check(
            match_ms <= frame.tick_ms,
            f"panel_match_seconds must be at most one tick, got {panel_match_seconds}",
        )
        self._panel = PanelCheck(
            frame, panel_tolerance=panel_tolerance, panel_match_seconds=panel_match_seconds
        )
        self._panel_amp = PanelAmplificationTest(
            frame,
            ledger,
            tolerance=panel_amplification_tolerance,
            tau=panel_tau,
            min_users=min_panel_users,
            match_ms=int(match_ms),
        )
        self._keys: set[Key] = set()

    # -- observe ------------------------------------------------------------------------------
    def observe(self, tick: Tick) -> LogIntegrity:
        frame = self._frame
        active: dict[Key, set[str]] = {}
        for r in tick.rankings:
            ts: int = r.ts  # type: ignore[assignment]
            self._links.ranking(r)
            self._labels.ranking(r)
            scoped = frame.keys_at(r.platform, r.region, ts)
            for key, scope in scoped:
                active.setdefault(key, set()).add(r.user)
                self._holdout.user(key, scope, r.user, r.arm, r.region, r.surface, ts)
            if scoped:
                self._lookalike.ranking(r, [s for _, s in scoped])
        self._links.release_held()
        for e in tick.exposures:
            ts = e.ts  # type: ignore[assignment]
            scoped = frame.keys_at(e.platform, e.region, ts)
            if not scoped:
                continue
            for key, scope in scoped:
                active.setdefault(key, set()).add(e.user)
                self._holdout.user(key, scope, e.user, e.arm, e.region, e.surface, ts)
            scopes = [s for _, s in scoped]
            self._links.exposure(e, scopes)
            self._exposure_share.exposure(e, scopes)
            self._lookalike.exposure(e, scopes)
            self._labels.exposure(e, scopes)
        self._holdout.close_tick()
        self._panel.tick(tick.panel, tick.exposures)
        self._panel_amp.tick(tick.panel, tick.exposures, self._panel.since)
        self._keys.update(active)
        self._gaps.tick(tick.start_ms // frame.tick_ms, active)
        self._links.expire(tick.end_ms)
        return self

    def note_ingest(self, counts: Mapping[str, Mapping[str, int]]) -> None:
        self._duplicates.note(counts)

    # -- evaluate -----------------------------------------------------------------------------
    def _n_checked(self) -> dict[Key, int]:
        return {k: v.checked for k, v in self._links.links.items()}

    def evaluate(self, tick: Tick) -> list[Finding]:
        end = tick.end_ms
        return [
            *self._holdout.evaluate(end),
            *self._links.evaluate(end),
            *self._exposure_share.evaluate(end),
            *self._gaps.evaluate(None, self._n_checked()),
            *self._lookalike.evaluate(end),
            *self._labels.evaluate(end),
            *self._panel.evaluate(end),
            *self._panel_amp.evaluate(end),
        ]

    def finish(self, end_ms: int) -> list[Finding]:
        self._links.release_held()
        self._gaps.close()
        self._panel.close()
        out = [
            *self._holdout.evaluate(end_ms, set(self._holdout.arms)),
            *self._links.evaluate(end_ms, set(self._links.links)),
            *self._exposure_share.evaluate(end_ms, set(self._exposure_share.states)),
            *self._gaps.evaluate(set(self._gaps.streams), self._n_checked()),
            *self._lookalike.evaluate(end_ms),
            *self._labels.evaluate(end_ms, self._labels.keys()),
            *self._panel.evaluate(end_ms, set(self._panel.compare)),
            *self._panel_amp.evaluate(end_ms, set(self._panel_amp.scopes)),
            *self._duplicates.findings(self._keys, end_ms),
        ]
        return out

    def test_states(self) -> list[TestState]:
        """The running maximum of every statistical check's e-process, per platform and
        window (one state per check; a region's, surface's or panel subject's test is one
        subject of its check), against the log of its own Bonferroni threshold."""
        out: list[TestState] = []

        def add(key: Key, check: str, rows: dict[str, float], threshold: float) -> None:
            if rows:
                out.append(
                    TestState(
                        detector=self.name,
                        platform=key[0],
                        window_id=key[1],
                        scope=check,
                        subjects=tuple(rows),
                        max_log_e=np.array(list(rows.values()), dtype=float),
                        log_threshold=threshold,
                        null=np.ones(len(rows), dtype=bool),
                    )
                )

        frame = self._frame
        for key, arms in sorted(self._holdout.arms.items()):
            add(
                key,
                "holdout_share",
                {"holdout_share": arms.max_log_e},
                self._holdout.threshold(key),
            )
        between = self._holdout.between
        for key, scope in sorted(between.scopes.items()):
            for dimension in ("region", "surface"):
                cells = [c for c in scope.cells.values() if c.dimension == dimension]
                add(
                    key,
                    f"holdout_share_{dimension}",
                    {c.value: c.max_log_e for c in cells},
                    min((between.threshold(c) for c in cells), default=frame.threshold),
                )
        for key, state in sorted(self._exposure_share.states.items()):
            add(
                key,
                "holdout_exposure_share",
                {"holdout_exposure_share": state.max_log_e},
                frame.threshold,
            )
        for key, links in sorted(self._links.links.items()):
            add(key, "exposure_links", {"exposure_links": links.max_log_e}, frame.threshold)
        for key, c in sorted(self._panel.compare.items()):
            add(key, "panel_mismatch", {"panel_mismatch": c.max_log_e}, frame.threshold)
        for key, amp in sorted(self._panel_amp.scopes.items()):
            add(
                key,
                "panel_amplification",
                {f"{k}:{s}": sub.max_log_e for (k, s), sub in sorted(amp.subjects.items())},
                self._panel_amp.threshold(key[1]),
            )
        return out

    def detectability(self) -> list[Detectability]:
        """Smallest holdout-share ratios the share test would flag (observed ÷ reference)."""
        return self._holdout.detectability(self.name)
