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

Items are the second clustering dimension (an actor's ranked-arm exposure depends on the
quality and timing of the few items it posted in a period, which a user-clustered variance
ignores).  Per cell the ledger therefore also keeps every monitored item's exposure count per
arm, ``r_i`` and ``h_i``, and per subject and arm the item moments ``Σ_i r_i²`` (``item_sumsq``),
the cross term ``Σ_i r_i h_i`` (split between the arms as ``cross``) and the number of items
(``items``), again updated in O(1) per exposure — the sufficient statistics of the
item-clustered variance (:func:`detectors.stats.item_cluster_var`).

Region scope: an exposure counts for every window whose jurisdiction covers its region
(``DE`` covers ``DE-BY``); periods are half-open ``[start, end)``.  Counts are exact; the
caller deduplicates events.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from monitor.core.config import Config, Window, covers
from monitor.core.contract import Exposure

__all__ = ["ArmCounts", "Cell", "CellKey", "ExposureLedger", "SubjectKey"]

CellKey = tuple[str, str, str]  # platform, window_id, period
SubjectKey = tuple[str, str]  # subject_kind ("actor" | "group"), subject
RANKED, HOLDOUT = 0, 1


class ArmCounts:
    """Per-user exposure counts of one subject in one arm: ``S = Σx``, ``Q = Σx²``; and the
    item moments of the arm: ``item_sumsq = Σ_i c_i²`` over the subject's items (``c_i`` =
    the item's exposures in this arm), ``cross`` = this arm's share of ``Σ_i r_i h_i`` (the
    total cross moment is ``ranked.cross + holdout.cross``) and ``items`` = items first seen
    in this arm (total distinct items = ``ranked.items + holdout.items``)."""

    __slots__ = ("per_user", "total", "sumsq", "item_sumsq", "cross", "items")

    def __init__(self) -> None:
        self.per_user: dict[str, int] = {}
        self.total = 0
        self.sumsq = 0
        self.item_sumsq = 0
        self.cross = 0
        self.items = 0

    def add(self, user: str, own: int = 0, other: int = 0) -> None:
        """Count one exposure of ``user``; ``own``/``other`` = the exposed item's counts in
        this arm and in the other arm *before* this exposure (omit when not tracking items)."""
        x = self.per_user.get(user, 0)
        self.per_user[user] = x + 1
        self.total += 1
        self.sumsq += 2 * x + 1
        self.item_sumsq += 2 * own + 1
        self.cross += other
        if own == 0 and other == 0:
            self.items += 1

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
    items: dict[str, list[int]] = field(default_factory=dict)  # item → [ranked, holdout]
    # actor → [ranked, holdout, ranked, holdout, …] arm counts of its monitored subjects
    # (hot-path cache; empty for unmonitored accounts)
    by_actor: dict[str, list[ArmCounts]] = field(default_factory=dict)

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
                built.append(
                    _Scope(
                        w,
                        b.start_ms,
                        b.end_ms,
                        p.start_ms,
                        p.end_ms,
                        {k: tuple(v) for k, v in subjects_of.items()},
                    )
                )
            scopes = self._scopes_by_region[region] = tuple(built)
        return scopes

    def observe(self, exposures: Iterable[Exposure]) -> None:
        """Count one tick's exposures; ``touched`` becomes the set of cells they changed."""
        cells = self.cells
        touched = self.touched = set()
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
                user = e.user
                cell.users[arm].add(user)
                touched.add(key)
                actor_arms = cell.by_actor.get(e.actor)
                if actor_arms is None:
                    subjects = scope.subjects_of.get(e.actor, ())
                    actor_arms = cell.by_actor[e.actor] = [
                        cell.arms(s)[arm_] for s in subjects for arm_ in (RANKED, HOLDOUT)
                    ]
                if not actor_arms:
                    continue
                counts = cell.items.get(e.item)
                if counts is None:
                    counts = cell.items[e.item] = [0, 0]
                own, other = counts[arm], counts[1 - arm]
                counts[arm] = own + 1
                fresh = own == 0 and other == 0
                # ArmCounts.add, inlined (the hot path: ~2 subjects per exposure)
                for ac in actor_arms[arm::2]:
                    per_user = ac.per_user
                    x = per_user.get(user, 0)
                    per_user[user] = x + 1
                    ac.total += 1
                    ac.sumsq += 2 * x + 1
                    ac.item_sumsq += 2 * own + 1
                    ac.cross += other
                    if fresh:
                        ac.items += 1

    def windows_at(self, region: str, ts: int, period: str = "window") -> list[Window]:
        """Windows whose region scope covers ``region`` and whose ``period`` contains ``ts``."""
        return [s.window for s in self._scopes(region) if s.period(ts) == period]

    def cell(self, platform: str, window_id: str, period: str) -> Cell | None:
        return self.cells.get((platform, window_id, period))

    def platforms(self) -> list[str]:
        return sorted({k[0] for k in self.cells})
