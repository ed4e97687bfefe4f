"""Exact exposure counts per arm, the shared state behind the amplification statistics.

For each *cell* = (platform, window, period) the ledger keeps, per arm
(``ranked``/``holdout``):

* the set of **active users** (≥ 1 exposure of any item in the window's region scope and
  period) — the denominators ``users_ranked`` / ``users_holdout``;
* per monitored subject (each registered actor monitored in the window, and each group), the
  per-user exposure counts ``x_u`` with their running totals ``S = Σ x_u`` and
  ``Q = Σ x_u²`` (``Q`` is updated incrementally: ``(x+1)² − x² = 2x + 1``).

Users are the clusters: ``S``, ``Q`` and the number of active users are the sufficient
statistics of the cluster-robust ratio estimator (:func:`detectors.stats.ratio_ci`).  They are
additive over disjoint sets of users, so partitions of a user-keyed stream can be merged.

Region scope: an exposure counts for every window whose jurisdiction covers its region
(``DE`` covers ``DE-BY``); periods are half-open ``[start, end)``.  Counts are exact; the
caller deduplicates events.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from monitor.config import Config, Window, covers
from monitor.contract import Exposure

__all__ = ["ArmCounts", "Cell", "CellKey", "ExposureLedger", "SubjectKey"]

CellKey = tuple[str, str, str]  # platform, window_id, period
SubjectKey = tuple[str, str]  # subject_kind ("actor" | "group"), subject
RANKED, HOLDOUT = 0, 1


class ArmCounts:
    """Per-user exposure counts of one subject in one arm: ``S = Σx``, ``Q = Σx²``."""

    __slots__ = ("per_user", "total", "sumsq")

    def __init__(self) -> None:
        self.per_user: dict[str, int] = {}
        self.total = 0
        self.sumsq = 0

    def add(self, user: str) -> None:
        x = self.per_user.get(user, 0)
        self.per_user[user] = x + 1
        self.total += 1
        self.sumsq += 2 * x + 1

    @property
    def reach(self) -> int:
        """Users with ≥ 1 exposure of the subject."""
        return len(self.per_user)


@dataclass(slots=True)
class Cell:
    """Counts for one (platform, window, period)."""

    key: CellKey
    region: str
    users: tuple[set[str], set[str]] = field(default_factory=lambda: (set(), set()))
    subjects: dict[SubjectKey, tuple[ArmCounts, ArmCounts]] = field(default_factory=dict)

    def arms(self, subject: SubjectKey) -> tuple[ArmCounts, ArmCounts]:
        arms = self.subjects.get(subject)
        if arms is None:
            arms = self.subjects[subject] = (ArmCounts(), ArmCounts())
        return arms

    @property
    def users_ranked(self) -> int:
        return len(self.users[RANKED])

    @property
    def users_holdout(self) -> int:
        return len(self.users[HOLDOUT])


@dataclass(frozen=True, slots=True)
class _Scope:
    window: Window
    base_start: int
    base_end: int
    win_start: int
    win_end: int
    subjects_of: dict[str, tuple[SubjectKey, ...]]  # actor → its monitored subjects

    def period(self, ts: int) -> str | None:
        if self.win_start <= ts < self.win_end:
            return "window"
        if self.base_start <= ts < self.base_end:
            return "baseline"
        return None


class ExposureLedger:
    """Exact per-arm exposure and user counts for every monitored subject.

    ``observe`` costs O(1) dict updates per exposure; memory is O(active users + distinct
    (subject, user) pairs) per cell, independent of the number of events.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self.cells: dict[CellKey, Cell] = {}
        self.touched: set[CellKey] = set()  # cells changed by the last observe()
        self._scopes_by_region: dict[str, tuple[_Scope, ...]] = {}

    def monitored_subjects(self, window: Window) -> list[SubjectKey]:
        """Registered actors monitored in ``window`` and the groups they form (config order)."""
        actors = [a for a in self.config.actors if a.monitored_in(window.jurisdiction)]
        out: list[SubjectKey] = [("actor", a.actor) for a in actors]
        groups = dict.fromkeys(a.group for a in actors if a.group)
        out.extend(("group", g) for g in groups if g is not None)
        return out

    def _scopes(self, region: str) -> tuple[_Scope, ...]:
        scopes = self._scopes_by_region.get(region)
        if scopes is None:
            built = []
            for w in self.config.windows:
                if not covers(w.jurisdiction, region):
                    continue
                subjects_of: dict[str, list[SubjectKey]] = {}
                for a in self.config.actors:
                    if a.monitored_in(w.jurisdiction):
                        subs = subjects_of.setdefault(a.actor, [("actor", a.actor)])
                        if a.group:
                            subs.append(("group", a.group))
                b, p = w.baseline_period, w.window_period
                built.append(_Scope(w, b.start_ms, b.end_ms, p.start_ms, p.end_ms,
                                    {k: tuple(v) for k, v in subjects_of.items()}))
            scopes = self._scopes_by_region[region] = tuple(built)
        return scopes

    def observe(self, exposures: Iterable[Exposure]) -> None:
        """Count one tick's exposures; ``touched`` becomes the set of cells they changed."""
        cells = self.cells
        self.touched = set()
        for e in exposures:
            scopes = self._scopes(e.region)
            if not scopes:
                continue
            arm = RANKED if e.arm == "ranked" else HOLDOUT
            ts: int = e.ts  # type: ignore[assignment]  # normalised to epoch ms on decode
            for scope in scopes:
                period = scope.period(ts)
                if period is None:
                    continue
                key = (e.platform, scope.window.id, period)
                cell = cells.get(key)
                if cell is None:
                    cell = cells[key] = Cell(key, scope.window.jurisdiction)
                cell.users[arm].add(e.user)
                subjects = scope.subjects_of.get(e.actor)
                if subjects:
                    for subject in subjects:
                        cell.arms(subject)[arm].add(e.user)
                self.touched.add(key)

    def windows_at(self, region: str, ts: int, period: str = "window") -> list[Window]:
        """Windows whose region scope covers ``region`` and whose ``period`` contains ``ts``."""
        return [s.window for s in self._scopes(region) if s.period(ts) == period]

    def cell(self, platform: str, window_id: str, period: str) -> Cell | None:
        return self.cells.get((platform, window_id, period))

    def platforms(self) -> list[str]:
        return sorted({k[0] for k in self.cells})
