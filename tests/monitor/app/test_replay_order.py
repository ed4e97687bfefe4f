"""Contract §4 (v1.1): the order of lines within and across files carries no meaning.

A simulated election (duplicates, malformed lines, late deliveries) is replayed as written and
in the orders warehouses export in — reversed, shuffled across several files, 6-hour blocks
sorted by user, Parquet shuffled — and with one valid far-future record; every order must give
the same findings, amplification rows, detectability, dead letters and counters.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import random
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from monitor.app.replay import replay
from monitor.cli import main
from monitor.core.config import load_config
from monitor.core.privacy import Pseudonymiser
from monitor.core.store import Store
from streams.simulator import scenario, write_simulation

HOUR = 3_600_000
KEY = Pseudonymiser(b"k" * 32)  # one key for every run: dead-letter text is comparable


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("sim")
    paths = write_simulation(out, scenario("demo", seed=5, scale=0.25), fmt="jsonl")
    lines = {
        t: Path(paths[t]).read_bytes().splitlines(keepends=True) for t in ("exposure", "ranking")
    }
    return {"dir": out, "config": load_config(paths["config"]), "lines": lines}


def ts_of(line: bytes) -> int:
    """Event time of a line in epoch ms, or -1 for a line that is not a valid record."""
    try:
        ts = json.loads(line)["ts"]
        if isinstance(ts, int):
            return ts
        return int(dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000)
    except (ValueError, KeyError, TypeError, AttributeError):
        return -1


def user_of(line: bytes) -> str:
    try:
        return str(json.loads(line).get("user", ""))
    except (ValueError, AttributeError):
        return ""


def write(dir_: Path, name: str, lines: list[bytes], *, gz: bool = False) -> Path:
    dir_.mkdir(parents=True, exist_ok=True)
    path = dir_ / (name + (".jsonl.gz" if gz else ".jsonl"))
    data = b"".join(x if x.endswith(b"\n") else x + b"\n" for x in lines)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def run(
    sim: dict[str, Any], exposure: list[Path], ranking: list[Path], db: Path, **kw: Any
) -> dict[str, Any]:
    result = replay(
        sim["config"], db, exposure, ranking, show_progress=False, pseudonymiser=KEY, **kw
    )
    with Store(db, read_only=True) as store:
        q = store.query
        tables = {
            "findings": q("""SELECT finding_id, detector, kind, round(effect, 9), round(ci_low, 9),
                                    round(ci_high, 9), p_value, n_exposures, severity, event_time
                             FROM findings ORDER BY finding_id"""),
            "amplification": q("""SELECT * EXCLUDE (computed_at) FROM amplification
                                  ORDER BY ALL"""),
            "detectability": q("""SELECT * EXCLUDE (computed_at) FROM detectability
                                  ORDER BY ALL"""),
            "deadletter": q("SELECT raw, reason FROM deadletter ORDER BY raw, reason"),
        }
    s = result.stats
    tables["stats"] = (s.accepted, s.duplicates, s.late, s.rejected, s.conflicting)
    return tables


def assert_same(a: dict[str, Any], b: dict[str, Any]) -> None:
    for key in a:
        assert a[key] == b[key], f"{key} differs"


@pytest.fixture(scope="module")
def as_written(sim: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("written")
    got = run(
        sim,
        [write(d, "e", sim["lines"]["exposure"])],
        [write(d, "r", sim["lines"]["ranking"])],
        d / "db.duckdb",
    )
    assert len(got["findings"]) >= 5, "the election must raise findings to compare"
    assert got["deadletter"], "and carry malformed lines"
    assert sum(got["stats"][1].values()) > 0, "and duplicates"
    return got


def test_reversed_files_give_the_same_tables(sim, as_written, tmp_path: Path) -> None:
    got = run(
        sim,
        [write(tmp_path, "e", sim["lines"]["exposure"][::-1])],
        [write(tmp_path, "r", sim["lines"]["ranking"][::-1])],
        tmp_path / "db.duckdb",
    )
    assert_same(as_written, got)


def test_shuffled_across_several_files_and_formats(sim, as_written, tmp_path: Path) -> None:
    rng = random.Random(11)
    files: dict[str, list[Path]] = {}
    for topic in ("exposure", "ranking"):
        lines = list(sim["lines"][topic])
        rng.shuffle(lines)
        parts: list[list[bytes]] = [[], [], []]
        for line in lines:
            parts[rng.randrange(3)].append(line)
        files[topic] = [
            write(tmp_path, f"{topic}-{i}", part, gz=i == 1) for i, part in enumerate(parts)
        ]
    got = run(sim, files["exposure"], files["ranking"], tmp_path / "db.duckdb", workers=3)
    assert_same(as_written, got)


def test_six_hour_blocks_sorted_by_user(sim, as_written, tmp_path: Path) -> None:
    """A common warehouse export: time-partitioned blocks, each clustered by user.  In arrival
    order almost every record of such a file is late; staged replay does not care."""
    files = {}
    for topic in ("exposure", "ranking"):
        lines = sim["lines"][topic]
        files[topic] = write(
            tmp_path, topic, sorted(lines, key=lambda x: (ts_of(x) // (6 * HOUR), user_of(x), x))
        )
    got = run(sim, [files["exposure"]], [files["ranking"]], tmp_path / "db.duckdb")
    assert_same(as_written, got)
    live = run(
        sim,
        [files["exposure"]],
        [files["ranking"]],
        tmp_path / "arrival.duckdb",
        arrival_order=True,
    )
    late = sum(live["stats"][2].values())
    assert late > 0.5 * sum(as_written["stats"][0].values()), "arrival order must show the loss"


def test_parquet_shuffled(sim, tmp_path: Path) -> None:
    out = tmp_path / "pq"
    paths = write_simulation(out, scenario("demo", seed=5, scale=0.25), fmt="parquet")
    a = run(sim, [Path(paths["exposure"])], [Path(paths["ranking"])], tmp_path / "a.duckdb")
    rng = random.Random(3)
    shuffled = {}
    for topic in ("exposure", "ranking"):
        table = pq.read_table(paths[topic])
        perm = list(range(table.num_rows))
        rng.shuffle(perm)
        shuffled[topic] = tmp_path / f"{topic}-shuffled.parquet"
        pq.write_table(table.take(perm), shuffled[topic], row_group_size=5000)
    b = run(sim, [shuffled["exposure"]], [shuffled["ranking"]], tmp_path / "b.duckdb", workers=2)
    assert a["findings"] and a["amplification"]
    assert_same(a, b)


def far_future_line(lines: list[bytes]) -> bytes:
    """A valid exposure 23 h after the newest event (far ahead of the rest, not of the clock)."""
    newest = max(ts_of(x) for x in lines)
    obj = json.loads(next(x for x in lines if ts_of(x) > 0))
    obj.update(event_id="far-future-1", ts=newest + 23 * HOUR)
    return json.dumps(obj).encode() + b"\n"


def test_one_far_future_record_changes_nothing_else(sim, tmp_path: Path) -> None:
    ex, rk = sim["lines"]["exposure"], sim["lines"]["ranking"]
    far = far_future_line(ex)
    at = len(ex) // 10
    a = run(
        sim,
        [write(tmp_path, "e1", ex[:at] + [far] + ex[at:])],
        [write(tmp_path, "r1", rk)],
        tmp_path / "a.duckdb",
    )
    shuffled = list(ex) + [far]
    random.Random(8).shuffle(shuffled)
    b = run(
        sim, [write(tmp_path, "e2", shuffled)], [write(tmp_path, "r2", rk)], tmp_path / "b.duckdb"
    )
    assert_same(a, b)
    assert sum(a["stats"][2].values()) == 0  # nothing late


def test_one_worker_and_many_give_the_same_tables(sim, as_written, tmp_path: Path) -> None:
    e = write(tmp_path, "e", sim["lines"]["exposure"])
    r = write(tmp_path, "r", sim["lines"]["ranking"])
    assert_same(
        run(sim, [e], [r], tmp_path / "one.duckdb", workers=1),
        run(sim, [e], [r], tmp_path / "four.duckdb", workers=4),
    )


def test_conflicting_duplicates_are_dead_letters_whatever_arrives_first(
    sim, tmp_path: Path
) -> None:
    ex = list(sim["lines"]["exposure"])
    i = next(k for k, x in enumerate(ex) if ts_of(x) > 0 and b'"arm":"ranked"' in x)
    original = json.loads(ex[i])
    altered = dict(original, position=original["position"] + 7)
    twin = json.dumps(altered).encode() + b"\n"
    same = json.dumps(original).encode() + b"\n"  # same content, other spelling: one event
    first = run(
        sim,
        [write(tmp_path, "e1", ex + [twin, same])],
        [write(tmp_path, "r1", sim["lines"]["ranking"])],
        tmp_path / "a.duckdb",
    )
    second = run(
        sim,
        [write(tmp_path, "e2", [twin] + ex[:i] + ex[i + 1 :] + [ex[i], same])],
        [write(tmp_path, "r2", sim["lines"]["ranking"])],
        tmp_path / "b.duckdb",
    )
    assert_same(first, second)
    conflicting = first["stats"][4]["exposure"]
    assert conflicting == 3  # the original, its re-spelling and the altered twin
    dead = [
        (raw, reason) for raw, reason in first["deadletter"] if "conflicting duplicate" in reason
    ]
    assert len(dead) == 3
    positions = sorted(json.loads(raw)["position"] for raw, _ in dead)
    assert positions == sorted([original["position"]] * 2 + [altered["position"]])


def test_replay_refuses_a_database_that_holds_results(sim, tmp_path: Path, capsys) -> None:
    e = write(tmp_path, "e", sim["lines"]["exposure"])
    r = write(tmp_path, "r", sim["lines"]["ranking"])
    cfg = sim["dir"] / "amplimon.yaml"
    db = tmp_path / "out.duckdb"
    args = [
        "replay",
        "--config",
        str(cfg),
        "--db",
        str(db),
        "--exposure",
        str(e),
        "--ranking",
        str(r),
        "--no-progress",
    ]
    assert main(args) == 0
    with Store(db, read_only=True) as store:
        fresh = store.count("findings"), store.count("runs")
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("amplimon: ") and "--append" in err and "--replace" in err
    assert len(err.splitlines()) == 1
    assert main([*args, "--replace"]) == 0
    with Store(db, read_only=True) as store:
        assert (store.count("findings"), store.count("runs")) == fresh
    assert main([*args, "--append"]) == 0
    with Store(db, read_only=True) as store:
        assert store.count("findings") == fresh[0] and store.count("runs") == 2
    assert main([*args, "--append", "--replace"]) == 2
