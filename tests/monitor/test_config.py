"""Configuration: contract §2 accepted, every mistake one line naming the place."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml

from monitor.config import ConfigError, covers, load_config, parse_config
from tests.factories import config, config_dict


def test_default_baseline_is_same_length_right_before() -> None:
    w = config().windows[0]
    assert w.baseline_period.end == w.start
    assert w.baseline_period.end - w.baseline_period.start == w.end - w.start


def test_explicit_baseline_kept() -> None:
    d = config_dict()
    d["windows"][0]["baseline"] = {"start": "2026-05-01T00:00:00Z", "end": "2026-05-02T00:00:00Z"}
    w = parse_config(d).windows[0]
    assert w.baseline_period.start == dt.datetime(2026, 5, 1, tzinfo=dt.UTC)


@pytest.mark.parametrize(("a", "b", "expected"), [
    ("DE", "DE-BY", True), ("DE", "DE", True), ("DE-BY", "DE", False), ("DE", "DEU", False),
    ("US-PA", "US-PA", True), ("US", "US-PA", True), ("AT", "DE-BY", False)])
def test_country_covers_subdivisions(a: str, b: str, expected: bool) -> None:
    assert covers(a, b) is expected


def test_registry_groups_and_monitoring() -> None:
    cfg = config()
    assert cfg.groups == {"party-a": ("acc-1", "acc-2")}
    assert cfg.registry["acc-3"].monitored_in("DE")  # DE-BY actor in a DE window
    assert not cfg.registry["acc-3"].monitored_in("AT")


def test_disclosure_coverage() -> None:
    cfg = config()
    ts = int(dt.datetime(2026, 5, 5, tzinfo=dt.UTC).timestamp() * 1000)
    assert cfg.disclosures_for("chirp", "civic-1", "acc-2", "DE-BY", ts)
    assert not cfg.disclosures_for("chirp", "civic-1", "acc-1", "DE-BY", ts)  # other actor
    assert not cfg.disclosures_for("blip", "civic-1", "acc-2", "DE-BY", ts)  # other platform
    assert not cfg.disclosures_for("chirp", "civic-1", "acc-2", "AT", ts)  # other region
    assert not cfg.disclosures_for("chirp", "civic-1", "acc-2", "DE-BY", ts - 2 * 86_400_000)


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d["windows"][0].update(end="2026-05-01T00:00:00Z"),
     "amplimon.yaml: windows[0]: end is before start"),
    (lambda d: d["windows"][0].update(start="2026-05-04T00:00:00"),
     "amplimon.yaml: windows[0].start: timestamp needs a time zone"),
    (lambda d: d["actors"][1].update(kind="pope"), "amplimon.yaml: actors[1].kind: Input should be"),
    (lambda d: d.update(windows=[]), "amplimon.yaml: windows:"),
    (lambda d: d["detection"].update(alpha=1.5), "amplimon.yaml: detection.alpha:"),
    (lambda d: d.update(surprise=1), "amplimon.yaml: surprise: Extra inputs are not permitted"),
    (lambda d: d["windows"].append(dict(d["windows"][0])),
     "amplimon.yaml: windows[1]: duplicate window id 'de-2026'"),
    (lambda d: d["windows"][0].update(jurisdiction="Germany"), "amplimon.yaml: windows[0].jurisdiction"),
    (lambda d: d["windows"][0].update(baseline={"start": "2026-05-05T00:00:00Z",
                                                 "end": "2026-05-06T00:00:00Z"}),
     "amplimon.yaml: windows[0]: baseline must end before the window starts"),
])
def test_invalid_config_is_one_line(mutate, message: str) -> None:
    d = config_dict()
    mutate(d)
    with pytest.raises(ConfigError) as err:
        parse_config(d, source="amplimon.yaml")
    assert str(err.value).startswith(message), str(err.value)
    assert "\n" not in str(err.value)


def test_load_yaml_and_actors_file(tmp_path: Path) -> None:
    (tmp_path / "actors.csv").write_text(
        "actor,name,kind,group,regions\nacc-9,Nine,party,party-b,DE;AT\n", encoding="utf-8")
    d = config_dict(actors_file="actors.csv")
    path = tmp_path / "amplimon.yaml"
    path.write_text(yaml.safe_dump(d), encoding="utf-8")
    cfg = load_config(path)
    assert cfg.registry["acc-9"].regions == ("DE", "AT")
    assert "acc-1" in cfg.registry


def test_unreadable_and_broken_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("windows: [\n  - {id: x\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad.yaml: invalid YAML at line"):
        load_config(bad)
    with pytest.raises(ConfigError, match="expected a YAML mapping"):
        parse_config(["a"], source="x.yaml")
