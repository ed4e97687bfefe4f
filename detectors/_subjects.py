"""Helpers shared by the subject-level detectors: subject lists and disclosure coverage."""

from __future__ import annotations

from typing import Any

from monitor.core.config import Config, Disclosure, Window, covers

__all__ = ["covering_disclosures", "disclosure_json", "window_subjects"]

SubjectKey = tuple[str, str]


def window_subjects(config: Config, window: Window) -> list[SubjectKey]:
    """Registered actors monitored in ``window`` and the groups they form (config order) —
    the ``m`` subjects a detector tests per platform in that window."""
    actors = [a for a in config.actors if a.monitored_in(window.jurisdiction)]
    out: list[SubjectKey] = [("actor", a.actor) for a in actors]
    groups = dict.fromkeys(a.group for a in actors if a.group)
    out.extend(("group", g) for g in groups if g is not None)
    return out


def _overlaps(d: Disclosure, start_ms: int, end_ms: int) -> bool:
    if d.end_ms is not None and d.end_ms <= start_ms:
        return False
    return not (d.start_ms is not None and d.start_ms >= end_ms)


def covering_disclosures(
    config: Config, platform: str, window: Window, subject: SubjectKey
) -> list[Disclosure]:
    """Disclosures of ``platform`` that may explain a change of ``subject`` in ``window``.

    A disclosure counts if its regions (empty = all) overlap the window's jurisdiction, its
    period overlaps ``[baseline start, window end)``, and it names the actor or its group, or
    names nobody (all actors).  For a group, a disclosure naming any monitored member counts
    too (the member's declared boost moves the group's exposure).
    """
    kind, name = subject
    j = window.jurisdiction
    start, end = window.baseline_period.start_ms, window.window_period.end_ms
    if kind == "actor":
        entry = config.registry.get(name)
        actors = {name}
        groups = {entry.group} if entry is not None and entry.group else set()
    else:
        actors = {a.actor for a in config.actors if a.group == name and a.monitored_in(j)}
        groups = {name}
    out = []
    for d in config.disclosures:
        if d.platform != platform or not _overlaps(d, start, end):
            continue
        if d.regions and not any(covers(r, j) or covers(j, r) for r in d.regions):
            continue
        if (not d.actors and not d.groups) or actors & set(d.actors) or groups & set(d.groups):
            out.append(d)
    return out


def disclosure_json(disclosures: list[Disclosure]) -> list[dict[str, Any]]:
    return [d.model_dump(mode="json") for d in disclosures]
