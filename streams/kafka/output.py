"""The engine's results as Kafka messages (worker side) and back (sink side).

Each result is one JSON message (the same msgspec Structs the store writes), keyed so that
all versions of one row land on one partition in order:

* ``amplimon.findings`` — key ``finding_id``;
* ``amplimon.measurements`` — key ``platform|region|window_id|period|subject_kind|subject``;
* ``amplimon.deadletter`` — key ``dl_id``;
* ``amplimon.detectability`` — key ``detector|platform|region|window_id|subject_kind|subject``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from monitor.records import DeadLetter, Detectability, Finding, Measurement
from streams.kafka._config import Topics

__all__ = ["KafkaOutput", "decode_row", "encode_row"]

Row = Finding | Measurement | DeadLetter | Detectability


def _enc_hook(obj: Any) -> Any:
    """numpy scalars (and anything else a detector may put in evidence) as JSON."""
    item = getattr(obj, "item", None)
    return item() if callable(item) else str(obj)


_ENCODER = msgspec.json.Encoder(enc_hook=_enc_hook)
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
        parts = (row.platform, row.region, row.window_id, row.period, row.subject_kind,
                 row.subject)
    else:
        parts = (row.detector, row.platform, row.region, row.window_id, row.subject_kind,
                 row.subject)
    return "|".join(parts)


def encode_row(row: Row) -> tuple[bytes, bytes]:
    """(key, value) of the message carrying ``row``."""
    return _key(row).encode(), _ENCODER.encode(row)


def decode_row(table: str, value: bytes) -> Row:
    """The row of a message read from the topic of ``table``; raises msgspec errors."""
    return _DECODERS[table].decode(value)  # type: ignore[no-any-return]


class KafkaOutput:
    """Engine :class:`~monitor.engine.Output` that queues messages for the worker to send."""

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
