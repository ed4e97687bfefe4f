"""Replay throughput and peak memory, side by side with a plain DuckDB scan of the same files.

    .venv/bin/python benchmarks/bench_replay.py [--scale 5] [--out benchmarks/results]

1. Simulates an election with ``scenario("default", scale=S)`` (≥ 1M exposure events at the
   default scale) and writes it as JSON Lines.
2. Runs ``amplimon replay`` (all detectors) in a child process; measures wall time, CPU time
   and peak RSS of that process.
3. In the same run, a plain DuckDB SQL scan of the same files computes the per-arm exposure
   counts per actor (no validation, dedup, windows or statistics): the reference.
4. Repeats replay on half the stream to show memory is bounded by state, not input length.

Prints a table and writes ``results/replay.json``.  Ratios compare the two in the same run
on the same machine, so they are comparable across machines; absolute figures are not.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def child(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; return its JSON output plus CPU and peak RSS."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, check=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out.update(wall_s=wall, cpu_s=(after.ru_utime - before.ru_utime)
               + (after.ru_stime - before.ru_stime))
    return out


REPLAY = """
import json, resource, time
from monitor.config import load_config
from monitor.replay import replay
cfg = load_config({cfg!r})
t = time.perf_counter()
r = replay(cfg, {db!r}, [{ex!r}], [{rk!r}], show_progress=False)
print(json.dumps({{"inner_s": time.perf_counter() - t,
                   "exposures": r.stats.accepted["exposure"],
                   "rankings": r.stats.accepted["ranking"],
                   "records": r.stats.records, "findings": r.findings,
                   "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""

SIMULATE = """
import json, time
from streams.simulator import scenario, write_simulation
t = time.perf_counter()
write_simulation({out!r}, scenario("default", seed=7, scale={scale!r}), fmt="jsonl")
print(json.dumps({{"inner_s": time.perf_counter() - t}}))
"""

SCAN = """
import json, resource, time, duckdb
con = duckdb.connect()
t = time.perf_counter()
rows = con.execute('''
    SELECT platform, region, actor, arm, count(*) AS n, count(DISTINCT "user") AS users
    FROM read_json({ex!r}, format='newline_delimited', ignore_errors=true,
                   columns={{'platform': 'VARCHAR', 'region': 'VARCHAR', 'actor': 'VARCHAR',
                            'arm': 'VARCHAR', 'user': 'VARCHAR', 'event_id': 'VARCHAR'}})
    GROUP BY ALL''').fetchall()
n = con.execute('''SELECT count(*) FROM read_json({ex!r}, format='newline_delimited',
    ignore_errors=true, columns={{'event_id': 'VARCHAR'}})''').fetchone()[0]
print(json.dumps({{"inner_s": time.perf_counter() - t, "groups": len(rows), "lines": n,
                   "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""

SCAN_1CORE = SCAN.replace("con = duckdb.connect()", "con = duckdb.connect(config={{'threads': 1}})")


def head_jsonl(src: Path, dst: Path, fraction: float) -> None:
    """The first ``fraction`` of the lines, streamed: this process must stay small, because a
    forked child's peak RSS starts from its parent's."""
    with src.open("rb") as fh:
        total = sum(1 for _ in fh)
    keep = int(total * fraction)
    with src.open("rb") as fh, dst.open("wb") as out:
        for i, line in enumerate(fh):
            if i >= keep:
                break
            out.write(line)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=5.0, help="simulator user scale (5 ≈ 1.1M)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--work", type=Path, default=Path("/tmp/amplimon-bench-replay"))
    args = ap.parse_args()

    args.work.mkdir(parents=True, exist_ok=True)
    # In a child: a forked child's peak RSS would otherwise include this process's.
    sim = child(SIMULATE.format(out=str(args.work), scale=args.scale))
    sim_s = sim["inner_s"]
    cfg, ex, rk = (str(args.work / n) for n in ("amplimon.yaml", "exposure.jsonl",
                                                  "ranking.jsonl"))
    head_jsonl(Path(ex), args.work / "half_ex.jsonl", 0.5)
    head_jsonl(Path(rk), args.work / "half_rk.jsonl", 0.5)

    results = {}
    for name, (e, r) in {"full": (ex, rk), "half": (str(args.work / "half_ex.jsonl"),
                                                    str(args.work / "half_rk.jsonl"))}.items():
        db = str(args.work / f"{name}.duckdb")
        Path(db).unlink(missing_ok=True)
        results[f"replay_{name}"] = child(REPLAY.format(cfg=cfg, db=db, ex=e, rk=r))
    results["duckdb_scan"] = child(SCAN.format(ex=ex))
    results["duckdb_scan_1thread"] = child(SCAN_1CORE.format(ex=ex))

    rep, scan = results["replay_full"], results["duckdb_scan"]
    scan1 = results["duckdb_scan_1thread"]
    ev = rep["exposures"]
    summary = {
        "exposure_events": ev, "all_records": rep["records"], "simulate_s": sim_s,
        "replay_events_per_s_wall": ev / rep["inner_s"],
        "replay_records_per_s_wall": rep["records"] / rep["inner_s"],
        "replay_events_per_cpu_s": ev / rep["cpu_s"],
        "duckdb_scan_events_per_s": scan["lines"] / scan["inner_s"],
        "duckdb_scan_1thread_events_per_s": scan1["lines"] / scan1["inner_s"],
        "ratio_vs_duckdb_scan": scan["inner_s"] / rep["inner_s"],
        "ratio_vs_duckdb_scan_1thread": scan1["inner_s"] / rep["inner_s"],
        "peak_rss_mb_full": rep["peak_rss_mb"],
        "peak_rss_mb_half": results["replay_half"]["peak_rss_mb"],
        "peak_rss_mb_duckdb_scan": scan["peak_rss_mb"],
    }
    results["summary"] = summary
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "replay.json").write_text(json.dumps(results, indent=2))
    width = max(map(len, summary))
    for k, v in summary.items():
        print(f"{k:<{width}}  {v:,.3f}" if isinstance(v, float) else f"{k:<{width}}  {v:,}")


if __name__ == "__main__":
    main()
