"""Amplification overview: a Huszár-style forest plot per actor and group, region and
period, with disclosed interventions marked; the minimum detectable effects below."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import charts, overview, ui

__all__ = ["render"]

_MEASURES = {"ratio": "Exposure ratio (per user)", "reach_ratio": "Reach ratio (Huszár)"}


def render() -> None:
    st.title("Amplification overview")
    st.caption(
        "Ratio = exposures per active ranked-feed user ÷ exposures per active holdout "
        "user; reach ratio = share of ranked-feed users reached ÷ the same share in the "
        "holdout (Huszár et al. 2022: amplification % = (reach ratio − 1) × 100). "
        "1 means the ranking neither amplifies nor suppresses."
    )
    snap = ui.snapshot()
    ui.data_note(snap)
    if snap.amplification.empty:
        st.info("No amplification measurements yet.")
        return
    opts = overview.options(snap.amplification)
    c = st.columns([2, 2, 2, 2, 2])
    window = c[0].selectbox("Election window", opts["window"], key="ov_window")
    platform = c[1].multiselect("Platform", opts["platform"], key="ov_platform", placeholder="All")
    region = c[2].multiselect("Region", opts["region"], key="ov_region", placeholder="All")
    period = c[3].multiselect(
        "Period", ["baseline", "window"], default=["baseline", "window"], key="ov_period"
    )
    kinds = c[4].multiselect(
        "Subjects", ["actor", "group"], default=["actor", "group"], key="ov_kind"
    )
    measure = (
        st.radio(
            "Measure",
            list(_MEASURES),
            format_func=_MEASURES.__getitem__,
            horizontal=True,
            key="ov_measure",
        )
        or "ratio"
    )
    filters = overview.OverviewFilters(
        window=window,
        platform=tuple(platform),
        region=tuple(region),
        period=tuple(period),
        subject_kind=tuple(kinds),
    )
    st.fragment(_plot, run_every=ui.settings().refresh_seconds * 4)(filters, measure)


def _plot(filters: overview.OverviewFilters, measure: str) -> None:
    ui.recheck_session()
    snap = ui.snapshot()
    rows = overview.forest_rows(snap.amplification, ui.active_config().config, filters)
    if rows.empty:
        st.info("No measurements match the selection.")
        return
    st.image(_forest_png(rows, measure), width="stretch")
    if rows["disclosed"].any():
        st.caption("◆ green: a configured disclosure covers this subject in this window.")
    st.dataframe(
        rows.drop(columns=["subject_kind"]),
        hide_index=True,
        width="stretch",
        column_config={"disclosed": st.column_config.CheckboxColumn("disclosed")},
    )
    det = snap.detectability
    if not det.empty:
        with st.expander("What could we have detected? (minimum detectable effects)"):
            d = det[det["window_id"] == filters.window] if filters.window else det
            st.dataframe(d, hide_index=True, width="stretch")


@st.cache_data(show_spinner=False, max_entries=32)
def _forest_png(rows: pd.DataFrame, measure: str) -> bytes:
    return charts.png(charts.forest(rows, measure), dpi=100)
