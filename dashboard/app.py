"""Entry point: ``streamlit run dashboard/app.py`` (``amplimon dashboard`` does this).

Signs the user in, then offers the pages their role allows.  Settings come from the
environment (:mod:`dashboard.settings`).  The page scripts live in ``routes/`` — not
``pages/``, which Streamlit would also load as a legacy multipage app, bypassing this gate.
"""

from __future__ import annotations

import streamlit as st

import dashboard.ui as ui
from dashboard.text import md
from dashboard.views import login


def _page(name: str, title: str, icon: str, *, default: bool = False) -> st.Page:
    return st.Page(
        f"routes/{name}.py", title=title, icon=f":material/{icon}:", url_path=name, default=default
    )


def main() -> None:
    # An emoji favicon is an inline SVG; a ":material/…:" one is fetched from fonts.gstatic.com,
    # and the dashboard must work with no network at all (tests/dashboard/test_browser.py).
    st.set_page_config(page_title="amplimon", page_icon="🗳️", layout="wide")
    try:
        ui.settings()
        ui.state()
    except (ValueError, RuntimeError) as err:
        st.error(f"The dashboard cannot start: {md(err)}")
        st.stop()
    user = ui.signed_in(touch=True)
    if user is None:
        st.navigation(
            [st.Page(login.render, title="Sign in", url_path="login")], position="hidden"
        ).run()
        return
    pages = [
        _page(name, title, icon, default=name == "alerts")
        for name, title, icon in (
            ("alerts", "Live alerts", "notifications_active"),
            ("finding", "Finding detail", "search"),
            ("overview", "Amplification overview", "bar_chart"),
            ("registries", "Registries", "menu_book"),
            ("health", "Data health", "monitor_heart"),
        )
    ]
    if user.can("manage_users"):
        pages.append(_page("users", "Users", "group"))
    page = st.navigation(pages)
    with st.sidebar:
        st.markdown(f"**{md(user.username)}** · {md(user.role)}")
        if st.button("Sign out", key="sign_out"):
            ui.auth().logout(st.session_state.pop("token", None))
            st.session_state.clear()
            st.rerun()
    page.run()


main()
