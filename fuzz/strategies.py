"""Hypothesis strategies for hostile input.

Plain garbage (any bytes, any text) rarely gets past a JSON or YAML parser, so every strategy
also produces *near-valid* input: a valid record or configuration from ``tests/factories.py``
with a few fields dropped, retyped or replaced by hostile values (NaN, 1e999, 2**64, lone
surrogates, RTL overrides, NUL, far-away or malformed timestamps, deep nesting), optionally
with a few bytes spliced in.  That is what reaches the validators, the reason builder, the
engine and the store.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
from typing import Any

import yaml
from hypothesis import strategies as st

from tests.factories import HOUR, T0, config_dict, exposure, ranking, slot

__all__ = [
    "config_objects",
    "config_texts",
    "hostile_text",
    "json_values",
    "kafka_batches",
    "line_files",
    "python_values",
    "raw_records",
    "record_objects",
    "surrogates",
]

TOPICS = ("exposure", "ranking")
LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"

# -- scalars -------------------------------------------------------------------------------
HUGE_INTS = (2**31, 2**53 + 1, 2**63, 2**64, -(2**63) - 1, 10**30, -(10**30), 10**400)
SPECIAL_TEXT = (
    "",
    " ",
    "\x00",
    "a\x00b",
    "\ud800",
    "\udfff",
    "\udc00\ud800",
    "x\ud83d",
    "😀",
    "𝕏𝔸",
    "\U0010ffff",
    "\u202eevil\u202c",
    "مرحبا",
    "שלום",
    "e\u0301\u0301\u0301",
    "\ufeff",
    "a\u200db",
    "\u2028",
    "\x85",
    "\r\n",
    "\t",
    "x" * 513,
    "DE",
    "de-by",
    "ranked",
    "holdout",
    "null",
    "NaN",
    '"',
    "\\",
    "{}",
    "[]",
    "DE\n",
    "de-by\n",
    " DE",
    "ＤＥ",
    "D\u0130",
)
TS_TEXT = (
    "2026-05-01T00:00:00Z",
    "2026-05-01T02:00:00+02:00",
    "2026-05-01T00:00:00-23:59",
    "2026-05-01T00:00:00+24:00",
    "2026-05-01T00:00:00+99:99",
    "2026-13-01T00:00:00Z",
    "2026-02-30T00:00:00Z",
    "2026-05-01T24:00:00Z",
    "2026-05-01T23:59:60Z",
    "0000-01-01T00:00:00Z",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59.999999999Z",
    "9999-12-31T23:59:59-23:59",
    "99999-01-01T00:00:00Z",
    "-2026-05-01T00:00:00Z",
    "2026-05-01",
    "2026-05-01T00:00:00",
    "2026-05-01 00:00:00Z",
    "2026-05-01t00:00:00z",
    "2026-05-01T00:00:00.Z",
    "2026-05-01T00:00:00,5Z",
    "2026-05-01T00:00:00.1234567890123Z",
    "２０２６-05-01T00:00:00Z",
    "1777593600000",
    "",
    "now",
    "1999-12-31T23:59:59.999Z",
    "2100-01-01T00:00:00Z",
)
TS_BOUNDS = (
    946_684_800_000 - 1,
    946_684_800_000,
    4_102_444_800_000 - 1,
    4_102_444_800_000,
    0,
    -1,
    T0,
)

surrogates = st.characters(categories=["Cs"])
hostile_text = st.one_of(
    st.text(max_size=12),
    st.sampled_from(SPECIAL_TEXT),
    st.text(st.characters(codec=None) | surrogates, max_size=6),
)
hostile_ints = st.integers() | st.sampled_from(HUGE_INTS)
hostile_floats = st.floats() | st.sampled_from((1e308, -1e308, 5e-324, -0.0))
_offsets = st.integers(-1439, 1439).map(lambda m: dt.timezone(dt.timedelta(minutes=m)))
datetimes = st.datetimes(timezones=st.none() | _offsets)
hostile_ts = st.one_of(
    st.sampled_from(TS_TEXT),
    st.sampled_from(TS_BOUNDS),
    hostile_ints,
    datetimes.map(lambda d: d.isoformat()),
    st.floats(),
    st.none(),
    st.booleans(),
)

# JSON-like values (what a JSON line can hold) and Python values a parsed row may hold.
json_scalars = st.none() | st.booleans() | hostile_ints | hostile_floats | hostile_text
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(hostile_text, inner, max_size=4),
    max_leaves=12,
)
python_scalars = json_scalars | st.one_of(
    datetimes,
    st.dates(),
    st.times(),
    st.timedeltas(),
    st.binary(max_size=8),
    st.decimals(allow_nan=True),
    st.just(decimal.Decimal("-Infinity")),
    st.builds(object),
    st.just(float("nan")),
)
python_values = st.recursive(
    python_scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(hostile_text | st.integers() | st.none(), inner, max_size=4)
    ),
    max_leaves=12,
)


# -- records -------------------------------------------------------------------------------
_FIELDS = {
    "exposure": tuple(exposure().keys()) + ("request", "label"),
    "ranking": tuple(ranking().keys()),
}
_SLOT_FIELDS = ("item", "actor", "position", "score", "organic_score", "interventions")


@st.composite
def valid_records(draw: st.DrawFn, topic: str, spread_ms: int = 2 * HOUR) -> dict[str, Any]:
    """A valid record whose event time lies within ``spread_ms`` of T0 (disorder -> late)."""
    # Ids drawn from a small range (not the factories' counter): a re-drawn id is a
    # duplicate, and the record's length, hence later draws, depends on the draws alone.
    event_id = f"{topic[0]}{draw(st.integers(0, 30))}"
    user = draw(st.sampled_from(("u1", "u2", "u3", "用户", "u\u202e4")))
    ts = T0 + draw(st.integers(-spread_ms, spread_ms))
    arm = draw(st.sampled_from(("ranked", "holdout")))
    if topic == "exposure":
        return exposure(
            event_id=event_id,
            ts=ts,
            user=user,
            arm=arm,
            actor=draw(st.sampled_from(("acc-1", "acc-2"))),
            position=draw(st.integers(1, 10)),
        )
    n = draw(st.integers(1, 4))
    return ranking(
        [slot(item=f"i{i}", position=i + 1, score=draw(st.floats(-1e9, 1e9))) for i in range(n)],
        event_id=event_id,
        request=f"q{event_id}",
        ts=ts,
        user=user,
        arm=arm,
    )


@st.composite
def record_objects(
    draw: st.DrawFn, topic: str, values: st.SearchStrategy[Any] = json_values
) -> Any:
    """A near-valid record: a valid one with 0-4 hostile edits (0 edits: valid)."""
    rec = draw(valid_records(topic))
    for _ in range(draw(st.integers(0, 4))):
        _edit(draw, rec, topic, values)
    if draw(st.integers(0, 19)) == 0:  # now and then, not a record at all
        return draw(values)
    return rec


def _edit(draw: st.DrawFn, rec: dict[str, Any], topic: str, values: st.SearchStrategy[Any]) -> None:
    target: dict[str, Any] = rec
    fields: tuple[str, ...] = _FIELDS[topic]
    items = rec.get("items")
    slots = [it for it in items if isinstance(it, dict)] if isinstance(items, list) else []
    if slots and draw(st.booleans()):
        target, fields = draw(st.sampled_from(slots)), _SLOT_FIELDS
    action = draw(st.sampled_from(("drop", "value", "text", "number", "ts", "extra", "items")))
    name = draw(st.sampled_from(fields))
    if action == "drop":
        target.pop(name, None)
    elif action == "value":
        target[name] = draw(values)
    elif action == "text":
        target[name] = draw(hostile_text)
    elif action == "number":
        target[name] = draw(hostile_floats | hostile_ints)
    elif action == "ts":
        rec["ts"] = draw(hostile_ts)
    elif action == "extra":
        target[draw(hostile_text)] = draw(values)
    elif topic == "ranking":  # items: empty, hostile entries, many entries
        rec["items"] = draw(
            st.one_of(
                st.just([]),
                st.lists(values, max_size=3),
                st.integers(0, 40).map(
                    lambda n: [slot(item=f"i{i}", position=i + 1) for i in range(n)]
                ),
            )
        )


def _dumps(draw: st.DrawFn, obj: Any) -> bytes:
    """JSON text as a platform might (mis)produce it: NaN/Infinity tokens, unescaped
    non-ASCII, and lone surrogates as \\ud800 escapes or as raw (invalid UTF-8) bytes."""
    text = json.dumps(obj, ensure_ascii=draw(st.booleans()), allow_nan=True)
    return text.encode("utf-8", "surrogatepass")


@st.composite
def near_valid_json(draw: st.DrawFn, topic: str) -> bytes:
    return _dumps(draw, draw(record_objects(topic)))


@st.composite
def spliced(draw: st.DrawFn, raw: bytes) -> bytes:
    """A few bytes inserted, deleted or overwritten."""
    data = bytearray(raw)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(("insert", "delete", "replace")))
        chunk = draw(
            st.binary(min_size=1, max_size=4)
            | st.sampled_from(
                (
                    b"\\",
                    b'"',
                    b"\\ud800",
                    b"\xed\xa0\x80",
                    b"\xff",
                    b"\x00",
                    b"{",
                    b"[",
                    b"]",
                    b"}",
                    b",",
                    b"1e999",
                )
            )
        )
        if op == "insert":
            data[at:at] = chunk
        elif op == "delete":
            del data[at : at + len(chunk)]
        else:
            data[at : at + len(chunk)] = chunk
    return bytes(data)


@st.composite
def nested(draw: st.DrawFn, topic: str) -> bytes:
    """A valid record wrapped in, or carrying in one field, up to 3,000 levels of nesting."""
    depth = draw(st.integers(1, 3000))
    opener, closer = draw(st.sampled_from((("[", "]"), ('{"a":', "}"), ('[{"x":', "}]"))))
    closed = draw(st.booleans())
    inner = opener * depth + ("0" + closer * depth if closed else "")
    rec = json.dumps(draw(valid_records(topic)))
    where = draw(st.sampled_from(("whole", "unknown", "field", "items")))
    if where == "whole":
        return (opener * depth + rec + (closer * depth if closed else "")).encode()
    if where == "items" and topic == "ranking":
        return rec.replace('"items": [', f'"items": [{inner}, ', 1).encode()
    name = "zz" if where == "unknown" else draw(st.sampled_from(_FIELDS[topic]))
    return (rec[:-1] + f', "{name}": {inner}}}').encode()


def raw_records(topic: str) -> st.SearchStrategy[bytes]:
    """Any bytes a topic may carry: garbage, text, near-valid JSON (spliced or not), nesting."""
    return st.one_of(
        st.binary(max_size=400),
        st.text(max_size=120).map(lambda s: s.encode("utf-8", "surrogatepass")),
        near_valid_json(topic),
        near_valid_json(topic),
        near_valid_json(topic).flatmap(spliced),
        nested(topic),
    )


# -- files ---------------------------------------------------------------------------------
@st.composite
def line_files(draw: st.DrawFn, topic: str) -> list[bytes]:
    """The lines of a JSONL file (no newline inside a line): hostile and valid records,
    exact duplicates, blank lines, CR/LF variants; the caller joins them."""
    lines = draw(
        st.lists(
            st.one_of(
                raw_records(topic),
                valid_records(topic).map(lambda r: json.dumps(r).encode()),
                st.sampled_from((b"", b"   ", b"\r", b"\t\x0b\x0c")),
            ),
            max_size=12,
        )
    )
    lines = [line.replace(b"\n", b" ") for line in lines]
    if lines and draw(st.booleans()):  # re-sent records: duplicates by event_id
        lines += draw(st.lists(st.sampled_from(lines), max_size=3))
    ends = draw(st.sampled_from((b"\n", b"\r\n")))
    return [line + ends for line in lines]


# -- Kafka ---------------------------------------------------------------------------------
CONTROL = ("amplimon-control", b"end-of-stream")
headers = st.lists(
    st.one_of(st.tuples(hostile_text, st.none() | st.binary(max_size=16)), st.just(CONTROL)),
    max_size=3,
)


@st.composite
def kafka_batches(
    draw: st.DrawFn, inputs: dict[str, str]
) -> list[list[tuple[str, int, bytes | None, list[tuple[str, Any]]]]]:
    """Batches of (kafka topic, partition, value, headers); offsets are the caller's."""
    # One topic or both: with fewer partitions in play the watermark moves, so events can
    # turn late, and forged end markers can close the driver before more data arrives.
    names = sorted(inputs)
    kafka_topic = st.sampled_from(draw(st.sampled_from([names, *([n] for n in names)])))

    def message(name: str) -> st.SearchStrategy[tuple[str, int, bytes | None, list]]:
        topic = inputs[name]
        valid = valid_records(topic).map(lambda r: json.dumps(r).encode())
        value = st.one_of(st.none(), st.just(b""), raw_records(topic), valid, valid)
        return st.tuples(st.just(name), st.integers(0, 1), value, headers)

    batch = st.lists(kafka_topic.flatmap(message), max_size=8)
    return draw(st.lists(batch, min_size=1, max_size=6))


# -- configuration -------------------------------------------------------------------------
DATE_VALUES = (
    "2026-05-04T00:00:00Z",
    "2026-05-04T00:00:00",
    "2026-05-04",
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-23:00",
    "2026-13-01T00:00:00Z",
    "yesterday",
    "",
    0,
    -1,
    10**20,
    1e300,
)
CSV_NAMES = (
    "missing.csv",
    "bad-utf8.csv",
    "no-actor-column.csv",
    "huge-field.csv",
    "nul.csv",
    "good.csv",
    "a\x00b.csv",
    ".",
    "",
)


@st.composite
def config_objects(draw: st.DrawFn) -> Any:
    """A configuration mapping: the factory's valid one with 1-5 hostile edits, or any
    JSON-like value at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(
            st.dictionaries(
                hostile_text | st.sampled_from(tuple(config_dict())), json_values, max_size=5
            )
            | json_values
        )
    cfg = config_dict()
    for _ in range(draw(st.integers(1, 5))):
        parent, key = draw(_location(cfg))
        action = draw(
            st.sampled_from(
                ("drop", "value", "text", "number", "date", "swap", "dup", "extra", "csv")
            )
        )
        if action == "drop" and key is not None:
            del parent[key]
        elif action == "value" and key is not None:
            parent[key] = draw(json_values | python_values)
        elif action == "text" and key is not None:
            parent[key] = draw(hostile_text)
        elif action == "number" and key is not None:
            parent[key] = draw(hostile_floats | hostile_ints)
        elif action == "date" and key is not None:
            parent[key] = draw(st.sampled_from(DATE_VALUES) | datetimes)
        elif action == "swap" and isinstance(parent, dict) and "start" in parent:
            parent["start"], parent["end"] = parent.get("end"), parent["start"]
        elif action == "dup" and isinstance(parent, list) and parent:
            parent.append(parent[0])
        elif action == "extra" and isinstance(parent, dict):
            parent[draw(hostile_text)] = draw(json_values)
        elif action == "csv":
            cfg["actors_file"] = draw(st.sampled_from(CSV_NAMES))
    return cfg


@st.composite
def _location(draw: st.DrawFn, cfg: dict[str, Any]) -> tuple[Any, Any]:
    """(container, key or index) somewhere in ``cfg``; key None for an empty container."""
    parent: Any = cfg
    while True:
        keys = list(parent) if isinstance(parent, dict) else list(range(len(parent)))
        if not keys:
            return parent, None
        key = draw(st.sampled_from(keys))
        child = parent[key]
        if not isinstance(child, dict | list) or draw(st.booleans()):
            return parent, key
        parent = child


YAML_SNIPPETS = (
    "a: 2026-13-01\n",
    "a: 2026-05-01T00:00:00+99:00\n",
    "a: 0000-01-01\n",
    "a: !!python/object/apply:os.getcwd []\n",
    "a: !!binary ZZZ\n",
    "a: !!timestamp x\n",
    "a: &x [*x]\n",
    "a: *undefined\n",
    "<<: 5\n",
    "? [a]\n: b\n",
    "a: !!float nan\n",
    "a: .inf\n",
    "a: !!bool x\n",
    "a: !!int x\n",
    "a: !!float x\n",
    "a: !!int 0x\n",
    "a: !!omap [1]\n",
    "a: !!set [1]\n",
    "a: !!str {a: 1}\n",
    "a: !!merge x\n",
    "a: !!int " + "9" * 5000 + "\n",
    "a:\n\tb: 1\n",
    "%YAML 9.9\n---\na: 1\n",
    "--- !!set\n? a\n",
    "[" * 1000,
    "a: " + "[" * 1000 + "]" * 1000 + "\n",
    "a: 1\na: 2\n",
    "\ufeffa: 1\n",
    'a: "\\ud800"\n',
)


@st.composite
def config_texts(draw: st.DrawFn) -> bytes:
    """Bytes of a YAML file: any text or bytes, a dump of a hostile configuration, with
    YAML-significant characters spliced in, or a known-nasty snippet."""
    kind = draw(st.sampled_from(("text", "bytes", "dump", "dump", "snippet")))
    if kind == "text":
        return draw(st.text(max_size=200)).encode()
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "snippet":
        return draw(st.sampled_from(YAML_SNIPPETS)).encode("utf-8", "surrogatepass")
    obj = draw(config_objects())
    try:
        text = yaml.safe_dump(obj, allow_unicode=draw(st.booleans()))
    except yaml.YAMLError:  # objects safe_dump cannot represent (object(), Decimal)
        text = yaml.safe_dump(config_dict())
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(text)))
        text = (
            text[:at]
            + draw(
                st.sampled_from(
                    (
                        ":",
                        "- ",
                        "[",
                        "{",
                        "&a ",
                        "*a",
                        "!!",
                        "\t",
                        "\n",
                        "'",
                        '"',
                        "%",
                        "@",
                        "|",
                        "#",
                        "? ",
                        "2026-13-01",
                        "\ud800",
                        "\x00",
                    )
                )
            )
            + text[at:]
        )
    return text.encode("utf-8", "surrogatepass")
