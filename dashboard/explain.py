"""A finding in words: a one-line headline, one plain sentence, and its numbers.

The sentence says who, what, how much (with the 95 % interval), since when and whether a
disclosure covers it — e.g. "Candidate Jane Doe's exposure in the ranked feed rose to 1.9×
(95 % CI 1.5–2.4) of the holdout on chirp in DE from 4 May 12:00 UTC, with no disclosure
covering it."  Times are UTC and say so.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from dashboard.text import visible
from detectors import evidence as E
from monitor.core.config import Config

__all__ = [
    "EFFECT_MEANING",
    "crossing",
    "effect_label",
    "evidence_of",
    "fmt_p",
    "fmt_time",
    "headline",
    "numbers",
    "sentence",
    "subject_label",
    "typed_evidence",
]

KIND_LABELS = {
    "amplification": "amplification",
    "suppression": "suppression",
    "undisclosed_intervention": "undisclosed intervention",
    "missing_label": "missing label",
    "disclosed": "disclosed intervention",
}


def evidence_of(finding: Mapping[str, Any]) -> dict[str, Any]:
    """The evidence as stored (a JSON object, ``{}`` if it is none): what the page shows as
    JSON and the pack keeps verbatim.  Readers of its content use :func:`typed_evidence`."""
    return typed_evidence(finding).raw


def typed_evidence(finding: Mapping[str, Any]) -> E.Decoded:
    """The finding's evidence decoded into its struct (:func:`detectors.evidence.decode`):
    strict, never raises; older untyped evidence is decoded as legacy."""
    return E.decode_finding(finding)


def fmt_time(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return "—"
    ts = pd.Timestamp(value)
    if pd.isna(ts):
        return "—"
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return f"{ts.day} {ts.strftime('%b %H:%M')} UTC"


def _num(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def _ratio(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v:.2f}×" if v < 10 else f"{v:.1f}×"


def _ci(lo: float | None, hi: float | None, unit: str = "") -> str:
    fmt = "{:.0%}" if unit == "%" else "{:.2f}"
    if lo is not None and hi is not None:
        return f" (95 % CI {fmt.format(lo)}–{fmt.format(hi)})"
    if lo is not None and lo > 0:  # an open upper bound
        return f" (95 % CI ≥ {fmt.format(lo)})"
    return ""


# What ``effect`` measures differs by detector, so does the sentence (see each detector's
# docstring); a detector not listed gets the holdout wording of the dashboard issue.
_EFFECT_PHRASES = {
    "holdout_shift": "{poss} exposure in the ranked feed relative to the holdout {verb} to "
    "{x} of its baseline level",
    "rank_uplift": "{poss} items got {x} the ranking weight their organic scores justify, "
    "beyond the platform-wide adjustment,",
    "score_shift": "the ranking weight of {poss} items {verb} to {x} of its level before the "
    "window opened",
}
_EFFECT_DEFAULT = "{poss} exposure in the ranked feed {verb} to {x} of the holdout"


# What ``findings.effect`` measures, per detector (each detector's docstring): the label
# shown beside the number, and the axis of its chart.  Two detectors' effects are different
# quantities: a rank_uplift effect of 1.30× and a holdout ratio of 1.17× do not contradict.
EFFECT_MEANING = {
    "holdout_shift": "ranked ÷ holdout exposure ratio, window ÷ baseline",
    "rank_uplift": "ranking weight ÷ what organic scores justify",
    "score_shift": "ranking weight, window ÷ before the window",
    "undisclosed_intervention": "ranked ÷ holdout exposure ratio in the window",
    "log_integrity": "the integrity check's statistic (see the check)",
    "amplification": "ranked ÷ holdout exposure ratio",
}
_EFFECT_FALLBACK = "ranked ÷ holdout exposure ratio"

# log_integrity: each check's effect is its own quantity (detectors/integrity/)
INTEGRITY_EFFECT_MEANING = {
    "holdout_share": "observed ÷ declared (or baseline) holdout share",
    "holdout_assignment": "share of users logged in both arms",
    "holdout_silent": "holdout users in the window (none)",
    "label_consistency": "share of the disclosed items' exposures without their label",
    "panel_mismatch": "share of panel observations that disagree with the platform's log",
}


def effect_label(detector: str, check: str | None = None) -> str:
    """What the effect of a finding of ``detector`` measures, e.g. "ranking weight ÷ what
    organic scores justify"; for ``log_integrity``, of its ``check`` (the finding's
    subject)."""
    if detector == "log_integrity" and check is not None:
        name = check.split(":", 1)[0]
        if name in INTEGRITY_EFFECT_MEANING:
            return INTEGRITY_EFFECT_MEANING[name]
    return EFFECT_MEANING.get(detector, _EFFECT_FALLBACK)


def fmt_p(p: float | None) -> str:
    """p-values as the CLI prints them: ``<1e-12`` below 1e-12 (never "0")."""
    if p is None:
        return "—"
    return "<1e-12" if p < 1e-12 else f"{p:.2g}"


def subject_label(subject_kind: str, subject: str, config: Config | None) -> str:
    """ "Candidate Jane Doe", "Party account Party B (AT)", "all 3 accounts of group party-b",
    "item it-9", or the id itself — a group and an account named like it never read alike."""
    if subject_kind == "actor":
        entry = config.registry.get(subject) if config is not None else None
        if entry is not None and entry.name:
            if entry.kind == "party":
                return f"Party account {entry.name}"
            kind = entry.kind.capitalize() if entry.kind != "other" else "Actor"
            if entry.name.lower().startswith(entry.kind.lower()):
                return entry.name  # "Candidate A1 (DE)", not "Candidate Candidate A1 (DE)"
            return f"{kind} {entry.name}"
        return f"account {subject}"
    if subject_kind == "group":
        members = config.groups.get(subject) if config is not None else None
        if members:
            n = len(members)
            return f"all {n} account{'s' if n != 1 else ''} of group {subject}"
        return f"group {subject} (all its accounts)"
    return f"{subject_kind} {subject}"


def headline(finding: Mapping[str, Any], config: Config | None) -> str:
    who = subject_label(str(finding["subject_kind"]), str(finding["subject"]), config)
    kind = KIND_LABELS.get(str(finding["kind"]), str(finding["kind"]).replace("_", " "))
    effect = _num(finding.get("effect"))
    size = f" {_ratio(effect)}" if effect is not None else ""
    return visible(
        f"{who[0].upper()}{who[1:]} — {kind}{size} on {finding['platform']} in {finding['region']}"
    )


def sentence(finding: Mapping[str, Any], config: Config | None) -> str:
    """One plain sentence (control and invisible format characters made visible)."""
    return visible(_sentence(finding, config))


def _sentence(finding: Mapping[str, Any], config: Config | None) -> str:
    ev = typed_evidence(finding).evidence
    who = subject_label(str(finding["subject_kind"]), str(finding["subject"]), config)
    poss = f"{who}'s" if not who.endswith("s") else f"{who}'"
    if finding["subject_kind"] == "group":
        poss = f"group {finding['subject']}'s"  # the accounts together
    poss = poss[0].upper() + poss[1:]
    where = f"on {finding['platform']} in {finding['region']}"
    since = fmt_time(finding.get("event_time"))
    effect, lo, hi = (_num(finding.get(k)) for k in ("effect", "ci_low", "ci_high"))
    kind = str(finding["kind"])
    cover = _coverage(ev, disclosed=kind == "disclosed")
    if kind in ("amplification", "suppression", "disclosed") and effect is not None:
        phrase = _EFFECT_PHRASES.get(str(finding["detector"]), _EFFECT_DEFAULT)
        text = phrase.format(
            poss=poss, verb="rose" if effect >= 1 else "fell", x=f"{_ratio(effect)}{_ci(lo, hi)}"
        )
        return f"{text[0].upper()}{text[1:]} {where} from {since}, {cover}."
    if kind == "undisclosed_intervention":
        undisclosed = ev if isinstance(ev, E.UndisclosedEvidence) else None
        names = ", ".join(sorted(undisclosed.interventions) if undisclosed else []) or (
            "a ranking intervention"
        )
        times = f" {undisclosed.placements:,} times" if undisclosed else ""
        ctx = (
            f"; ranked-feed exposure is {_ratio(effect)}{_ci(lo, hi)} of the holdout"
            if effect is not None
            else ""
        )
        return (
            f"Platform {finding['platform']} applied {names} to {poss} items"
            f"{times} in {finding['region']} from {since}, and no disclosure covers it{ctx}."
        )
    if kind == "missing_label":
        label_ev = ev if isinstance(ev, E.MissingLabelEvidence) else None
        share = _num(label_ev.unlabelled_share) if label_ev else None
        ci = (
            label_ev.unlabelled_share_ci95
            if label_ev and len(label_ev.unlabelled_share_ci95) == 2
            else [None, None]
        )
        required = label_ev.required_labels.values() if label_ev else []
        labels = ", ".join(f"'{v}'" for v in sorted({v for v in required if v})) or "its label"
        of = f" of {label_ev.exposures:,} exposures" if label_ev else " of exposures"
        pct = f"{share:.0%}" if share is not None else "Some"
        return (
            f"{pct}{of} of {poss} disclosed, promoted items "
            f"{where} were shown without the required label {labels}"
            f"{_ci(_num(ci[0]), _num(ci[1]), '%')}, from {since}."
        )
    size = f" with effect {_ratio(effect)}{_ci(lo, hi)}" if effect is not None else ""
    return (
        f"The {finding['detector']} detector flagged "
        f"{KIND_LABELS.get(kind, kind.replace('_', ' '))} of {who} {where}{size} "
        f"from {since}."
    )


def _coverage(ev: E.Evidence | None, *, disclosed: bool = False) -> str:
    covering: list[E.Disclosure] = []
    match ev:
        case E.HoldoutShiftEvidence():
            covering = ev.covering_disclosures or (ev.disclosures_checked if disclosed else [])
        case E.ScoreShiftEvidence() | E.RankUpliftEvidence() if disclosed:
            covering = ev.disclosures_checked
    if covering:
        ids = ", ".join(d.intervention for d in covering)
        return f"covered by the disclosure {ids}"
    return "a disclosure covers it" if disclosed else "with no disclosure covering it"


def crossing(finding: Mapping[str, Any], display_name: str = "") -> str:
    """Which detector raised the finding and what crossed: "Raised by rank_uplift (Ranking
    score above organic score): its always-valid statistic crossed the threshold at …"."""
    det = str(finding.get("detector"))
    name = f" ({display_name})" if display_name else ""
    when = fmt_time(finding.get("event_time"))
    if _num(finding.get("p_value")) is None:
        return f"Raised by {det}{name}: a logged fact, no statistical test; first seen {when}."
    return (
        f"Raised by {det}{name}: its always-valid statistic crossed the threshold at "
        f"{when}. Effect = {effect_label(det, str(finding.get('subject') or ''))}."
    )


def numbers(finding: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, value) rows for the detail page and the evidence pack summary."""
    effect, lo, hi, p = (_num(finding.get(k)) for k in ("effect", "ci_low", "ci_high", "p_value"))
    n = _num(finding.get("n_exposures"))
    measures = effect_label(str(finding.get("detector")), str(finding.get("subject") or ""))
    rows = [
        (f"Effect ({measures})", _ratio(effect)),
        (
            "95 % confidence interval",
            f"{lo:.2f} – {hi:.2f}"
            if lo is not None and hi is not None
            else f"≥ {lo:.2f}"
            if lo is not None and lo > 0
            else "—",
        ),
        ("p-value (always-valid, adjusted)", fmt_p(p)),
        ("Exposures behind the evidence", "—" if n is None else f"{int(n):,}"),
        ("Severity", str(finding.get("severity") or "—")),
        ("Threshold first crossed (event time)", fmt_time(finding.get("event_time"))),
        ("First written (wall clock)", fmt_time(finding.get("detected_at"))),
        ("Detector", str(finding.get("detector"))),
        (
            "Platform · region · window",
            f"{finding.get('platform')} · {finding.get('region')} · {finding.get('window_id')}",
        ),
        ("Surface", str(finding.get("surface") or "all surfaces")),
        ("Finding id", str(finding.get("finding_id"))),
    ]
    return rows


def as_utc(value: Any) -> dt.datetime | None:
    ts = pd.Timestamp(value) if value is not None else pd.NaT
    if pd.isna(ts):
        return None
    return (ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")).to_pydatetime()
