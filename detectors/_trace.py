"""Per-look record of a panel's always-valid tests, for the time series of its findings'
evidence (:class:`detectors.evidence.Series`).  Reporting only: nothing here feeds a test.

Memory is bounded: past ``2 · limit`` looks, every second look is dropped (the step
doubles), so a panel keeps at most ``2 · limit`` float32 arrays of each of two values per
subject whatever the stream's length (800 looks × 1,000 subjects: 6.4 MB); the crossing
itself is kept, in full precision, by the test (``SequentialPanel.at_cross``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np

import detectors.evidence as evidence
from detectors.evidence import finite_float
from monitor.core.records import ms_to_datetime

__all__ = ["Trace"]


@dataclass(slots=True)
class Trace:
    limit: int = 2 * evidence.MAX_POINTS
    t_ms: list[int] = field(default_factory=list)
    estimate: list[np.ndarray] = field(default_factory=list)
    log_e: list[np.ndarray] = field(default_factory=list)
    step_ms: int = 0

    def record(self, t_ms: int, step_ms: int, estimate: Any, log_e: Any) -> None:
        """One look (``step_ms``: the tick's length); skipped while closer than the current
        step to the last kept one."""
        if self.t_ms and t_ms - self.t_ms[-1] < self.step_ms:
            return
        self.step_ms = max(self.step_ms, step_ms)
        self.t_ms.append(t_ms)
        self.estimate.append(np.array(estimate, dtype=np.float32))
        self.log_e.append(np.array(log_e, dtype=np.float32))
        if len(self.t_ms) > 2 * self.limit:
            self.t_ms, self.estimate, self.log_e = (
                self.t_ms[::2],
                self.estimate[::2],
                self.log_e[::2],
            )
            self.step_ms *= 2

    def series(self, i: int, tests: Any, *, onset_ms: int | None) -> dict[str, Any]:
        """Subject ``i``'s series (JSON form): per look its estimate, ``log E`` and the
        boundary ``log_threshold``, the crossing look from the test's snapshot."""
        thresh = float(tests.log_thresh)
        points: dict[int, evidence.SeriesPoint] = {}
        for t, est, le in zip(self.t_ms, self.estimate, self.log_e, strict=True):
            if i >= le.size:
                continue
            points[t] = evidence.SeriesPoint(
                t=ms_to_datetime(t),
                period="window",
                statistic=finite_float(est[i]),
                log_e=finite_float(le[i]),
                log_threshold=thresh,
            )
        crossing = None
        if tests.crossed_ms[i] >= 0:
            c_ms = int(tests.crossed_ms[i])
            crossing = ms_to_datetime(c_ms)
            snap = tests.at_cross.get(i, {})
            combined = snap.get("combined")
            stat = (
                snap.get("log_effect")
                if "log_effect" in snap
                else combined.get("log_effect")
                if isinstance(combined, dict)
                else None
            )
            points.setdefault(
                c_ms,
                evidence.SeriesPoint(
                    t=crossing,
                    period="window",
                    statistic=finite_float(stat),
                    log_e=finite_float(snap.get("log_e")),
                    log_threshold=thresh,
                ),
            )
        series = evidence.series(
            list(points.values()),
            step_minutes=max(1, self.step_ms // 60_000),
            onset=ms_to_datetime(onset_ms) if onset_ms is not None else None,
            crossing=crossing,
            arms=False,
        )
        out: dict[str, Any] = msgspec.to_builtins(series)
        return out
