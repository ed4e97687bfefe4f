"""Finding detail: the finding in one sentence, its numbers and charts, triage and its
history, and the evidence pack."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboard import alerts, chartdata, charts, explain, pack, triage, ui
from dashboard.auth import User
from dashboard.csvsafe import to_csv
from dashboard.data import SnapshotDirSource
from dashboard.state import Conflict
from dashboard.text import md, visible
from monitor.core.config import Config
from monitor.core.signing import SigningKeyError

__all__ = ["render"]

_CAPTIONS = {
    "exposure_over_time": "From the detector's evidence, per look: exposures per active user in "
    "the ranked feed (solid) and the holdout arm (dashed) where the "
    "detector compares arms; the always-valid statistic (log e-value) "
    "against its threshold. Dotted line: the estimated onset; dashed: "
    "the crossing that raised the finding.",
    "exposure_per_period": "Exposures per active user, ranked feed vs holdout, in the baseline "
    "period and the election window; above: the ratio with its 95 % CI.",
    "sequential_statistic": "The detector's always-valid statistic; a finding is raised when "
    "it crosses the threshold (dashed).",
    "effect_ci": "Point estimate and 95 % confidence interval; 1 means no amplification.",
}
_DRAW = {
    "exposure_over_time": charts.exposure_over_time,
    "exposure_per_period": charts.exposure_per_period,
    "sequential_statistic": charts.sequential_statistic,
    "effect_ci": charts.effect_ci,
}


def render() -> None:
    user = ui.signed_in()
    if user is None:
        st.rerun()
    snap = ui.snapshot()
    cfg = ui.active_config()
    config = cfg.config
    view = alerts.sort_alerts(ui.findings_view(snap))
    if st.button("← Live alerts", key="back_to_alerts"):
        st.switch_page("routes/alerts.py")
    ui.data_note(snap)
    if view.empty:
        st.info("No findings yet.")
        return
    ids = list(view["finding_id"])
    wanted = st.query_params.get("id") or st.session_state.get("finding_id")
    if wanted and wanted not in ids:
        st.warning(f"Finding {md(wanted)} is not in the data.")
    fid = wanted if wanted in ids else ids[0]
    labels = {
        r["finding_id"]: visible(f"{r['severity'].upper()} · {explain.headline(r, config)}")
        for r in view.to_dict("records")
    }
    choice = st.selectbox("Finding", ids, index=ids.index(fid), format_func=labels.__getitem__)
    if choice != fid:
        st.session_state["finding_id"] = choice
        st.query_params["id"] = choice
        fid = choice
    row = view[view["finding_id"] == fid].iloc[0].to_dict()
    st.session_state.setdefault("just_in", set()).discard(fid)  # seen: no longer "just in"
    if (flash := st.session_state.pop("flash", None)) is not None:
        st.success(flash)  # our words only: statuses
    st.markdown(
        f"{ui.severity_badge(row['severity'])} {ui.status_badge(row['status_shown'])} "
        f"· {md(row['kind'].replace('_', ' '))} · {md(row['detector'])}"
    )
    st.header(md(explain.headline(row, config)))
    st.info(md(explain.sentence(row, config)), icon=":material/info:")
    _metrics(row)
    left, right = st.columns([3, 2], gap="large")
    with left:
        _charts(row, snap.amplification, config)
    with right:
        _triage(row, user)
        _history(fid)
        _export(row, snap, cfg, user)
        st.subheader("Numbers")
        st.dataframe(
            pd.DataFrame(explain.numbers(row), columns=["", "value"]),
            hide_index=True,
            width="stretch",
        )
    with st.expander("Evidence (JSON)"):
        st.json(explain.evidence_of(row), expanded=1)


def _metrics(row: dict[str, Any]) -> None:
    rows = explain.numbers(row)
    effect_name, effect = rows[0]
    numbers = dict(rows)
    cols = st.columns([2, 3, 2, 2, 3])  # "1.50 – 2.40" and "4 May 20:00" need the room
    cols[0].metric("Effect", effect, help=md(effect_name))
    cols[1].metric("95 % CI", numbers["95 % confidence interval"])
    cols[2].metric(
        "p-value",
        numbers["p-value (always-valid, adjusted)"],
        help="Always-valid, adjusted for every subject and look; below 1e-12 it is "
        "shown as <1e-12.",
    )
    cols[3].metric("Exposures", numbers["Exposures behind the evidence"])
    cols[4].metric(
        "Crossed (UTC)", numbers["Threshold first crossed (event time)"].removesuffix(" UTC")
    )
    st.caption(md(explain.crossing(row, _display_name(str(row["detector"])))))


def _display_name(detector: str) -> str:
    from detectors import REGISTRY

    spec = REGISTRY.get(detector)
    return spec.display_name if spec is not None else ""


def _charts(row: dict[str, Any], amplification: pd.DataFrame, config: Config | None) -> None:
    decoded = explain.typed_evidence(row)
    if decoded.error is not None:
        st.warning(
            f"The evidence could not be read as {md(row['detector'])} evidence: "
            f"{md(decoded.error)}. It is shown as stored below (Evidence (JSON))."
        )
    elif decoded.legacy:
        st.caption(
            "This finding was written by an older version of amplimon (evidence "
            "without a schema)"
            + (f"; not shown: {md(', '.join(decoded.dropped))}." if decoded.dropped else ".")
        )
    frames = chartdata.chart_frames(row, amplification, config)
    drawn = [n for n in _DRAW if n in frames]
    series = frames.get("exposure_over_time")
    if series is not None:
        if series["ranked_per_user"].notna().any() and "exposure_per_period" in drawn:
            drawn.remove("exposure_per_period")  # the series already shows the baseline
        if series["log_e"].notna().any() and "sequential_statistic" in drawn:
            drawn.remove("sequential_statistic")  # the series shows the statistic too
    measures = explain.effect_label(str(row["detector"]), str(row.get("subject") or ""))
    for name in drawn:
        st.image(_png(name, frames[name]), width="stretch")
        caption = _CAPTIONS[name]
        if name == "exposure_per_period" and measures != explain.effect_label("amplification"):
            caption += (
                f" This is the holdout-arm measurement, not the finding's effect "
                f"({measures}, raised by {row['detector']}): the two measure different "
                "things and need not agree."
            )
        st.caption(md(caption))
    if "sequential_statistic" not in frames:
        st.caption(
            "This detector reports a logged fact, not a sequential test: there is no "
            "statistic to plot against a threshold."
        )
    st.subheader("Disclosures checked")
    d = frames.get("disclosures_checked")
    if d is None:
        st.caption("The evidence lists no disclosures.")
    else:
        st.dataframe(d, hide_index=True, width="stretch")


@st.cache_data(show_spinner=False, max_entries=64)
def _png(name: str, frame: pd.DataFrame) -> bytes:
    return charts.png(_DRAW[name](frame), dpi=110)


def _triage(row: dict[str, Any], user: User) -> None:
    """One button per action allowed now, and a shared note.

    Buttons rather than a radio in a form: if the status changes between the page the analyst
    saw and the click, a vanished button registers no click, whereas a radio would silently
    fall back to another action.  The status the analyst saw (the previous render's) is what
    the change is checked against, so a concurrent change by someone else is refused.
    """
    fid, status = row["finding_id"], row["status_shown"]
    seen = st.session_state.get("triage_seen")
    seen_status = seen[1] if seen and seen[0] == fid else status
    st.session_state["triage_seen"] = (fid, status)
    st.subheader("Triage")
    by = (
        f" — by {md(row['triaged_by'])}, {md(explain.fmt_time(row['triaged_at']))}"
        if row.get("triaged_by")
        else ""
    )
    st.markdown(f"Status {ui.status_badge(status)}{by}")
    stored = str(row.get("status") or "new")
    st.caption(
        f"In the store of record (findings.status): {md(stored)}"
        + ("" if stored == status else " — the change is on its way")
    )
    if not user.can("triage"):
        st.caption("Viewers can read findings; triage needs the analyst or admin role.")
        return
    n = st.session_state.get("triage_n", 0)  # a new key after each change: an empty note
    note = st.text_area(
        "Note (required to dismiss or reopen)",
        key=f"triage_note_{n}",
        placeholder="What you checked and what happens next",
    )
    actions = triage.allowed_actions(status)
    clicked = None
    # a wrapping row of buttons as wide as their labels: never cut to "Ackn…" in a narrow
    # column (equal-width columns were, at 1400 px)
    with st.container(horizontal=True, wrap=True, key="triage_actions"):
        for act in actions:
            if st.button(
                act.label,
                key=f"triage-{act.name}",
                width="content",
                type="primary" if act is actions[0] else "secondary",
            ):
                clicked = act.name
    if clicked is None:
        return
    try:
        entry = triage.apply(
            ui.state(),
            user,
            fid,
            clicked,
            status=seen_status,
            base_status=row["status"],
            note=note or "",
        )
    except (triage.TriageError, Conflict) as err:
        st.error(md(err))
        return
    delivered = ui.deliver_triage()
    where = (
        "recorded in the store of record"
        if delivered
        else "the store of record applies it within seconds"
        if isinstance(ui.source(), SnapshotDirSource)
        else "pending for the store of record"
    )
    st.session_state["flash"] = f"Status: {entry.from_status} → {entry.to_status} ({where})."
    st.session_state["triage_n"] = n + 1
    st.rerun()


def _history(fid: str) -> None:
    entries = ui.state().history(fid)
    st.subheader("History")
    if not entries:
        st.caption("No triage yet.")
        return
    table = pd.DataFrame(
        [
            {
                "when (UTC)": e.at.strftime("%Y-%m-%d %H:%M:%S"),
                "who": e.who,
                "change": f"{e.from_status} → {e.to_status}",
                "note": e.note,
            }
            for e in reversed(entries)
        ]
    )
    st.dataframe(table, hide_index=True, width="stretch")
    st.download_button(
        "Download history (CSV)",
        data=to_csv(table),
        file_name=f"triage-{fid}.csv",
        mime="text/csv",
        key="history_csv",
        on_click="ignore",
    )


def _export(row: dict[str, Any], snap: Any, cfg: ui.ActiveConfig, user: User) -> None:
    st.subheader("Evidence pack")
    if not user.can("export"):
        st.caption("Exporting evidence needs the analyst or admin role.")
        return
    fid = row["finding_id"]
    try:
        key = ui.signing_key()
    except SigningKeyError as err:
        st.error(f"Evidence packs cannot be signed: {md(err)}")
        return
    if st.button("Prepare evidence pack", key="prepare_pack"):
        with st.spinner("Building the evidence pack…"):
            built = pack.build_pack(
                row,
                snap.amplification,
                cfg.config,
                key=key,
                config_text=cfg.text,
                runs=snap.runs,
                history=ui.state().history(fid),
                created_by=user.username,
            )
        ui.state().record_export(fid, user.username, built.manifest_sha256, len(built.data))
        st.session_state["pack"] = (fid, built)
    stored = st.session_state.get("pack")
    if stored and stored[0] == fid:
        built = stored[1]
        st.download_button(
            "Download evidence pack (ZIP)",
            data=built.data,
            file_name=built.file_name,
            mime="application/zip",
            key="download_pack",
            on_click="ignore",
            type="primary",
        )
        st.caption(
            f"{len(built.files)} files, {len(built.data):,} bytes, signed by "
            f"{md(key.signer)} with key `{key.public.fingerprint}`. Manifest SHA-256 "
            f"`{built.manifest_sha256}` (recorded in the export log). Officers check it "
            f"with `amplimon verify {built.file_name} --pubkey COMMISSION-KEY.pem` "
            "(the public key from `amplimon keys export`)."
        )
    exports = ui.state().exports(fid)
    if exports:
        with st.expander(f"Export log ({len(exports)})"):
            st.dataframe(pd.DataFrame(exports), hide_index=True, width="stretch")
