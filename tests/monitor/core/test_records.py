"""Output records: a dead letter of any size is bounded, keeps the whole record's size and
SHA-256, and survives a JSON round trip (a Kafka message) unchanged."""

from __future__ import annotations

import hashlib

import msgspec

from monitor.core.records import RAW_LIMIT, REASON_LIMIT, DeadLetter


def test_a_huge_dead_letter_keeps_a_bounded_prefix_and_the_whole_size_and_hash() -> None:
    raw = '{"item": "' + "é" * 3_000_000 + '"}'  # 6 MB of UTF-8, 2 bytes a character
    dl = DeadLetter(source="t", raw=raw, reason="r" * 5000, location="t:1")
    whole = raw.encode()
    assert (dl.raw_bytes, dl.raw_sha256) == (len(whole), hashlib.sha256(whole).hexdigest())
    kept = dl.raw.encode()
    assert RAW_LIMIT - 1 <= len(kept) <= RAW_LIMIT and whole.startswith(kept)  # whole chars
    assert dl.truncated and len(dl.reason) == REASON_LIMIT and dl.reason.endswith("…")
    again = msgspec.json.decode(msgspec.json.encode(dl), type=DeadLetter)
    assert again == dl and again.dl_id == dl.dl_id


def test_a_small_dead_letter_is_kept_whole() -> None:
    dl = DeadLetter(source="t", raw="{", reason="truncated JSON")
    assert (dl.raw, dl.raw_bytes, dl.truncated) == ("{", 1, False)
    assert dl.raw_sha256 == hashlib.sha256(b"{").hexdigest()


def test_without_a_location_the_id_tells_records_apart_by_their_whole_text() -> None:
    head = "x" * RAW_LIMIT
    a = DeadLetter(source="t", raw=head + "a", reason="r")
    b = DeadLetter(source="t", raw=head + "b", reason="r")
    assert a.raw == b.raw and a.dl_id != b.dl_id


def test_text_that_is_not_valid_unicode_is_measured_not_a_crash() -> None:
    dl = DeadLetter(source="t", raw="\ud800" * (RAW_LIMIT + 1), reason="r")
    assert dl.raw_bytes == RAW_LIMIT + 1 and dl.truncated and dl.raw == "?" * RAW_LIMIT
