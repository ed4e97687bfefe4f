"""Data health: where the data comes from, how fresh it is, and what was rejected."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from dashboard import ui
from dashboard.data import Snapshot, SnapshotDirSource
from dashboard.text import md

__all__ = ["render"]


def render() -> None:
    st.title("Data health")
    s = ui.settings()
    snap = ui.snapshot()
    kind = (
        "Parquet snapshot directory"
        if isinstance(ui.source(), SnapshotDirSource)
        else "DuckDB file (read-only, opened per refresh)"
    )
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
    _live(snap)
    st.subheader("Runs")
    if snap.runs.empty:
        st.caption(
            "No finished run recorded yet: the live sink records its run in `runs` "
            "when it stops; see above."
            if snap.live
            else "No run recorded in this data."
        )
    else:
        st.dataframe(pd.DataFrame(snap.runs), hide_index=True, width="stretch")


def _live(snap: Snapshot) -> None:
    """The live run: what the sink's latest snapshot says (published when, how many rows)."""
    if not snap.live:
        return
    st.subheader("Live run")
    published = snap.live.get("published_at")
    try:
        at = dt.datetime.fromisoformat(str(published))
    except ValueError:
        st.caption("The live sink publishes snapshots here; its manifest has no time.")
        return
    age = max(0.0, (dt.datetime.now(dt.UTC) - at).total_seconds())
    raw_tables = snap.live.get("tables")
    tables: dict[str, object] = raw_tables if isinstance(raw_tables, dict) else {}
    counts = ", ".join(
        f"{md(k)} {int(v):,}" for k, v in sorted(tables.items()) if isinstance(v, int)
    )
    st.markdown(
        f"Live sink publishing: latest snapshot at **{at:%Y-%m-%d %H:%M:%S} UTC** "
        f"({age:,.0f} s ago)" + (f" — {counts} rows" if counts else "") + "."
    )
    if age > 120:
        st.warning("No snapshot for over two minutes: is the sink running?")
