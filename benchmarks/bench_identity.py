"""Look-alike actor ids (``monitor.core.identity``): false positives, detection, cost.

    .venv/bin/python benchmarks/bench_identity.py [--registry 500] [--unrelated 20000]
        [--disguised 20000] [--seed 1] [--out benchmarks/results]

1. **False positives** — a registry of ``--registry`` ids of mixed shapes (pseudonymous
   handles, Zipf-named handles, uniform random strings, account numbers, the simulator's
   ids), none reading like another; ``--unrelated`` fresh unregistered ids of each shape:
   share reported as a near miss, by rule, with a Clopper–Pearson 95 % interval.
   ``namesake`` handles come from Zipf-distributed names, so many share a registered
   actor's name: those whose handle differs only in separators *read* as the actor and are
   reported by design; that share is the price of catching ``jane_doe`` for ``jane-doe``.
2. **Detection** — ``--disguised`` registered ids, each with a random composition of 1–6
   of the disguises in ``tests/monitor/identity_support.py`` (case, spaces, NBSP, invisible
   characters, ``@``, separators, homoglyphs, full-width, combining marks, bidi controls):
   share found as a near miss of the right actor.  Then single typing errors (delete,
   insert, substitute or transpose one letter at a random place): share found, split by
   where the edit falls (inside a run of ≥ 4 letters away from its first letter — the rule's
   scope — or elsewhere).
3. **Cost** — time per ``near_miss`` call on unrelated ids (the worst case: the
   edit-distance scan) with registries of 100 and 10,000 ids, as a ratio to one
   ``lookalike.key`` call measured in the same run; peak Python heap of building the index
   of 10,000 ids (tracemalloc).

Prints a table and writes ``results/identity.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import tracemalloc
from pathlib import Path

from scipy.stats import binomtest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitor.core.identity import IdentityIndex  # noqa: E402
from monitor.core.lookalike import key  # noqa: E402
from tests.monitor.identity_support import (  # noqa: E402
    DISGUISES,
    UNRELATED,
    disguise,
    false_positives,
    registry_ids,
)


def rate(k: int, n: int) -> dict[str, float | int]:
    ci = binomtest(k, n).proportion_ci(0.95, method="exact")
    return {"k": k, "n": n, "rate": k / n, "ci_low": ci.low, "ci_high": ci.high}


def registry(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    out: list[str] = []
    keys: set[str] = set()
    for name in registry_ids(rng, n * 2):
        if len(out) < n and key(name) not in keys:
            out.append(name)
            keys.add(key(name))
    return out


def detection(seed: int, n_registry: int, n: int) -> dict[str, object]:
    rng = random.Random(seed)
    names = registry(seed, n_registry)
    index = IdentityIndex((name, name) for name in names)
    found = tried = 0
    for _ in range(n):
        target = rng.choice(names)
        spelled = disguise(
            target, [rng.choice(sorted(DISGUISES)) for _ in range(rng.randint(1, 6))], rng
        )
        if spelled == target or index.resolve(spelled) is not None:
            continue
        tried += 1
        hit = index.near_miss(spelled)
        found += hit is not None and hit.actor == target
    typo = {"in_scope": [0, 0], "out_of_scope": [0, 0]}
    letters = "abcdefghjknpqrstuvwxyz"
    for _ in range(n):
        target = rng.choice([x for x in names if sum(c.isalpha() for c in x) >= 6] or names)
        i = rng.randrange(len(target))
        op = rng.choice(("delete", "insert", "replace", "swap"))
        new = rng.choice(letters)
        spelled = {
            "delete": target[:i] + target[i + 1 :],
            "insert": target[:i] + new + target[i:],
            "replace": target[:i] + new + target[i + 1 :],
            "swap": target[:i] + target[i + 1 : i + 2] + target[i] + target[i + 2 :],
        }[op]
        if index.resolve(spelled) is not None or key(spelled) == key(target):
            continue
        run = _run_of(target, i)
        scope = (
            "in_scope"
            if len(run[1]) >= 4
            and run[0] > 0
            and target[i].isalpha()
            and not (op == "swap" and not target[i + 1 : i + 2].isalpha())
            else "out_of_scope"
        )
        hit = index.near_miss(spelled)
        typo[scope][0] += hit is not None and hit.actor == target
        typo[scope][1] += 1
    return {
        "disguised": rate(found, tried),
        "typo_in_scope": rate(*typo["in_scope"]),
        "typo_out_of_scope": rate(*typo["out_of_scope"]),
    }


def _run_of(text: str, i: int) -> tuple[int, str]:
    """(offset of ``text[i]`` in its run of letters, the run)."""
    start = i
    while start > 0 and text[start - 1].isalpha():
        start -= 1
    end = i
    while end < len(text) and text[end].isalpha():
        end += 1
    return i - start, text[start:end]


def cost(seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    probes = [UNRELATED["handle"](rng) for _ in range(2_000)]
    for p in probes[:200]:  # warm: the confusables table is read on first use
        key(p)
    start = time.perf_counter()
    for p in probes:
        key(p + "\u200b")  # defeat the per-character cache as little as a new id would
    per_key = (time.perf_counter() - start) / len(probes)
    out: dict[str, float] = {"key_us": per_key * 1e6}
    for n in (100, 10_000):
        tracemalloc.start()
        index = IdentityIndex((name, name) for name in registry(seed, n))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        start = time.perf_counter()
        for p in probes:
            index.near_miss(p)
        per_call = (time.perf_counter() - start) / len(probes)
        out[f"near_miss_us_{n}"] = per_call * 1e6
        out[f"near_miss_over_key_{n}"] = per_call / per_key
        out[f"index_peak_mib_{n}"] = peak / 2**20
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", type=int, default=500)
    parser.add_argument("--unrelated", type=int, default=20_000)
    parser.add_argument("--disguised", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    fp = false_positives(args.seed, args.registry, args.unrelated)
    results: dict[str, object] = {
        "registry": args.registry,
        "false_positives": {
            shape: {
                "any": rate(c["normalisation"] + c["edit_distance"], c["n"]),
                "normalisation": c["normalisation"],
                "edit_distance": c["edit_distance"],
            }
            for shape, c in fp.items()
        },
        "detection": detection(args.seed, args.registry, args.disguised),
        "cost": cost(args.seed),
    }
    print(f"false positives (registry {args.registry}, {args.unrelated:,} unrelated per shape)")
    for shape, row in results["false_positives"].items():  # type: ignore[union-attr]
        r = row["any"]
        print(
            f"  {shape:10s} {r['k']:6d} / {r['n']:,}  {100 * r['rate']:.3f} %  "
            f"[{100 * r['ci_low']:.3f}, {100 * r['ci_high']:.3f}]  "
            f"(normalisation {row['normalisation']}, edit {row['edit_distance']})"
        )
    print("detection")
    for what, r in results["detection"].items():  # type: ignore[union-attr]
        print(
            f"  {what:18s} {r['k']:6d} / {r['n']:,}  {100 * r['rate']:.2f} %  "
            f"[{100 * r['ci_low']:.2f}, {100 * r['ci_high']:.2f}]"
        )
    print("cost " + ", ".join(f"{k} {v:.2f}" for k, v in results["cost"].items()))  # type: ignore[union-attr]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "identity.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
