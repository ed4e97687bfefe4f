"""The engine's results as Kafka messages (worker side) and back (sink side).

Each result is one JSON message (the same msgspec Structs the store writes), keyed so that
all versions of one row land on one partition in order:

* ``amplimon.findings`` — key ``finding_id``;
* ``amplimon.measurements`` — key ``platform|region|window_id|period|subject_kind|subject``;
* ``amplimon.deadletter`` — key ``dl_id``;
* ``amplimon.detectability`` — key ``detector|platform|region|window_id|subject_kind|subject``.

**Every message fits in a Kafka message** (key + value ≤ :data:`MAX_MESSAGE_BYTES`, below the
1 MiB ``message.max.bytes`` Apache Kafka accepts by default and the worker's 2 MiB request
limit): one row too large to send would stop the worker for good (it retries, exits, and
a restart meets the same row).  Dead letters are bounded where they are made
(:class:`~monitor.core.records.DeadLetter`); any other row whose JSON is larger is sent
zlib-compressed behind the prefix :data:`PACKED` (lossless; :func:`decode_row` unpacks it,
up to :data:`MAX_UNPACKED_BYTES`), and a finding whose evidence is still too large keeps
everything but its evidence, replaced by ``{"omitted": {"bytes", "sha256", "reason"}}``
(the size and SHA-256 of the evidence's sorted JSON), with a warning in the log.
"""

from __future__ import annotations

import hashlib
import logging
import zlib
from typing import Any, Final

import msgspec

from monitor.core.records import DeadLetter, Detectability, Finding, Measurement
from streams.kafka._config import Topics

__all__ = [
    "MAX_MESSAGE_BYTES",
    "MAX_UNPACKED_BYTES",
    "PACKED",
    "KafkaOutput",
    "OutputTooLarge",
    "decode_row",
    "encode_row",
]

log = logging.getLogger("amplimon.worker")

MAX_MESSAGE_BYTES: Final = 1_000_000
MAX_UNPACKED_BYTES: Final = 64 << 20
#: A value starting with these bytes is zlib-compressed JSON (JSON never starts with NUL).
PACKED: Final = b"\x00amplimon-zlib\x00"

Row = Finding | Measurement | DeadLetter | Detectability


def _enc_hook(obj: Any) -> Any:
    """numpy scalars (and anything else a detector may put in evidence) as JSON."""
    item = getattr(obj, "item", None)
    return item() if callable(item) else str(obj)


_ENCODER = msgspec.json.Encoder(enc_hook=_enc_hook)
_SORTED = msgspec.json.Encoder(enc_hook=_enc_hook, order="sorted")


class OutputTooLarge(ValueError):
    """A row that no encoding fits in a Kafka message (impossible for the engine's rows:
    their ids are bounded by the contract)."""


_DECODERS: dict[str, msgspec.json.Decoder[Any]] = {
    "findings": msgspec.json.Decoder(Finding),
    "amplification": msgspec.json.Decoder(Measurement),
    "deadletter": msgspec.json.Decoder(DeadLetter),
    "detectability": msgspec.json.Decoder(Detectability),
}


def _key(row: Row) -> str:
    if isinstance(row, Finding):
        return row.finding_id
    if isinstance(row, DeadLetter):
        return row.dl_id
    if isinstance(row, Measurement):
        parts = (row.platform, row.region, row.window_id, row.period, row.subject_kind, row.subject)
    else:
        parts = (
            row.detector,
            row.platform,
            row.region,
            row.window_id,
            row.subject_kind,
            row.subject,
        )
    return "|".join(parts)


def encode_row(row: Row) -> tuple[bytes, bytes]:
    """(key, value) of the message carrying ``row``, at most :data:`MAX_MESSAGE_BYTES` in
    all (module docstring)."""
    key = _key(row).encode()
    value = _ENCODER.encode(row)
    if len(key) + len(value) <= MAX_MESSAGE_BYTES:
        return key, value
    packed = PACKED + zlib.compress(value, 6)
    if len(key) + len(packed) <= MAX_MESSAGE_BYTES:
        return key, packed
    if isinstance(row, Finding) and "omitted" not in row.evidence:
        return encode_row(_without_evidence(row, len(value), len(packed)))
    raise OutputTooLarge(
        f"{type(row).__name__} {key[:80]!r}: {len(value):,} bytes of JSON, "
        f"{len(packed):,} compressed, more than a Kafka message"
    )


def _without_evidence(f: Finding, size: int, packed: int) -> Finding:
    evidence = _SORTED.encode(f.evidence)
    log.warning(
        "finding %s: evidence of %d bytes does not fit in a Kafka message (%d bytes "
        "compressed): sent without it (its size and SHA-256 kept)",
        f.finding_id,
        len(evidence),
        packed,
    )
    omitted = {
        "bytes": len(evidence),
        "sha256": hashlib.sha256(evidence).hexdigest(),
        "reason": f"the finding's JSON ({size:,} bytes) does not fit in a Kafka message",
    }
    return msgspec.structs.replace(f, evidence={"omitted": omitted})


def decode_row(table: str, value: bytes) -> Row:
    """The row of a message read from the topic of ``table``; raises msgspec errors."""
    if value.startswith(PACKED):
        unpack = zlib.decompressobj()
        try:
            value = unpack.decompress(value[len(PACKED) :], MAX_UNPACKED_BYTES)
        except zlib.error as err:
            raise msgspec.DecodeError(f"corrupt compressed message ({err})") from None
        if unpack.unconsumed_tail:
            raise msgspec.DecodeError(
                f"compressed message larger than {MAX_UNPACKED_BYTES:,} bytes"
            )
    return _DECODERS[table].decode(value)  # type: ignore[no-any-return]


class KafkaOutput:
    """Engine :class:`~monitor.engine.run.Output` that queues messages for the worker to send."""

    def __init__(self, topics: Topics) -> None:
        self.topics = topics
        self.pending: list[tuple[str, bytes, bytes]] = []
        self.counts = {"findings": 0, "measurements": 0, "deadletters": 0, "detectability": 0}

    def _add(self, topic: str, rows: list[Any], counter: str) -> None:
        for row in rows:
            key, value = encode_row(row)
            self.pending.append((topic, key, value))
        self.counts[counter] += len(rows)

    def findings(self, rows: list[Finding]) -> None:
        self._add(self.topics.findings, rows, "findings")

    def measurements(self, rows: list[Measurement]) -> None:
        self._add(self.topics.measurements, rows, "measurements")

    def deadletters(self, rows: list[DeadLetter]) -> None:
        self._add(self.topics.deadletter, rows, "deadletters")

    def detectability(self, rows: list[Detectability]) -> None:
        self._add(self.topics.detectability, rows, "detectability")

    def drain(self) -> list[tuple[str, bytes, bytes]]:
        out, self.pending = self.pending, []
        return out
