"""The data behind each chart of a finding — the same frames are drawn on the page and
written as CSV/Parquet into the evidence pack.

Everything comes from the finding's typed evidence (:mod:`detectors.evidence`, decoded with
:func:`dashboard.explain.typed_evidence`), never from guessed keys:

* ``exposure_over_time`` — the finding's :class:`~detectors.evidence.Series`: per look,
  exposure per active user in each arm (where the detector has arms), the monitored
  statistic ``log E`` and its boundary ``log_threshold``, with the onset and the crossing
  marked (``is_onset``, ``is_crossing``);
* ``sequential_statistic`` — ``log E`` against its threshold: per look from the series,
  else the summary the test reports (when crossed, latest, maximum);
* ``exposure_per_period`` — the ``amplification`` table (or the detector's counts);
* ``effect_ci`` and ``disclosures_checked``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from dashboard.explain import effect_label, typed_evidence
from detectors import evidence as E
from monitor.core.config import Config

__all__ = [
    "SERIES_COLUMNS",
    "chart_frames",
    "disclosures_checked",
    "effect_ci",
    "per_period",
    "sequential",
    "series",
]

SERIES_COLUMNS = [
    "t",
    "period",
    "ranked_per_user",
    "holdout_per_user",
    "log_e",
    "log_threshold",
    "statistic",
    "boundary",
    "is_onset",
    "is_crossing",
]


def _series_of(ev: E.Evidence | None) -> E.Series | None:
    match ev:
        case E.HoldoutShiftEvidence() | E.ScoreShiftEvidence() | E.RankUpliftEvidence():
            return ev.series
    return None


def _first_at(times: pd.Series, when: Any) -> int | None:
    if when is None or times.empty:
        return None
    at = pd.Timestamp(when)
    later = times.index[times >= at]
    return int(later[0]) if len(later) else None


def series(ev: E.Evidence | None) -> pd.DataFrame | None:
    """The finding's time series (``None`` if its evidence has none)."""
    s = _series_of(ev)
    if s is None or not s.points:
        return None
    df = (
        pd.DataFrame(
            [
                {
                    "t": pd.Timestamp(p.t),
                    "period": p.period,
                    "ranked_per_user": p.exposures_per_user_ranked,
                    "holdout_per_user": p.exposures_per_user_holdout,
                    "log_e": p.log_e,
                    "log_threshold": p.log_threshold,
                    "statistic": p.statistic,
                    "boundary": p.boundary,
                }
                for p in s.points
            ]
        )
        .sort_values("t")
        .reset_index(drop=True)
    )
    for col in SERIES_COLUMNS[2:8]:
        df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    df["is_onset"] = False
    df["is_crossing"] = False
    for col, when in (("is_onset", s.onset), ("is_crossing", s.crossing)):
        i = _first_at(df["t"], when)
        if i is not None:
            df.loc[i, col] = True
    return df[SERIES_COLUMNS]


def _test_summary(ev: E.Evidence | None) -> tuple[float | None, list[tuple[str, Any]]]:
    match ev:
        case E.HoldoutShiftEvidence() | E.ScoreShiftEvidence() | E.RankUpliftEvidence():
            return ev.test.log_threshold, [
                ("when crossed", ev.crossed.log_e),
                ("latest", ev.test.log_e),
                ("maximum", ev.test.log_e_max),
            ]
        case E.PlatformChangeEvidence():
            return ev.test.log_threshold, [
                ("when crossed", ev.crossed.log_e),
                ("maximum", ev.test.log_e_max),
            ]
        case E.MissingLabelEvidence() if ev.test is not None:
            return ev.test.log_threshold, [("maximum", ev.test.log_e_max)]
    return None, []


def sequential(ev: E.Evidence | None) -> pd.DataFrame | None:
    """The sequential statistic against its threshold: per look from the series (``t``
    set), else the summary the detectors report (``label`` set)."""
    s = series(ev)
    if s is not None:
        timed = s[s["log_e"].notna() & s["log_threshold"].notna()]
        if not timed.empty:
            return pd.DataFrame(
                {
                    "t": timed["t"],
                    "label": "",
                    "statistic": timed["log_e"],
                    "threshold": timed["log_threshold"],
                }
            ).reset_index(drop=True)
    thr, summary = _test_summary(ev)
    if thr is None:
        return None
    rows = [
        {"t": pd.NaT, "label": label, "statistic": float(value), "threshold": float(thr)}
        for label, value in summary
        if isinstance(value, int | float)
    ]
    return pd.DataFrame(rows) if rows else None


def per_period(finding: Mapping[str, Any], amplification: pd.DataFrame) -> pd.DataFrame:
    """The subject's ``amplification`` rows for the finding's platform and window: exposure
    per active user in each arm, baseline vs window, with the ratio and its CI."""
    a = amplification
    m = (
        (a["platform"] == finding["platform"])
        & (a["window_id"] == finding["window_id"])
        & (a["subject_kind"] == finding["subject_kind"])
        & (a["subject"] == finding["subject"])
    )
    rows = a[m]
    if (rows["region"] == finding["region"]).any():
        rows = rows[rows["region"] == finding["region"]]
    out = pd.DataFrame(
        {
            "period": rows["period"],
            "region": rows["region"],
            "ranked_per_user": rows["n_ranked"]
            / rows["users_ranked"].where(rows["users_ranked"] > 0),
            "holdout_per_user": rows["n_holdout"]
            / rows["users_holdout"].where(rows["users_holdout"] > 0),
            "ratio": rows["ratio"],
            "ci_low": rows["ci_low"],
            "ci_high": rows["ci_high"],
            "reach_ratio": rows["reach_ratio"],
            "n_ranked": rows["n_ranked"],
            "n_holdout": rows["n_holdout"],
            "users_ranked": rows["users_ranked"],
            "users_holdout": rows["users_holdout"],
        }
    )
    if out.empty:
        out = _counts_from_evidence(finding, out.columns)
    out["_order"] = out["period"].map({"baseline": 0, "window": 1}).fillna(2)
    return out.sort_values(["_order", "region"]).drop(columns="_order").reset_index(drop=True)


def _counts_from_evidence(finding: Mapping[str, Any], columns: pd.Index) -> pd.DataFrame:
    """Per-period counts as holdout_shift reports them (``counts``, users from ``reach``)."""
    ev = typed_evidence(finding).evidence
    if not isinstance(ev, E.HoldoutShiftEvidence):
        return pd.DataFrame([], columns=columns)
    rows = []
    for period in ("baseline", "window"):
        c = ev.counts.get(period)
        if c is None:
            continue
        reach = (ev.reach or {}).get(period)
        u_r = reach.users_ranked if reach is not None and reach.users_ranked else 0
        u_h = reach.users_holdout if reach is not None and reach.users_holdout else 0
        n_r, n_h = c.exposures_ranked, c.exposures_holdout
        rows.append(
            {
                "period": period,
                "region": finding["region"],
                "ranked_per_user": n_r / u_r if u_r else None,
                "holdout_per_user": n_h / u_h if u_h else None,
                "ratio": None,
                "ci_low": None,
                "ci_high": None,
                "reach_ratio": reach.reach_ratio if reach is not None else None,
                "n_ranked": n_r,
                "n_holdout": n_h,
                "users_ranked": u_r,
                "users_holdout": u_h,
            }
        )
    return pd.DataFrame(rows, columns=columns)


def effect_ci(finding: Mapping[str, Any], periods: pd.DataFrame) -> pd.DataFrame:
    """The finding's effect with its CI, labelled with what it measures
    (:data:`dashboard.explain.EFFECT_MEANING`).  The measured ranked ÷ holdout ratio of each
    period is added only when the finding's effect *is* that ratio; otherwise they are
    different quantities and sharing one axis would read as a contradiction (they are in the
    per-period chart, with their own label)."""
    rows = []
    ev = typed_evidence(finding).evidence
    detector = str(finding.get("detector"))
    measures = effect_label(detector)
    if finding.get("effect") is not None and not pd.isna(finding.get("effect")):
        rows.append(
            {
                "estimate": f"finding effect ({detector})",
                "value": float(finding["effect"]),
                "ci_low": _f(finding.get("ci_low")),
                "ci_high": _f(finding.get("ci_high")),
                "scale": "ratio",
                "measures": measures,
            }
        )
    if measures == effect_label("amplification") or measures == effect_label(
        "undisclosed_intervention"
    ):
        for _, r in periods.iterrows():
            if pd.notna(r["ratio"]):
                rows.append(
                    {
                        "estimate": f"{r['period']} ratio ({r['region']})",
                        "value": float(r["ratio"]),
                        "ci_low": _f(r["ci_low"]),
                        "ci_high": _f(r["ci_high"]),
                        "scale": "ratio",
                        "measures": effect_label("amplification"),
                    }
                )
    if (
        isinstance(ev, E.MissingLabelEvidence)
        and ev.unlabelled_share is not None
        and len(ev.unlabelled_share_ci95) == 2
    ):
        lo, hi = ev.unlabelled_share_ci95
        rows.append(
            {
                "estimate": "unlabelled share",
                "value": ev.unlabelled_share,
                "ci_low": _f(lo),
                "ci_high": _f(hi),
                "scale": "share",
                "measures": "share of exposures without the required label",
            }
        )
    return pd.DataFrame(
        rows, columns=["estimate", "value", "ci_low", "ci_high", "scale", "measures"]
    )


def _f(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return None if pd.isna(v) else v


def _disclosures(ev: E.Evidence | None) -> list[E.Disclosure]:
    match ev:
        case (
            E.HoldoutShiftEvidence()
            | E.ScoreShiftEvidence()
            | E.RankUpliftEvidence()
            | E.UndisclosedEvidence()
        ):
            return ev.disclosures_checked
    return []


def disclosures_checked(finding: Mapping[str, Any], config: Config | None) -> pd.DataFrame:
    """The disclosures the detector checked, with whether each names this subject."""
    cols = [
        "platform",
        "intervention",
        "label",
        "actors",
        "groups",
        "regions",
        "start",
        "end",
        "names_subject",
    ]
    group = None
    if config is not None and finding["subject_kind"] == "actor":
        entry = config.registry.get(str(finding["subject"]))
        group = entry.group if entry else None
    rows = []
    for d in _disclosures(typed_evidence(finding).evidence):
        subject = str(finding["subject"])
        names = (
            (not d.actors and not d.groups)
            or subject in d.actors
            or subject in d.groups
            or (group is not None and group in d.groups)
        )
        rows.append(
            {
                "platform": d.platform,
                "intervention": d.intervention,
                "label": d.label,
                "actors": ", ".join(d.actors),
                "groups": ", ".join(d.groups),
                "regions": ", ".join(d.regions),
                "start": d.start.isoformat() if d.start else None,
                "end": d.end.isoformat() if d.end else None,
                "names_subject": names,
            }
        )
    return pd.DataFrame(rows, columns=cols)


def chart_frames(
    finding: Mapping[str, Any], amplification: pd.DataFrame, config: Config | None
) -> dict[str, pd.DataFrame]:
    """Every chart's data by name (only the charts that have data)."""
    ev = typed_evidence(finding).evidence
    periods = per_period(finding, amplification)
    frames: dict[str, pd.DataFrame] = {}
    s = series(ev)
    if s is not None:
        frames["exposure_over_time"] = s
    if not periods.empty:
        frames["exposure_per_period"] = periods
    q = sequential(ev)
    if q is not None:
        frames["sequential_statistic"] = q
    e = effect_ci(finding, periods)
    if not e.empty:
        frames["effect_ci"] = e
    d = disclosures_checked(finding, config)
    if not d.empty:
        frames["disclosures_checked"] = d
    return frames
