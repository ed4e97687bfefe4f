"""Long fuzz run: the hostile-input properties of ``make test``, with fresh random seeds, until
the time is up.

    .venv/bin/python fuzz/run.py --minutes 10

Targets (round robin, each run a hypothesis search of a few seconds with a new seed):
``decode.<topic>`` any bytes on a topic, ``decode_obj.<topic>`` any parsed row,
``file_lines`` hostile JSONL/.gz files through the replay path, ``kafka_driver`` hostile
messages through :class:`EngineDriver`, ``config.mapping`` / ``config.yaml`` configurations.
Writes ``{"targets": {target: {examples, failures, first_failure, ...}}, "minutes", "date",
"hypothesis", ...}`` to ``benchmarks/results/fuzz.json``; exit status 1 if anything failed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make `fuzz` and `tests` importable
    sys.path.insert(0, str(ROOT))

import hypothesis  # noqa: E402
from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from fuzz import properties as props  # noqa: E402
from fuzz import strategies as strat  # noqa: E402

CHUNK_SECONDS = 5.0  # aim for searches of about this long, so every target gets turns


@dataclass
class Tally:
    examples: int = 0
    failures: int = 0
    runs: int = 0
    seconds: float = 0.0
    first_failure: dict[str, str] | None = None


def _files(directory: Path) -> Callable[[Any], Any]:
    def check(case: tuple[list[bytes], list[bytes], bool, bool]) -> None:
        exp, rank, gz_exp, gz_rank = case
        with tempfile.TemporaryDirectory(dir=directory) as tmp:
            props.check_files(
                Path(tmp),
                {"exposure": exp, "ranking": rank},
                {"exposure": gz_exp, "ranking": gz_rank},
            )

    return check


def targets(scratch: Path) -> dict[str, tuple[st.SearchStrategy[Any], Callable[[Any], Any]]]:
    def on(topic: str, check: Callable[[str, Any], Any]) -> Callable[[Any], Any]:
        return lambda value: check(topic, value)

    text_or_bytes = st.one_of(st.text(max_size=200), st.binary(max_size=200))
    return {
        "decode.exposure": (
            strat.raw_records("exposure") | text_or_bytes,
            on("exposure", props.check_decode),
        ),
        "decode.ranking": (
            strat.raw_records("ranking") | text_or_bytes,
            on("ranking", props.check_decode),
        ),
        "decode_obj.exposure": (
            strat.record_objects("exposure", strat.python_values),
            on("exposure", props.check_decode_obj),
        ),
        "decode_obj.ranking": (
            strat.record_objects("ranking", strat.python_values),
            on("ranking", props.check_decode_obj),
        ),
        "file_lines": (
            st.tuples(
                strat.line_files("exposure"),
                strat.line_files("ranking"),
                st.booleans(),
                st.booleans(),
            ),
            _files(scratch),
        ),
        "kafka_driver": (strat.kafka_batches(props.INPUTS), props.check_driver),
        "config.mapping": (
            strat.config_objects(),
            lambda obj: props.check_config_obj(obj, base_dir=scratch),
        ),
        "config.yaml": (
            strat.config_texts(),
            lambda data: props.check_config_text(scratch / "fuzz.yaml", data),
        ),
    }


def search(
    strategy: st.SearchStrategy[Any],
    check: Callable[[Any], Any],
    examples: int,
    seed_value: int,
    tally: Tally,
) -> None:
    """One hypothesis search; a failure is counted, and the first one kept (shrunk)."""
    last: list[Any] = [None]

    def body(value: Any) -> None:
        tally.examples += 1
        last[0] = value  # hypothesis runs the shrunk failing example last
        check(value)

    test = seed(seed_value)(
        settings(
            max_examples=examples,
            deadline=None,
            database=None,
            print_blob=False,
            suppress_health_check=list(HealthCheck),
            report_multiple_bugs=False,
            phases=[Phase.generate, Phase.shrink],
        )(given(strategy)(body))
    )
    try:
        test()
    except Exception as exc:  # noqa: BLE001 - every failure is a finding to record
        tally.failures += 1
        if tally.first_failure is None:
            tally.first_failure = {
                "seed": str(seed_value),
                "error": f"{type(exc).__name__}: {exc}"[:2000],
                "input": repr(last[0])[:2000],
            }
        print(f"  FAILURE (seed {seed_value}): {type(exc).__name__}: {exc}"[:500], flush=True)


def run(minutes: float, out: Path) -> dict[str, Any]:
    scratch = props.scratch_dir()
    todo = targets(scratch)
    tallies = {name: Tally() for name in todo}
    rates: dict[str, float] = {}
    started = time.monotonic()
    deadline = started + minutes * 60
    try:
        while time.monotonic() < deadline:
            for name, (strategy, check) in todo.items():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                chunk_s = min(CHUNK_SECONDS, left)
                n = max(5, min(5000, int(rates.get(name, 20 / CHUNK_SECONDS) * chunk_s)))
                tally, before, t0 = tallies[name], tallies[name].examples, time.monotonic()
                search(strategy, check, n, secrets.randbits(64), tally)
                spent = time.monotonic() - t0
                tally.runs += 1
                tally.seconds += spent
                rates[name] = max(1.0, (tally.examples - before) / max(spent, 1e-3))
            done = {k: v.examples for k, v in tallies.items()}
            print(f"[{(time.monotonic() - started) / 60:5.1f} min] {done}", flush=True)
    except KeyboardInterrupt:
        print("interrupted: writing what was run so far", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result = {
        "targets": {k: {**asdict(v), "seconds": round(v.seconds, 1)} for k, v in tallies.items()},
        "minutes": round((time.monotonic() - started) / 60, 2),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "hypothesis": hypothesis.__version__,
        "python": platform.python_version(),
        "total_examples": sum(t.examples for t in tallies.values()),
        "total_failures": sum(t.failures for t in tallies.values()),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to run")
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "benchmarks/results/fuzz.json",
        help="where to write the figures (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    result = run(args.minutes, args.out)
    print(json.dumps({k: (v["examples"], v["failures"]) for k, v in result["targets"].items()}))
    print(
        f"{result['total_examples']} examples, {result['total_failures']} failures, "
        f"{result['minutes']} min -> {args.out}"
    )
    return 1 if result["total_failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
