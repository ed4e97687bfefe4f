"""The data behind each chart of a finding — the same frames are drawn on the page and
written as CSV/Parquet into the evidence pack.

Evidence keys read here (all optional; detectors add what they have):

* ``series``: ``[{"t": <RFC 3339 or epoch ms>, "ranked_per_user": x, "holdout_per_user": y},
  …]`` — exposure per active user in each arm over time; ``baseline``:
  ``{"ranked_per_user": x, "holdout_per_user": y}`` for the reference lines.
* ``sequential`` (or ``trajectory``, or ``test.trajectory``): ``[{"t": …, "statistic": s,
  "threshold": c}, …]`` — the monitored statistic (e.g. log e-value) and its threshold at
  each look.  Without a trajectory, ``test.log_e_max`` / ``test.log_threshold`` give one bar.
* ``disclosures_checked``: the disclosures the detector compared against.

Without ``series`` the exposure chart falls back to the ``amplification`` table: exposure
per user in each arm, baseline period vs window.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from dashboard.explain import effect_label, evidence_of
from monitor.config import Config

__all__ = ["chart_frames", "disclosures_checked", "effect_ci", "per_period", "sequential",
           "series"]

_TIME_KEYS = ("t", "ts", "time", "tick_end", "end")


def _time(rec: Mapping[str, Any]) -> pd.Timestamp | None:
    for key in _TIME_KEYS:
        if key in rec and rec[key] is not None:
            value = rec[key]
            unit = "ms" if isinstance(value, int | float) else None
            try:
                return pd.Timestamp(pd.to_datetime(value, utc=True, unit=unit))
            except (ValueError, TypeError):
                return None
    return None


def _records(value: Any) -> list[Mapping[str, Any]]:
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [v for v in value if isinstance(v, Mapping)]
    return []


def series(evidence: Mapping[str, Any]) -> pd.DataFrame | None:
    """Exposure per user, ranked vs holdout, over time (``None`` if the evidence has none)."""
    rows = []
    for rec in _records(evidence.get("series")):
        t = _time(rec)
        ranked = rec.get("ranked_per_user", rec.get("ranked"))
        holdout = rec.get("holdout_per_user", rec.get("holdout"))
        if t is None or ranked is None or holdout is None:
            continue
        rows.append({"t": t, "ranked_per_user": float(ranked),
                     "holdout_per_user": float(holdout)})
    if not rows:
        return None
    df = pd.DataFrame(rows).sort_values("t").reset_index(drop=True)
    base = evidence.get("baseline")
    if isinstance(base, Mapping):
        for arm in ("ranked", "holdout"):
            value = base.get(f"{arm}_per_user", base.get(arm))
            if isinstance(value, int | float):
                df[f"baseline_{arm}_per_user"] = float(value)
    return df


def sequential(evidence: Mapping[str, Any]) -> pd.DataFrame | None:
    """The sequential statistic against its threshold: per look when the evidence has a
    trajectory (``t`` set), else the summary the detectors report (``label`` set): the value
    when the threshold was crossed, the latest value and the maximum."""
    raw_test = evidence.get("test")
    test: Mapping[str, Any] = raw_test if isinstance(raw_test, Mapping) else {}
    traj = _records(evidence.get("sequential") or evidence.get("trajectory")
                    or test.get("trajectory"))
    rows = []
    for rec in traj:
        t = _time(rec)
        stat = rec.get("statistic", rec.get("log_e", rec.get("value")))
        thr = rec.get("threshold", rec.get("log_threshold", test.get("log_threshold")))
        if t is None or stat is None or thr is None:
            continue
        rows.append({"t": t, "label": "", "statistic": float(stat), "threshold": float(thr)})
    if rows:
        return pd.DataFrame(rows).sort_values("t").reset_index(drop=True)
    thr = test.get("log_threshold")
    if not isinstance(thr, int | float):
        return None
    raw_crossed = evidence.get("crossed")
    crossed: Mapping[str, Any] = raw_crossed if isinstance(raw_crossed, Mapping) else {}
    for label, value in (("when crossed", crossed.get("log_e")), ("latest", test.get("log_e")),
                         ("maximum", test.get("log_e_max"))):
        if isinstance(value, int | float):
            rows.append({"t": pd.NaT, "label": label, "statistic": float(value),
                         "threshold": float(thr)})
    return pd.DataFrame(rows) if rows else None


def per_period(finding: Mapping[str, Any], amplification: pd.DataFrame) -> pd.DataFrame:
    """The subject's ``amplification`` rows for the finding's platform and window: exposure
    per active user in each arm, baseline vs window, with the ratio and its CI."""
    a = amplification
    m = ((a["platform"] == finding["platform"]) & (a["window_id"] == finding["window_id"])
         & (a["subject_kind"] == finding["subject_kind"]) & (a["subject"] == finding["subject"]))
    rows = a[m]
    if (rows["region"] == finding["region"]).any():
        rows = rows[rows["region"] == finding["region"]]
    out = pd.DataFrame({
        "period": rows["period"], "region": rows["region"],
        "ranked_per_user": rows["n_ranked"] / rows["users_ranked"].where(rows["users_ranked"] > 0),
        "holdout_per_user": rows["n_holdout"] / rows["users_holdout"].where(
            rows["users_holdout"] > 0),
        "ratio": rows["ratio"], "ci_low": rows["ci_low"], "ci_high": rows["ci_high"],
        "reach_ratio": rows["reach_ratio"], "n_ranked": rows["n_ranked"],
        "n_holdout": rows["n_holdout"], "users_ranked": rows["users_ranked"],
        "users_holdout": rows["users_holdout"]})
    if out.empty:
        out = _counts_from_evidence(finding, out.columns)
    out["_order"] = out["period"].map({"baseline": 0, "window": 1}).fillna(2)
    return out.sort_values(["_order", "region"]).drop(columns="_order").reset_index(drop=True)


def _counts_from_evidence(finding: Mapping[str, Any], columns: pd.Index) -> pd.DataFrame:
    """Per-period counts as the statistical detectors report them in ``evidence.counts``."""
    ev = evidence_of(finding)
    raw_counts, raw_ratio = ev.get("counts"), ev.get("ratio")
    counts: Mapping[str, Any] = raw_counts if isinstance(raw_counts, Mapping) else {}
    ratio: Mapping[str, Any] = raw_ratio if isinstance(raw_ratio, Mapping) else {}
    rows = []
    for period in ("baseline", "window"):
        c = counts.get(period)
        if not isinstance(c, Mapping) or "exposures_ranked" not in c:
            continue
        n_r, n_h = c.get("exposures_ranked", 0), c.get("exposures_holdout", 0)
        u_r, u_h = c.get("users_ranked", 0), c.get("users_holdout", 0)
        rows.append({"period": period, "region": finding["region"],
                     "ranked_per_user": n_r / u_r if u_r else None,
                     "holdout_per_user": n_h / u_h if u_h else None,
                     "ratio": _f(ratio.get(period)), "ci_low": None, "ci_high": None,
                     "reach_ratio": None, "n_ranked": n_r, "n_holdout": n_h,
                     "users_ranked": u_r, "users_holdout": u_h})
    return pd.DataFrame(rows, columns=columns)


def effect_ci(finding: Mapping[str, Any], periods: pd.DataFrame) -> pd.DataFrame:
    """The finding's effect with its CI, labelled with what it measures
    (:data:`dashboard.explain.EFFECT_MEANING`).  The measured ranked ÷ holdout ratio of each
    period is added only when the finding's effect *is* that ratio; otherwise they are
    different quantities and sharing one axis would read as a contradiction (they are in the
    per-period chart, with their own label)."""
    rows = []
    ev = evidence_of(finding)
    detector = str(finding.get("detector"))
    measures = effect_label(detector)
    if finding.get("effect") is not None and not pd.isna(finding.get("effect")):
        rows.append({"estimate": f"finding effect ({detector})", "value": float(finding["effect"]),
                     "ci_low": _f(finding.get("ci_low")), "ci_high": _f(finding.get("ci_high")),
                     "scale": "ratio", "measures": measures})
    if measures == effect_label("amplification") or measures == effect_label(
            "undisclosed_intervention"):
        for _, r in periods.iterrows():
            if pd.notna(r["ratio"]):
                rows.append({"estimate": f"{r['period']} ratio ({r['region']})",
                             "value": float(r["ratio"]), "ci_low": _f(r["ci_low"]),
                             "ci_high": _f(r["ci_high"]), "scale": "ratio",
                             "measures": effect_label("amplification")})
    share = ev.get("unlabelled_share")
    ci = ev.get("unlabelled_share_ci95")
    if isinstance(share, int | float) and isinstance(ci, Sequence) and len(ci) == 2:
        rows.append({"estimate": "unlabelled share", "value": float(share),
                     "ci_low": _f(ci[0]), "ci_high": _f(ci[1]), "scale": "share",
                     "measures": "share of exposures without the required label"})
    return pd.DataFrame(rows, columns=["estimate", "value", "ci_low", "ci_high", "scale",
                                       "measures"])


def _f(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return None if pd.isna(v) else v


def disclosures_checked(finding: Mapping[str, Any], config: Config | None) -> pd.DataFrame:
    """The disclosures the detector checked, with whether each names this subject."""
    cols = ["platform", "intervention", "label", "actors", "groups", "regions", "start", "end",
            "names_subject"]
    recs = _records(evidence_of(finding).get("disclosures_checked"))
    group = None
    if config is not None and finding["subject_kind"] == "actor":
        entry = config.registry.get(str(finding["subject"]))
        group = entry.group if entry else None
    rows = []
    for d in recs:
        actors, groups = list(d.get("actors") or []), list(d.get("groups") or [])
        subject = str(finding["subject"])
        names = (not actors and not groups) or subject in actors or subject in groups or (
            group is not None and group in groups)
        rows.append({"platform": d.get("platform"), "intervention": d.get("intervention"),
                     "label": d.get("label"), "actors": ", ".join(actors),
                     "groups": ", ".join(groups), "regions": ", ".join(d.get("regions") or []),
                     "start": d.get("start"), "end": d.get("end"), "names_subject": names})
    return pd.DataFrame(rows, columns=cols)


def chart_frames(finding: Mapping[str, Any], amplification: pd.DataFrame,
                 config: Config | None) -> dict[str, pd.DataFrame]:
    """Every chart's data by name (only the charts that have data)."""
    ev = evidence_of(finding)
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
