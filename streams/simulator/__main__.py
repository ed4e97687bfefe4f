"""``python -m streams.simulator --out DIR --scenario NAME --seed N [--format FMT]``."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time

from .params import TS_FORMATS
from .scenarios import SCENARIOS, scenario
from .simulation import simulate
from .writer import FORMATS, write_simulation


def _start(text: str) -> dt.datetime:
    if text == "now":
        now = dt.datetime.now(dt.UTC)
        return now.replace(second=0, microsecond=0)
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError("needs a time zone, e.g. 2026-05-01T00:00:00Z")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m streams.simulator",
        description="Write simulated platform streams, an amplimon.yaml and truth.json.",
    )
    parser.add_argument("--out", required=True, help="output directory (created if missing)")
    parser.add_argument("--scenario", default="default", choices=SCENARIOS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--format", dest="fmt", default="jsonl.gz", choices=FORMATS)
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply the number of users (benchmarks)"
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        default=None,
        help="stretch the timeline (periods, interventions)",
    )
    parser.add_argument(
        "--start",
        type=_start,
        default=None,
        help="first event time, RFC 3339 or 'now' (shifts the whole timeline)",
    )
    parser.add_argument("--ts-format", choices=TS_FORMATS, default=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = {
        k: v
        for k, v in (
            ("time_scale", args.time_scale),
            ("start", args.start),
            ("ts_format", args.ts_format),
        )
        if v is not None
    }
    try:
        params = scenario(args.scenario, seed=args.seed, scale=args.scale, **overrides)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    began = time.perf_counter()
    sim = simulate(params)
    paths = write_simulation(args.out, sim, fmt=args.fmt)
    took = time.perf_counter() - began
    print(
        f"{args.scenario} seed={args.seed}: {len(sim.exposures)} exposures, "
        f"{len(sim.rankings)} rankings, {len(sim.malformed)} malformed in {took:.1f}s"
    )
    for role, path in paths.items():
        print(f"  {role:9s} {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
