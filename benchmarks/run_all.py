"""Run every benchmark in ``benchmarks/`` with its defaults, one after another.

    .venv/bin/python benchmarks/run_all.py [--only replay,detectors] [--list]

Each ``bench_<name>.py`` is run in its own process (so peak memory is its own) and writes its
JSON results under ``benchmarks/results/``; this script reports each one's exit status and wall
time, and exits 1 if any failed.  The figures themselves are in each script's output and in
the README's Performance section.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def discover() -> dict[str, Path]:
    return {p.stem.removeprefix("bench_"): p for p in sorted(HERE.glob("bench_*.py"))}


def main(argv: list[str] | None = None) -> int:
    scripts = discover()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated names: " + ", ".join(scripts))
    parser.add_argument("--list", action="store_true", help="list the benchmarks and stop")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(scripts))
        return 0
    chosen = [n for n in args.only.split(",") if n] or list(scripts)
    unknown = [n for n in chosen if n not in scripts]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}; known: {', '.join(scripts)}")
    failed: list[str] = []
    for name in chosen:
        print(f"== {name}", flush=True)
        start = time.monotonic()
        rc = subprocess.call([sys.executable, str(scripts[name])], cwd=HERE.parent)
        print(f"== {name}: exit {rc} in {time.monotonic() - start:.0f} s", flush=True)
        if rc != 0:
            failed.append(name)
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
