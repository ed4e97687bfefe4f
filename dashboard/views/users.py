"""User management (admins): add users, change roles, disable, unlock, reset passwords."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import ui
from dashboard.auth import ROLES, AuthError
from dashboard.text import md

__all__ = ["render"]


def render() -> None:
    me = ui.signed_in()
    if me is None or not me.can("manage_users"):
        st.error("Only admins can manage users.")
        st.stop()
    st.title("Users")
    auth = ui.auth()
    if st.session_state.pop("users_clear", False):  # after a change: empty the forms
        for key in ("new_user", "new_password", "new_password2", "reset_pw"):
            st.session_state.pop(key, None)
    if (flash := st.session_state.pop("users_flash", None)) is not None:
        st.success(flash)
    users = auth.users()
    st.dataframe(pd.DataFrame(users), hide_index=True, width="stretch")
    left, right = st.columns(2, gap="large")
    with left, st.form("add_user"):
        st.subheader("Add a user")
        name = st.text_input("User name", key="new_user")
        role = st.selectbox("Role", ROLES, key="new_role")
        pw = st.text_input("Password", type="password", key="new_password")
        pw2 = st.text_input("Repeat password", type="password", key="new_password2")
        if st.form_submit_button("Add user"):
            if pw != pw2:
                st.error("The passwords differ.")
            else:
                _do(
                    lambda: auth.add_user(
                        name.strip(), role or "viewer", pw, created_by=me.username
                    ),
                    f"Added {name.strip()}.",
                )
    with right:
        st.subheader("Change a user")
        names = [str(u["user"]) for u in users]
        if not names:
            return
        target = st.selectbox("User", names, key="edit_user") or names[0]
        new_role = st.selectbox("New role", ROLES, key="edit_role")
        c = st.columns(3)
        if c[0].button("Set role", key="set_role"):
            if target == me.username and new_role != "admin":
                st.error("You cannot remove your own admin role.")
            else:
                _do(
                    lambda: auth.set_role(target, new_role or "viewer"),
                    f"{target} is now {new_role}.",
                )
        disabled = next(bool(u["disabled"]) for u in users if u["user"] == target)
        if c[1].button("Enable" if disabled else "Disable", key="toggle_user"):
            if target == me.username:
                st.error("You cannot disable yourself.")
            else:
                _do(
                    lambda: auth.set_disabled(target, not disabled),
                    f"{target} {'enabled' if disabled else 'disabled'}.",
                )
        if c[2].button("Unlock", key="unlock_user"):
            _do(lambda: auth.unlock(target), f"{target} unlocked.")
        with st.form("reset_password"):
            pw = st.text_input("New password", type="password", key="reset_pw")
            if st.form_submit_button("Reset password"):
                _do(lambda: auth.set_password(target, pw), f"Password of {target} reset.")


def _do(action: object, message: str) -> None:
    try:
        action()  # type: ignore[operator]
    except AuthError as err:
        st.error(md(err))
        return
    st.session_state["users_flash"] = md(message)
    st.session_state["users_clear"] = True
    st.rerun()
