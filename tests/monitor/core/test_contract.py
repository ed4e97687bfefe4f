"""The contract decoder: valid records pass, every breakage names its field, nothing crashes."""

from __future__ import annotations

import json

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.core.contract import Exposure, Ranking, Rejected, decode, decode_obj
from tests.factories import T0, exposure, ranking, slot


def enc(obj: object) -> bytes:
    return json.dumps(obj).encode()


def test_valid_exposure_normalises_ts_and_region() -> None:
    e = decode("exposure", enc(exposure(ts="2026-05-01T02:00:00+02:00", region="de-by")))
    assert isinstance(e, Exposure)
    assert e.ts == T0
    assert e.region == "DE-BY"


@pytest.mark.parametrize(
    "ts", ["2026-05-01T00:00:00Z", "2026-05-01T00:00:00+00:00", "2026-04-30T19:00:00-05:00", T0]
)
def test_timestamp_forms_agree(ts: object) -> None:
    e = decode("exposure", enc(exposure(ts=ts)))
    assert isinstance(e, Exposure) and e.ts == T0


def test_valid_ranking_with_optional_fields() -> None:
    r = decode(
        "ranking",
        enc(
            ranking([slot(), slot(item="i2", position=2, organic_score=None, interventions=["x"])])
        ),
    )
    assert isinstance(r, Ranking)
    assert r.items[1].interventions == ["x"]
    assert r.items[1].organic_score is None


def test_unknown_fields_are_tolerated() -> None:
    assert isinstance(decode("exposure", enc(exposure(extra_field={"a": 1}))), Exposure)


BREAKAGES = [
    ("exposure", b'{"event_id": "e1", "platform": "chir', "exposure: truncated JSON"),
    ("exposure", b"this is not json", "exposure: not valid JSON"),
    (
        "exposure",
        enc({k: v for k, v in exposure().items() if k != "user"}),
        "exposure.user: required field is missing",
    ),
    ("exposure", enc(exposure(position="3")), 'exposure.position: expected integer, got "3"'),
    ("exposure", enc(exposure(ts="yesterday")), "exposure.ts: expected RFC 3339"),
    (
        "exposure",
        enc(exposure(ts="2026-05-01T00:00:00")),
        "exposure.ts: RFC 3339 timestamp needs an offset",
    ),
    (
        "exposure",
        enc(exposure(arm="treatment")),
        "exposure.arm: expected one of 'ranked', 'holdout', got \"treatment\"",
    ),
    ("exposure", enc(exposure(position=0)), "exposure.position: expected integer >= 1, got 0"),
    ("exposure", enc(exposure(user="")), "exposure.user: expected string of length >= 1"),
    ("exposure", enc(exposure(ts=12)), "exposure.ts: out of range"),
    ("exposure", b"[1, 2]", "exposure: expected a JSON object"),
    ("ranking", enc(ranking([])), "ranking.items: expected array of length >= 1, got []"),
    (
        "ranking",
        enc(ranking([slot(score="high")])),
        'ranking.items[0].score: expected number, got "high"',
    ),
    ("ranking", b'{"score": NaN}', "ranking: not valid JSON"),
    (
        "ranking",
        enc(ranking([slot(score=7.5)])).replace(b"7.5", b"1e999"),
        "ranking.items[0].score: number out of range",
    ),
    (
        "ranking",
        enc(ranking([slot(score=7.5)])).replace(b"7.5", b"Infinity"),
        "ranking: not valid JSON",
    ),
    (
        "ranking",
        enc({k: v for k, v in ranking().items() if k != "request"}),
        "ranking.request: required field is missing",
    ),
]


@pytest.mark.parametrize(("topic", "raw", "reason"), BREAKAGES)
def test_breakage_reason_names_the_field(topic: str, raw: bytes, reason: str) -> None:
    result = decode(topic, raw)
    assert isinstance(result, Rejected)
    assert result.reason.startswith(reason), result.reason
    assert "\n" not in result.reason
    assert result.raw == raw.decode()


def test_decode_obj_matches_decode_for_parquet_rows() -> None:
    good = decode_obj("ranking", ranking())
    assert isinstance(good, Ranking)
    bad = decode_obj("exposure", exposure(position=0))
    assert isinstance(bad, Rejected)
    assert bad.reason == "exposure.position: expected integer >= 1, got 0"


def test_boolean_is_not_an_integer() -> None:
    result = decode("exposure", enc(exposure(position=True)))
    assert isinstance(result, Rejected) and "exposure.position" in result.reason


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(["exposure", "ranking"]))
def test_any_bytes_become_an_event_or_a_reason(raw: bytes, topic: str) -> None:
    result = decode(topic, raw)
    assert isinstance(result, (Exposure, Ranking, Rejected))
    if isinstance(result, Rejected):
        assert result.reason.startswith(topic) and "\n" not in result.reason


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(list(exposure().keys()) + ["items", "x"]), json_values))
def test_any_json_object_becomes_an_event_or_a_reason(obj: dict) -> None:
    merged = {**exposure(), **obj}
    result = decode("exposure", msgspec.json.encode(merged))
    assert isinstance(result, (Exposure, Rejected))
    if isinstance(result, Rejected):
        assert result.reason.startswith("exposure")
