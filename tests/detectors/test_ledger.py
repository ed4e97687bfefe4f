"""The ledger's user and item moments equal a direct numpy computation, for any arrival order."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.ledger import HOLDOUT, RANKED, ExposureLedger
from monitor.core.config import parse_config
from monitor.core.contract import decode_obj

T0 = 1_777_852_800_000  # window start (baseline: the day before)
CFG = parse_config(
    {
        "windows": [
            {
                "id": "w",
                "jurisdiction": "DE",
                "start": "2026-05-04T00:00:00Z",
                "end": "2026-05-05T00:00:00Z",
            }
        ],
        "actors": [
            {"actor": "a1", "group": "g", "regions": ["DE"]},
            {"actor": "a2", "group": "g", "regions": ["DE"]},
        ],
    }
)


def _exposures(rows: list[tuple[int, int, int, int, bool]]) -> list:
    return [
        decode_obj(
            "exposure",
            {
                "event_id": f"e{k}",
                "platform": "p",
                "ts": T0 + 1000 * k,
                "user": f"u{u}",
                "region": "DE-BY",
                "surface": "feed",
                "arm": "ranked" if ranked else "holdout",
                "item": f"{'a1' if a == 0 else 'a2' if a == 1 else 'bg'}-i{i}",
                "actor": ("a1", "a2", "bg")[a],
                "position": 1,
            },
        )
        for k, (u, a, i, _, ranked) in enumerate(rows)
    ]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 15),
            st.integers(0, 2),
            st.integers(0, 6),
            st.integers(0, 0),
            st.booleans(),
        ),
        min_size=1,
        max_size=120,
    ),
    st.integers(1, 7),
)
def test_moments_match_numpy(rows, chunk) -> None:
    ledger = ExposureLedger(CFG)
    exps = _exposures(rows)
    for k in range(0, len(exps), chunk):  # several ticks
        ledger.observe(exps[k : k + chunk])
    cell = ledger.cell("p", "w", "window")
    assert cell is not None
    arr = np.array([(u, a, i, int(r)) for u, a, i, _, r in rows])
    for subject, members in (
        (("actor", "a1"), [0]),
        (("actor", "a2"), [1]),
        (("group", "g"), [0, 1]),
    ):
        mine = arr[np.isin(arr[:, 1], members)]
        arms = cell.subjects.get(subject)
        if mine.size == 0:
            assert arms is None
            continue
        for arm, flag in ((RANKED, 1), (HOLDOUT, 0)):
            sel = mine[mine[:, 3] == flag]
            _, per_user = np.unique(sel[:, 0], return_counts=True) if sel.size else (0, [])
            per_user = np.asarray(per_user)
            assert arms[arm].total == len(sel)
            assert arms[arm].sumsq == int((per_user**2).sum())
        keys = mine[:, 1] * 100 + mine[:, 2]
        items = np.unique(keys)
        r = np.array([((keys == k) & (mine[:, 3] == 1)).sum() for k in items])
        h = np.array([((keys == k) & (mine[:, 3] == 0)).sum() for k in items])
        assert arms[RANKED].item_sumsq == int((r**2).sum())
        assert arms[HOLDOUT].item_sumsq == int((h**2).sum())
        assert arms[RANKED].cross + arms[HOLDOUT].cross == int((r * h).sum())
        assert arms[RANKED].items + arms[HOLDOUT].items == items.size
