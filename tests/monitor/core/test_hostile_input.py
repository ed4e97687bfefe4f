"""Hostile input at the contract decoder: any bytes on either topic, any parsed object, and
the named nasty cases (deep nesting, NaN/Infinity, far-away and malformed timestamps, odd
unicode in ids, huge slates, thousands of unknown fields) become a valid event or a rejection
with a one-line reason naming the field — bounded in memory, never a crash or a hang."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz.properties import check_decode, check_decode_obj
from fuzz.strategies import (
    TS_BOUNDS,
    TS_TEXT,
    python_values,
    raw_records,
    record_objects,
    surrogates,
)
from monitor.core.contract import Exposure, Ranking, Rejected, decode, decode_obj
from monitor.core.records import DeadLetter
from monitor.core.store import Store
from tests.factories import exposure, ranking, slot
from tests.memory_support import peak_memory

FAST = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
MEMORY_LIMIT = 200 * 2**20  # generous: these inputs are at most ~10 MB of JSON


def enc(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def rejected(result: Any, *fragments: str) -> str:
    assert isinstance(result, Rejected), result
    for fragment in fragments:
        assert fragment in result.reason, result.reason
    return result.reason


# -- properties ----------------------------------------------------------------------------
@FAST
@given(
    st.sampled_from(["exposure", "ranking"]).flatmap(
        lambda t: st.tuples(st.just(t), raw_records(t))
    )
)
def test_any_bytes_on_a_topic_become_an_event_or_a_one_line_reason(case: tuple[str, bytes]) -> None:
    check_decode(*case)


@FAST
@given(
    st.sampled_from(["exposure", "ranking"]).flatmap(
        lambda t: st.tuples(
            st.just(t),
            st.one_of(
                st.text(st.characters() | surrogates, max_size=200),
                raw_records(t).map(lambda b: b.decode("utf-8", "surrogateescape")),
            ),
        )
    )
)
def test_any_str_including_lone_surrogates_becomes_an_event_or_a_reason(
    case: tuple[str, str],
) -> None:
    check_decode(*case)


@FAST
@given(
    st.sampled_from(["exposure", "ranking"]).flatmap(
        lambda t: st.tuples(st.just(t), record_objects(t, python_values))
    )
)
def test_any_parsed_object_becomes_an_event_or_a_one_line_reason(case: tuple[str, Any]) -> None:
    check_decode_obj(*case)


# -- deep nesting --------------------------------------------------------------------------
DEPTH = 100_000


def nest_text(opener: str, closer: str, closed: bool, core: str = "0") -> str:
    return opener * DEPTH + (core + closer * DEPTH if closed else "")


def nest_obj(kind: str) -> Any:
    """100,000 levels of lists or dicts, built without recursion."""
    root: Any = [] if kind == "list" else {}
    cur = root
    for _ in range(DEPTH):
        child: Any = [] if kind == "list" else {}
        if kind == "list":
            cur.append(child)
        else:
            cur["a"] = child
        cur = child
    return root


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("opener", "closer"), [("[", "]"), ("{", "}"), ('{"a":', "}")])
@pytest.mark.parametrize("closed", [True, False])
@pytest.mark.parametrize("where", ["whole", "unknown", "items", "score", "interventions"])
def test_deep_nesting_is_rejected_or_ignored_within_bounds(
    opener: str, closer: str, closed: bool, where: str
) -> None:
    inner = nest_text(opener, closer, closed)
    topic = "ranking"
    if where == "whole":
        raw = inner
    elif where == "unknown":
        raw = enc(ranking()).decode()[:-1] + f', "x": {inner}}}'
    elif where == "items":
        raw = enc(ranking()).decode().replace('"items": [', f'"items": [{inner}, ', 1)
    else:
        raw = enc(ranking([slot(score=12345.5, interventions=["PLACEHOLDER"])])).decode()
        target = "12345.5" if where == "score" else '["PLACEHOLDER"]'
        raw = raw.replace(target, inner)
    with peak_memory(MEMORY_LIMIT):
        result = check_decode(topic, raw.encode())
    assert isinstance(result, Rejected)  # every variant is malformed or too deep


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["list", "dict"])
@pytest.mark.parametrize("where", ["whole", "unknown", "user", "items", "score"])
def test_deep_nesting_in_parsed_objects(kind: str, where: str) -> None:
    deep = nest_obj(kind)
    obj: Any
    if where == "whole":
        obj = deep
    elif where == "unknown":
        obj = ranking(x=deep)
    elif where == "user":
        obj = ranking(user=deep)
    elif where == "items":
        obj = ranking([deep])
    else:
        obj = ranking([slot(score=deep)])
    with peak_memory(MEMORY_LIMIT):
        result = check_decode_obj("ranking", obj)
    assert isinstance(result, Ranking if where == "unknown" else Rejected)


def test_regression_closed_object_nesting_used_to_raise_recursion_error() -> None:
    reason = rejected(decode("exposure", nest_text('{"a":', "}", True).encode()))
    assert reason == "exposure: JSON nested too deeply"


# -- non-finite and out-of-range numbers ---------------------------------------------------
@pytest.mark.parametrize(
    "token", ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "nan", "inf", "1e309", "-0e999999"]
)
@pytest.mark.parametrize("name", ["score", "organic_score"])
def test_non_finite_scores_in_json(token: str, name: str) -> None:
    raw = enc(ranking([slot(**{name: 12345.5})])).replace(b"12345.5", token.encode())
    result = check_decode("ranking", raw)
    if token == "-0e999999":  # a zero, however written, is a finite score
        assert isinstance(result, Ranking)
    elif "999" in token or token == "1e309":
        rejected(result, f"ranking.items[0].{name}: number out of range")
    else:  # not JSON at all
        rejected(result, "ranking: not valid JSON")


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, float("1e999")])
@pytest.mark.parametrize("name", ["score", "organic_score"])
def test_non_finite_scores_in_parsed_rows(value: float, name: str) -> None:
    result = check_decode_obj("ranking", ranking([slot(), slot(position=2, **{name: value})]))
    rejected(result, f"ranking.items[1].{name}: expected a finite number, got {value!r}")


def test_regression_nan_position_is_shown_as_nan_not_null() -> None:
    reason = rejected(decode_obj("exposure", exposure(position=math.nan)))
    assert reason == "exposure.position: expected integer, got nan"


# -- timestamps ----------------------------------------------------------------------------
HOSTILE_TS: list[Any] = [
    *TS_TEXT,
    *TS_BOUNDS,
    -(10**20),
    10**30,
    2**63,
    2**64,
    -(2**63) - 1,
    10**400,
    1.7775936e12,
    True,
    None,
    [],
    {},
]


@pytest.mark.parametrize("ts", HOSTILE_TS, ids=repr)
def test_hostile_timestamps_accepted_in_range_or_rejected_naming_ts(ts: Any) -> None:
    for result in (
        check_decode("exposure", enc(exposure(ts=ts))),
        check_decode_obj("exposure", exposure(ts=ts)),
    ):
        if isinstance(result, Rejected):
            assert result.reason.startswith("exposure.ts: "), result.reason


def test_regression_huge_int_timestamp_in_a_parsed_row() -> None:
    # repr() of an int over 4300 digits raises ValueError; the reason must still be built.
    reason = rejected(decode_obj("exposure", exposure(ts=10**5000)))
    assert reason.startswith("exposure.ts: out of range")


# -- unicode in ids ------------------------------------------------------------------------
UNICODE_IDS = [
    "𝕏😀",
    "\U0010ffff",
    "\u202eevil\u202c",
    "مرحبا",
    "a\x00b",
    "e\u0301\u0301",
    "\ufeffbom",
    "a\u200db",
    "\u2028",
    "\x85",
    "x" * 512,
]
BAD_ESCAPES = ["\\ud800", "\\udfff", "\\udc00\\ud800", "x\\ud83d", "\\ud83d"]
BAD_BYTES = [b"\xed\xa0\x80", b"\xff", b"\xc0\xaf", b"\xf4\x90\x80\x80", b"\xe2\x82"]


@pytest.mark.parametrize("value", UNICODE_IDS, ids=repr)
def test_unicode_ids_are_accepted_and_round_trip_through_duckdb(value: str) -> None:
    with Store(":memory:") as store:
        for i, name in enumerate(["event_id", "user", "item", "actor", "platform", "surface"]):
            rec = exposure(**{name: value})
            event = check_decode("exposure", json.dumps(rec, ensure_ascii=False).encode())
            assert isinstance(event, Exposure) and getattr(event, name) == value
            assert check_decode_obj("exposure", rec) == event
            store.add_deadletters(
                [DeadLetter(source=getattr(event, name), raw=value, reason=value, location=str(i))]
            )
        rows = store.query("SELECT source, raw, reason FROM deadletter")
        assert rows == [(value,) * 3] * 6


@pytest.mark.parametrize("escape", BAD_ESCAPES)
def test_lone_surrogate_escapes_are_rejected(escape: str) -> None:
    raw = enc(exposure(user="PLACEHOLDER")).replace(b"PLACEHOLDER", escape.encode())
    rejected(check_decode("exposure", raw), "exposure: not valid JSON")


@pytest.mark.parametrize("bad", BAD_BYTES)
@pytest.mark.parametrize("where", ["user", "unknown", "key"])
def test_invalid_utf8_is_rejected_or_ignored(bad: bytes, where: str) -> None:
    rec = exposure(user="PLACEHOLDER", position=0)  # invalid: forces the slow reason path
    raw = enc(rec)
    if where == "user":
        raw = raw.replace(b"PLACEHOLDER", bad)
    elif where == "unknown":
        raw = raw[:-1] + b', "x": "' + bad + b'"}'
    else:
        raw = raw[:-1] + b', "' + bad + b'": 1}'
    result = check_decode("exposure", raw)
    rejected(result)
    assert "\ufffd" in result.raw or bad.isascii()  # shown, replaced, in the dead letter


def test_regression_invalid_utf8_used_to_raise_unicode_decode_error() -> None:
    raw = enc(exposure(user="PLACEHOLDER")).replace(b"PLACEHOLDER", b"\xff")
    assert rejected(decode("exposure", raw)) == "exposure: not valid UTF-8 text"


@pytest.mark.parametrize("name", ["user", "label", "request", "event_id"])
def test_regression_lone_surrogates_in_parsed_rows_are_rejected(name: str) -> None:
    # Accepted before: the id could then never be written to DuckDB or Kafka (not UTF-8).
    reason = rejected(check_decode_obj("exposure", exposure(**{name: "a\ud800"})))
    assert reason.startswith(f"exposure.{name}: not valid Unicode (lone surrogate)")
    reason = rejected(
        check_decode_obj(
            "ranking", ranking([slot(), slot(position=2, interventions=["ok", "\udfff"])])
        )
    )
    assert reason.startswith("ranking.items[1].interventions[1]: not valid Unicode")


@pytest.mark.parametrize(
    "obj",
    [
        {1: 2, "a": 3},  # mixed keys: sorted JSON of the raw text failed with TypeError
        exposure(position=object()),  # no JSON form: _show failed with TypeError
        exposure(user=1, extra="\ud800"),  # raw text: UnicodeEncodeError
        exposure(**{"\ud800": 1}),
    ],
    ids=["mixed-keys", "object", "surrogate-elsewhere", "surrogate-key"],
)
def test_regression_unencodable_parsed_rows_still_give_a_dead_letter(obj: Any) -> None:
    rejected(check_decode_obj("exposure", obj))


def test_str_input_with_lone_surrogates_is_rejected_with_clean_raw_text() -> None:
    result = check_decode("exposure", json.dumps(exposure(user="x\ud800"), ensure_ascii=False))
    assert rejected(result) == "exposure: not valid Unicode (lone surrogate)"
    assert "\ud800" not in result.raw and result.raw.endswith("}")


@pytest.mark.parametrize("region", ["DE\n", "de-by\n", " DE", "DE ", "ＤＥ", "D\u0130", "DE-\n"])
def test_regression_region_with_trailing_newline_or_lookalikes_is_rejected(region: str) -> None:
    # "DE\n" used to pass the region pattern ($ matches before a final newline).
    for result in (
        check_decode("exposure", enc(exposure(region=region))),
        check_decode_obj("exposure", exposure(region=region)),
    ):
        rejected(result, "exposure.region: expected string matching regex")


# -- size ----------------------------------------------------------------------------------
def huge_slate() -> dict[str, Any]:
    return ranking([slot(item=f"i{i}", position=i + 1) for i in range(100_000)])


@pytest.mark.timeout(60)
@pytest.mark.parametrize("via", ["json", "object"])
def test_slate_of_100000_items_is_rejected_by_the_length_limit(via: str) -> None:
    obj = huge_slate()
    raw = enc(obj) if via == "json" else None
    check: Callable[[], Any] = (
        (lambda: check_decode("ranking", raw))
        if raw is not None
        else (lambda: check_decode_obj("ranking", obj))
    )
    with peak_memory(MEMORY_LIMIT):
        result = check()
    rejected(result, "ranking.items: expected array of length <= 10000")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("via", ["json", "object"])
def test_exposure_with_10000_unknown_fields_is_accepted(via: str) -> None:
    obj = exposure(**{f"x{i}": [i, {"k": "v" * (i % 7)}] for i in range(10_000)})
    with peak_memory(MEMORY_LIMIT):
        result = (
            check_decode("exposure", enc(obj))
            if via == "json"
            else check_decode_obj("exposure", obj)
        )
    assert isinstance(result, Exposure)
