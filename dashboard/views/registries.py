"""Registries: the actor registry, groups, disclosures and windows in force; admins upload a
new configuration, validated exactly as the CLI validates it."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import registries, ui
from dashboard.text import md
from monitor.core.config import ConfigError

__all__ = ["render"]


def render() -> None:
    user = ui.signed_in()
    if user is None:
        st.rerun()
    st.title("Registries")
    cfg = ui.active_config()
    if cfg.error:
        st.error(f"Configuration not used: {md(cfg.error)}")
    elif cfg.config is None:
        st.info("No configuration: start the dashboard with --config, or (admins) upload one.")
    else:
        st.caption(f"In force: {md(cfg.origin)}")
    tabs = st.tabs(["Actors", "Groups", "Disclosures", "Windows"])
    frames = (
        registries.actors_frame(cfg.config),
        registries.groups_frame(cfg.config),
        registries.disclosures_frame(cfg.config),
        registries.windows_frame(cfg.config),
    )
    for tab, frame in zip(tabs, frames, strict=True):
        with tab:
            st.dataframe(frame, hide_index=True, width="stretch")
            st.caption(f"{len(frame)} rows")
    st.divider()
    if not user.can("upload_registry"):
        st.caption("Only admins can upload a new registry.")
        return
    _upload(user.username)


def _upload(who: str) -> None:
    st.subheader("Upload a new configuration")
    st.caption(
        "The YAML of contract §2 (windows, actors, disclosures). It is validated like "
        "`amplimon replay` validates --config; the dashboard uses it at once. Restart "
        "the pipeline with it for the detectors to use it too."
    )
    n = st.session_state.setdefault("upload_n", 0)
    up = st.file_uploader("Configuration YAML", type=["yaml", "yml"], key=f"registry_upload_{n}")
    if up is not None:
        try:
            upload = registries.validate_upload(up.name, up.getvalue())
        except ConfigError as err:
            st.error(md(err))
        else:
            c = upload.config
            st.success(
                f"{md(upload.filename)} is valid: {len(c.windows)} windows, "
                f"{len(c.actors)} actors, {len(c.disclosures)} disclosures."
            )
            if st.button("Activate this configuration", key="activate_registry", type="primary"):
                ui.state().add_registry(who, upload.filename, upload.sha256, upload.text)
                st.session_state["upload_n"] = n + 1
                st.session_state["registry_flash"] = f"Activated {md(upload.filename)}."
                st.rerun()
    if (flash := st.session_state.pop("registry_flash", None)) is not None:
        st.success(flash)
    history = ui.state().registry_history()
    if history:
        st.dataframe(pd.DataFrame(history), hide_index=True, width="stretch")
