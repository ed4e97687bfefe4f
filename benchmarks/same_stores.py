"""Are two replay stores identical, bit for bit?  (The check behind every speed-up of replay.)

    .venv/bin/python benchmarks/same_stores.py A.duckdb B.duckdb

Compares every result table — findings (evidence included), amplification, detectability,
dead letters — and the run's details (counters, detectors, inputs), leaving out only the
wall-clock columns (``detected_at``, ``updated_at``, ``computed_at``, ``received_at``) and
the run's id and times.  Floats are compared exactly (their ``repr``), not within a
tolerance.  Prints one line per table; exit 1 when any differs, with its first differing row.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import duckdb

QUERIES = {
    "findings": "SELECT * EXCLUDE (detected_at, updated_at) FROM findings ORDER BY finding_id",
    "amplification": "SELECT * EXCLUDE (computed_at) FROM amplification ORDER BY ALL",
    "detectability": "SELECT * EXCLUDE (computed_at) FROM detectability ORDER BY ALL",
    "deadletter": "SELECT * EXCLUDE (received_at) FROM deadletter ORDER BY ALL",
    "runs": "SELECT info FROM runs ORDER BY started_at",
}


def tables(path: str) -> dict[str, list[Any]]:
    con = duckdb.connect(path, read_only=True)
    try:
        out: dict[str, list[Any]] = {
            name: [tuple(map(repr, row)) for row in con.execute(sql).fetchall()]
            for name, sql in QUERIES.items()
            if name != "runs"
        }
        out["runs"] = [
            json.dumps(json.loads(info), sort_keys=True)
            for (info,) in con.execute(QUERIES["runs"]).fetchall()
        ]
    finally:
        con.close()
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    a, b = (tables(p) for p in argv)
    differ = 0
    for name in QUERIES:
        rows_a: list[Any] = a[name]
        rows_b: list[Any] = b[name]
        same = rows_a == rows_b
        print(f"{name:14} {len(rows_a):>7} {len(rows_b):>7}  {'same' if same else 'DIFFERENT'}")
        if not same:
            differ += 1
            first = next(
                (i for i, (x, y) in enumerate(zip(rows_a, rows_b, strict=False)) if x != y),
                min(len(rows_a), len(rows_b)),
            )
            print(f"  first difference at row {first}:", file=sys.stderr)
            for label, rows in (("A", rows_a), ("B", rows_b)):
                print(f"  {label}: {rows[first] if first < len(rows) else '—'}", file=sys.stderr)
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
