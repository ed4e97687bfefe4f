"""``amplimon archive``: topics → Parquet by platform/topic/date, readable by replay and DuckDB."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import duckdb
import pytest

from monitor.app.replay import replay
from monitor.core.privacy import Pseudonymiser
from monitor.core.store import Store
from streams.kafka.archive import ArchiveOptions, Archiver, run_archive
from streams.kafka.driver import Message
from tests.factories import exposure, ranking, slot
from tests.privacy_support import leaks, parquet_texts, raw_users
from tests.streams.kafka.kafka_support import assert_same_results, read_tables


def test_archiver_partitions_and_skips_what_is_not_an_event(tmp_path: Path):
    import msgspec

    pseudonym = Pseudonymiser(b"k" * 32)
    arch = Archiver(tmp_path, {"x.exposure": "exposure", "x.ranking": "ranking"}, pseudonym)
    day2 = 1_777_593_600_000 + 86_400_000
    rows = [
        exposure(platform="chirp"),
        exposure(platform="other/2", ts=day2),
        ranking(items=[slot(interventions=["iv-1"]), slot(item="i2", position=2)]),
    ]
    topics = ["x.exposure", "x.exposure", "x.ranking"]
    for i, (topic, row) in enumerate(zip(topics, rows, strict=True)):
        arch.add(Message(topic, 0, i, msgspec.json.encode(row)))
    arch.add(Message("x.exposure", 0, 9, b"not json"))
    arch.add(Message("x.ranking", 0, 9, b"", [("amplimon-control", b"end-of-stream")]))
    files = arch.flush()
    assert arch.stats.archived == {"exposure": 2, "ranking": 1} and arch.stats.skipped == 2
    names = sorted(str(f.relative_to(tmp_path).parent) for f in files)
    assert names == [
        "platform=chirp/topic=exposure/date=2026-05-01",
        "platform=chirp/topic=ranking/date=2026-05-01",
        "platform=other%2F2/topic=exposure/date=2026-05-02",
    ]
    got = duckdb.execute(
        f"SELECT platform, topic, event_time FROM read_parquet("
        f"'{tmp_path}/*/topic=exposure/*/*.parquet', hive_partitioning=true) "
        "ORDER BY ts"
    ).fetchall()
    assert [g[0] for g in got] == ["chirp", "other/2"]
    users = duckdb.execute(
        f"SELECT DISTINCT user FROM read_parquet('{tmp_path}/**/*.parquet', union_by_name=true)"
    ).fetchall()
    assert {u[0] for u in users} == {pseudonym(r["user"]) for r in rows}  # never the raw key
    items = duckdb.execute(
        f"SELECT items FROM read_parquet('{tmp_path}/*/topic=ranking/*/*.parquet')"
    ).fetchone()[0]
    assert items[0]["interventions"] == ["iv-1"] and items[1]["interventions"] is None


@pytest.mark.broker
def test_archive_replays_to_the_same_findings(
    simulation, reference, make_settings, loaded_inputs, tmp_path: Path
):
    settings = make_settings(**loaded_inputs)  # the simulation, garbage, end-of-stream
    stop = threading.Event()
    stats: dict = {}
    out = tmp_path / "archive"
    thread = threading.Thread(
        target=lambda: stats.update(
            s=run_archive(
                settings,
                out,
                stop=stop,
                options=ArchiveOptions(flush_seconds=1.0, session_timeout_ms=6000),
            )
        )
    )
    thread.start()
    total = sum(1 for _ in _lines(simulation)) - 30  # malformed lines are not archived
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        n = (
            duckdb.execute(
                f"SELECT count(*) FROM read_parquet('{out}/**/*.parquet', union_by_name=true)"
            ).fetchone()[0]
            if list(out.rglob("*.parquet"))
            else 0
        )
        if n >= total:
            break
        time.sleep(0.5)
    stop.set()
    thread.join(30)
    assert stats["s"].archived["exposure"] + stats["s"].archived["ranking"] == total
    assert not leaks(parquet_texts(out), raw_users([simulation.exposure, simulation.ranking]))
    db = tmp_path / "from-archive.duckdb"
    replay(
        simulation.config,
        db,
        sorted(out.glob("*/topic=exposure/*/*.parquet")),
        sorted(out.glob("*/topic=ranking/*/*.parquet")),
        show_progress=False,
    )
    with Store(db) as store:
        got = read_tables(store.con)
    assert_same_results(got, reference)


def _lines(simulation):
    import gzip

    for path, _ in simulation.files:
        with gzip.open(path, "rb") as fh:
            yield from (line for line in fh if line.strip())
