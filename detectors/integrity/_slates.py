"""Compact slates: one small string per logged slate (the exposure-links check keeps every
slate of the last ``link_hours``)."""

from __future__ import annotations

from collections.abc import Sequence

from monitor.core.contract import RankedItem

__all__ = ["compact", "position"]

_ITEM, _POS = "\x1f", "\x1e"


def compact(items: Sequence[RankedItem]) -> str | dict[str, int]:
    """A slate as ``US item RS position US item RS position US`` (ASCII separators) — one
    small string instead of a dict and the item strings it would keep alive; a dict when an
    id holds a separator."""
    if any(_ITEM in it.item or _POS in it.item for it in items):
        return {it.item: it.position for it in items}
    return _ITEM + _ITEM.join(f"{it.item}{_POS}{it.position}" for it in items) + _ITEM


def position(slate: str | dict[str, int], item: str) -> int | None:
    """Position of ``item`` in a :func:`compact` slate, None if absent."""
    if isinstance(slate, dict):
        return slate.get(item)
    if _ITEM in item or _POS in item:
        return None  # a compact slate holds no id with a separator
    start = slate.find(f"{_ITEM}{item}{_POS}")
    if start < 0:
        return None
    start += len(item) + 2
    return int(slate[start : slate.index(_ITEM, start)])
