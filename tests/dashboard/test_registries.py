"""Registries: tables, and uploads validated with the CLI's own messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from dashboard import registries
from monitor.core.config import ConfigError, load_config
from tests.dashboard import factories as F

BAD = {
    "windows-order.yaml": F.CONFIG_YAML.replace(
        "end: 2026-05-07T00:00:00Z", "end: 2026-05-02T00:00:00Z"
    ),
    "kind.yaml": F.CONFIG_YAML.replace("kind: media", "kind: pundit"),
    "syntax.yaml": "windows: [\n",
    "empty.yml": "",
}


def test_valid_upload() -> None:
    upload = registries.validate_upload("amplimon.yaml", F.CONFIG_YAML.encode())
    assert len(upload.config.actors) == 4 and upload.text == F.CONFIG_YAML
    assert len(upload.sha256) == 64


@pytest.mark.parametrize("name", sorted(BAD))
def test_upload_messages_match_the_cli(name: str, tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_text(BAD[name])
    with pytest.raises(ConfigError) as cli:
        load_config(path)
    with pytest.raises(ConfigError) as up:
        registries.validate_upload(name, BAD[name].encode())
    assert str(up.value) == str(cli.value) and "\n" not in str(up.value)
    assert str(up.value).startswith(f"{name}: ")


def test_upload_refuses_other_files() -> None:
    with pytest.raises(ConfigError, match="expected a .yaml or .yml file"):
        registries.validate_upload("x.csv", b"a,b")
    with pytest.raises(ConfigError, match="not UTF-8"):
        registries.validate_upload("x.yaml", b"\xff\xfe")


def test_frames(tmp_path: Path) -> None:
    cfg = registries.validate_upload("a.yaml", F.CONFIG_YAML.encode()).config
    actors = registries.actors_frame(cfg)
    assert list(actors["actor"]) == ["acc-1", "acc-2", "acc-3", "acc-4"]
    groups = registries.groups_frame(cfg)
    assert groups.set_index("group").loc["party-a", "actors"] == "acc-1, acc-4"
    disc = registries.disclosures_frame(cfg)
    assert disc.iloc[0]["intervention"] == "civic-info-1" and disc.iloc[0]["groups"] == ""
    windows = registries.windows_frame(cfg)
    assert windows.iloc[1]["baseline start"] == "2026-05-02T00:00:00+00:00"
    for frame in (
        registries.actors_frame(None),
        registries.disclosures_frame(None),
        registries.groups_frame(None),
        registries.windows_frame(None),
    ):
        assert frame.empty and len(frame.columns) >= 3
