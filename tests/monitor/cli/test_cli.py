"""The CLI: bad arguments, missing files and invalid configs exit 2 with one line."""

from __future__ import annotations

import importlib.metadata
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from monitor.cli import main
from tests.factories import HOUR, T0, config_dict, exposure


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
    one_line_exit_2(
        capsys,
        [
            "replay",
            "--config",
            str(cfg_file),
            "--db",
            str(tmp_path / "o.duckdb"),
            "--exposure",
            str(tmp_path / "no.jsonl"),
        ],
        "no.jsonl: no such file",
    )


def test_invalid_config(capsys, tmp_path: Path) -> None:
    d = config_dict()
    d["windows"][0]["end"] = "2026-05-01T00:00:00Z"
    path = tmp_path / "amplimon.yaml"
    path.write_text(yaml.safe_dump(d), encoding="utf-8")
    src = tmp_path / "e.jsonl"
    src.write_text("")
    one_line_exit_2(
        capsys,
        [
            "replay",
            "--config",
            str(path),
            "--db",
            str(tmp_path / "o.duckdb"),
            "--exposure",
            str(src),
        ],
        "amplimon.yaml: windows[0]: end is before start",
    )


def test_invalid_detector_params(capsys, tmp_path: Path) -> None:
    d = config_dict()
    d["detection"]["missing_label"] = {"tolerance": 3}
    path = tmp_path / "amplimon.yaml"
    path.write_text(yaml.safe_dump(d), encoding="utf-8")
    src = tmp_path / "e.jsonl"
    src.write_text("")
    one_line_exit_2(
        capsys,
        [
            "replay",
            "--config",
            str(path),
            "--db",
            str(tmp_path / "o.duckdb"),
            "--exposure",
            str(src),
        ],
        "amplimon.yaml: detection.missing_label: tolerance",
    )


def test_console_script_runs_as_module(cfg_file: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "monitor",
            "replay",
            "--config",
            str(cfg_file),
            "--db",
            str(tmp_path / "o.duckdb"),
            "--exposure",
            "nope.jsonl",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "amplimon: nope.jsonl: no such file"


# -- help, version (issue 11 item 7) ----------------------------------------------------------
def _command_paths() -> list[list[str]]:
    from typer.main import get_command

    from monitor.cli import app

    def walk(cmd, path):
        yield path
        for name, sub in getattr(cmd, "commands", {}).items():
            yield from walk(sub, [*path, name])

    return list(walk(get_command(app), []))


PLACEHOLDER = re.compile(r"<(bool|str|int|float|path|list\[|[a-z]+ range)|\{[a-z_]+\}")


def test_help_shows_no_python_type_placeholders(capsys) -> None:
    paths = _command_paths()
    assert len(paths) > 20  # every command and subcommand
    for path in paths:
        assert main([*path, "--help"]) == 0
        out = capsys.readouterr().out
        assert "Usage: amplimon" in out
        assert not PLACEHOLDER.search(out), (path, PLACEHOLDER.search(out).group(0), out)
    main(["verify", "--help"])
    out = capsys.readouterr().out
    assert "amplimon verify [OPTIONS] PACK" in out
    main(["replay", "--help"])
    assert re.search(r"--exposure\s+PATH", capsys.readouterr().out)


def test_version_from_the_package_metadata(capsys) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"amplimon {importlib.metadata.version('amplimon')}\n"


def test_several_files_after_one_option_as_in_the_contract(tmp_path: Path, capsys) -> None:
    # contract §4: --exposure FILE [FILE ...]; Click took one value per option
    cfg = tmp_path / "amplimon.yaml"
    cfg.write_text(yaml.safe_dump(config_dict()), encoding="utf-8")
    files = []
    for k in range(3):
        files.append(tmp_path / f"e{k}.jsonl")
        files[-1].write_text(json.dumps(exposure(ts=T0 + k * HOUR)) + "\n", encoding="utf-8")
    assert (
        main(
            [
                "replay",
                "--config",
                str(cfg),
                "--db",
                str(tmp_path / "o.duckdb"),
                "--exposure",
                *map(str, files[:2]),
                f"--exposure={files[2]}",
            ]
        )
        == 0
    )
    assert "replayed 3 records: accepted 3" in capsys.readouterr().err


# -- findings, diff, simulate: a small real run (issue 11 item 7) ----------------------------
@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small simulated election replayed with the very command `simulate` suggests."""
    out = tmp_path_factory.mktemp("sim")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "monitor",
            "simulate",
            "--out",
            str(out),
            "--scenario",
            "undisclosed",
            "--scale",
            "0.2",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    suggested = proc.stderr.strip().splitlines()[-1].strip()
    assert suggested == (
        f"amplimon replay --config {out}/amplimon.yaml --db {out}/amplimon.duckdb"
        f" --exposure {out}/exposure.jsonl.gz --ranking {out}/ranking.jsonl.gz"
    )
    argv = shlex.split(suggested)
    assert argv[0] == "amplimon"
    assert main(argv[1:]) == 0
    return out / "amplimon.duckdb"


def test_findings_show_the_detector_and_n_of_m(simulated: Path, capsys) -> None:
    assert main(["findings", "--db", str(simulated), "--limit", "1"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if "severity" in line)
    assert re.search(r"kind\s+┃ detector\s+┃ subject", header)
    assert "│ undisclosed_intervention │ undisclosed_intervention │" in out
    assert "1 of 2 findings, most severe first (--limit 2 to see all)" in out
    assert main(["findings", "--db", str(simulated)]) == 0
    out = capsys.readouterr().out
    assert "2 findings, most severe first" in out
    assert "│ amplification            │ rank_uplift              │ actor de-a-cand-1" in out
    # --evidence: each finding's typed evidence, decoded (the rank_uplift time series)
    assert main(["findings", "--db", str(simulated), "--evidence"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"│ v1, series \d+\s+│", out) and re.search(r"│ v1\s+│", out)


def test_findings_of_a_file_that_is_not_duckdb(simulated: Path, capsys) -> None:
    truth = simulated.parent / "truth.json"
    one_line_exit_2(capsys, ["findings", "--db", str(truth)], f"{truth}: not a DuckDB file")
    one_line_exit_2(capsys, ["diff", str(simulated), str(truth)], f"{truth}: not a DuckDB file")
    one_line_exit_2(
        capsys,
        ["export", "--db", str(truth), "--parquet", str(simulated.parent / "x")],
        f"{truth}: not a DuckDB file",
    )
    one_line_exit_2(
        capsys,
        ["purge", "--before", "2026-01-01", "--db", str(truth)],
        f"{truth}: not a DuckDB file",
    )
    assert json.loads(truth.read_text(encoding="utf-8"))  # untouched


def test_diff_of_identical_runs_says_so(simulated: Path, capsys) -> None:
    assert main(["diff", str(simulated), str(simulated)]) == 0
    assert capsys.readouterr().out == (
        "no differences: A and B have the same 2 findings "
        "(within --effect-tol 0.01, --time-tol 0 min)\n"
    )


# -- detectors: weights and the alpha they yield -------------------------------------------
def test_detectors_show_weights_and_shares_that_add_up(tmp_path: Path, capsys) -> None:
    from detectors import REGISTRY, default_names

    assert main(["detectors"]) == 0
    out = capsys.readouterr().out
    assert "share of alpha" in out and "alpha_d (alpha = 0.01)" in out
    weights = {n: REGISTRY[n].budget_weight for n in default_names() if REGISTRY[n].budget_weight}
    total = sum(weights.values())
    for name, w in weights.items():
        assert re.search(
            rf"│ {name}\s+│[^│]+│ {w:g}\s+│ {w / total:.3f}\s+│ {0.01 * w / total:.3g}", out
        ), name
    assert re.search(r"│ total\s+│\s+│ [\d.]+\s+│ 1\.000\s+│ 0\.01 ", out)
    cfg = tmp_path / "amplimon.yaml"
    cfg.write_text(yaml.safe_dump(config_dict()), encoding="utf-8")  # alpha 0.05
    assert main(["detectors", "--config", str(cfg)]) == 0
    assert re.search(r"│ total\s+│\s+│ [\d.]+\s+│ 1\.000\s+│ 0\.05 ", capsys.readouterr().out)
