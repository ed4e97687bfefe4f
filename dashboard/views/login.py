"""The sign-in form."""

from __future__ import annotations

import streamlit as st

from dashboard import ui

__all__ = ["render"]


def render() -> None:
    st.title("amplimon")
    st.caption("Election-period algorithmic amplification monitor")
    if st.session_state.pop("expired", False):
        st.info("Your session expired. Please sign in again.")
    with st.form("login", clear_on_submit=False):
        username = st.text_input("User name", key="login_user")
        password = st.text_input("Password", type="password", key="login_password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        result = ui.auth().login(username, password, client=ui.client_address())
        if result.user is None:
            st.error(result.message)
            return
        st.session_state["token"] = result.token
        st.rerun()
