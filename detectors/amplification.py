"""``amplification`` — the Huszár-style measurement table (no alerts of its own).

For every platform, window, period (baseline / window) and monitored subject (actor, group):

* ``ratio`` = exposures per active ranked-arm user ÷ exposures per active holdout-arm user,
  with a 95 % cluster-robust CI (:func:`detectors.stats.ratio_ci`, users as clusters);
* ``reach_ratio`` = share of active ranked-arm users with ≥ 1 exposure of the subject ÷ the
  same share in the holdout arm.  Huszár et al.'s "amplification %" = ``(reach_ratio − 1)·100``
  (Huszár et al. 2022, PNAS 119(1) e2025334119, "Algorithmic amplification of politics on
  Twitter", Materials and Methods).

Counts (``n_ranked``, ``n_holdout``, ``users_*``) are exact and deduplicated.  Rows are
computed lazily: a tick only marks its cells dirty; :meth:`AmplificationTable.measurements`
computes every monitored subject's row of the dirty cells when the driver flushes.
"""

from __future__ import annotations

from typing import ClassVar

from detectors.base import Detector, DetectorContext, Tick
from detectors.ledger import Cell, CellKey, SubjectKey
from detectors.stats import ratio_ci
from monitor.core.records import Finding, Measurement

__all__ = ["AmplificationTable", "measure"]


def measure(cell: Cell, subject: SubjectKey, level: float = 0.95) -> Measurement:
    """The measurement row of ``subject`` in ``cell`` (null ratio if an arm has no exposure)."""
    arms = cell.subjects.get(subject)
    n_r, n_h = cell.users_ranked, cell.users_holdout
    s_r, q_r, reach_r = (arms[0].total, arms[0].sumsq, arms[0].reach) if arms else (0, 0, 0)
    s_h, q_h, reach_h = (arms[1].total, arms[1].sumsq, arms[1].reach) if arms else (0, 0, 0)
    est = ratio_ci(s_r, q_r, n_r, s_h, q_h, n_h, level)
    reach_ratio = (reach_r / n_r) / (reach_h / n_h) if n_r and n_h and reach_h else None
    platform, window_id, period = cell.key
    return Measurement(
        platform=platform,
        region=cell.region,
        window_id=window_id,
        period=period,
        subject_kind=subject[0],
        subject=subject[1],
        ratio=est.ratio,
        ci_low=est.ci_low,
        ci_high=est.ci_high,
        reach_ratio=reach_ratio,
        n_ranked=s_r,
        n_holdout=s_h,
        users_ranked=n_r,
        users_holdout=n_h,
        reach_ranked=reach_r,
        reach_holdout=reach_h,
    )


class AmplificationTable(Detector):
    """Keeps the ``amplification`` table current for every cell that received events."""

    name: ClassVar[str] = "amplification"
    display_name: ClassVar[str] = "Amplification measurement (holdout arm)"
    kinds: ClassVar[tuple[str, ...]] = ()

    def __init__(self, context: DetectorContext) -> None:
        super().__init__(context)
        self._dirty: set[CellKey] = set()
        self._windows = {w.id: w for w in context.config.windows}

    def evaluate(self, tick: Tick) -> list[Finding]:
        self._dirty.update(self.context.ledger.touched)
        return []

    def measurements(self) -> list[Measurement]:
        ledger = self.context.ledger
        rows = []
        for key in sorted(self._dirty):
            cell = ledger.cells[key]
            for subject in ledger.monitored_subjects(self._windows[key[1]]):
                rows.append(measure(cell, subject))
        self._dirty.clear()
        return rows
