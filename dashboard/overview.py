"""The amplification overview as data: which ``amplification`` rows to plot, how to label
them, and which subjects a disclosure covers.

A subject is *disclosed* in a (platform, region, window) when a configured disclosure of that
platform names it (the actor, its group, or — for a group — any member; a disclosure naming no
actor and no group covers everyone), its regions cover the region (or it names none), and its
period overlaps the window.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from dashboard.explain import subject_label
from monitor.core.config import Config, Disclosure, covers

__all__ = ["OverviewFilters", "forest_rows", "is_disclosed", "options"]


@dataclass(frozen=True, slots=True)
class OverviewFilters:
    window: str | None = None
    platform: tuple[str, ...] = ()
    region: tuple[str, ...] = ()
    period: tuple[str, ...] = ("baseline", "window")
    subject_kind: tuple[str, ...] = ("actor", "group")
    max_subjects: int = 40


def options(amplification: pd.DataFrame) -> dict[str, list[str]]:
    a = amplification
    return {
        "window": sorted(a["window_id"].dropna().unique()),
        "platform": sorted(a["platform"].dropna().unique()),
        "region": sorted(a["region"].dropna().unique()),
    }


def is_disclosed(
    d: Disclosure,
    platform: str,
    region: str,
    subject_kind: str,
    subject: str,
    config: Config,
    window_id: str,
) -> bool:
    if d.platform != platform:
        return False
    if d.regions and not any(covers(r, region) or covers(region, r) for r in d.regions):
        return False
    window = next((w for w in config.windows if w.id == window_id), None)
    if window is not None and (
        (d.end is not None and d.end <= window.start)
        or (d.start is not None and d.start >= window.end)
    ):
        return False
    if not d.actors and not d.groups:
        return True
    if subject_kind == "group":
        return subject in d.groups or any(a in d.actors for a in config.groups.get(subject, ()))
    entry = config.registry.get(subject)
    return subject in d.actors or (entry is not None and entry.group in d.groups)


def forest_rows(
    amplification: pd.DataFrame, config: Config | None, filters: OverviewFilters
) -> pd.DataFrame:
    """Rows to plot, labelled and flagged ``disclosed``; subjects ordered by their window
    ratio (largest first), capped at ``max_subjects`` (the most amplified or suppressed)."""
    a = amplification
    m = a["period"].isin(filters.period) & a["subject_kind"].isin(filters.subject_kind)
    if filters.window:
        m &= a["window_id"] == filters.window
    if filters.platform:
        m &= a["platform"].isin(filters.platform)
    if filters.region:
        m &= a["region"].isin(filters.region)
    df = a[m].copy()
    cols = [
        "label",
        "platform",
        "region",
        "window_id",
        "period",
        "subject_kind",
        "subject",
        "ratio",
        "ci_low",
        "ci_high",
        "reach_ratio",
        "amplification_pct",
        "n_ranked",
        "n_holdout",
        "users_ranked",
        "users_holdout",
        "disclosed",
    ]
    if df.empty:
        return pd.DataFrame(columns=cols)
    multi = df[["platform", "region"]].drop_duplicates().shape[0] > 1
    df["label"] = [
        subject_label(k, s, config) + (f" · {p} {r}" if multi else "")
        for k, s, p, r in zip(
            df["subject_kind"], df["subject"], df["platform"], df["region"], strict=True
        )
    ]
    df["amplification_pct"] = (df["reach_ratio"] - 1) * 100
    df["disclosed"] = [
        config is not None
        and any(is_disclosed(d, p, r, k, s, config, w) for d in config.disclosures)
        for p, r, k, s, w in zip(
            df["platform"],
            df["region"],
            df["subject_kind"],
            df["subject"],
            df["window_id"],
            strict=True,
        )
    ]
    window_ratio = df[df["period"] == "window"].groupby("label")["ratio"].max()
    key = df["label"].map(window_ratio).fillna(df.groupby("label")["ratio"].transform("max"))
    df["_key"] = key.fillna(1.0)
    df["_dist"] = (df["_key"].where(df["_key"] > 0, 1.0)).map(lambda v: max(v, 1 / v))
    keep = (
        df.drop_duplicates("label")
        .sort_values("_dist", ascending=False)["label"]
        .head(filters.max_subjects)
    )
    df = df[df["label"].isin(keep)]
    df = df.sort_values(["_key", "label", "period"], ascending=[False, True, True])
    return df[cols].reset_index(drop=True)
