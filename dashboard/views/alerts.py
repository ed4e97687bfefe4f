"""Live alerts: counts per severity, the windows timeline, and the list — refreshed in a
fragment every few seconds, without reloading the page."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import alerts, charts, explain, ui
from dashboard.alerts import FILTER_LABELS, Filters
from dashboard.csvsafe import to_csv
from dashboard.text import md
from monitor.core.config import Config

__all__ = ["render"]

_PAGE = 50
_DEFAULT_STATUS = ["new", "acknowledged", "escalated"]


def render() -> None:
    st.title("Live alerts")
    cfg = ui.active_config()
    if cfg.error:
        st.warning(f"Configuration not used: {md(cfg.error)}")
    view = ui.findings_view(ui.snapshot())
    filters = _sidebar_filters(alerts.filter_options(view, cfg.config))
    st.fragment(_live, run_every=ui.settings().refresh_seconds)(filters)


def _sidebar_filters(options: dict[str, list[str]]) -> Filters:
    with st.sidebar:
        st.subheader("Filters")
        if st.button("Reset filters", key="reset_filters"):
            for facet in FILTER_LABELS:
                st.session_state.pop(f"f_{facet}", None)
        chosen: dict[str, tuple[str, ...]] = {}
        for facet, label in FILTER_LABELS.items():
            key = f"f_{facet}"
            if facet == "status" and key not in st.session_state:
                st.session_state[key] = _DEFAULT_STATUS
            current = [v for v in st.session_state.get(key, []) if v in options[facet]]
            st.session_state[key] = current
            chosen[facet] = tuple(st.multiselect(label, options[facet], key=key, placeholder="All"))
    return Filters(**chosen)


def _live(filters: Filters) -> None:
    ui.recheck_session()
    snap = ui.snapshot()
    config = ui.active_config().config
    view = ui.findings_view(snap)
    fresh = alerts.new_since(view["finding_id"], st.session_state.get("seen_ids"))
    st.session_state["seen_ids"] = set(view["finding_id"])
    just_in: set[str] = st.session_state.setdefault("just_in", set())
    just_in |= fresh
    if fresh:
        st.toast(
            f"{len(fresh)} new alert{'s' if len(fresh) > 1 else ''}",
            icon=":material/notifications_active:",
        )
    shown = alerts.sort_alerts(alerts.apply_filters(view, filters))
    ui.data_note(snap)
    counts = alerts.severity_counts(shown)
    cols = st.columns(len(counts) + 1)
    for col, (sev, n) in zip(cols, counts.items(), strict=False):
        col.metric(sev.capitalize(), n)
    cols[-1].metric("Shown / all", f"{len(shown)} / {len(view)}")
    with st.expander("Election windows and baselines", expanded=True):
        rows = alerts.timeline_rows(config, snap.findings, snap.amplification)
        if rows:
            st.image(_timeline_png(rows, shown), width="stretch")
        else:
            st.caption("No election window known yet (no configuration and no data).")
    if shown.empty:
        st.info("No alerts match the filters." if len(view) else "No findings yet.")
        return
    limit = st.session_state.get("alerts_limit", _PAGE)
    for row in shown.head(limit).to_dict("records"):
        _alert(row, config, just_in)
    if len(shown) > limit:
        st.button(
            f"Show {min(_PAGE, len(shown) - limit)} more",
            key="more_alerts",
            on_click=_more,
            args=(limit + _PAGE,),
        )
    with st.expander("Table view"):
        table = _table(shown, config)
        st.dataframe(table, hide_index=True, width="stretch")
        st.download_button(
            "Download as CSV",
            data=to_csv(table),
            file_name="alerts.csv",
            mime="text/csv",
            key="alerts_csv",
            on_click="ignore",
            help="Text a spreadsheet would run as a formula is prefixed with '",
        )


def _more(limit: int) -> None:
    st.session_state["alerts_limit"] = limit


def _alert(row: dict[str, Any], config: Config | None, just_in: set[str]) -> None:
    fid = row["finding_id"]
    with st.container(border=True, key=f"alert-{fid}"):
        text, button = st.columns([12, 2], vertical_alignment="center")
        badges = [ui.severity_badge(row["severity"]), ui.status_badge(row["status_shown"])]
        if fid in just_in:
            badges.insert(0, ":primary-badge[JUST IN]")
        if row.get("updated_since_triage"):
            badges.append(":orange-badge[updated since triage]")
        text.markdown(" ".join(badges) + f" **{md(explain.headline(row, config))}**")
        text.caption(md(explain.sentence(row, config)))
        text.caption(
            md(
                f"{row['detector']} · window {row['window_id']} · crossed "
                f"{explain.fmt_time(row['event_time'])} · detected "
                f"{explain.fmt_time(row['detected_at'])}"
            )
        )
        # A link, not a button: navigation happens in the browser, so a click can't be lost
        # to the auto-refresh rerunning this fragment, and the URL can be shared.
        button.page_link(
            ui.FINDING_PAGE,
            label="Open",
            icon=":material/open_in_new:",
            query_params={"id": fid},
            width="stretch",
        )


def _table(shown: pd.DataFrame, config: Config | None) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "severity": shown["severity"],
            "status": shown["status_shown"],
            "subject": [
                explain.subject_label(k, s, config)
                for k, s in zip(shown["subject_kind"], shown["subject"], strict=True)
            ],
            "kind": shown["kind"],
            "platform": shown["platform"],
            "region": shown["region"],
            "window": shown["window_id"],
            "detector": shown["detector"],
            "effect": shown["effect"],
            "effect measures": shown["detector"].map(explain.effect_label),
            "ci_low": shown["ci_low"],
            "ci_high": shown["ci_high"],
            "p-value": [explain.fmt_p(None if pd.isna(p) else float(p)) for p in shown["p_value"]],
            "exposures": shown["n_exposures"],
            "crossed (UTC)": shown["event_time"],
            "detected (UTC)": shown["detected_at"],
            "finding_id": shown["finding_id"],
        }
    )


def _timeline_png(rows: list[dict[str, Any]], shown: pd.DataFrame) -> bytes:
    markers = shown[["window_id", "severity", "event_time"]].reset_index(drop=True)
    return _render_timeline(rows, markers, _now_in(rows))


@st.cache_data(show_spinner=False, max_entries=32)
def _render_timeline(
    rows: list[dict[str, Any]], markers: pd.DataFrame, now: dt.datetime | None
) -> bytes:
    return charts.png(charts.timeline(rows, markers, now), dpi=100)


def _now_in(rows: list[dict[str, Any]]) -> dt.datetime | None:
    """Mark "now" only when it falls on the timeline (a replay of the past has no now)."""
    now = dt.datetime.now(dt.UTC)
    starts = [r["baseline_start"] or r["start"] for r in rows if r.get("start")]
    ends = [r["end"] for r in rows if r.get("end")]
    if starts and ends and min(starts) <= now <= max(ends):  # type: ignore[operator]
        return now.replace(second=0, microsecond=0)
    return None
