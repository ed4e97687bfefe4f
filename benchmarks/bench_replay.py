"""Replay end to end against a plain DuckDB SQL job over the same files, with peak memory.

    .venv/bin/python benchmarks/bench_replay.py [--scales 1,10] [--workers 1,2]
                                                [--out benchmarks/results]

For each simulator scale (``scenario("default", scale=S)``; 1 ≈ 209 k exposure and 35 k
ranking records, written as gzip JSON Lines, duplicates and malformed lines included):

* **reference** — a plain DuckDB SQL job over the same files, all threads: per event-time
  tick (15 min), per actor and per arm, the exposure count and the distinct users; per tick
  and actor the slate entries and their summed score − organic score.  No validation, no
  dead letters, no dedup, no statistics: the floor a columnar engine should reach.
* **replay** — ``amplimon replay`` (all detectors) with ``--workers N`` for each N, in a
  child process: wall time, CPU time and peak RSS of that process *and its decoding
  workers* (``RUSAGE_CHILDREN`` of a wrapper process).

Prints a table and writes ``results/replay.json``.  Ratios compare runs on the same machine in
the same invocation; absolute figures depend on the machine (and on what else it is doing).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIMULATE = """
import json
from streams.simulator import scenario, write_simulation
write_simulation({out!r}, scenario("default", seed=7, scale={scale!r}), fmt="jsonl.gz")
print(json.dumps({{}}))
"""

REPLAY = """
import json, time
from monitor.core.config import load_config
from monitor.core.privacy import Pseudonymiser
from monitor.app.replay import replay
cfg = load_config({cfg!r})
t = time.perf_counter()
r = replay(cfg, {db!r}, [{ex!r}], [{rk!r}], show_progress=False, workers={workers},
           existing="replace", pseudonymiser=Pseudonymiser(b"k" * 32))
print(json.dumps({{"inner_s": time.perf_counter() - t, "records": r.stats.records,
                   "exposures": r.stats.accepted["exposure"],
                   "rankings": r.stats.accepted["ranking"], "findings": r.findings}}))
"""

REFERENCE = """
import json, time, duckdb
con = duckdb.connect()
t = time.perf_counter()
ts = ("(CASE WHEN regexp_full_match(ts, '[0-9]+') THEN TRY_CAST(ts AS BIGINT) "
      "ELSE epoch_ms(TRY_CAST(ts AS TIMESTAMPTZ)) END) // 900000")
exposures = con.execute(f'''
    SELECT platform, {{ts}} AS tick, actor, arm, count(*) AS n, count(DISTINCT "user") AS users
    FROM read_json({ex!r}, format='newline_delimited', ignore_errors=true,
                   columns={{{{'platform': 'VARCHAR', 'ts': 'VARCHAR', 'user': 'VARCHAR',
                             'arm': 'VARCHAR', 'actor': 'VARCHAR'}}}})
    GROUP BY ALL''').fetchall()
entries = con.execute(f'''
    SELECT platform, {{ts}} AS tick, it.actor, count(*) AS n,
           sum(it.score - coalesce(it.organic_score, it.score)) AS uplift
    FROM (SELECT platform, ts, unnest(items) AS it
          FROM read_json({rk!r}, format='newline_delimited', ignore_errors=true,
                         columns={{{{'platform': 'VARCHAR', 'ts': 'VARCHAR',
                                   'items': 'STRUCT(actor VARCHAR, score DOUBLE,
                                                    organic_score DOUBLE)[]'}}}}))
    GROUP BY ALL''').fetchall()
print(json.dumps({{"inner_s": time.perf_counter() - t, "groups": len(exposures) + len(entries)}}))
"""

# Runs its code in a grandchild so RUSAGE_CHILDREN covers it and every process it starts.
WRAP = """
import json, resource, subprocess, sys
p = subprocess.run([sys.executable, "-c", sys.argv[1]], capture_output=True, text=True,
                   check=True)
out = json.loads(p.stdout.strip().splitlines()[-1])
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
out.update(cpu_s=ru.ru_utime + ru.ru_stime, peak_rss_mb=ru.ru_maxrss / 1024)
print(json.dumps(out))
"""


def child(code: str) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", WRAP, code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall_s"] = time.perf_counter() - t0
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scales", default="1,10", help="simulator user scales")
    ap.add_argument("--workers", default="1,2", help="replay --workers values")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--work", type=Path, default=Path("/tmp/amplimon-bench-replay"))
    args = ap.parse_args()
    results: dict[str, dict] = {"machine": {"cpus": os.cpu_count(), "load_before": os.getloadavg()}}
    for scale in [float(s) for s in args.scales.split(",")]:
        work = args.work / f"scale-{scale:g}"
        work.mkdir(parents=True, exist_ok=True)
        if not (work / "exposure.jsonl.gz").exists():
            child(SIMULATE.format(out=str(work), scale=scale))
        cfg, ex, rk = (
            str(work / n) for n in ("amplimon.yaml", "exposure.jsonl.gz", "ranking.jsonl.gz")
        )
        row: dict[str, dict] = {"reference": child(REFERENCE.format(ex=ex, rk=rk))}
        for w in [int(x) for x in args.workers.split(",")]:
            row[f"replay_workers_{w}"] = child(
                REPLAY.format(cfg=cfg, db=str(work / f"w{w}.duckdb"), ex=ex, rk=rk, workers=w)
            )
        ref = row["reference"]["inner_s"]
        base = row[f"replay_workers_{args.workers.split(',')[0]}"]
        summary = {
            "records": base["records"],
            "exposure_events": base["exposures"],
            "reference_s": ref,
            "reference_peak_rss_mb": row["reference"]["peak_rss_mb"],
        }
        for name, r in row.items():
            if name.startswith("replay_"):
                summary[f"{name}_s"] = r["inner_s"]
                summary[f"{name}_records_per_s"] = r["records"] / r["inner_s"]
                summary[f"{name}_ratio_vs_reference"] = ref / r["inner_s"]
                summary[f"{name}_peak_rss_mb"] = r["peak_rss_mb"]
        ws = [int(x) for x in args.workers.split(",")]
        if len(ws) > 1:
            first, last = row[f"replay_workers_{ws[0]}"], row[f"replay_workers_{ws[-1]}"]
            summary[f"speedup_{ws[0]}_to_{ws[-1]}_workers"] = first["inner_s"] / last["inner_s"]
        row["summary"] = summary
        results[f"scale_{scale:g}"] = row
        print(f"== scale {scale:g}")
        width = max(map(len, summary))
        for k, v in summary.items():
            print(f"  {k:<{width}}  {v:,.3f}" if isinstance(v, float) else f"  {k:<{width}}  {v:,}")
    results["machine"]["load_after"] = os.getloadavg()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "replay.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
