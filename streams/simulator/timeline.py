"""Absolute times: windows, periods and planted interventions resolved against the params."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Final

import numpy as np

from .params import (
    CONFOUNDER_KINDS,
    DISCLOSED_KINDS,
    LOGGED_KINDS,
    Intervention,
    SimParams,
    WindowSpec,
)
from .population import Accounts, covers

__all__ = ["Interval", "ResolvedIntervention", "Timeline", "resolve", "to_ms"]

_MS_PER_HOUR: Final = 3_600_000


def to_ms(t: dt.datetime) -> int:
    """Epoch milliseconds of an aware datetime."""
    return int(round(t.timestamp() * 1000))


def from_ms(ms: int) -> dt.datetime:
    """Aware UTC datetime of epoch milliseconds."""
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=int(ms))


@dataclasses.dataclass(frozen=True)
class Interval:
    """A half-open event-time interval ``[start, end)``."""

    start: dt.datetime
    end: dt.datetime

    @property
    def start_ms(self) -> int:
        return to_ms(self.start)

    @property
    def end_ms(self) -> int:
        return to_ms(self.end)


@dataclasses.dataclass(frozen=True)
class ResolvedWindow:
    """A window with absolute baseline and window periods."""

    spec: WindowSpec
    periods: dict[str, Interval]

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def jurisdiction(self) -> str:
        return self.spec.jurisdiction


@dataclasses.dataclass(frozen=True)
class ResolvedIntervention:
    """An intervention with absolute times and index masks.

    Attributes:
        index: Position in ``params.interventions`` (bit in the logged-interventions mask).
        spec: The declared intervention.
        members: Account indices it acts on.
        regions: User regions it applies to (resolved default).
        region_mask: Boolean per ``params.regions`` entry: is that user region affected.
        interval: Absolute ``[start, end)``.
        window: The window of the target's jurisdiction (``None`` if none matches).
        target_kind: ``actor`` or ``group``.
        surface_mask: Boolean per ``params.surface_names`` entry: is that surface affected.
    """

    index: int
    spec: Intervention
    members: np.ndarray
    regions: tuple[str, ...]
    region_mask: np.ndarray
    interval: Interval
    window: ResolvedWindow | None
    target_kind: str
    surface_mask: np.ndarray

    @property
    def log_multiplier(self) -> float:
        return float(np.log(self.spec.multiplier))

    @property
    def ranks(self) -> bool:
        """Does it change ranked-arm scores (as opposed to a confounder)?"""
        return self.spec.kind not in CONFOUNDER_KINDS

    @property
    def logged(self) -> bool:
        return self.spec.kind in LOGGED_KINDS

    @property
    def disclosed(self) -> bool:
        return self.spec.kind in DISCLOSED_KINDS


@dataclasses.dataclass(frozen=True)
class Timeline:
    """The run's absolute timeline.

    Attributes:
        warmup_ms: Start of posting (before the first emitted event).
        start_ms: First session (``params.start``).
        end_ms: End of the last window: no session starts at or after it.
        windows: Resolved windows in params order.
        interventions: Resolved interventions in params order.
        pool_ms: Age limit of items in a candidate pool.
        model_update_ms: Time from which the platform-wide model update applies.
    """

    warmup_ms: int
    start_ms: int
    end_ms: int
    windows: tuple[ResolvedWindow, ...]
    interventions: tuple[ResolvedIntervention, ...]
    pool_ms: int
    model_update_ms: int


def _when(
    value: dt.datetime | dt.timedelta | None,
    default: dt.datetime,
    anchor: dt.datetime | None,
    scale: float,
    what: str,
) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    if anchor is None:
        raise ValueError(f"{what}: no window matches the target; give an absolute datetime")
    if value is None:
        return default
    return anchor + value * scale


def resolve(params: SimParams, accounts: Accounts) -> Timeline:
    """Resolve windows and interventions to absolute times and index masks."""
    scale = params.time_scale
    origin = params.start.astimezone(dt.UTC)
    windows = []
    for w in params.windows:
        periods = {
            "baseline": Interval(origin + w.baseline_start * scale, origin + w.start * scale),
            "window": Interval(origin + w.start * scale, origin + w.end * scale),
        }
        windows.append(ResolvedWindow(w, periods))
    end = max(w.periods["window"].end for w in windows)
    resolved = []
    if len(params.interventions) > 62:
        raise ValueError("interventions: at most 62 per run")
    for i, iv in enumerate(params.interventions):
        members = accounts.members(iv.target)
        target_kind = "actor" if iv.target in accounts.ids else "group"
        target_regions = accounts.regions[int(members[0])]
        window = next(
            (
                w
                for w in windows
                if any(
                    covers(r, w.jurisdiction) or covers(w.jurisdiction, r) for r in target_regions
                )
            ),
            None,
        )
        regions = iv.regions or ((window.jurisdiction,) if window else target_regions)
        if iv.platform not in params.platforms:
            raise ValueError(f"intervention {iv.id!r}: unknown platform {iv.platform!r}")
        anchor = window.periods["window"].start if window else None
        start = _when(iv.start, anchor or origin, anchor, scale, f"intervention {iv.id!r} start")
        stop = _when(
            iv.end,
            window.periods["window"].end if window else end,
            anchor,
            scale,
            f"intervention {iv.id!r} end",
        )
        if stop <= start:
            raise ValueError(f"intervention {iv.id!r}: end is not after start")
        region_mask = np.array([any(covers(r, ur) for r in regions) for ur in params.regions])
        unknown = set(iv.surfaces) - set(params.surface_names)
        if unknown:
            raise ValueError(f"intervention {iv.id!r}: unknown surface(s) {sorted(unknown)}")
        surface_mask = np.array([not iv.surfaces or s in iv.surfaces for s in params.surface_names])
        resolved.append(
            ResolvedIntervention(
                i,
                iv,
                members,
                tuple(regions),
                region_mask,
                Interval(start, stop),
                window,
                target_kind,
                surface_mask,
            )
        )
    warmup = origin - dt.timedelta(hours=params.warmup_hours)
    return Timeline(
        to_ms(warmup),
        to_ms(origin),
        to_ms(end),
        tuple(windows),
        tuple(resolved),
        int(params.pool_hours * _MS_PER_HOUR),
        to_ms(origin + params.model_update_at * scale),
    )
