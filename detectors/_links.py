"""Links exposures to the slate entry that produced them.

An exposure names its slate by ``request`` (optional in the contract); without it, the most
recent slate entry of the same (user, item) is used.  Entries expire ``horizon_ms`` of event
time after the slate, so memory is bounded by the slate rate, not the stream length.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

from monitor.core.contract import Exposure

__all__ = ["SlateLinks"]

V = TypeVar("V")


class SlateLinks(Generic[V]):
    def __init__(self, horizon_ms: int = 3_600_000) -> None:
        self.horizon_ms = horizon_ms
        self._by_request: OrderedDict[tuple[str, str], tuple[int, V]] = OrderedDict()
        self._by_user_item: dict[tuple[str, str], tuple[int, V]] = {}

    def add(self, request: str, user: str, item: str, ts: int, value: V) -> None:
        self._by_request[(request, item)] = (ts, value)
        self._by_user_item[(user, item)] = (ts, value)

    def find(self, e: Exposure) -> V | None:
        hit = (
            self._by_request.get((e.request, e.item))
            if e.request is not None
            else self._by_user_item.get((e.user, e.item))
        )
        return None if hit is None else hit[1]

    def expire(self, now_ms: int) -> None:
        cutoff = now_ms - self.horizon_ms
        while self._by_request:
            key, (ts, _) = next(iter(self._by_request.items()))
            if ts >= cutoff:
                break
            del self._by_request[key]
        if len(self._by_user_item) > 2 * len(self._by_request) + 1024:
            self._by_user_item = {k: v for k, v in self._by_user_item.items() if v[0] >= cutoff}
