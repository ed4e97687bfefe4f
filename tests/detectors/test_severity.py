"""The documented severity rules (detectors.severity)."""

from __future__ import annotations

import pytest

from detectors import severity


@pytest.mark.parametrize(
    ("effect", "lo", "hi", "subject_kind", "kind", "expected"),
    [
        (1.6, 1.25, 2.0, "actor", "amplification", "medium"),  # bound 1.25 → medium
        (1.6, 1.55, 1.7, "actor", "amplification", "high"),
        (2.5, 2.1, 3.0, "actor", "amplification", "critical"),
        (1.1, 1.06, 1.2, "actor", "amplification", "low"),
        (1.1, 1.06, 1.2, "group", "amplification", "medium"),  # party-wide: one level up
        (2.5, 2.1, 3.0, "group", "amplification", "critical"),  # capped
        (0.6, 0.5, 0.7, "actor", "suppression", "medium"),  # 1/0.7 = 1.43
        (0.4, 0.3, 0.45, "actor", "suppression", "critical"),  # 1/0.45 = 2.2
        (0.6, 0.5, 1.1, "actor", "suppression", "low"),  # bound crosses 1
        (3.0, 2.5, 4.0, "actor", "disclosed", "low"),  # informational
    ],
)
def test_by_effect_bound(effect, lo, hi, subject_kind, kind, expected) -> None:
    assert severity.by_effect_bound(effect, lo, hi, subject_kind, kind) == expected


def test_point_estimate_rule_kept() -> None:
    assert severity.by_effect(2.0) == "critical" and severity.by_effect(0.8) == "medium"
    assert severity.by_effect(None) == "medium"
