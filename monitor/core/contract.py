"""Contract models (``shared/contract.md`` §1) and the schema-validating decoder.

Two record types travel on two topics: :class:`Exposure` (one item shown to one user) and
:class:`Ranking` (one slate served to one user).  Decoding is done by msgspec in C: a record
is validated against the typed schema in one pass; only a *rejected* record takes the slow
path that re-reads it to build a reason naming the field and the offending value, e.g.
``exposure.position: expected integer >= 1, got 0``.

Errors are data: :func:`decode` never raises on bad input, it returns a :class:`Rejected`.
Unknown fields are ignored (the contract may be extended with optional fields).
"""

from __future__ import annotations

import datetime as dt
import math
import re
import reprlib
from typing import Annotated, Any, Final, Literal

import msgspec

__all__ = [
    "ARMS",
    "PANEL",
    "TOPICS",
    "Exposure",
    "RankedItem",
    "Ranking",
    "Rejected",
    "Event",
    "decode",
    "decode_obj",
    "event_key",
]

TOPICS: Final = ("exposure", "ranking")
# panel observations (contract v1.1 §5) travel in the exposure format on their own topic
PANEL: Final = "panel"
ARMS: Final = ("ranked", "holdout")

# Accepted event-time range: anything outside is a data error, not a statistic.
_TS_MIN_MS: Final = 946_684_800_000  # 2000-01-01T00:00:00Z
_TS_MAX_MS: Final = 4_102_444_800_000  # 2100-01-01T00:00:00Z
_MAX_ID_LEN: Final = 512

NonEmpty = Annotated[str, msgspec.Meta(min_length=1, max_length=_MAX_ID_LEN)]
Position = Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]
# \Z, not $: msgspec matches with Python's re, where $ also matches before a final "\n",
# so "DE\n" passed as a region that no window covers (found by test_hostile_input.py).
Region = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z]{2}(-[A-Za-z0-9]{1,3})?\Z")]
Arm = Literal["ranked", "holdout"]
Timestamp = int | dt.datetime


def _to_epoch_ms(ts: Timestamp) -> int:
    """Normalise an RFC 3339 datetime (with offset) or epoch milliseconds to epoch ms."""
    if isinstance(ts, int):
        value = ts
    else:
        if ts.tzinfo is None:
            raise ValueError("ts: RFC 3339 timestamp needs an offset (Z or +hh:mm)")
        value = (ts - _EPOCH) // _ONE_MS
    if not _TS_MIN_MS <= value < _TS_MAX_MS:
        # _safe_repr, not repr: repr of an int with more than 4300 digits raises ValueError.
        raise ValueError(f"ts: out of range (years 2000-2099), got {_safe_repr(ts)}")
    return value


_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_ONE_MS: Final = dt.timedelta(milliseconds=1)


class Exposure(msgspec.Struct, gc=False):
    """One item shown to one user (contract §1 *exposure*).

    After decoding, ``ts`` is always epoch milliseconds (int) and ``region`` upper case.
    """

    event_id: NonEmpty
    platform: NonEmpty
    ts: Timestamp
    user: NonEmpty
    region: Region
    surface: NonEmpty
    arm: Arm
    item: NonEmpty
    actor: NonEmpty
    position: Position
    request: NonEmpty | None = None
    label: str | None = None

    def __post_init__(self) -> None:
        self.ts = _to_epoch_ms(self.ts)
        self.region = self.region.upper()
        if self.label == "":
            self.label = None


class RankedItem(msgspec.Struct, gc=False):
    """One entry of a ranking slate."""

    item: NonEmpty
    actor: NonEmpty
    position: Position
    score: float
    organic_score: float | None = None
    interventions: list[NonEmpty] | None = None
    # No __post_init__ here (hot path: ~10 per slate).  JSON cannot carry NaN/Infinity
    # (msgspec rejects them, and 1e999 as out of range); parsed objects are checked in
    # decode_obj.


class Ranking(msgspec.Struct, gc=False):
    """One ranked slate served to one user (contract §1 *ranking*)."""

    event_id: NonEmpty
    platform: NonEmpty
    ts: Timestamp
    user: NonEmpty
    region: Region
    surface: NonEmpty
    arm: Arm
    request: NonEmpty
    items: Annotated[list[RankedItem], msgspec.Meta(min_length=1, max_length=10_000)]

    def __post_init__(self) -> None:
        self.ts = _to_epoch_ms(self.ts)
        self.region = self.region.upper()


Event = Exposure | Ranking


class Rejected(msgspec.Struct, frozen=True):
    """A record that broke the contract: the raw text and a reason naming the field."""

    topic: str
    raw: str
    reason: str


_TYPES: Final[dict[str, type[Exposure] | type[Ranking]]] = {
    "exposure": Exposure,
    "ranking": Ranking,
    PANEL: Exposure,
}
_DECODERS: Final = {t: msgspec.json.Decoder(cls) for t, cls in _TYPES.items()}


def decode(topic: str, raw: bytes | str) -> Event | Rejected:
    """Decode one JSON record of ``topic`` (``exposure`` or ``ranking``).

    Returns the validated event, or a :class:`Rejected` whose reason names the field.
    Never raises for bad input.
    """
    try:
        return _DECODERS[topic].decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        return Rejected(topic, _as_text(raw), explain(topic, raw, exc))
    # msgspec raises these outside its DecodeError family: invalid UTF-8 inside a JSON string
    # (UnicodeDecodeError), a str holding lone surrogates (UnicodeEncodeError), and nesting
    # deeper than its recursion limit, e.g. 100,000 x '{"a":'.  Found by tests/monitor/
    # test_hostile_input.py; each used to escape decode() and stop the stream.
    except UnicodeDecodeError:
        return Rejected(topic, _as_text(raw), f"{topic}: not valid UTF-8 text")
    except UnicodeEncodeError:
        return Rejected(topic, _as_text(raw), f"{topic}: not valid Unicode (lone surrogate)")
    except RecursionError:
        return Rejected(topic, _as_text(raw), f"{topic}: JSON nested too deeply")


def decode_obj(topic: str, obj: Any, raw: str | None = None) -> Event | Rejected:
    """Validate an already-parsed object (e.g. a Parquet row) against the contract."""
    try:
        event = msgspec.convert(obj, _TYPES[topic], strict=True)
        _check_values(event)
        return event
    except (msgspec.ValidationError, ValueError) as exc:
        text = raw if raw is not None else _obj_text(obj)
        return Rejected(topic, text, _reason(topic, obj, str(exc)))
    except RecursionError:  # nesting deeper than msgspec's recursion limit
        text = raw if raw is not None else _obj_text(obj)
        return Rejected(topic, text, f"{topic}: nested too deeply")


def _obj_text(obj: Any) -> str:
    """The raw text of a rejected parsed object: JSON when it can be, else a short repr.

    JSON fails for non-string or mixed keys (``order="sorted"``), lone surrogates, ints over
    4300 digits and deep nesting; the rejection must still be written, so fall back.
    """
    try:
        return _as_text(msgspec.json.encode(obj, order="sorted", enc_hook=str))
    except (TypeError, ValueError, RecursionError):
        return _safe_repr(obj)


def _safe_repr(value: Any) -> str:
    """A bounded one-line repr (reprlib limits size and depth; repr escapes surrogates)."""
    try:
        return reprlib.repr(value)
    except ValueError:  # an int over 4300 digits
        return f"<{type(value).__name__}>"


def _check_values(event: Event) -> None:
    """What the schema cannot say about a parsed object, checked in one pass (the hot path
    of Parquet replay); the slow paths find the field and raise ``ValueError`` naming it.

    * Scores are finite: a parsed row can hold NaN or Infinity, JSON cannot.
    * Text is valid Unicode: a Python str can hold lone surrogates (``"\\ud800"``), which no
      UTF-8 store (DuckDB, Kafka) accepts and which later fail hashing into finding ids.
      JSON cannot carry them (msgspec rejects such escapes); a dict can.  Found by
      tests/monitor/core/test_hostile_input.py: such events used to be accepted.
    """
    if isinstance(event, Ranking):
        parts = [event.event_id, event.platform, event.user, event.surface, event.request]
        isfinite = math.isfinite
        for it in event.items:
            organic = it.organic_score
            if not isfinite(it.score) or (organic is not None and not isfinite(organic)):
                _check_finite(event)
            parts.append(it.item)
            parts.append(it.actor)
            if it.interventions:
                parts.extend(it.interventions)
    else:  # region and arm are ASCII by their pattern and literal
        parts = [
            event.event_id,
            event.platform,
            event.user,
            event.surface,
            event.item,
            event.actor,
            event.request or "",
            event.label or "",
        ]
    try:
        "".join(parts).encode("utf-8")
    except UnicodeEncodeError:
        _locate_surrogate(event)


def _locate_surrogate(event: Event) -> None:
    for name in event.__struct_fields__:
        value = getattr(event, name)
        if type(value) is str and not value.isascii():
            _check_utf8(value, name)
    if isinstance(event, Ranking):
        for i, it in enumerate(event.items):
            for name in ("item", "actor"):
                value = getattr(it, name)
                if not value.isascii():
                    _check_utf8(value, f"items[{i}].{name}")
            for j, value in enumerate(it.interventions or ()):
                if not value.isascii():
                    _check_utf8(value, f"items[{i}].interventions[{j}]")


def _check_utf8(value: str, path: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"not valid Unicode (lone surrogate) - at `$.{path}`") from None


def _check_finite(event: Ranking) -> None:
    for i, it in enumerate(event.items):
        for name in ("score", "organic_score"):
            value = getattr(it, name)
            if value is not None and not math.isfinite(value):
                raise ValueError(
                    f"{name}: expected a finite number, got {value!r} - at `$.items[{i}].{name}`"
                )


def event_key(topic: str, event: Event) -> tuple[str, str, str]:
    """Idempotency key: a record with the same platform, topic and event_id is one record."""
    return (event.platform, topic, event.event_id)


def _as_text(raw: bytes | str) -> str:
    if isinstance(raw, str):
        # A str may hold lone surrogates, which no UTF-8 store (DuckDB, Kafka) accepts.
        return raw if raw.isascii() else raw.encode("utf-8", "replace").decode("utf-8")
    return raw.decode("utf-8", errors="replace")


def explain(topic: str, raw: bytes | str, exc: Exception) -> str:
    """One-line reason for a rejected record (slow path: only for bad records)."""
    if isinstance(exc, msgspec.DecodeError) and not isinstance(exc, msgspec.ValidationError):
        if isinstance(raw, bytes) and not _is_utf8(raw):
            # Our own wording, not the decoder's: msgspec's text for this case changed
            # between releases (0.23 says "Invalid UTF-8 encoded string").
            return f"{topic}: not valid UTF-8 text"
        msg = str(exc)
        if "truncated" in msg:
            return f"{topic}: truncated JSON (input ended early)"
        return f"{topic}: not valid JSON ({msg})"
    try:
        obj = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError, UnicodeError):
        # UnicodeError: the typed pass skips unknown fields unread; invalid UTF-8 in one of
        # them surfaces only here.  The reason then just lacks the offending value.
        obj = None
    return _reason(topic, obj, str(exc))


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_MISSING = re.compile(r"Object missing required field `(?P<field>[^`]+)`")
_EXPECTED = re.compile(r"Expected `(?P<want>[^`]+)`(?P<rest>[^,]*)(?:, got `(?P<got>[^`]+)`)?")
_TYPE_WORDS: Final = {
    "int": "integer",
    "str": "string",
    "float": "number",
    "object": "object",
    "array": "array",
    "int | datetime": "RFC 3339 string or epoch-ms integer",
    "str | null": "string or null",
    "float | null": "number or null",
    "array | null": "array or null",
}


def _reason(topic: str, obj: Any, message: str) -> str:
    m = _AT.match(message)
    msg, path = (m.group("msg"), m.group("path") or "") if m else (message, "")
    missing = _MISSING.match(msg)
    if missing:
        field = f"{topic}{path}.{missing.group('field')}"
        return f"{field}: required field is missing"
    field = f"{topic}{path}" if path else topic
    value = _lookup(obj, path)
    got = "" if value is _NOTHING else f", got {_show(value)}"
    if msg.startswith("Expected `object`"):
        return f"{field}: expected a JSON object{got}"
    expected = _EXPECTED.match(msg)
    if expected:
        want = expected.group("want")
        words = _TYPE_WORDS.get(want, want)
        rest = expected.group("rest").strip()
        bound = f" {rest}" if rest else ""
        return f"{field}: expected {words}{bound}{got}"
    if msg.startswith("Invalid enum value"):
        return f"{field}: expected one of 'ranked', 'holdout'{got}"
    if msg.startswith("Invalid RFC3339"):
        return f"{field}: expected RFC 3339 timestamp with offset or epoch-ms integer{got}"
    if msg.startswith("Number out of range"):
        return f"{field}: number out of range{got}"
    if ": " in msg and msg.split(": ", 1)[0] in {"ts", "score", "organic_score"}:
        name, detail = msg.split(": ", 1)
        parent = path.rsplit(".", 1)[0] if path.endswith(name) else path
        return f"{topic}{parent}.{name}: {detail}"
    return f"{field}: {msg[0].lower()}{msg[1:]}{got}" if msg else f"{field}: invalid"


_NOTHING: Final = object()
_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]")


def _lookup(obj: Any, path: str) -> Any:
    cur = obj
    for name, index in _STEP.findall(path):
        try:
            cur = cur[name] if name else cur[int(index)]
        except (KeyError, IndexError, TypeError):
            return _NOTHING
    return cur if path else _NOTHING


def _show(value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # JSON has no NaN/Infinity: msgspec would print them as null
    try:
        text = msgspec.json.encode(value).decode() if value is not None else "null"
    except (TypeError, ValueError, RecursionError):  # see _obj_text
        text = _safe_repr(value)
    # JSON leaves U+0085/U+2028/U+2029 unescaped, but they break lines: a reason is one line.
    text = text.translate(_LINE_BREAKS)
    return text if len(text) <= 60 else text[:57] + "..."


_LINE_BREAKS: Final = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}
