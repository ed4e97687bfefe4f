"""Configuration warnings (issue 11 item 4): valid but probably not meant — overlapping windows
of one jurisdiction, a default baseline inside another election window, a configured platform
the data never mentions.  They are ``ConfigWarning``s; the CLI prints ``amplimon: warning: …``."""

from __future__ import annotations

import datetime as dt
import json
import warnings
from pathlib import Path

import msgspec
import pytest
import yaml

from monitor.cli import main
from monitor.core.config import ConfigWarning, parse_config, unseen_platforms
from monitor.engine.run import Engine
from streams.memory import ListOutput
from tests.factories import HOUR, T0, config, config_dict, exposure, now_far

DE = {
    "id": "de-2026",
    "jurisdiction": "DE",
    "start": "2026-05-04T00:00:00Z",
    "end": "2026-05-07T00:00:00Z",
}


def warned(windows: list[dict]) -> list[str]:
    with warnings.catch_warnings(record=True) as found:
        warnings.simplefilter("always")
        parse_config(config_dict(windows=windows), source="amplimon.yaml")
    assert all(w.category is ConfigWarning for w in found)
    return [str(w.message) for w in found]


def test_overlapping_windows_of_one_jurisdiction() -> None:
    later = {
        "id": "de-runoff",
        "jurisdiction": "DE",
        "start": "2026-05-06T00:00:00Z",
        "end": "2026-05-08T00:00:00Z",
        "baseline": {"start": "2026-04-20T00:00:00Z", "end": "2026-04-22T00:00:00Z"},
    }
    assert warned([DE, later]) == [
        "amplimon.yaml: windows[1] (de-runoff) overlaps windows[0] (de-2026), both in DE"
    ]


def test_default_baseline_inside_another_window() -> None:
    # DE runs 4-7 May; the Bavarian window (8-10 May) has the default baseline 6-8 May
    bavaria = {
        "id": "by-2026",
        "jurisdiction": "DE-BY",
        "start": "2026-05-08T00:00:00Z",
        "end": "2026-05-10T00:00:00Z",
    }
    assert warned([DE, bavaria]) == [
        "amplimon.yaml: windows[1] (by-2026): default baseline 2026-05-06T00:00:00Z to "
        "2026-05-08T00:00:00Z overlaps window 'de-2026'; give baseline explicitly"
    ]


@pytest.mark.parametrize(
    "other",
    [
        # another country: its elections do not disturb DE's baseline
        {
            "id": "at-2026",
            "jurisdiction": "AT",
            "start": "2026-05-02T00:00:00Z",
            "end": "2026-05-05T00:00:00Z",
        },
        # same jurisdiction, no overlap, explicit baseline outside the other window
        {
            "id": "de-2",
            "jurisdiction": "DE",
            "start": "2026-05-07T00:00:00Z",
            "end": "2026-05-08T00:00:00Z",
            "baseline": {"start": "2026-04-01T00:00:00Z", "end": "2026-04-02T00:00:00Z"},
        },
        # a window that ends exactly where DE's default baseline starts (half-open periods)
        {
            "id": "de-0",
            "jurisdiction": "DE",
            "start": "2026-04-28T00:00:00Z",
            "end": "2026-05-01T00:00:00Z",
            "baseline": {"start": "2026-04-01T00:00:00Z", "end": "2026-04-02T00:00:00Z"},
        },
    ],
)
def test_no_warning_for_a_sound_configuration(other: dict) -> None:
    assert warned([DE, other]) == []


def test_windows_a_day_apart_give_no_warning() -> None:
    # one-day windows of one jurisdiction, a day apart: each default baseline is the gap
    # before its window; one more hour-long window inside the 100th (its default baseline the
    # hour before, also inside it) gives exactly two warnings
    day, hour = 86_400_000, 3_600_000
    windows = [
        {
            "id": f"w{k}",
            "jurisdiction": "DE",
            "start": _iso(T0 + 2 * k * day),
            "end": _iso(T0 + (2 * k + 1) * day),
        }
        for k in range(1, 201)
    ]
    assert warned(windows) == []
    extra = {
        "id": "x",
        "jurisdiction": "DE",
        "start": _iso(T0 + 200 * day + 12 * hour),
        "end": _iso(T0 + 200 * day + 13 * hour),
    }
    assert warned([*windows, extra]) == [
        "amplimon.yaml: windows[200] (x) overlaps windows[99] (w100), both in DE",
        "amplimon.yaml: windows[200] (x): default baseline 2026-11-17T11:00:00Z to "
        "2026-11-17T12:00:00Z overlaps window 'w100'; give baseline explicitly",
    ]


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat().replace("+00:00", "Z")


# -- a configured platform that the data never mentions -------------------------------------
def _run(platforms: dict) -> list[str]:
    cfg = config(platforms=platforms)
    engine = Engine(cfg, ListOutput(), now_ms=now_far)
    engine.ingest("exposure", msgspec.json.encode(exposure(ts=T0 + HOUR)), source="t")
    with warnings.catch_warnings(record=True) as found:
        warnings.simplefilter("always")
        engine.close()
    return [str(w.message) for w in found if w.category is ConfigWarning]


def test_a_misspelt_platform_id_is_reported_at_the_end_of_the_run() -> None:
    # platforms.chrip beside a chirp stream silently turned the holdout-share check off
    assert _run({"chrip": {"holdout_share": 0.2}}) == [
        "platforms.chrip: no event of this platform in the data (did you mean 'chirp'?); its "
        "holdout_share was not checked"
    ]
    assert _run({"chirp": {"holdout_share": 0.2}}) == []


def test_unseen_platform_without_a_near_id_lists_what_was_seen() -> None:
    cfg = config(platforms={"blip": {"holdout_share": 0.2}})
    assert unseen_platforms(cfg, {"chirp": 3, "zap": 1}) == [
        "platforms.blip: no event of this platform in the data (seen: chirp, zap); its "
        "holdout_share was not checked"
    ]
    assert unseen_platforms(cfg, {}) == []  # nothing read: nothing to compare with


def test_cli_prints_warnings_as_one_line_each_and_succeeds(tmp_path: Path, capsys) -> None:
    d = config_dict(platforms={"chrip": {"holdout_share": 0.2}})
    d["windows"].append(
        {
            "id": "de-runoff",
            "jurisdiction": "DE",
            "start": "2026-05-06T00:00:00Z",
            "end": "2026-05-08T00:00:00Z",
            "baseline": {"start": "2026-04-20T00:00:00Z", "end": "2026-04-22T00:00:00Z"},
        }
    )
    path = tmp_path / "amplimon.yaml"
    path.write_text(yaml.safe_dump(d), encoding="utf-8")
    src = tmp_path / "exposure.jsonl"
    src.write_text(json.dumps(exposure(ts=T0 + HOUR)) + "\n", encoding="utf-8")
    assert (
        main(
            [
                "replay",
                "--config",
                str(path),
                "--db",
                str(tmp_path / "o.duckdb"),
                "--exposure",
                str(src),
            ]
        )
        == 0
    )
    lines = [
        line
        for line in capsys.readouterr().err.splitlines()
        if line.startswith("amplimon: warning:")
    ]
    assert lines == [
        "amplimon: warning: amplimon.yaml: windows[1] (de-runoff) overlaps windows[0] "
        "(de-2026), both in DE",
        "amplimon: warning: platforms.chrip: no event of this platform in the data (did you "
        "mean 'chirp'?); its holdout_share was not checked",
    ]
