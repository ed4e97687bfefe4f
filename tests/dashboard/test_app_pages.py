"""AppTest: amplification overview, registries (with uploads), data health, users."""

from __future__ import annotations

import pytest

from dashboard.auth import Auth
from dashboard.state import StateStore
from tests.dashboard import factories as F
from tests.dashboard.conftest import Dash, unmd


def page(dash: Dash, role: str, name: str):  # noqa: ANN201
    at = dash.app(role)
    at.switch_page(f"routes/{name}.py").run()
    assert not at.exception
    return at


def test_overview_forest_plot_and_filters(dash: Dash) -> None:
    at = page(dash, "viewer", "overview")
    assert [t.value for t in at.title] == ["Amplification overview"]
    assert at.selectbox(key="ov_window").value == "at-2026"
    table = at.dataframe[0].value
    assert list(table["subject"]) == ["acc-3", "acc-3"] and table["disclosed"].all()
    assert len(at.image) == 1
    assert any("◆ green" in c.value for c in at.caption)
    at.selectbox(key="ov_window").set_value("de-2026").run()
    table = at.dataframe[0].value
    assert table["label"].iloc[0] == "Candidate Jane Doe" and not table["disclosed"].any()
    at.multiselect(key="ov_period").set_value(["window"]).run()
    assert set(at.dataframe[0].value["period"]) == {"window"}
    at.multiselect(key="ov_kind").set_value(["group"]).run()
    assert list(at.dataframe[0].value["label"]) == ["all 2 accounts of group party-a"]
    at.radio(key="ov_measure").set_value("reach_ratio").run()
    assert len(at.image) == 1 and not at.exception
    at.multiselect(key="ov_platform").set_value(["chirp"]).run()
    at.multiselect(key="ov_region").set_value(["DE"]).run()
    assert len(at.dataframe[0].value) == 1
    at.multiselect(key="ov_kind").set_value([]).run()
    assert at.info[-1].value == "No measurements match the selection."


def test_registries_for_a_viewer(dash: Dash) -> None:
    at = page(dash, "viewer", "registries")
    assert unmd(at.caption[0].value) == f"In force: {dash.config}"
    actors, groups, disclosures, windows = (d.value for d in at.dataframe[:4])
    assert list(actors["name"]) == ["Jane Doe", "John Roe", "Daily News", "Party A"]
    assert list(groups["group"]) == ["party-a", "party-b"]
    assert list(disclosures["intervention"]) == ["civic-info-1"]
    assert list(windows["window"]) == ["de-2026", "at-2026"]
    assert not at.file_uploader
    assert any(c.value == "Only admins can upload a new registry." for c in at.caption)


def test_admin_uploads_a_registry(dash: Dash) -> None:
    at = page(dash, "admin", "registries")
    bad = F.CONFIG_YAML.replace("kind: media", "kind: pundit")
    at.file_uploader[0].set_value(("registry.yaml", bad.encode(), "application/yaml")).run()
    assert unmd(at.error[0].value).startswith("registry.yaml: actors[2].kind: Input should be")
    assert not any(b.key == "activate_registry" for b in at.button)
    good = F.CONFIG_YAML.replace("name: Jane Doe", "name: Jane Q. Doe")
    at.file_uploader[0].set_value(("registry.yaml", good.encode(), "application/yaml")).run()
    assert unmd(at.success[0].value) == (
        "registry.yaml is valid: 2 windows, 4 actors, 1 disclosures."
    )
    at.button(key="activate_registry").click().run()
    assert unmd(at.success[0].value) == "Activated registry.yaml."
    assert unmd(at.caption[0].value).startswith("In force: registry.yaml uploaded by admin at")
    assert at.dataframe[0].value["name"].iloc[0] == "Jane Q. Doe"
    history = at.dataframe[-1].value
    assert list(history["who"]) == ["admin"] and list(history["filename"]) == ["registry.yaml"]
    at.switch_page("routes/alerts.py").run()  # the new names are used everywhere
    assert any("Jane Q. Doe" in unmd(m.value) for m in at.markdown)


def test_health_page(dash: Dash) -> None:
    at = page(dash, "viewer", "health")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics == {
        "Findings": "4",
        "Measurements": "8",
        "Detectability rows": "0",
        "Dead letters": "3",
    }
    counts = at.dataframe[0].value
    assert list(counts["reason"]) == ["invalid JSON"] and list(counts["n"]) == [3]
    assert len(at.dataframe[1].value) == 3
    assert "DuckDB file" in at.markdown[0].value


@pytest.mark.usefixtures("fast_bcrypt")
def test_admin_manages_users(dash: Dash) -> None:
    at = page(dash, "admin", "users")
    assert list(at.dataframe[0].value["user"]) == ["admin", "analyst", "viewer"]
    at.text_input(key="new_user").input("carol")
    at.selectbox(key="new_role").set_value("analyst")
    at.text_input(key="new_password").input("carol-pass-1")
    at.text_input(key="new_password2").input("carol-pass-2")
    form_button = next(b for b in at.button if b.label == "Add user")
    form_button.click().run()
    assert unmd(at.error[0].value) == "The passwords differ."
    assert at.text_input(key="new_user").value == "carol"  # nothing typed is lost
    at.text_input(key="new_password2").input("carol-pass-1")
    next(b for b in at.button if b.label == "Add user").click().run()
    assert unmd(at.success[0].value) == "Added carol."
    assert at.text_input(key="new_user").value == ""
    auth = Auth(StateStore(dash.state))
    assert auth.login("carol", "carol-pass-1").user.role == "analyst"
    at.selectbox(key="edit_user").set_value("carol")
    at.selectbox(key="edit_role").set_value("viewer")
    at.button(key="set_role").click().run()
    assert unmd(at.success[0].value) == "carol is now viewer."
    at.button(key="toggle_user").click().run()
    assert unmd(at.success[0].value) == "carol disabled."
    assert auth.login("carol", "carol-pass-1").user is None
    at.button(key="toggle_user").click().run()
    assert unmd(at.success[0].value) == "carol enabled."
    for _ in range(5):
        auth.login("carol", "wrong")
    at.button(key="unlock_user").click().run()
    assert auth.login("carol", "carol-pass-1").user is not None
    at.text_input(key="reset_pw").input("carol-new-pass")
    next(b for b in at.button if b.label == "Reset password").click().run()
    assert unmd(at.success[0].value) == "Password of carol reset."
    assert auth.login("carol", "carol-new-pass").user is not None


def test_admin_cannot_lock_themself_out(dash: Dash) -> None:
    at = page(dash, "admin", "users")
    at.selectbox(key="edit_user").set_value("admin")
    at.selectbox(key="edit_role").set_value("viewer")
    at.button(key="set_role").click().run()
    assert unmd(at.error[0].value) == "You cannot remove your own admin role."
    at.button(key="toggle_user").click().run()
    assert unmd(at.error[0].value) == "You cannot disable yourself."


@pytest.mark.parametrize("role", ["viewer", "analyst"])
def test_non_admins_see_no_users_page(dash: Dash, role: str) -> None:
    at = dash.app(role)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("routes/users.py")


def test_health_page_shows_the_live_run(dash: Dash, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    snap = F.write_snapshot(
        tmp_path / "live.snapshot", F.default_findings(), F.default_measurements()
    )
    monkeypatch.setenv("AMPLIMON_DASHBOARD_DATA", str(snap))
    at = page(dash, "viewer", "health")
    assert [s.value for s in at.subheader][:2] == ["Rejected records by reason", "Live run"]
    live = next(unmd(m.value) for m in at.markdown if "Live sink publishing" in m.value)
    assert "findings 4, " in live and "s ago)" in live
    assert not any("No run recorded" in c.value for c in at.caption)
