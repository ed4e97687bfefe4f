"""Output messages (no broker): every row fits in a Kafka message, whatever its size, and
comes back as sent — whole when it can, with its size and hash when it cannot."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import zlib

import msgspec
import pytest

from monitor.core.records import RAW_LIMIT, DeadLetter, Finding
from streams.kafka.output import (
    MAX_MESSAGE_BYTES,
    MAX_UNPACKED_BYTES,
    PACKED,
    decode_row,
    encode_row,
)

T = dt.datetime(2026, 5, 4, 12, tzinfo=dt.UTC)


def finding(evidence: dict) -> Finding:
    return Finding.new(
        detector="holdout_shift",
        kind="amplification",
        platform="chirp",
        region="DE",
        window_id="w",
        subject_kind="actor",
        subject="acc-1",
        effect=1.6,
        ci_low=1.2,
        ci_high=2.0,
        p_value=0.001,
        n_exposures=100,
        severity="high",
        event_time=T,
        detected_at=T,
        evidence=evidence,
    )


def test_a_dead_letter_of_a_5_mb_record_is_one_small_message() -> None:
    raw = '{"item": "' + "\x01" * 5_000_000 + '"}'  # JSON-escaped, 6 bytes a character
    key, value = encode_row(DeadLetter(source="t", raw=raw, reason="r", location="t:x#1"))
    assert len(key) + len(value) <= MAX_MESSAGE_BYTES and not value.startswith(PACKED)
    back = decode_row("deadletter", value)
    assert isinstance(back, DeadLetter) and back.raw == raw[:RAW_LIMIT]
    assert (
        back.raw_bytes == len(raw) and back.raw_sha256 == hashlib.sha256(raw.encode()).hexdigest()
    )


def test_a_finding_with_large_evidence_is_sent_compressed_and_comes_back_whole() -> None:
    series = [{"tick": i, "ratio": 1.0 + (i % 7) / 10, "n": i % 1000} for i in range(120_000)]
    f = finding({"series": series})
    assert len(msgspec.json.encode(f)) > 4 * MAX_MESSAGE_BYTES
    key, value = encode_row(f)
    assert len(key) + len(value) <= MAX_MESSAGE_BYTES and value.startswith(PACKED)
    assert decode_row("findings", value) == f


def test_evidence_no_message_can_hold_is_replaced_by_its_size_and_hash() -> None:
    noise = os.urandom(3_000_000).hex()  # compresses to half: still too large
    f = finding({"blob": noise})
    key, value = encode_row(f)
    assert len(key) + len(value) <= MAX_MESSAGE_BYTES
    back = decode_row("findings", value)
    assert isinstance(back, Finding)
    whole = msgspec.json.encode({"blob": noise}, order="sorted")
    assert back.evidence["omitted"]["bytes"] == len(whole)
    assert back.evidence["omitted"]["sha256"] == hashlib.sha256(whole).hexdigest()
    assert (back.finding_id, back.effect, back.p_value) == (f.finding_id, f.effect, f.p_value)


def test_a_compressed_bomb_is_refused_not_unpacked() -> None:
    bomb = PACKED + zlib.compress(b" " * (MAX_UNPACKED_BYTES + 1), 9)
    with pytest.raises(msgspec.DecodeError, match="larger than"):
        decode_row("findings", bomb)
    with pytest.raises(msgspec.DecodeError, match="corrupt"):
        decode_row("findings", PACKED + b"not zlib")
