"""The CLI: bad arguments, missing files and invalid configs exit 2 with one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from monitor.cli import main
from tests.factories import config_dict


def one_line_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str], needle: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("amplimon: ") and "\n" not in err and "Traceback" not in err, err
    assert needle in err, err


@pytest.fixture
def cfg_file(tmp_path: Path) -> Path:
    path = tmp_path / "amplimon.yaml"
    path.write_text(yaml.safe_dump(config_dict()), encoding="utf-8")
    return path


def test_unknown_option(capsys) -> None:
    one_line_exit_2(capsys, ["replay", "--bogus"], "No such option: --bogus")


def test_missing_required_option(capsys, cfg_file: Path) -> None:
    one_line_exit_2(capsys, ["replay", "--config", str(cfg_file)], "--db")


def test_missing_input_file(capsys, cfg_file: Path, tmp_path: Path) -> None:
    one_line_exit_2(capsys, ["replay", "--config", str(cfg_file), "--db",
                             str(tmp_path / "o.duckdb"), "--exposure", str(tmp_path / "no.jsonl")],
                    "no.jsonl: no such file")


def test_invalid_config(capsys, tmp_path: Path) -> None:
    d = config_dict()
    d["windows"][0]["end"] = "2026-05-01T00:00:00Z"
    path = tmp_path / "amplimon.yaml"
    path.write_text(yaml.safe_dump(d), encoding="utf-8")
    src = tmp_path / "e.jsonl"
    src.write_text("")
    one_line_exit_2(capsys, ["replay", "--config", str(path), "--db", str(tmp_path / "o.duckdb"),
                             "--exposure", str(src)],
                    "amplimon.yaml: windows[0]: end is before start")


def test_invalid_detector_params(capsys, tmp_path: Path) -> None:
    d = config_dict()
    d["detection"]["missing_label"] = {"tolerance": 3}
    path = tmp_path / "amplimon.yaml"
    path.write_text(yaml.safe_dump(d), encoding="utf-8")
    src = tmp_path / "e.jsonl"
    src.write_text("")
    one_line_exit_2(capsys, ["replay", "--config", str(path), "--db", str(tmp_path / "o.duckdb"),
                             "--exposure", str(src)],
                    "amplimon.yaml: detection.missing_label: tolerance")


def test_console_script_runs_as_module(cfg_file: Path, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "monitor", "replay", "--config", str(cfg_file),
                           "--db", str(tmp_path / "o.duckdb"), "--exposure", "nope.jsonl"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "amplimon: nope.jsonl: no such file"
