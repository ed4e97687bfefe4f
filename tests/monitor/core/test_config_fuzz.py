"""Configuration fuzzing: any YAML file and any JSON-like mapping — including mutations of a
valid configuration (a key dropped, a type changed, dates swapped, huge numbers, NaN,
unicode) — become a usable :class:`Config` or a one-line :class:`ConfigError` naming the
problem; never another exception, never a multi-line message."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from fuzz.properties import check_config_obj, check_config_text, write_csv_fixtures
from fuzz.strategies import config_objects, config_texts
from monitor.core.config import ConfigError, load_config, parse_config
from tests.factories import config_dict

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def csv_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config-fuzz")
    write_csv_fixtures(path)
    return path


@FUZZ
@given(obj=config_objects())
def test_any_mapping_becomes_a_config_or_a_one_line_error(csv_dir: Path, obj: object) -> None:
    check_config_obj(obj, base_dir=csv_dir)


@FUZZ
@given(data=config_texts())
def test_any_yaml_file_becomes_a_config_or_a_one_line_error(csv_dir: Path, data: bytes) -> None:
    check_config_text(csv_dir / "fuzz.yaml", data)


def error(obj: object) -> str:
    with pytest.raises(ConfigError) as err:
        parse_config(obj, source="c.yaml")
    return str(err.value)


def yaml_error(tmp_path: Path, data: bytes | str) -> str:
    path = tmp_path / "c.yaml"
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass"))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    return str(err.value)


WINDOW = {"id": "w", "jurisdiction": "DE"}


# -- regressions: each of these escaped as another exception or a multi-line message --------
@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "windows: [{start: 2026-13-01}]",
            "c.yaml: invalid YAML: bad value (month must be in 1..12)",
        ),
        (
            "a: 2026-02-30T00:00:00Z",
            "c.yaml: invalid YAML: bad value (day is out of range for month)",
        ),
        ("a: 2026-05-01T00:00:00+99:00", "c.yaml: invalid YAML: bad value (offset must be"),
        ("[" * 1000, "c.yaml: invalid YAML: nested too deeply"),
        ("a: " + "[" * 600 + "]" * 600, "c.yaml: invalid YAML: nested too deeply"),
        ("a: " + "{a: " * 600, "c.yaml: invalid YAML: nested too deeply"),
        (b"windows: \xff\xfe", "c.yaml: not UTF-8 text (byte 9)"),
        ("a: !!timestamp x", "c.yaml: invalid YAML: bad value ("),  # AttributeError in PyYAML
        ("a: !!int x", "c.yaml: invalid YAML: bad value (invalid literal for int()"),
        ("a: !!float x", "c.yaml: invalid YAML: bad value ("),
        ("a: !!bool x", "c.yaml: invalid YAML: bad value ('x')"),  # KeyError in PyYAML
    ],
)
def test_regression_yaml_loader_errors(tmp_path: Path, text: str | bytes, message: str) -> None:
    assert yaml_error(tmp_path, text).startswith(message)


@pytest.mark.parametrize(
    ("mutation", "message"),
    [
        ({"actors": 5, "actors_file": "x.csv"}, "c.yaml: actors: expected a list"),
        (
            {"actors_file": "a\x00b.csv"},
            "c.yaml: actors_file: cannot read 'a\\x00b.csv' (embedded null byte)",
        ),
        ({"actors_file": "\x1e"}, "c.yaml: actors_file: cannot read '\\x1e' (No such file"),
        (
            {"actors": [{"actor": "a", "regions": 5}]},
            "c.yaml: actors[0].regions: Input should be a valid tuple",
        ),
        (
            {"disclosures": [{"platform": "p", "intervention": "i", "regions": 5}]},
            "c.yaml: disclosures[0].regions: Input should be a valid tuple",
        ),
        (
            {"platforms": {"a\nb": 5}},
            "c.yaml: platforms.'a\\nb': Input should be a valid dictionary",
        ),
        ({"line\u2028break": 1}, "c.yaml: 'line\\u2028break': unknown key (known: actors,"),
        (
            {
                "windows": [
                    {**WINDOW, "start": "0001-01-01T00:00:00+01:00", "end": "0001-01-02T00:00:00Z"}
                ]
            },
            "c.yaml: windows[0].start: timestamp out of range",
        ),
        (
            {
                "windows": [
                    {**WINDOW, "start": "0001-01-01T00:00:00Z", "end": "0001-01-02T00:00:00Z"}
                ]
            },
            "c.yaml: windows[0]: default baseline (same length before start) is out of range",
        ),
        (
            {"detection": {"tick_minutes": 1e-300}},
            "c.yaml: detection.tick_minutes: tick must be at least 1 ms",
        ),
        (
            {"detection": {"missing_label": {"tolerance": "\ud800"}}},
            "c.yaml: detection: extra settings cannot be written as JSON",
        ),
        (
            {"detection": {"missing_label": {"tolerance": [b"\xff"]}}},
            "c.yaml: detection: extra settings cannot be written as JSON",
        ),
        (
            {"detection": {"missing_label": {"tolerance": object()}}},
            "c.yaml: detection: extra settings cannot be written as JSON",
        ),
        ({"detection": {"x": object()}}, "c.yaml: detection.x: unknown key (known: alpha,"),
    ],
)
def test_regression_mapping_errors(mutation: dict, message: str) -> None:
    assert error(config_dict(**mutation)).startswith(message)


def test_regression_actors_file_that_is_not_utf8(csv_dir: Path) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(config_dict(actors_file="bad-utf8.csv"), source="c.yaml", base_dir=csv_dir)
    assert str(err.value).startswith("c.yaml: actors_file: cannot read")
    assert "utf-8" in str(err.value)


def test_window_with_explicit_baseline_near_year_1_is_fine() -> None:
    cfg = parse_config(
        config_dict(
            windows=[
                {
                    **WINDOW,
                    "start": "0001-01-02T00:00:00Z",
                    "end": "0001-01-03T00:00:00Z",
                    "baseline": {"start": "0001-01-01T00:00:00Z", "end": "0001-01-02T00:00:00Z"},
                }
            ]
        )
    )
    assert cfg.windows[0].baseline_period.start.year == 1


@pytest.mark.timeout(60)
def test_regression_yaml_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    # ~400 bytes; expanded it is 10**9 values, which the engine's fingerprint would serialise.
    levels = "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 10) + "], "
        for i in range(8)
    )
    text = (
        "windows: [{id: w, jurisdiction: DE, start: 2026-05-04T00:00:00Z, "
        "end: 2026-05-07T00:00:00Z}]\n"
        f"detection: {{bomb: {{a: &a [x,x,x,x,x,x,x,x,x,x], {levels}}}}}\n"
    )
    started = time.monotonic()
    message = yaml_error(tmp_path, text)
    assert (
        message == "c.yaml: too large (more than 1,000,000 values once YAML aliases are expanded)"
    )
    assert time.monotonic() - started < 30  # a hang guard, not a speed figure


def test_self_referencing_yaml_alias_is_refused(tmp_path: Path) -> None:
    assert "too large" in yaml_error(tmp_path, "windows: &w [*w]\n")


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 10**400, -(10**30), "１"])
@pytest.mark.parametrize("field", ["alpha", "tick_minutes", "lateness_minutes"])
def test_non_finite_and_huge_detection_numbers(field: str, value: object) -> None:
    assert isinstance(check_config_obj(config_dict(detection={field: value})), ConfigError)
