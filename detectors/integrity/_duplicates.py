"""Conflicting duplicates: copies of one ``event_id`` with different content.  Ingest makes
every copy a dead letter (reason ``conflicting duplicate``, raw text kept) and counts none,
so the result never depends on which copy arrived first; this check reports how many there
were (a logged fact, from :meth:`detectors.base.Detector.note_ingest`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from detectors.severity import by_placements
from monitor.core.records import Finding

from ._frame import Frame, Key

__all__ = ["DuplicateCheck"]


class DuplicateCheck:
    """Subject ``conflicting_duplicates``.  Ingest counts per topic, not per platform: with
    one platform in the stream the finding is that platform's, otherwise its platform is
    ``*`` and the evidence lists the platforms."""

    def __init__(self, frame: Frame, *, min_conflicting: int) -> None:
        self.frame = frame
        self.min_conflicting = min_conflicting
        self.counts: dict[str, dict[str, int]] = {}

    def note(self, counts: Mapping[str, Mapping[str, int]]) -> None:
        self.counts = {name: dict(per_topic) for name, per_topic in counts.items()}

    def findings(self, keys: set[Key], end_ms: int) -> list[Finding]:
        # the platform's topics only (a panel device's duplicates are not the platform's),
        # and the panel's size stays out of this platform-facing output
        conflicting = {t: n for t, n in self.counts.get("conflicting", {}).items() if t != "panel"}
        total = sum(conflicting.values())
        if total < self.min_conflicting or not keys:
            return []
        platforms = sorted({p for p, _ in keys})
        platform = platforms[0] if len(platforms) == 1 else "*"
        accepted = {t: n for t, n in self.counts.get("accepted", {}).items() if t != "panel"}
        evidence: dict[str, Any] = {
            "rule": "records sharing an event_id with different content: every copy is a "
            "dead letter (reason 'conflicting duplicate', raw text kept), none counted",
            "conflicting_copies": {t: n for t, n in sorted(conflicting.items()) if n},
            "accepted": dict(sorted(accepted.items())),
            "share_of_accepted": total / max(sum(accepted.values()), 1),
            "platforms": platforms,
            "scope": "the whole stream (ingest counts per topic, not per window)",
        }
        windows = sorted({w for _, w in keys})
        return [
            self.frame.finding(
                (platform, w),
                "conflicting_duplicates",
                p_value=None,
                n=total,
                severity=by_placements(total),
                event_ms=end_ms,
                evidence=evidence,
            )
            for w in windows
        ]
