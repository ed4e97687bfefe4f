"""Configuration: contract §2 accepted, every mistake one line naming the place."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml

from monitor.core.config import ConfigError, covers, load_config, parse_config
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


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("DE", "DE-BY", True),
        ("DE", "DE", True),
        ("DE-BY", "DE", False),
        ("DE", "DEU", False),
        ("US-PA", "US-PA", True),
        ("US", "US-PA", True),
        ("AT", "DE-BY", False),
    ],
)
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


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda d: d["windows"][0].update(end="2026-05-01T00:00:00Z"),
            "amplimon.yaml: windows[0]: end is before start",
        ),
        (
            lambda d: d["windows"][0].update(start="2026-05-04T00:00:00"),
            "amplimon.yaml: windows[0].start: timestamp needs a time zone",
        ),
        (
            lambda d: d["actors"][1].update(kind="pope"),
            "amplimon.yaml: actors[1].kind: Input should be",
        ),
        (lambda d: d.update(windows=[]), "amplimon.yaml: windows:"),
        (lambda d: d["detection"].update(alpha=1.5), "amplimon.yaml: detection.alpha:"),
        (
            lambda d: d.update(surprise=1),
            "amplimon.yaml: surprise: unknown key (known: actors, "
            "actors_file, detection, disclosures, platforms, windows)",
        ),
        (
            lambda d: d["windows"].append(dict(d["windows"][0])),
            "amplimon.yaml: windows[1]: duplicate window id 'de-2026'",
        ),
        (
            lambda d: d["windows"][0].update(jurisdiction="Germany"),
            "amplimon.yaml: windows[0].jurisdiction",
        ),
        (
            lambda d: d["windows"][0].update(
                baseline={"start": "2026-05-05T00:00:00Z", "end": "2026-05-06T00:00:00Z"}
            ),
            "amplimon.yaml: windows[0]: baseline must end before the window starts",
        ),
    ],
)
def test_invalid_config_is_one_line(mutate, message: str) -> None:
    d = config_dict()
    mutate(d)
    with pytest.raises(ConfigError) as err:
        parse_config(d, source="amplimon.yaml")
    assert str(err.value).startswith(message), str(err.value)
    assert "\n" not in str(err.value)


def test_load_yaml_and_actors_file(tmp_path: Path) -> None:
    (tmp_path / "actors.csv").write_text(
        "actor,name,kind,group,regions\nacc-9,Nine,party,party-b,DE;AT\n", encoding="utf-8"
    )
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


# -- times: the engine's millisecond resolution (issue 11 item 3) -----------------------------
def _with_times(
    window: tuple[str, str], baseline: tuple[str, str], disclosure: tuple[str, str]
) -> dict:
    d = config_dict()
    d["windows"][0].update(
        start=window[0], end=window[1], baseline={"start": baseline[0], "end": baseline[1]}
    )
    d["disclosures"][0].update(start=disclosure[0], end=disclosure[1])
    return d


def test_microsecond_times_are_read_as_their_millisecond_rounding() -> None:
    micro = _with_times(
        ("2026-05-04T00:00:00.000499Z", "2026-05-07T00:00:00.0005Z"),
        ("2026-05-01T01:59:59.999600+02:00", "2026-05-03T23:59:59.999999Z"),
        ("2026-05-04T00:00:00.000869Z", "2026-05-06T12:00:00.123456Z"),
    )
    milli = _with_times(
        ("2026-05-04T00:00:00Z", "2026-05-07T00:00:00.001Z"),
        ("2026-05-01T00:00:00Z", "2026-05-04T00:00:00Z"),
        ("2026-05-04T00:00:00.001Z", "2026-05-06T12:00:00.123Z"),
    )
    a, b = parse_config(micro), parse_config(milli)
    assert a == b  # the same configuration: every detector sees the same thing
    w, d = a.windows[0], a.disclosures[0]
    assert (w.start_ms, w.end_ms) == (1_777_852_800_000, 1_778_112_000_001)
    assert (d.start_ms, d.end_ms) == (1_777_852_800_001, 1_778_068_800_123)
    assert type(w.start_ms) is int and type(d.start_ms) is int


def test_a_disclosure_covers_from_its_rounded_start_millisecond() -> None:
    # 0.4 ms after the window start rounds to the window's first millisecond, which the
    # disclosure then covers (it did not: an event at ms 0 compared below 0.4)
    d = config_dict()
    d["disclosures"][0]["start"] = "2026-05-04T00:00:00.0004Z"
    cfg = parse_config(d)
    start = 1_777_852_800_000
    assert cfg.disclosures_for("chirp", "civic-1", "acc-2", "DE", start)
    assert not cfg.disclosures_for("chirp", "civic-1", "acc-2", "DE", start - 1)


def test_rounding_past_year_9999_is_out_of_range_not_a_crash() -> None:
    d = config_dict()
    d["windows"][0].update(start="9999-12-30T00:00:00Z", end="9999-12-31T23:59:59.9996Z")
    with pytest.raises(ConfigError, match=r"windows\[0\]\.end: timestamp out of range"):
        parse_config(d)
