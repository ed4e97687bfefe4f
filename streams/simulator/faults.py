"""Data faults a real platform feed has: duplicates, late delivery, malformed records.

All faults are planted deterministically from the seed and counted for the ground truth.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, Final

import msgspec
import numpy as np

__all__ = ["MALFORMED_KINDS", "Arrival", "arrange", "malformed_lines"]

_MS_PER_MINUTE: Final = 60_000

#: Malformation kinds per topic (``empty_items`` only exists for rankings).
MALFORMED_KINDS: Final = {
    "exposure": ("truncated_json", "not_json", "missing_field", "wrong_type", "bad_timestamp",
                 "unknown_arm", "position_zero"),
    "ranking": ("truncated_json", "not_json", "missing_field", "wrong_type", "bad_timestamp",
                "unknown_arm", "position_zero", "empty_items"),
}
_NOT_JSON: Final = (
    "<html><head><title>502 Bad Gateway</title></head></html>",
    "ERROR producer: connection reset by peer",
    "event_id,platform,ts,user",
)
_BAD_TS: Final = ("2026-13-45T25:61:00Z", "yesterday", "2026-05-01T12:00:00", "")
_MISSING: Final = {"exposure": ("user", "actor", "ts", "event_id"),
                   "ranking": ("request", "items", "user", "event_id")}


@dataclasses.dataclass(frozen=True)
class Arrival:
    """Delivery order of one topic's stream.

    Attributes:
        source: Source row of each delivered record (a duplicated row appears twice).
        duplicate: Whether the delivered record is a re-emitted copy.
        n_late: Records given a delivery delay (planted late records).
        n_out_of_order: Delivered records whose ``ts`` is earlier than a record delivered
            before them (what a consumer actually observes).
    """

    source: np.ndarray
    duplicate: np.ndarray
    n_late: int
    n_out_of_order: int


def arrange(rng: np.random.Generator, t_ms: np.ndarray, duplicate_share: float,
            late_share: float, max_late_minutes: float) -> Arrival:
    """Plant late deliveries and duplicates and return the delivery order.

    A record is delivered at ``ts + delay``; ``late_share`` of records get a delay uniform in
    ``(0, max_late_minutes]``, the rest none.  ``duplicate_share`` of records are delivered a
    second time, no earlier than the original and at most ``max_late_minutes`` after ``ts``,
    so every copy stays within the monitor's lateness allowance.
    """
    n = t_ms.size
    max_ms = max_late_minutes * _MS_PER_MINUTE
    late = rng.random(n) < late_share
    delay = np.zeros(n)
    delay[late] = max_ms * (1.0 - rng.random(int(late.sum())))
    dup = np.flatnonzero(rng.random(n) < duplicate_share)
    dup_delay = delay[dup] + (max_ms - delay[dup]) * rng.random(dup.size)
    source = np.concatenate([np.arange(n), dup])
    arrival = np.concatenate([t_ms + delay, t_ms[dup] + dup_delay])
    duplicate = np.concatenate([np.zeros(n, dtype=bool), np.ones(dup.size, dtype=bool)])
    order = np.lexsort((duplicate, arrival))
    ts = t_ms[source[order]]
    running = np.maximum.accumulate(ts) if ts.size else ts
    n_out = int((ts[1:] < running[:-1]).sum()) if ts.size else 0
    return Arrival(source[order], duplicate[order], int(late.sum()), n_out)


def malformed_lines(rng: np.random.Generator, topic: str, samples: list[dict[str, Any]],
                    per_kind: int, n_records: int,
                    platform: str) -> tuple[list[str], list[str], list[int]]:
    """Raw malformed lines for one topic: ``per_kind`` of each kind in ``MALFORMED_KINDS``.

    Each is derived from a valid sample record with a fresh ``event_id``
    (``<platform>-bad-<topic>-<n>``), so no malformed line collides with a valid event.

    Returns:
        ``(kinds, lines, positions)``: each line's kind, the raw text, and the index of the
        valid record it is written before (sorted; ``n_records`` = at the end).
    """
    kinds: list[str] = []
    lines: list[str] = []
    if not samples or per_kind == 0:
        return kinds, lines, []
    n = 0
    for kind in MALFORMED_KINDS[topic]:
        for j in range(per_kind):
            n += 1
            base = copy.deepcopy(samples[int(rng.integers(len(samples)))])
            base["event_id"] = f"{platform}-bad-{topic}-{n:04d}"
            lines.append(_break(kind, j, topic, base))
            kinds.append(kind)
    positions = np.sort(rng.integers(0, n_records + 1, len(lines))).tolist()
    shuffle = rng.permutation(len(lines))
    return [kinds[i] for i in shuffle], [lines[i] for i in shuffle], positions


def _break(kind: str, j: int, topic: str, rec: dict[str, Any]) -> str:
    if kind == "not_json":
        return _NOT_JSON[j % len(_NOT_JSON)]
    if kind == "truncated_json":
        text = _dump(rec)
        return text[: max(1, len(text) // 2 - j)]
    if kind == "missing_field":
        rec.pop(_MISSING[topic][j % len(_MISSING[topic])])
    elif kind == "wrong_type":
        if topic == "exposure":
            rec["position"] = str(rec["position"]) if j % 2 == 0 else float(rec["position"]) + 0.5
        else:
            rec["items"][0]["score"] = "high" if j % 2 == 0 else [rec["items"][0]["score"]]
    elif kind == "bad_timestamp":
        rec["ts"] = _BAD_TS[j % len(_BAD_TS)]
    elif kind == "unknown_arm":
        rec["arm"] = ("treatment", "control", "both")[j % 3]
    elif kind == "position_zero":
        target = rec if topic == "exposure" else rec["items"][0]
        target["position"] = 0
    elif kind == "empty_items":
        rec["items"] = []
    return _dump(rec)


def _dump(rec: dict[str, Any]) -> str:
    return msgspec.json.encode(rec).decode()
