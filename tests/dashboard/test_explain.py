"""dashboard.explain, chartdata, charts, overview: words, chart data and figures."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import msgspec
import pytest

from dashboard import chartdata, charts, explain, overview
from dashboard.data import empty_frame, open_source
from detectors import evidence as E
from monitor.core.config import load_config
from tests.dashboard import factories as F


@pytest.fixture
def config(tmp_path: Path):  # noqa: ANN201
    path = tmp_path / "amplimon.yaml"
    path.write_text(F.CONFIG_YAML)
    return load_config(path)


def row(finding) -> dict:  # noqa: ANN001
    out = msgspec.structs.asdict(finding)
    out["evidence"] = msgspec.json.encode(out["evidence"]).decode()
    return out


def test_sentence_amplification(config) -> None:  # noqa: ANN001
    text = explain.sentence(row(F.finding(detector="ranked_vs_holdout")), config)
    assert text == (
        "Candidate Jane Doe's exposure in the ranked feed rose to 1.90× (95 % CI "
        "1.50–2.40) of the holdout on chirp in DE from 4 May 12:00 UTC, with no "
        "disclosure covering it."
    )
    assert explain.sentence(row(F.finding()), config).startswith(
        "Candidate Jane Doe's exposure in the ranked feed relative to the holdout rose to "
        "1.90× (95 % CI 1.50–2.40) of its baseline level on chirp in DE"
    )
    assert "fell to 0.55×" in explain.sentence(row(F.default_findings()[1]), config)


@pytest.mark.parametrize(
    ("detector", "start"),
    [
        (
            "rank_uplift",
            "Candidate Jane Doe's items got 1.90× (95 % CI 1.50–2.40) the ranking "
            "weight their organic scores justify",
        ),
        (
            "score_shift",
            "The ranking weight of Candidate Jane Doe's items rose to 1.90× (95 % CI "
            "1.50–2.40) of its level before the window opened",
        ),
    ],
)
def test_sentence_says_what_each_detector_measures(
    config,
    detector: str,  # noqa: ANN001
    start: str,
) -> None:
    assert explain.sentence(row(F.finding(detector=detector)), config).startswith(start)


def test_sentence_other_kinds(config) -> None:  # noqa: ANN001
    label = E.decode_finding(F.default_findings()[2]).evidence
    assert isinstance(label, E.MissingLabelEvidence)  # real missing_label output
    missing = explain.sentence(row(F.default_findings()[2]), config)
    assert missing.startswith(
        f"{label.unlabelled_share:.0%} of {label.exposures:,} exposures "
        "of Media Daily News' disclosed"
    )
    lo, hi = label.unlabelled_share_ci95
    assert f"label 'promoted' (95 % CI {lo:.0%}–{hi:.0%})" in missing
    undisclosed = F.finding(
        kind="undisclosed_intervention", detector="undisclosed_intervention", p_value=None
    )
    ev = E.decode_finding(undisclosed).evidence
    assert isinstance(ev, E.UndisclosedEvidence)
    text = explain.sentence(row(undisclosed), config)
    assert (
        text.startswith(
            f"Platform chirp applied reach-test-7 to Candidate Jane Doe's items "
            f"{ev.placements:,} times in DE"
        )
        and "no disclosure covers it" in text
    )
    other = explain.sentence(row(F.finding("acc-77", kind="odd_thing", effect=None)), None)
    assert other.startswith("The holdout_shift detector flagged odd thing of account acc-77")


def test_labels_and_numbers(config) -> None:  # noqa: ANN001
    assert explain.subject_label("actor", "acc-1", config) == "Candidate Jane Doe"
    assert explain.subject_label("actor", "acc-1", None) == "account acc-1"
    assert explain.subject_label("group", "party-a", config) == "all 2 accounts of group party-a"
    assert explain.subject_label("group", "party-a", None) == "group party-a (all its accounts)"
    assert explain.subject_label("actor", "acc-4", config) == "Party account Party A"
    assert explain.headline(row(F.finding()), config) == (
        "Candidate Jane Doe — amplification 1.90× on chirp in DE"
    )
    numbers = dict(explain.numbers(row(F.finding())))
    assert numbers["95 % confidence interval"] == "1.50 – 2.40"
    assert numbers["p-value (always-valid, adjusted)"] == "0.001"
    assert numbers["Effect (ranked ÷ holdout exposure ratio, window ÷ baseline)"] == "1.90×"
    tiny = dict(explain.numbers(row(F.finding(p_value=1e-300))))
    assert tiny["p-value (always-valid, adjusted)"] == "<1e-12"  # as the CLI, never "0"
    assert (
        dict(explain.numbers(row(F.finding(p_value=0.0))))["p-value (always-valid, adjusted)"]
        == "<1e-12"
    )
    assert explain.fmt_time(None) == "—"
    assert explain.evidence_of({"evidence": "not json"}) == {}


def test_chart_frames_from_evidence_and_amplification(tmp_path: Path, config) -> None:  # noqa: ANN001
    snap = open_source(
        F.write_db(tmp_path / "o.duckdb", F.default_findings(), F.default_measurements())
    ).load()
    first = snap.findings[snap.findings["subject"] == "acc-1"].iloc[0].to_dict()
    frames = chartdata.chart_frames(first, snap.amplification, config)
    assert set(frames) == {
        "exposure_over_time",
        "exposure_per_period",
        "sequential_statistic",
        "effect_ci",
        "disclosures_checked",
    }
    series = frames["exposure_over_time"]  # the real holdout_shift series
    assert list(series.columns) == chartdata.SERIES_COLUMNS
    assert series["is_onset"].sum() == 1 and series["is_crossing"].sum() == 1
    crossing = series[series["is_crossing"]].iloc[0]
    assert crossing["log_e"] >= crossing["log_threshold"]
    assert series["ranked_per_user"].notna().any() and series["holdout_per_user"].notna().any()
    seq = frames["sequential_statistic"]  # per look, from the series
    assert seq["t"].notna().all() and len(seq) == series["log_e"].notna().sum()
    per = frames["exposure_per_period"]
    assert list(per["period"]) == ["baseline", "window"]
    assert per["ranked_per_user"].iloc[0] == pytest.approx(0.9)
    # holdout_shift's effect (window ÷ baseline of the ratio) is not the per-period ratio:
    # they are not drawn on one axis, where they would read as a contradiction
    assert list(frames["effect_ci"]["estimate"]) == ["finding effect (holdout_shift)"]
    assert list(frames["effect_ci"]["measures"]) == [
        "ranked ÷ holdout exposure ratio, window ÷ baseline"
    ]
    undisclosed = {**first, "detector": "undisclosed_intervention"}
    frames_u = chartdata.chart_frames(undisclosed, snap.amplification, config)
    assert list(frames_u["effect_ci"]["estimate"]) == [
        "finding effect (undisclosed_intervention)",
        "baseline ratio (DE)",
        "window ratio (DE)",
    ]
    assert not frames["disclosures_checked"]["names_subject"].any()
    label = snap.findings[snap.findings["kind"] == "missing_label"].iloc[0].to_dict()
    typed = E.decode_finding(label).evidence
    assert isinstance(typed, E.MissingLabelEvidence) and typed.test is not None
    frames = chartdata.chart_frames(label, snap.amplification, config)
    seq = frames["sequential_statistic"]
    assert seq["t"].isna().all() and seq["statistic"].iloc[0] == pytest.approx(typed.test.log_e_max)
    assert "unlabelled share" in set(frames["effect_ci"]["estimate"])


def test_series_and_statistic_from_typed_evidence_only(real) -> None:  # noqa: ANN001
    score = E.decode_finding(real.finding("score_shift")).evidence
    s = chartdata.series(score)
    assert s is not None and s["ranked_per_user"].isna().all()  # no arms: the test only
    assert s["log_e"].notna().any() and s["is_crossing"].sum() == 1
    assert chartdata.series(None) is None and chartdata.sequential(None) is None
    # the keys an earlier chartdata guessed no longer make a chart
    guessed = {
        "evidence": '{"series": [{"t": 1, "ranked": 2, "holdout": 1}]}',
        "detector": "holdout_shift",
        "kind": "amplification",
    }
    assert chartdata.series(explain.typed_evidence(guessed).evidence) is None


def test_every_chart_renders_png_and_svg(tmp_path: Path, config) -> None:  # noqa: ANN001
    snap = open_source(
        F.write_db(tmp_path / "o.duckdb", F.default_findings(), F.default_measurements())
    ).load()
    first = snap.findings[snap.findings["subject"] == "acc-1"].iloc[0].to_dict()
    frames = chartdata.chart_frames(first, snap.amplification, config)
    figs = [
        charts.exposure_over_time(frames["exposure_over_time"]),
        charts.exposure_per_period(frames["exposure_per_period"]),
        charts.sequential_statistic(frames["sequential_statistic"]),
        charts.effect_ci(frames["effect_ci"]),
        charts.timeline(
            [
                {
                    "window_id": "w",
                    "name": "W",
                    "jurisdiction": "DE",
                    "start": F.T0,
                    "end": F.T0 + dt.timedelta(days=1),
                    "baseline_start": F.T0 - dt.timedelta(days=1),
                    "baseline_end": F.T0,
                }
            ],
            snap.findings,
            F.T0,
        ),
        charts.forest(overview.forest_rows(snap.amplification, config, overview.OverviewFilters())),
    ]
    assert charts.png(figs[0]).startswith(b"\x89PNG")
    assert b"<svg" in charts.svg(figs[-1])
    for fig in figs[1:-1]:
        assert charts.png(fig, dpi=40).startswith(b"\x89PNG")


def test_forest_rows_filters_labels_and_disclosure(tmp_path: Path, config) -> None:  # noqa: ANN001
    amp = (
        open_source(F.write_db(tmp_path / "o.duckdb", [], F.default_measurements()))
        .load()
        .amplification
    )
    rows = overview.forest_rows(amp, config, overview.OverviewFilters())
    assert set(rows["subject"]) == {"acc-1", "acc-2", "acc-3", "party-a"}
    media = rows[rows["subject"] == "acc-3"]
    assert media["disclosed"].all() and (rows[rows["subject"] != "acc-3"]["disclosed"] == 0).all()
    assert rows["label"].iloc[0].startswith("Candidate Jane Doe")  # most amplified first
    only = overview.forest_rows(
        amp,
        config,
        overview.OverviewFilters(window="de-2026", period=("window",), subject_kind=("group",)),
    )
    assert list(only["subject"]) == ["party-a"] and list(only["period"]) == ["window"]
    assert only["amplification_pct"].iloc[0] == pytest.approx((1.3 * 0.9 - 1) * 100)
    assert overview.forest_rows(amp, None, overview.OverviewFilters(region=("FR",))).empty
    capped = overview.forest_rows(amp, None, overview.OverviewFilters(max_subjects=2))
    assert capped["subject"].nunique() == 2
    assert overview.options(amp)["region"] == ["AT", "DE"]


def _legacy(f) -> dict:  # noqa: ANN001
    """A real finding's evidence as the version before the schema stored it (no kind, no
    version, the series a list of hourly rows)."""
    old = msgspec.json.decode(msgspec.json.encode(f.evidence))
    del old["kind"], old["version"]
    old["series"] = [{"t": p["t"], "period": p["period"]} for p in old["series"]["points"]]
    return old


def test_legacy_evidence_still_displays(config) -> None:  # noqa: ANN001
    f = row(F.finding(evidence=_legacy(F.finding()), ci=None))
    f["ci_low"], f["ci_high"] = 1.3, None  # an open upper confidence bound
    d = explain.typed_evidence(f)
    assert d.legacy and d.error is None and d.dropped == ("series",)
    frames = chartdata.chart_frames(f, empty_frame("amplification"), config)
    assert "exposure_over_time" not in frames  # the old series is not guessed at
    seq = frames["sequential_statistic"]
    assert list(seq["label"]) == ["when crossed", "latest", "maximum"]
    per = frames["exposure_per_period"]  # from the detector's counts
    assert list(per["period"]) == ["baseline", "window"]
    assert charts.png(charts.sequential_statistic(seq), dpi=40).startswith(b"\x89PNG")
    assert "(95 % CI ≥ 1.30)" in explain.sentence(f, config)
    assert dict(explain.numbers(f))["95 % confidence interval"] == "≥ 1.30"


def test_disclosed_kind_names_the_disclosure(config) -> None:  # noqa: ANN001
    ev = F.series_evidence()  # real holdout_shift evidence, covered by the configured one
    ev = {**ev, "covering_disclosures": [d.model_dump(mode="json") for d in config.disclosures]}
    text = explain.sentence(row(F.finding("acc-3", kind="disclosed", evidence=ev)), config)
    assert text.endswith("covered by the disclosure civic-info-1.")
