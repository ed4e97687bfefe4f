"""detectors.evidence: every real finding's evidence decodes into its struct, round-trips,
carries its bounded time series, and decoding is strict (errors as data) with a fallback for
evidence written before the schema."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
import numpy as np
import pytest

from detectors import evidence as E
from monitor.core.records import Finding
from tests.evidence_support import RealRun

_SERIES = (E.HoldoutShiftEvidence, E.ScoreShiftEvidence, E.RankUpliftEvidence)


def test_every_real_finding_decodes_into_its_struct(real: RealRun) -> None:
    detectors = set()
    for f in real.findings:
        d = E.decode_finding(f)
        assert d.error is None and not d.legacy, (f.detector, d.error)
        assert d.evidence is not None and d.evidence.version == 1
        tag = "platform_change" if f.kind == "platform_change" else f.detector
        assert f.evidence["kind"] == tag == type(d.evidence).__struct_config__.tag
        detectors.add(tag)
    assert detectors >= {
        "holdout_shift",
        "score_shift",
        "rank_uplift",
        "missing_label",
        "undisclosed_intervention",
        "platform_change",
    }


def test_round_trip_through_the_store_json(real: RealRun) -> None:
    for f in real.findings:
        text = msgspec.json.encode(f.evidence)
        d = E.decode(text.decode(), detector=f.detector)
        assert d.evidence is not None
        assert msgspec.json.encode(E.encode(d.evidence)) == text
        assert E.decode(E.encode(d.evidence)).evidence == d.evidence


def test_amplification_findings_carry_their_series(real: RealRun) -> None:
    seen = set()
    for f in real.findings:
        if f.kind not in ("amplification", "suppression"):
            continue
        ev = E.decode_finding(f).evidence
        assert isinstance(ev, _SERIES)
        s = ev.series
        assert s is not None and 0 < len(s.points) <= E.MAX_POINTS == s.max_points
        assert s.points_total >= len(s.points)
        assert [p.t for p in s.points] == sorted(p.t for p in s.points)
        # the crossing is the finding's event time and a point of its own
        assert s.crossing == f.event_time
        crossing = next(p for p in s.points if p.t == s.crossing)
        assert crossing.log_e is not None and crossing.log_threshold is not None
        assert crossing.log_e >= crossing.log_threshold == ev.test.log_threshold
        assert s.onset is not None and s.onset <= s.crossing
        # only the holdout comparison has arms; its baseline comes first
        assert s.arms == isinstance(ev, E.HoldoutShiftEvidence)
        if s.arms:
            assert s.points[0].period == "baseline" and s.step_minutes == 60
            assert any(p.exposures_per_user_holdout for p in s.points)
            assert s.onset in {p.t for p in s.points}
        seen.add(f.detector)
    assert seen == {"holdout_shift", "score_shift", "rank_uplift"}


def test_thin_bounds_the_series_and_keeps_onset_and_crossing() -> None:
    t0 = dt.datetime(2026, 5, 4, tzinfo=dt.UTC)
    points = [
        E.SeriesPoint(t=t0 + dt.timedelta(minutes=15 * k), period="window") for k in range(1000)
    ]
    onset, crossing = points[333].t, points[777].t + dt.timedelta(minutes=5)
    kept = E.thin(points, (onset, crossing), max_points=50)
    assert len(kept) <= 50 and kept[0] is points[0] and kept[-1] is points[-1]
    assert points[333] in kept and points[778] in kept  # the first point at/after each
    assert E.thin(points[:10], (onset,), max_points=50) == points[:10]


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (
            lambda ev: ev["counts"]["window"].update(exposures_ranked="many"),
            "$.counts[...].exposures_ranked",
        ),
        (lambda ev: ev["series"]["points"][0].update(t="yesterday"), "$.series.points[0].t"),
        (lambda ev: ev["test"].update(log_threshold=None), "$.test.log_threshold"),
        (lambda ev: ev.update(kind="no_such_detector"), "kind"),
    ],
)
def test_decoding_is_strict_and_errors_are_data(real: RealRun, change: Any, where: str) -> None:
    ev = msgspec.json.decode(
        msgspec.json.encode(real.finding("holdout_shift", "amplification").evidence)
    )
    change(ev)
    d = E.decode(msgspec.json.encode(ev).decode(), detector="holdout_shift")
    assert d.evidence is None and d.error is not None and where in d.error
    assert d.raw == ev  # kept for display
    for junk in ("not json", b"[1, 2]", 42):
        bad = E.decode(junk, detector="holdout_shift")
        assert bad.evidence is None and bad.error


def _as_written_before_the_schema(f: Finding) -> dict[str, Any]:
    """The real evidence as the previous version stored it: no ``kind``/``version``, the
    holdout series a list of hourly rows."""
    old = msgspec.json.decode(msgspec.json.encode(f.evidence))
    del old["kind"], old["version"]
    if "series" in old:
        old["series"] = [
            {
                "t": p["t"],
                "period": p["period"],
                "exposures_per_user_ranked": p.get("exposures_per_user_ranked"),
            }
            for p in old["series"]["points"]
        ]
    return old


def test_legacy_evidence_still_decodes(real: RealRun) -> None:
    for f in real.findings:
        old = _as_written_before_the_schema(f)
        d = E.decode(
            msgspec.json.encode(old).decode(),
            detector=f.detector,
            finding_kind=f.kind,
            subject=f.subject,
        )
        assert d.legacy and d.error is None and d.evidence is not None, (f.detector, d.error)
        if isinstance(d.evidence, _SERIES):
            assert d.dropped == ("series",) and d.evidence.series is None
    # an older dict that no longer fits at all: an error as data, the raw JSON kept
    d = E.decode({"placements": "many"}, detector="undisclosed_intervention")
    assert d.legacy and d.evidence is None and d.error and d.raw == {"placements": "many"}


def test_log_integrity_evidence_is_permissive() -> None:
    raw = {"check": "holdout_share", "observed_holdout_share": 0.08, "by_region": {"DE": 1}}
    d = E.decode(raw, detector="log_integrity")
    assert isinstance(d.evidence, E.IntegrityEvidence)
    assert d.evidence.check == "holdout_share"
    assert d.evidence.details == {k: v for k, v in raw.items() if k != "check"}
    assert E.encode(d.evidence) == {"kind": "log_integrity", "version": 1, **raw}  # flat
    named = E.decode({"gaps": []}, detector="log_integrity", subject="event_gaps").evidence
    assert isinstance(named, E.IntegrityEvidence) and named.check == "event_gaps"
    typed = E.encode(E.IntegrityEvidence(check="exposure_links", details={"unexplained": 3}))
    again = E.decode(typed).evidence
    assert isinstance(again, E.IntegrityEvidence) and again.details == {"unexplained": 3}


def test_build_rejects_a_detector_writing_a_wrong_type() -> None:
    with pytest.raises(msgspec.ValidationError, match="placements"):
        E.build("undisclosed_intervention", {"interventions": {"x": 1}, "placements": "3"})
    out = E.build(
        "undisclosed_intervention",
        {"interventions": {"x": 1}, "placements": 3, "exposure_ratio": {"ratio": float("nan")}},
    )
    assert out["kind"] == "undisclosed_intervention" and out["version"] == 1
    assert out["exposure_ratio"]["ratio"] is None  # JSON has no NaN


def test_trace_memory_is_bounded_whatever_the_stream_length() -> None:
    from detectors._trace import Trace

    trace = Trace(limit=100)
    for k in range(5000):
        trace.record(k * 900_000, 900_000, [0.1, 0.2], [float(k), 0.0])
    assert 100 <= len(trace.t_ms) <= 200 and trace.step_ms == 900_000 * 2**5
    assert set(np.diff(trace.t_ms)) == {trace.step_ms}  # evenly spaced
    assert trace.t_ms == sorted(trace.t_ms) and trace.t_ms[0] == 0


def test_thin_keeps_both_kinds_of_alternating_points() -> None:
    t0 = dt.datetime(2026, 5, 4, tzinfo=dt.UTC)
    points = [
        E.SeriesPoint(
            t=t0 + dt.timedelta(minutes=30 * k), period="window", log_e=float(k) if k % 2 else None
        )
        for k in range(600)
    ]
    kept = E.thin(points, max_points=100)
    tested = sum(p.log_e is not None for p in kept)
    assert len(kept) <= 100 and 40 <= tested <= 60
