"""Data health: where the data comes from, how fresh it is, and what was rejected."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import ui
from dashboard.data import SnapshotDirSource
from dashboard.text import md

__all__ = ["render"]


def render() -> None:
    st.title("Data health")
    s = ui.settings()
    snap = ui.snapshot()
    kind = ("Parquet snapshot directory" if isinstance(ui.source(), SnapshotDirSource)
            else "DuckDB file (read-only, opened per refresh)")
    st.markdown(f"**Source** {md(s.data)} — {kind}")
    ui.data_note(snap)
    cols = st.columns(4)
    cols[0].metric("Findings", len(snap.findings))
    cols[1].metric("Measurements", len(snap.amplification))
    cols[2].metric("Detectability rows", len(snap.detectability))
    cols[3].metric("Dead letters", snap.deadletter_total)
    st.subheader("Rejected records by reason")
    if snap.deadletter_counts.empty:
        st.caption("No record was rejected.")
    else:
        st.dataframe(snap.deadletter_counts, hide_index=True, width="stretch")
        recent = snap.deadletter.copy()
        recent["raw"] = recent["raw"].astype(str).str.slice(0, 300)
        with st.expander(f"Most recent dead letters ({len(recent)})"):
            st.dataframe(recent, hide_index=True, width="stretch")
    st.subheader("Runs")
    if snap.runs.empty:
        st.caption("No run recorded in this data.")
    else:
        st.dataframe(pd.DataFrame(snap.runs), hide_index=True, width="stretch")
