"""Data faults a real platform feed has: duplicates, late delivery, malformed records.

All faults are planted deterministically from the seed and counted for the ground truth.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, Final

import msgspec
import numpy as np

__all__ = ["MALFORMED_KINDS", "Arrival", "arrange", "drop_logs", "malformed_lines", "select"]

_MS_PER_MINUTE: Final = 60_000

#: Malformation kinds per topic (``empty_items`` only exists for rankings).
MALFORMED_KINDS: Final = {
    "exposure": (
        "truncated_json",
        "not_json",
        "missing_field",
        "wrong_type",
        "bad_timestamp",
        "unknown_arm",
        "position_zero",
    ),
    "ranking": (
        "truncated_json",
        "not_json",
        "missing_field",
        "wrong_type",
        "bad_timestamp",
        "unknown_arm",
        "position_zero",
        "empty_items",
    ),
}
_NOT_JSON: Final = (
    "<html><head><title>502 Bad Gateway</title></head></html>",
    "ERROR producer: connection reset by peer",
    "event_id,platform,ts,user",
)
_BAD_TS: Final = ("2026-13-45T25:61:00Z", "yesterday", "2026-05-01T12:00:00", "")
_MISSING: Final = {
    "exposure": ("user", "actor", "ts", "event_id"),
    "ranking": ("request", "items", "user", "event_id"),
}


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


def arrange(
    rng: np.random.Generator,
    t_ms: np.ndarray,
    duplicate_share: float,
    late_share: float,
    max_late_minutes: float,
) -> Arrival:
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


def malformed_lines(
    rng: np.random.Generator,
    topic: str,
    samples: list[dict[str, Any]],
    per_kind: int,
    n_records: int,
    platform: str,
) -> tuple[list[str], list[str], list[int]]:
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


def select(cols: Any, keep: np.ndarray) -> Any:
    """The rows ``keep`` (boolean mask) of a :class:`~.records.Columns`; ranking entry
    columns (``e_*``) follow their slates and ``ptr`` is rebased."""
    extra = dict(cols.extra)
    if "ptr" in extra:
        ptr = extra.pop("ptr")
        lengths = np.diff(ptr)
        entry_keep = np.repeat(keep, lengths)
        for key in [k for k in extra if k.startswith("e_")]:
            extra[key] = extra[key][entry_keep]
        extra["ptr"] = np.concatenate([[0], np.cumsum(lengths[keep])]).astype(ptr.dtype)
        extra = {k: extra[k] for k in cols.extra}
    for key in list(extra):
        if not key.startswith("e_") and key != "ptr":
            extra[key] = extra[key][keep]
    return dataclasses.replace(
        cols,
        event_id=cols.event_id[keep],
        platform=cols.platform[keep],
        t_ms=cols.t_ms[keep],
        user=cols.user[keep],
        holdout=cols.holdout[keep],
        request=cols.request[keep],
        extra=extra,
    )


def drop_logs(
    params: Any, exp: Any, rank: Any, n_users: int, seed_stream: Any
) -> tuple[Any, Any, dict[str, Any]]:
    """Apply the log faults of ``params`` (``holdout_log_drop``, ``ranking_log_drop``,
    ``log_outages``) to the faulty platforms: the events are simply never logged.

    ``seed_stream(p)`` gives platform ``p``'s random stream.  Returns the logged columns
    and the counts for the ground truth.
    """
    faulty = params.log_fault_platforms or params.platforms
    origin = int(params.start.timestamp() * 1000)
    outages = [
        (
            origin + int(a.total_seconds() * 1000 * params.time_scale),
            origin + int(b.total_seconds() * 1000 * params.time_scale),
        )
        for a, b in params.log_outages
    ]
    keep_exp = np.ones(len(exp), dtype=bool)
    keep_rank = np.ones(len(rank), dtype=bool)
    dropped_users: dict[str, int] = {}
    for p, name in enumerate(params.platforms):
        if name not in faulty:
            continue
        rng = seed_stream(p)
        drop_user = rng.random(n_users) < params.holdout_log_drop
        on_e, on_r = exp.platform == p, rank.platform == p
        gone_e = on_e & exp.holdout & drop_user[exp.user]
        gone_r = on_r & rank.holdout & drop_user[rank.user]
        dropped_users[name] = int((drop_user & _holdout_users(exp, rank, p, n_users)).sum())
        gone_r |= on_r & (rng.random(len(rank)) < params.ranking_log_drop)
        for a, b in outages:
            gone_e |= on_e & (exp.t_ms >= a) & (exp.t_ms < b)
            gone_r |= on_r & (rank.t_ms >= a) & (rank.t_ms < b)
        keep_exp &= ~gone_e
        keep_rank &= ~gone_r
    counts = {
        "platforms": list(faulty),
        "holdout_users_dropped": dropped_users,
        "exposures_dropped": int((~keep_exp).sum()),
        "rankings_dropped": int((~keep_rank).sum()),
        "outages": [[dt_iso(a), dt_iso(b)] for a, b in outages],
    }
    return select(exp, keep_exp), select(rank, keep_rank), counts


def dt_iso(ms: int) -> str:
    return np.datetime_as_string(np.datetime64(ms, "ms"), unit="s") + "Z"


def _holdout_users(exp: Any, rank: Any, p: int, n_users: int) -> np.ndarray:
    """Users of platform ``p``'s holdout arm with at least one event."""
    seen = np.zeros(n_users, dtype=bool)
    seen[exp.user[(exp.platform == p) & exp.holdout]] = True
    seen[rank.user[(rank.platform == p) & rank.holdout]] = True
    return seen
