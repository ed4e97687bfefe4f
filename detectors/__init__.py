"""Statistical detectors of undisclosed amplification, one module each, one registry.

Public API: the :data:`REGISTRY` of :class:`DetectorSpec`, the :class:`Detector` base class and
the :class:`Tick` it is driven by, and :func:`build` which instantiates the selected detectors
with their share of the false-alarm budget.  Every finding's evidence is a typed, versioned
struct of :mod:`detectors.evidence` (one per detector, a tagged union), which every reader
decodes.
"""

from __future__ import annotations

from detectors.amplification import AmplificationTable
from detectors.base import Detector, DetectorContext, Tick
from detectors.holdout_shift import HoldoutShift
from detectors.integrity import LogIntegrity
from detectors.ledger import ExposureLedger
from detectors.missing_label import MissingLabel
from detectors.rank_uplift import RankUplift
from detectors.registry import REGISTRY, DetectorSpec, alpha_shares, register
from detectors.score_shift import ScoreShift
from detectors.undisclosed import UndisclosedIntervention
from monitor.core.config import Config, ConfigError

__all__ = [
    "REGISTRY",
    "Detector",
    "DetectorContext",
    "DetectorSpec",
    "ExposureLedger",
    "Tick",
    "build",
    "default_names",
]

register(
    DetectorSpec.of(
        AmplificationTable,
        "Ranked ÷ holdout exposure per user and Huszár reach ratio, per subject.",
    )
)
register(
    DetectorSpec.of(
        UndisclosedIntervention,
        "Logged intervention on a registered actor's item that no disclosure covers.",
    )
)
# Budget weights (Bonferroni across detectors, registry.alpha_shares): the holdout comparison
# and the within-item score shift carry the noisy, hard cases (organic-logged boosts) and get
# the larger shares; rank_uplift and missing_label see near-deterministic evidence (a logged
# score gap, a missing label) and lose almost no power with a smaller share.
register(
    DetectorSpec.of(
        HoldoutShift,
        "Change of the subject's ranked vs holdout exposure share from the baseline to the window "
        "(hour-matched, users paired, items pooled; per surface and subdivision too; "
        "always-valid).",
        budget_weight=0.3,
    )
)
register(
    DetectorSpec.of(
        RankUplift,
        "Final ranking score above organic_score per actor and group, against the adjustment of "
        "unregistered accounts' items (always-valid, items and slates as clusters).",
        budget_weight=0.2,
    )
)
register(
    DetectorSpec.of(
        ScoreShift,
        "Within-item change of ranking scores at the window start per actor and group, against "
        "the platform-wide change at the same score level; catches boosts logged as organic; "
        "reports a new ranking model as platform_change (always-valid).",
        budget_weight=0.3,
    )
)
register(
    DetectorSpec.of(
        MissingLabel,
        "Disclosed intervention shown without its label (always-valid share test, users as "
        "clusters).",
        budget_weight=0.2,
    )
)
register(
    DetectorSpec.of(
        LogIntegrity,
        "The platform's logs checked against themselves, the registry and the panel: holdout "
        "arm's share of users (declared or baseline; sequential SRM), users in both arms, a "
        "silent holdout arm, exposures no logged slate explains, gaps in the event stream, "
        "look-alike actor ids, conflicting duplicates.",
        budget_weight=0.2,
    )
)


def default_names() -> list[str]:
    return [n for n, spec in REGISTRY.items() if spec.enabled_by_default]


def build(config: Config, ledger: ExposureLedger, names: list[str] | None = None) -> list[Detector]:
    """Instantiate detectors (registry order) with per-detector params from the config."""
    names = default_names() if names is None else names
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown detector {unknown[0]!r}; known: {', '.join(REGISTRY)}")
    try:  # again here: a configuration parsed before the detectors were declared
        config.detection.check_sections()
    except ValueError as err:
        raise ConfigError(f"detection.{err}") from None
    shares = alpha_shares(config.detection.alpha, names)
    out: list[Detector] = []
    for name in REGISTRY:
        if name not in names:
            continue
        params = config.detection.params(name)
        context = DetectorContext(config=config, ledger=ledger, alpha=shares[name], params=params)
        try:
            detector = REGISTRY[name].factory(context, **params)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"detection.{name}: {err}") from None
        assert isinstance(detector, Detector)
        out.append(detector)
    return out
