"""Event gaps: the platform's stream silent for implausibly long (module docstring,
"Event gaps")."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from detectors.severity import by_gap_minutes
from monitor.core.records import Finding, ms_to_datetime

from ._frame import Frame, Key

__all__ = ["GapCheck"]


@dataclass
class _Stream:
    first_idx: int
    last_idx: int | None = None
    user_ticks: int = 0  # Σ over ticks of the distinct users active in the tick
    leading: tuple[int, int, int] | None = None  # (empty ticks, first, end) before first event
    gaps: list[dict[str, Any]] = field(default_factory=list)
    first_gap_ms: int | None = None


class GapCheck:
    """Subject ``event_gaps``: a rule on logged facts (no p-value, no alpha)."""

    def __init__(self, frame: Frame, *, max_gap_ticks: int, min_expected_users: float) -> None:
        self.frame = frame
        self.max_gap_ticks = max_gap_ticks
        self.min_expected_users = min_expected_users
        self.streams: dict[Key, _Stream] = {}
        self.changed: set[Key] = set()
        self.first_idx: int | None = None
        self.last_idx: int | None = None

    def tick(self, idx: int, active: dict[Key, set[str]]) -> None:
        """One tick with the distinct users active per key."""
        self.first_idx = idx if self.first_idx is None else self.first_idx
        self.last_idx = idx
        for k in sorted(active):
            self._check(k, idx)
            self.streams[k].user_ticks += len(active[k])

    def _monitored(self, window_id: str, lo: int, hi: int) -> tuple[int, int, int]:
        """Ticks in ``[lo, hi)`` inside the window's periods: (count, first, last + 1)."""
        scope = self.frame.scope(window_id)
        t = self.frame.tick_ms
        count, first, last = 0, None, None
        for start, end in scope.periods:
            a = max(lo, -(-start // t))
            b = min(hi, -(-end // t))
            if b > a:
                count += b - a
                first = a if first is None else min(first, a)
                last = b if last is None else max(last, b)
        return count, lo if first is None else first, lo if last is None else last

    def _check(self, key: Key, idx: int, *, closing: bool = False) -> None:
        stream = self.streams.get(key)
        if stream is None:
            assert self.first_idx is not None
            stream = self.streams[key] = _Stream(first_idx=idx)
            stream.leading = self._monitored(key[1], self.first_idx, idx)
            stream.last_idx = idx
            return
        assert stream.last_idx is not None
        empty, first, last = self._monitored(key[1], stream.last_idx + 1, idx)
        if not closing:
            stream.last_idx = idx
        elapsed = self._monitored(key[1], stream.first_idx, first)[0]
        self._gap(
            key,
            stream,
            empty,
            first,
            last,
            stream.user_ticks / max(elapsed, 1),
            at_stream_end=closing,
        )

    def _gap(
        self,
        key: Key,
        stream: _Stream,
        empty: int,
        first: int,
        last: int,
        rate: float,
        *,
        at_stream_end: bool = False,
        at_stream_start: bool = False,
    ) -> None:
        if empty <= self.max_gap_ticks or empty * rate < self.min_expected_users:
            return
        t = self.frame.tick_ms
        stream.gaps.append(
            {
                "start": ms_to_datetime(first * t).isoformat(),
                "end": ms_to_datetime(last * t).isoformat(),
                "minutes": empty * t / 60_000,
                "empty_ticks": empty,
                "users_per_tick": rate,
                "expected_users": empty * rate,
                "at_stream_start": at_stream_start,
                "at_stream_end": at_stream_end,
            }
        )
        stream.gaps.sort(key=lambda g: g["start"])
        end_ms = last * t
        stream.first_gap_ms = (
            end_ms if stream.first_gap_ms is None else min(stream.first_gap_ms, end_ms)
        )
        self.changed.add(key)

    def close(self) -> None:
        """End of stream: the trailing and leading silences."""
        if self.last_idx is None:
            return
        for key in sorted(self.streams):
            self._check(key, self.last_idx + 1, closing=True)
            stream = self.streams[key]
            if stream.leading is not None:
                assert stream.last_idx is not None
                span = self._monitored(key[1], stream.first_idx, stream.last_idx + 1)[0]
                self._gap(
                    key,
                    stream,
                    *stream.leading,
                    stream.user_ticks / max(span, 1),
                    at_stream_start=True,
                )
                stream.leading = None

    def evaluate(self, keys: set[Key] | None, n_of: dict[Key, int]) -> list[Finding]:
        out = []
        for key in sorted(self.changed if keys is None else keys):
            finding = self._finding(key, self.streams[key], n_of.get(key, 0))
            if finding is not None:
                out.append(finding)
        self.changed.clear()
        return out

    def _finding(self, key: Key, stream: _Stream, n: int) -> Finding | None:
        if not stream.gaps or stream.first_gap_ms is None:
            return None
        longest = max(g["minutes"] for g in stream.gaps)
        evidence = {
            "rule": f"no event of the platform in the window's region scope for more "
            f"than {self.max_gap_ticks} ticks inside a monitored period, "
            f"where {self.min_expected_users:g}+ active users were expected",
            "max_gap_ticks": self.max_gap_ticks,
            "min_expected_users": self.min_expected_users,
            "tick_minutes": self.frame.tick_ms / 60_000,
            "gaps": stream.gaps,
            "longest_gap_minutes": longest,
        }
        return self.frame.finding(
            key,
            "event_gaps",
            p_value=None,
            n=n,
            severity=by_gap_minutes(longest),
            event_ms=stream.first_gap_ms,
            evidence=evidence,
        )
