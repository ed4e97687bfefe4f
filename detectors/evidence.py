"""Typed evidence: one msgspec Struct per detector, a tagged union with a version.

A finding's ``evidence`` (``findings.evidence``, JSON) is one member of :data:`Evidence`,
tagged by ``kind`` = the detector's name (``platform_change`` for the informational kind two
detectors raise, ``log_integrity`` for the checks on the platform's logs) and carrying the
``version`` of its schema.  Detectors build their evidence through :func:`build`, which
validates it against the struct and returns its JSON form (what :class:`~monitor.core.records.
Finding` carries and the store writes); every reader — dashboard, audit report, evidence
packs, CLI — goes through :func:`decode`, never through the raw keys.

Decoding is strict (a wrong type is an error) and never raises: :class:`Decoded` holds the
struct, or ``None`` and the error, with the raw JSON kept for display.  Evidence written
before this schema (no ``kind``) is *legacy*: it is tagged from the finding's detector and
decoded leniently (a part that no longer fits — e.g. an older ``series`` list — is dropped
and named in ``Decoded.dropped``); ``log_integrity`` evidence is always decoded into the
permissive :class:`IntegrityEvidence` (its checks are being rewritten and keep their keys).

Time series (:class:`Series`): every amplification or suppression finding carries, per look
from the baseline through detection, the exposure per active user in each arm (where the
detector has arms), the monitored statistic ``log E`` and its boundary ``log(1/α_test)``,
with the onset and the crossing marked; at most :data:`MAX_POINTS` points (:func:`thin`
keeps the first, the last, the onset and the crossing), so a finding stays small.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal, NamedTuple

import msgspec

__all__ = [
    "EVIDENCE_TYPES",
    "MAX_POINTS",
    "Crossed",
    "Decoded",
    "Disclosure",
    "Evidence",
    "HoldoutShiftEvidence",
    "finite_float",
    "IntegrityEvidence",
    "ArmShares",
    "MissingLabelEvidence",
    "PanelAmplification",
    "Period",
    "PlatformChangeEvidence",
    "RankUpliftEvidence",
    "ScoreShiftEvidence",
    "Series",
    "SeriesPoint",
    "UndisclosedEvidence",
    "build",
    "decode",
    "decode_finding",
    "encode",
    "thin",
]

#: Most points of a finding's time series (the hourly series of a 3-day window after a
#: 3-day baseline has 144; longer periods or 15-minute looks are thinned).
MAX_POINTS: Final = 200

Period = Literal["baseline", "window"]


class _Part(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """A nested part of some evidence (unknown fields are ignored: a newer writer's)."""


# -- parts shared by several detectors ------------------------------------------------------
class Disclosure(_Part, kw_only=True):
    """A disclosure as configured (contract §2), as the detector checked it."""

    platform: str
    intervention: str
    label: str | None = None
    actors: list[str] = []
    groups: list[str] = []
    regions: list[str] = []
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    description: str = ""


class Estimate(_Part, kw_only=True):
    log_effect: float | None = None
    se: float | None = None


class Component(Estimate, kw_only=True):
    items: int | None = None


class Crossed(_Part, kw_only=True):
    """The look at which the test crossed its threshold, and what was known then."""

    tick: int
    tick_start: dt.datetime | None = None
    tick_end: dt.datetime | None = None
    log_effect: float | None = None
    se: float | None = None
    log_e: float | None = None
    # score_shift: each component's estimate at the crossing
    within: Estimate | None = None
    level: Estimate | None = None
    combined: Estimate | None = None


class Test(_Part, kw_only=True):
    """The always-valid test (:mod:`detectors.sequential`) at the latest look."""

    name: str = ""
    statistic_log_effect: float | None = None
    se: float | None = None
    tau: float | None = None
    margin: float | None = None
    log_e: float | None = None
    log_e_max: float | None = None
    log_threshold: float
    tests_in_window: int | None = None
    tests_in_scope: int | None = None
    alpha_share: float | None = None
    alpha_detector: float | None = None
    ci_level: float | None = None
    guarded_looks: int | None = None
    looks: int | None = None
    # holdout_shift
    item_variance_sigma2: float | None = None
    item_variance_from: dict[str, Any] | None = None
    user_overdispersion_phi: float | None = None


class Onset(_Part, kw_only=True):
    estimated_onset: dt.datetime
    from_window_start: bool
    change_z: float | None = None
    threshold_z: float | None = None
    method: str = ""


class Effect(_Part, kw_only=True):
    ci95: list[float | None]
    onset: Onset | dt.datetime | None = None
    log_effect: float | None = None
    se: float | None = None


class Latest(_Part, kw_only=True):
    """A later estimate that no longer lies on the detected side of 1."""

    effect: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    at: dt.datetime | None = None
    note: str = ""


class Elasticity(_Part, kw_only=True):
    beta: float | None = None
    se: float | None = None
    items: int | None = None
    beta_at_subject: float | None = None
    slate_share: float | None = None


class ScoreEstimate(_Part, kw_only=True):
    log_odds: float | None = None
    se: float | None = None
    ci: list[float | None] = []
    mean_raw: float | None = None


class SeriesPoint(_Part, kw_only=True, omit_defaults=True):
    """One look: ``t`` is the start of the hour (holdout_shift) or the end of the tick."""

    t: dt.datetime
    period: Period
    exposures_per_user_ranked: float | None = None
    exposures_per_user_holdout: float | None = None
    #: the detector's estimate (log scale) and the value at which it would cross
    statistic: float | None = None
    boundary: float | None = None
    #: the monitored statistic (log e-value) and its boundary (log threshold)
    log_e: float | None = None
    log_threshold: float | None = None


class Series(_Part, kw_only=True):
    """A finding's time series from the baseline through detection (module docstring)."""

    step_minutes: int
    points: list[SeriesPoint]
    onset: dt.datetime | None = None
    crossing: dt.datetime | None = None
    arms: bool = False  # exposure per active user in each arm is given
    points_total: int = 0  # before thinning
    max_points: int = MAX_POINTS


# -- one struct per detector ------------------------------------------------------------------
class _Evidence(msgspec.Struct, kw_only=True, tag_field="kind"):
    version: int = 1
    rule: str = ""


class HoldoutCounts(_Part, kw_only=True):
    exposures_ranked: int
    exposures_holdout: int
    items: int | None = None


class Reach(_Part, kw_only=True):
    reach_ratio: float | None = None
    reach_ranked: int | None = None
    reach_holdout: int | None = None
    users_ranked: int | None = None
    users_holdout: int | None = None


class Scope(_Part, kw_only=True):
    surface: str | None = None
    region: str


class HoldoutShiftEvidence(_Evidence, kw_only=True, tag="holdout_shift"):
    measures: str = ""
    scope: Scope
    counts: dict[str, HoldoutCounts]
    reach: dict[str, Reach] | None = None
    effect: Effect
    test: Test
    crossed: Crossed
    series: Series | None = None  # None only in legacy evidence
    disclosures_checked: list[Disclosure] = []
    covering_disclosures: list[Disclosure] = []
    latest: Latest | None = None


class ScoreShiftEvidence(_Evidence, kw_only=True, tag="score_shift"):
    measures: str = ""
    boundary: dt.datetime
    horizon_hours: float | None = None
    slate_entries: int = 0
    score_shift: ScoreEstimate
    elasticity: Elasticity
    effect: Effect
    components: dict[str, Component] = {}
    references: dict[str, Any] = {}
    test: Test
    crossed: Crossed
    series: Series | None = None  # None only in legacy evidence
    disclosures_checked: list[Disclosure] = []
    latest: Latest | None = None


class RankCounts(_Part, kw_only=True):
    entries: int
    slates: int | None = None
    items: int | None = None
    platform_entries: int | None = None
    excluded_disclosed_entries: int | None = None


class Reference(_Part, kw_only=True):
    mean_uplift: float | None = None
    se: float | None = None
    control_items: int | None = None
    item_variance: float | None = None
    entry_variance: float | None = None


class SlotVsOrganic(_Part, kw_only=True):
    mean_displacement: float | None = None
    share_above_organic_order: float | None = None
    platform_mean_displacement: float | None = None


class RankUpliftEvidence(_Evidence, kw_only=True, tag="rank_uplift"):
    measures: str = ""
    counts: RankCounts
    uplift: ScoreEstimate
    reference: Reference
    elasticity: Elasticity
    effect: Effect
    slot_vs_organic: SlotVsOrganic | None = None
    test: Test
    crossed: Crossed
    series: Series | None = None  # None only in legacy evidence
    disclosures_checked: list[Disclosure] = []
    latest: Latest | None = None


class LabelTest(_Part, kw_only=True):
    name: str = ""
    design_effect: float | None = None
    tolerance: float | None = None
    log_e_max: float | None = None
    log_threshold: float | None = None
    tests_in_window: int | None = None
    alpha_share: float | None = None


class MissingLabelEvidence(_Evidence, kw_only=True, tag="missing_label"):
    required_labels: dict[str, str | None] = {}
    labels_shown: dict[str, int] = {}
    exposures: int
    unlabelled: int
    unlabelled_share: float | None = None
    unlabelled_share_ci95: list[float | None] = []
    users: int | None = None
    test: LabelTest | None = None


class ExposureRatio(_Part, kw_only=True):
    ratio: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    n_ranked: int | None = None
    n_holdout: int | None = None
    users_ranked: int | None = None
    users_holdout: int | None = None


class UndisclosedEvidence(_Evidence, kw_only=True, tag="undisclosed_intervention"):
    interventions: dict[str, int]
    placements: int
    linked_exposures: int = 0
    examples: list[dict[str, Any]] = []
    disclosures_checked: list[Disclosure] = []
    exposure_ratio: ExposureRatio | None = None


class PlatformTest(_Part, kw_only=True):
    statistic_log_effect: float | None = None
    statistic: float | None = None
    se: float | None = None
    margin: float | None = None
    tau: float | None = None
    log_e_max: float | None = None
    log_threshold: float | None = None


class PlatformChangeEvidence(_Evidence, kw_only=True, tag="platform_change"):
    """The informational ``platform_change`` kind (holdout_shift, score_shift)."""

    detector: str
    measures: str = ""
    test: PlatformTest
    crossed: Crossed
    item_variance_sigma2: float | None = None
    references: dict[str, Any] = {}


class ArmShares(_Part, kw_only=True):
    """A subject's share of all exposures in each arm, from one source (the panel's devices or
    the platform's log) for the same panellists, and their ratio (ranked ÷ holdout) with a
    95 % interval, panellists as clusters."""

    ratio: float | None = None
    ci95: list[float | None] = []
    share_ranked: float | None = None
    share_holdout: float | None = None
    exposures_ranked: int = 0  # of the subject
    exposures_holdout: int = 0
    all_exposures_ranked: int = 0  # of every account
    all_exposures_holdout: int = 0
    users_ranked: int = 0
    users_holdout: int = 0


class PanelAmplification(_Part, kw_only=True):
    """The panel's independent amplification estimate of a registered subject beside the
    platform log's for the same panellists and period (``log_integrity`` check
    ``panel_amplification``, evidence version 2)."""

    subject_kind: str
    subject: str
    period: Period = "window"
    panel: ArmShares
    log: ArmShares
    #: panel ratio ÷ log ratio (> 1: the log understates what the panel saw), its log, the
    #: standard error of that log (panellists as clusters, the two sources paired) and the
    #: always-valid interval at the test's level
    understatement: float | None = None
    log_understatement: float | None = None
    se: float | None = None
    understatement_cs: list[float | None] = []


class IntegrityEvidence(_Evidence, kw_only=True, tag="log_integrity"):
    """Permissive: the log-integrity checks keep their own keys, all in ``details``; the one
    typed part, ``panel_amplification`` (version 2), is also decoded into its struct.

    Stored flat (``{"kind": "log_integrity", "version": 1, "check": …, <details>}``, see
    :func:`encode`): the checks of :mod:`detectors.integrity` and their readers use the keys
    at the top level."""

    check: str
    details: dict[str, Any] = {}
    panel_amplification: PanelAmplification | None = None


Evidence = (
    HoldoutShiftEvidence
    | ScoreShiftEvidence
    | RankUpliftEvidence
    | MissingLabelEvidence
    | UndisclosedEvidence
    | PlatformChangeEvidence
    | IntegrityEvidence
)

#: The struct of each tag.
EVIDENCE_TYPES: Final[dict[str, type[Any]]] = {
    str(t.__struct_config__.tag): t
    for t in (
        HoldoutShiftEvidence,
        ScoreShiftEvidence,
        RankUpliftEvidence,
        MissingLabelEvidence,
        UndisclosedEvidence,
        PlatformChangeEvidence,
        IntegrityEvidence,
    )
}


# -- writing ----------------------------------------------------------------------------------
def _enc_hook(obj: Any) -> Any:
    item = getattr(obj, "item", None)  # numpy scalars
    if callable(item):
        return item()
    raise NotImplementedError(f"cannot encode {type(obj).__name__} in evidence")


def encode(evidence: Evidence) -> dict[str, Any]:
    """The JSON form (builtins) of typed evidence: what ``Finding.evidence`` holds."""
    if isinstance(evidence, IntegrityEvidence):
        head: dict[str, Any] = {"kind": "log_integrity", "version": evidence.version}
        if evidence.rule:
            head["rule"] = evidence.rule
        head["check"] = evidence.check
        if evidence.panel_amplification is not None:
            head["panel_amplification"] = msgspec.to_builtins(
                evidence.panel_amplification, enc_hook=_enc_hook
            )
        details = msgspec.to_builtins(evidence.details, enc_hook=_enc_hook)
        return {**head, **{k: v for k, v in details.items() if k not in head}}
    out: dict[str, Any] = msgspec.to_builtins(evidence, enc_hook=_enc_hook)
    return out


def finite_float(value: Any) -> float | None:
    """A float for a series point, ``None`` for NaN, infinities and a missing value."""
    return float(value) if value is not None and math.isfinite(value) else None


def _finite(value: Any) -> Any:
    """NaN and infinities as ``None`` (JSON has neither), recursively; numpy as builtins."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    item = getattr(value, "item", None)
    if callable(item) and not isinstance(value, str | bytes):
        return _finite(item())
    return value


def build(kind: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a detector's evidence against its struct (``kind`` = its tag) and return its
    JSON form; a detector that writes a wrong type fails here, in its own tests."""
    typed = msgspec.convert(_finite({**fields, "kind": kind}), Evidence)
    return encode(typed)


# -- series -------------------------------------------------------------------------------------
def thin(
    points: list[SeriesPoint], keep: Iterable[dt.datetime | None] = (), max_points: int = MAX_POINTS
) -> list[SeriesPoint]:
    """At most ``max_points`` points (sorted by time): the first, the last and, for each
    time in ``keep`` (onset, crossing), the first point at or after it; then every ``s``-th
    of the looks with a test value and, in proportion, of those without (a series whose
    exposure rows and looks alternate keeps both)."""
    n = len(points)
    if n <= max_points:
        return points
    must = {0, n - 1}
    for t in keep:
        if t is not None:
            must.add(next((i for i, p in enumerate(points) if p.t >= t), n - 1))
    room = max(max_points - len(must), 2)
    chosen = set(must)
    for tested in (True, False):
        group = [i for i, p in enumerate(points) if (p.log_e is not None) == tested]
        if group:
            share = max(1, room * len(group) // n)
            chosen.update(group[:: math.ceil(len(group) / share)])
    return [points[i] for i in sorted(chosen)]


def series(
    points: list[SeriesPoint],
    *,
    step_minutes: int,
    onset: dt.datetime | None,
    crossing: dt.datetime | None,
    arms: bool,
    max_points: int = MAX_POINTS,
) -> Series:
    points = sorted(points, key=lambda p: p.t)
    return Series(
        step_minutes=step_minutes,
        points=thin(points, (onset, crossing), max_points),
        onset=onset,
        crossing=crossing,
        arms=arms,
        points_total=len(points),
        max_points=max_points,
    )


# -- reading ----------------------------------------------------------------------------------
class Decoded(NamedTuple):
    """What a reader gets: the typed ``evidence`` (``None`` if it does not decode), the raw
    JSON object (for display), the ``error`` (as data), whether it was ``legacy`` (written
    before this schema) and the parts of legacy evidence dropped to decode it."""

    evidence: Evidence | None
    raw: dict[str, Any]
    error: str | None = None
    legacy: bool = False
    dropped: tuple[str, ...] = ()


_DECODER = msgspec.json.Decoder(dict[str, Any])


def _raw_object(raw: Any) -> tuple[dict[str, Any], str | None]:
    if raw is None or raw == "":
        return {}, None
    if isinstance(raw, Mapping):
        return dict(raw), None
    if isinstance(raw, str | bytes):
        try:
            return _DECODER.decode(raw), None
        except msgspec.DecodeError as err:
            return {}, f"evidence is not a JSON object: {err}"
    return {}, f"evidence is a {type(raw).__name__}, not a JSON object"


def decode(
    raw: Any,
    *,
    detector: str | None = None,
    finding_kind: str | None = None,
    subject: str | None = None,
) -> Decoded:
    """Typed evidence of a finding from its stored form (JSON text or object); never raises.

    ``detector``, ``finding_kind`` and ``subject`` (the finding's columns) tag legacy
    evidence and give a log-integrity check its name when its evidence lacks one."""
    obj, error = _raw_object(raw)
    if error is not None:
        return Decoded(None, {}, error)
    if "omitted" in obj and len(obj) == 1:
        return Decoded(None, obj, "the evidence was omitted from the message (too large)")
    tag = obj.get("kind")
    if detector == "log_integrity" or tag == "log_integrity":
        # flat: a check's own "rule" key (e.g. a look-alike's) is a detail, not the struct's
        head = {"kind", "version", "check"}
        nested = isinstance(obj.get("details"), Mapping) and set(obj) <= head | {"details", "rule"}
        details = obj["details"] if nested else {k: v for k, v in obj.items() if k not in head}
        check = obj.get("check") or obj.get("subject") or subject or ""
        version, rule = obj.get("version", 1), (obj.get("rule", "") if nested else "")
        if not isinstance(version, int) or not isinstance(rule, str):
            return Decoded(None, obj, "evidence does not match its schema: version or rule")
        details = dict(details)
        # typed below, and left in details too: readers that show the details show it
        part = details.get("panel_amplification")
        try:
            typed_part = None if part is None else msgspec.convert(part, PanelAmplification)
        except msgspec.ValidationError as err:
            return Decoded(None, obj, f"evidence does not match its schema: {err}")
        return Decoded(
            IntegrityEvidence(
                version=version,
                rule=rule,
                check=str(check),
                details=details,
                panel_amplification=typed_part,
            ),
            obj,
            legacy=tag is None,
        )
    if tag is not None:
        try:
            return Decoded(msgspec.convert(obj, Evidence), obj)
        except msgspec.ValidationError as err:
            return Decoded(None, obj, f"evidence does not match its schema: {err}")
    if not obj:
        return Decoded(None, obj, "no evidence", legacy=True)
    # legacy: no tag; written by the detector named in the finding
    tag = "platform_change" if finding_kind == "platform_change" else detector
    if tag not in EVIDENCE_TYPES:
        return Decoded(None, obj, f"evidence of an unknown detector {detector!r}", legacy=True)
    fields = {**obj, "kind": tag}
    if tag == "platform_change":
        fields.setdefault("detector", detector or "")
    dropped: list[str] = []
    for _ in range(len(fields)):
        try:
            typed = msgspec.convert(fields, Evidence)
            return Decoded(typed, obj, legacy=True, dropped=tuple(dropped))
        except msgspec.ValidationError as err:
            path = str(err).rpartition("at `$.")[2].split("`")[0]
            key = path.split(".")[0].split("[")[0]
            if not key or key not in fields or key in ("kind",):
                return Decoded(None, obj, f"legacy evidence does not decode: {err}", legacy=True)
            dropped.append(key)
            fields.pop(key)
    return Decoded(None, obj, "legacy evidence does not decode", legacy=True)


def decode_finding(finding: Mapping[str, Any] | Any) -> Decoded:
    """:func:`decode` of a finding given as a mapping (a row) or a record."""
    get = finding.get if isinstance(finding, Mapping) else (lambda k: getattr(finding, k, None))
    return decode(
        get("evidence"),
        detector=_s(get("detector")),
        finding_kind=_s(get("kind")),
        subject=_s(get("subject")),
    )


def _s(value: Any) -> str | None:
    return None if value is None else str(value)
