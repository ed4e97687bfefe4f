"""What is valid in a configuration but probably not what was meant (one line each).

:func:`window_warnings` and :func:`registry_warnings` run when a configuration is read;
:func:`unseen_platforms` at the end of a run, when the platforms in the data are known.  All
return messages; the caller emits them as :class:`~monitor.core.config.ConfigWarning` (the CLI
prints ``amplimon: warning: …``).
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Iterable

from monitor.core.config._keys import nearest, printable
from monitor.core.config._models import Config, Window
from monitor.core.lookalike import key

__all__ = ["registry_warnings", "unseen_platforms", "window_warnings"]


def window_warnings(config: Config) -> list[str]:
    """What is valid but probably not meant, one line each (config order):

    * two windows of the same jurisdiction that overlap;
    * a default baseline (no ``baseline`` given) that overlaps another window whose
      jurisdiction covers, or is covered by, this one's: the "normal" it measures
      against is itself an election period.
    """
    out: list[str] = []
    index = {w.id: i for i, w in enumerate(config.windows)}
    by_j: dict[str, list[Window]] = {}
    for w in config.windows:
        by_j.setdefault(w.jurisdiction, []).append(w)
    for j, ws in by_j.items():  # sweep by start: overlap with the furthest-reaching so far
        ws.sort(key=lambda w: w.start)
        reach: Window | None = None
        for w in ws:
            if reach is not None and w.start < reach.end:
                out.append(
                    f"windows[{index[w.id]}] ({w.id}) overlaps windows"
                    f"[{index[reach.id]}] ({reach.id}), both in {j}"
                )
            if reach is None or w.end > reach.end:
                reach = w
    # related jurisdictions of J: J itself, its country, and (for a country) its subdivisions
    exact = {j: _Reach(ws) for j, ws in by_j.items()}
    tree: dict[str, list[Window]] = {}
    for w in config.windows:
        tree.setdefault(w.jurisdiction[:2], []).append(w)
    subtree = {c: _Reach(sorted(ws, key=lambda w: w.start)) for c, ws in tree.items()}
    for i, w in enumerate(config.windows):
        if w.baseline is not None:
            continue
        base = w.baseline_period
        j = w.jurisdiction
        related = [subtree[j]] if len(j) == 2 else [exact[j], exact.get(j[:2])]
        for tree_or_exact in related:
            other = (
                None if tree_or_exact is None else tree_or_exact.overlapping(base.start, base.end)
            )
            if other is not None and other.id != w.id:
                out.append(
                    f"windows[{i}] ({w.id}): default baseline {_short(base.start)} "
                    f"to {_short(base.end)} overlaps window {other.id!r}; give "
                    "baseline explicitly"
                )
                break
    return out


def registry_warnings(config: Config) -> list[str]:
    """Registry entries that defeat look-alike detection, one line each (registry order):

    * ids or aliases of *different* actors that read alike (the same
      :func:`monitor.core.lookalike.key`: case, spacing, punctuation, accents, look-alike
      characters): an unregistered id resembling them cannot be attributed to one actor,
      and ``monitor.core.identity`` reports it as ambiguous;
    * an id or alias with an empty key (nothing but punctuation, spaces or invisible
      characters): no look-alike of it can be recognised.
    """
    out: list[tuple[int, str]] = []
    by_key: dict[str, list[tuple[int, str, str]]] = {}
    for i, a in enumerate(config.actors):
        for name in (a.actor, *a.aliases):
            where = (
                f"actors[{i}] ({printable(name)})"
                if name == a.actor
                else f"actors[{i}] alias {printable(name)}"
            )
            k = key(name)
            if k:
                by_key.setdefault(k, []).append((i, a.actor, where))
            else:
                out.append(
                    (i, f"{where} has no letter or digit: look-alikes of it cannot be recognised")
                )
    for members in by_key.values():
        if len({actor for _, actor, _ in members}) > 1:
            out.append(
                (
                    members[0][0],
                    f"{' and '.join(where for _, _, where in members)} read alike "
                    "(ignoring case, spacing, punctuation and look-alike characters): an "
                    "unregistered id that resembles them is reported as ambiguous",
                )
            )
    return [message for _, message in sorted(out, key=lambda item: item[0])]


class _Reach:
    """Windows sorted by start, with the furthest-reaching window among each prefix."""

    def __init__(self, windows: list[Window]) -> None:
        self.starts = [w.start for w in windows]
        self.best: list[Window] = []
        for w in windows:
            self.best.append(w if not self.best or w.end > self.best[-1].end else self.best[-1])

    def overlapping(self, start: dt.datetime, end: dt.datetime) -> Window | None:
        """A window overlapping [start, end) among those starting before ``end``."""
        k = bisect.bisect_left(self.starts, end)
        return self.best[k - 1] if k and self.best[k - 1].end > start else None


def _short(value: dt.datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def unseen_platforms(config: Config, seen: Iterable[str]) -> list[str]:
    """One line per ``platforms.<id>`` entry whose platform never appeared in ``seen`` (the
    platforms of the events read), with the nearest seen id: ``platforms.chrip`` beside a
    stream of ``chirp`` silently turns its holdout-share check off.  Empty if nothing was
    seen at all (then there is nothing to compare with)."""
    seen = sorted(set(seen))
    if not seen:
        return []
    out = []
    for pid in config.platforms:
        if pid in seen:
            continue
        near = nearest(pid, seen)
        hint = f"did you mean {near!r}?" if near else f"seen: {', '.join(seen[:10])}"
        out.append(
            f"platforms.{printable(pid)}: no event of this platform in the data "
            f"({hint}); its holdout_share was not checked"
        )
    return out
