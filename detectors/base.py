"""The detector interface: one small uniform object per statistic, driven tick by tick.

A driver (replay, the live pipeline's stage two, the self-audit) feeds every detector the
same sequence of event-time :class:`Tick` batches — all deduplicated events with
``start_ms <= ts < end_ms`` — in tick order, and after each tick asks it to ``evaluate``.
Results therefore depend only on event time, never on arrival order within the lateness
allowance.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

from detectors.ledger import ExposureLedger
from monitor.core.config import Config
from monitor.core.contract import Exposure, Ranking
from monitor.core.records import Detectability, Finding, Measurement

__all__ = ["Detector", "DetectorContext", "Tick"]


@dataclass(frozen=True, slots=True)
class Tick:
    """All accepted events with ``start_ms <= ts < end_ms`` (event time, epoch ms)."""

    start_ms: int
    end_ms: int
    exposures: Sequence[Exposure] = ()
    rankings: Sequence[Ranking] = ()
    # exposure records observed on panellists' devices (contract v1.1 §5): what the platform
    # showed, by a source it does not write
    panel: Sequence[Exposure] = ()


@dataclass(slots=True)
class DetectorContext:
    """What a detector may read: the configuration, the shared exposure ledger, and its share
    ``alpha`` of the false-alarm budget (already divided between the statistical detectors)."""

    config: Config
    ledger: ExposureLedger
    alpha: float
    params: dict[str, Any] = field(default_factory=dict)


class Detector(ABC):
    """Base class.  Subclasses set ``name``, ``display_name``, ``kinds`` and ``version``,
    take hyper-parameters as keyword arguments stored under their own names, and validate them
    with ``ValueError``."""

    name: ClassVar[str]
    display_name: ClassVar[str]
    kinds: ClassVar[tuple[str, ...]]
    version: ClassVar[str] = "1"

    def __init__(self, context: DetectorContext) -> None:
        self.context = context

    def observe(self, tick: Tick) -> Self:
        """Update state with one tick's events (the shared ledger is already updated)."""
        return self

    @abstractmethod
    def evaluate(self, tick: Tick) -> list[Finding]:
        """Findings raised or updated by the evidence up to ``tick.end_ms``."""

    def finish(self, end_ms: int) -> list[Finding]:
        """Called once when the stream ends (replay) — final updates."""
        return []

    def measurements(self) -> list[Measurement]:
        """Measurement rows changed since the last call (``amplification`` table)."""
        return []

    def detectability(self) -> list[Detectability]:
        """Minimum detectable effects per subject (called when the stream ends)."""
        return []

    def note_ingest(self, counts: Mapping[str, Mapping[str, int]]) -> None:
        """The stream's ingest counters (``accepted``, ``duplicates``, ``late``,
        ``rejected``, ``conflicting`` per topic), given before :meth:`finish`: what the
        detectors never see as events (a check on the platform's logs may report them)."""
        return None

    def test_states(self) -> list[Any]:
        """The state of every always-valid test (:class:`detectors.sequential.TestState`):
        what calibration studies check Ville's inequality on.  Empty for logged facts."""
        return []
