"""``benchmarks/bench_scale.py`` at a tiny size on the embedded broker: every phase (raw
reference, stage one with one worker, stage two alone, end to end with two workers) runs,
reads every record exactly once, and reports every figure in the JSON the benchmark writes.
No timing is asserted, only structure and exact counts."""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

import pytest

from tests.streams.kafka.kafka_support import load_benchmark

pytestmark = pytest.mark.broker

SCALE, PARTITIONS = 0.03, 2


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_benchmark("bench_scale")


@pytest.fixture(scope="module")
def result(bench: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("scale")
    rc = bench.main(
        [
            "--scale",
            str(SCALE),
            "--partitions",
            str(PARTITIONS),
            "--workers",
            "1",
            "--e2e-workers",
            "2",
            "--timeout",
            "60",
            "--session-timeout",
            "3",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    return dict(json.loads((out / "scale.json").read_text(encoding="utf-8")))


def test_every_phase_reads_every_record_exactly_once(result: dict[str, Any]) -> None:
    inp = result["input"]
    records, markers = inp["records"], inp["end_of_stream_markers"]
    assert records == sum(inp["by_topic"].values()) > 0
    assert markers == 3 * PARTITIONS  # exposure, ranking and panel partitions
    assert result["reference_aiokafka"]["records"] == records + markers
    assert result["reference_kafka_python"]["records"] == records + markers
    s1 = result["stage_one"]["1"]
    assert s1["workers"] == 1 and s1["rebalances"] == 0
    assert s1["messages_read"] == records + markers
    one = s1["partials"]
    assert one["units_finished"] == PARTITIONS
    c = one["counts"]
    assert c["accepted"] + c["duplicates"] + c["late"] + c["rejected"] == records
    assert one["events"] == c["accepted"]  # every accepted event reaches stage two once
    assert result["stage_one"]["1"]["checkpoint_bytes"].keys() == {
        f"unit-{i}" for i in range(PARTITIONS)
    }
    s2 = result["stage_two"]
    assert s2["merged"]["messages"] == s2["partial_messages"] + s2["progress_messages"]
    assert s2["merged"]["ticks"] == s2["ticks"] == one["ticks"]
    assert s2["merged"]["finished"] == [0] and s2["merged"]["stale"] == 0
    assert s2["reference_kafka_python"]["records"] == s2["merged"]["messages"]
    e2e = result["end_to_end"]["2"]
    assert e2e["workers"] == 2
    if e2e["rebalances"] == 0:  # both joined in one generation: together, each record once
        assert e2e["messages_read"] == records + markers
    else:  # units moved mid-run: the new owner re-reads from the unit's checkpoint
        assert e2e["messages_read"] >= records + markers
    assert e2e["store"]["deadletter"] == one["counts"]["rejected"] + one["counts"]["late"]
    assert e2e["store"]["findings"] == len(e2e["store"]["finding_ids"])


def test_the_json_holds_every_figure(result: dict[str, Any]) -> None:
    assert {"cpus", "cpu_model", "load_avg_start", "load_avg_end"} <= result["machine"].keys()
    ref = result["reference_aiokafka"]
    assert ref["kind"] == "aiokafka" and ref["rate"] > 0 and ref["cpu_us_per_record"] > 0
    for n, s1 in result["stage_one"].items():
        assert s1["seconds"] > 0 and s1["rate"] == pytest.approx(
            result["input"]["records"] / s1["seconds"]
        )
        assert s1["cpu_us_per_record"] == pytest.approx(
            1e6 * s1["cpu_s"] / result["input"]["records"]
        )
        assert len(s1["peak_rss_mb"]) == int(n)
        assert all(10 < mb < 4000 for mb in s1["peak_rss_mb"].values())
        assert s1["ratios"]["rate"] == pytest.approx(s1["rate"] / ref["rate"])
        assert s1["vs_one_worker"]["cpu_per_record"] == pytest.approx(
            s1["cpu_us_per_record"] / result["stage_one"]["1"]["cpu_us_per_record"]
        )
        assert s1["rebalances"] >= 0
    s2 = result["stage_two"]
    assert s2["cpu_ms_per_tick"] == pytest.approx(1e3 * s2["cpu_s"] / s2["ticks"])
    assert s2["cpu_ms_per_partial"] == pytest.approx(1e3 * s2["cpu_s"] / s2["partial_messages"])
    platforms = result["stage_one"]["1"]["partials"]["platforms"]
    assert 1 <= s2["partials_per_tick"] <= PARTITIONS * platforms  # units × platforms at most
    assert s2["peak_rss_mb"] > 10
    e2e = result["end_to_end"]["2"]
    assert {"worker", "worker-2", "merge", "sink", "broker"} <= e2e["cpu_s"].keys()
    assert e2e["cpu_us_per_record"]["total"] == pytest.approx(
        1e6 * e2e["cpu_s_total"] / result["input"]["records"]
    )
    assert e2e["ratio_to_reference"] == pytest.approx(e2e["rate"] / ref["rate"])
