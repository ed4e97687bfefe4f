"""Configuration typos are errors (issue 11 item 4): every unknown key, detector, detector
parameter and registry reference is refused with one line naming it and the nearest known
name; nothing falls back to a default silently."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from detectors import build
from detectors.ledger import ExposureLedger
from monitor.cli import main
from monitor.core.config import ConfigError, Detection, parse_config
from tests.factories import config, config_dict


def refused(d: dict) -> str:
    with pytest.raises(ConfigError) as err:
        parse_config(d, source="amplimon.yaml")
    message = str(err.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda d: d.update(windws=d.pop("windows")),
            "amplimon.yaml: windws: unknown key; did you mean 'windows'?",
        ),
        (
            lambda d: d.update(actor_file="a.csv"),
            "amplimon.yaml: actor_file: unknown key; did you mean 'actors_file'?",
        ),
        (
            lambda d: d["windows"][0].update(strat=d["windows"][0].pop("start")),
            "amplimon.yaml: windows[0].strat: unknown key; did you mean 'start'?",
        ),
        (
            lambda d: d["windows"][0].update(
                baseline={"start": "2026-05-01T00:00:00Z", "ned": "2026-05-04T00:00:00Z"}
            ),
            "amplimon.yaml: windows[0].baseline.ned: unknown key; did you mean 'end'?",
        ),
        (
            lambda d: d["actors"][1].update(grup="party-a"),
            "amplimon.yaml: actors[1].grup: unknown key; did you mean 'group'?",
        ),
        (
            lambda d: d["disclosures"][0].update(lable="promoted"),
            "amplimon.yaml: disclosures[0].lable: unknown key; did you mean 'label'?",
        ),
        (
            lambda d: d.update(platforms={"chirp": {"holdout_shar": 0.2}}),
            "amplimon.yaml: platforms.chirp.holdout_shar: unknown key; did you mean 'holdout_share'?",
        ),
        (
            lambda d: d["detection"].update(alpah=0.05),
            "amplimon.yaml: detection.alpah: unknown key; did you mean 'alpha'?",
        ),
        (
            lambda d: d["detection"].update(holdout_shfit={"tau": 0.5}),
            "amplimon.yaml: detection.holdout_shfit: unknown key; did you mean 'holdout_shift'?",
        ),
        (
            lambda d: d["detection"].update(holdout_shift={"tau_scal": 0.5}),
            "amplimon.yaml: detection.holdout_shift.tau_scal: unknown parameter of holdout_shift; did "
            "you mean 'tau_scale'?",
        ),
        (
            lambda d: d["detection"].update(missing_label={"tolerence": 0.02}),
            "amplimon.yaml: detection.missing_label.tolerence: unknown parameter of missing_label; did "
            "you mean 'tolerance'?",
        ),
        (
            lambda d: d["detection"].update(holdout_shift=0.5),
            "amplimon.yaml: detection.holdout_shift: expected a mapping of holdout_shift's parameters",
        ),
        (
            lambda d: d["detection"].update(zzz=1),
            "amplimon.yaml: detection.zzz: unknown key (known: alpha, amplification, holdout_shift, ",
        ),
    ],
)
def test_a_typo_is_an_error_naming_the_nearest_known_key(mutate, message: str) -> None:
    d = config_dict()
    mutate(d)
    assert refused(d).startswith(message)


def test_a_misspelt_required_key_is_named_as_the_typo_not_as_missing() -> None:
    d = config_dict()
    d["windows"][0]["ned"] = d["windows"][0].pop("end")
    assert refused(d) == "amplimon.yaml: windows[0].ned: unknown key; did you mean 'end'?"


def test_every_detector_parameter_is_accepted() -> None:
    # the real keyword arguments pass: the check reads each detector's signature
    cfg = parse_config(
        config_dict(
            detection={
                "alpha": 0.05,
                "holdout_shift": {"tau_scale": 0.5, "min_items": 3},
                "missing_label": {"tolerance": 0.02},
                "log_integrity": {"link_hours": 3},
                "undisclosed_intervention": None,
            }
        )
    )
    assert cfg.detection.params("holdout_shift") == {"tau_scale": 0.5, "min_items": 3}
    assert cfg.detection.alpha == 0.05


@pytest.mark.parametrize(
    ("field", "names", "message"),
    [
        (
            "actors",
            ["acc-22"],
            "amplimon.yaml: disclosures[0].actors: actor 'acc-22' is not in the "
            "actor registry; did you mean 'acc-2'?",
        ),
        (
            "actors",
            ["someone"],
            "amplimon.yaml: disclosures[0].actors: actor 'someone' is not in the actor registry",
        ),
        (
            "groups",
            ["party-b"],
            "amplimon.yaml: disclosures[0].groups: group 'party-b' is not in the "
            "actor registry; did you mean 'party-a'?",
        ),
    ],
)
def test_a_disclosure_naming_an_unknown_actor_or_group_is_an_error(
    field: str, names: list[str], message: str
) -> None:
    d = config_dict()
    d["disclosures"][0][field] = names
    assert refused(d) == message


def test_actors_from_the_actors_file_are_registered(tmp_path: Path) -> None:
    (tmp_path / "actors.csv").write_text(
        "actor,name,kind,group,regions\nacc-9,Nine,party,party-b,DE\n", encoding="utf-8"
    )
    d = config_dict(actors_file="actors.csv")
    d["disclosures"][0].update(actors=["acc-9"], groups=["party-b"])
    cfg = parse_config(d, base_dir=tmp_path)
    assert cfg.disclosures[0].actors == ("acc-9",)


def test_build_checks_sections_the_configuration_could_not(tmp_path: Path) -> None:
    # a Detection made before any detector was declared (here: constructed unvalidated) still
    # cannot reach the detectors with a misspelt section
    detection = Detection.model_construct(alpha=0.05, holdout_shfit={"tau": 1.0})
    cfg = config().model_copy(update={"detection": detection})
    with pytest.raises(
        ConfigError,
        match=r"^detection\.holdout_shfit: unknown key; did you "
        r"mean 'holdout_shift'\?$",
    ):
        build(cfg, ExposureLedger(cfg))


def test_check_sections_against_a_given_catalogue() -> None:
    detection = Detection.model_construct(alpha=0.05, sharp={"a": 1, "c": 2})
    detection.check_sections({"sharp": frozenset({"a", "b", "c"})})
    with pytest.raises(
        ValueError,
        match=r"^sharp\.c: unknown parameter of sharp \(known: a, "
        r"b\)$",
    ):
        detection.check_sections({"sharp": frozenset({"a", "b"})})
    detection.check_sections({"sharp": None})  # a detector taking **kwargs


def test_cli_refuses_a_typo_with_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    d = config_dict()
    d["detection"] = {"alpah": 0.05}  # used to run with the default alpha 0.01
    path = tmp_path / "amplimon.yaml"
    path.write_text(yaml.safe_dump(d), encoding="utf-8")
    src = tmp_path / "e.jsonl"
    src.write_text("", encoding="utf-8")
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
        == 2
    )
    err = capsys.readouterr().err
    assert err == "amplimon: amplimon.yaml: detection.alpah: unknown key; did you mean 'alpha'?\n"
    assert not (tmp_path / "o.duckdb").exists()
