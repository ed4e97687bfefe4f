"""The detector registry: the CLI, the worker, the audit and the dashboard all read it.

Adding a detector is one module plus one :func:`register` call in ``detectors/__init__.py``.
The whole-window false-alarm budget ``detection.alpha`` is split between the *statistical*
detectors in proportion to their ``budget_weight`` (Bonferroni across detectors); each detector
controls its own share across its subjects and looks.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from monitor.core.config import declare_detector

__all__ = ["DetectorSpec", "REGISTRY", "alpha_shares", "register"]


@dataclass(frozen=True, slots=True)
class DetectorSpec:
    name: str
    display_name: str
    factory: Callable[..., object]
    kinds: tuple[str, ...]
    description: str
    budget_weight: float = 0.0  # 0 = not statistical (a logged fact), spends no alpha
    enabled_by_default: bool = True

    @classmethod
    def of(cls, detector: Any, description: str, **options: Any) -> DetectorSpec:
        """The spec of a :class:`~detectors.base.Detector` class: name, display name and
        kinds are the class's own, the class is the factory."""
        return cls(
            name=detector.name,
            display_name=detector.display_name,
            factory=detector,
            kinds=detector.kinds,
            description=description,
            **options,
        )

    @property
    def parameters(self) -> frozenset[str] | None:
        """The factory's keyword arguments after the context: the keys ``detection.<name>``
        may hold (None: it takes ``**kwargs``)."""
        params = list(inspect.signature(self.factory).parameters.values())[1:]
        if any(p.kind is p.VAR_KEYWORD for p in params):
            return None
        return frozenset(
            p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        )


REGISTRY: dict[str, DetectorSpec] = {}


def register(spec: DetectorSpec) -> DetectorSpec:
    if spec.name in REGISTRY:
        raise ValueError(f"detector {spec.name!r} registered twice")
    REGISTRY[spec.name] = spec
    declare_detector(spec.name, spec.parameters)  # the configuration checks its section
    return spec


def alpha_shares(alpha: float, names: list[str]) -> dict[str, float]:
    """``alpha_d = alpha * w_d / sum(w)`` over the selected statistical detectors."""
    weights = {n: REGISTRY[n].budget_weight for n in names}
    total = sum(weights.values())
    return {n: (alpha * w / total if total > 0 and w > 0 else 0.0) for n, w in weights.items()}
