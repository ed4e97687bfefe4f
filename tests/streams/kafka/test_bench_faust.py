"""``benchmarks/bench_faust.py`` on a tiny stream: each consumer (plain aiokafka, aiokafka +
decode, Faust agent, Faust agent + table) runs in its own process against the embedded broker,
sees exactly the records produced, and reports every figure; a consumer that cannot see them
all fails with a one-line error instead of hanging."""

from __future__ import annotations

import itertools
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.streams.kafka.kafka_support import load_benchmark

pytestmark = pytest.mark.broker

RECORDS, PARTITIONS = 300, 3
SESSION_TIMEOUT = 6.0  # the first group join on the embedded broker takes about half of it
_topics = itertools.count(1)


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_benchmark("bench_faust")


@pytest.fixture(scope="module")
def loaded(
    bench: ModuleType, broker: Any, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, dict[str, Any]]:
    topic = f"bench-faust-test.{next(_topics)}"
    work = tmp_path_factory.mktemp("bench-faust")
    return topic, bench.load(broker.bootstrap, topic, RECORDS, PARTITIONS, work)


def test_every_consumer_sees_exactly_the_records_produced(
    bench: ModuleType, broker: Any, loaded: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    topic, produced = loaded
    assert produced["records"] == RECORDS

    result = bench.measure(
        broker.bootstrap,
        topic,
        RECORDS,
        PARTITIONS,
        tmp_path,
        timeout=60.0,
        session_timeout=SESSION_TIMEOUT,
    )

    consumers = result["consumers"]
    assert (
        tuple(consumers)
        == bench.KINDS
        == ("aiokafka", "aiokafka_decode", "faust_agent", "faust_table")
    )
    for kind, c in consumers.items():
        assert c["kind"] == kind
        assert c["records"] == c["deliveries"] == RECORDS, kind
        assert c["seconds"] > 0 and c["rate"] == pytest.approx((RECORDS - 1) / c["seconds"])
        assert c["cpu_s"] > 0
        assert c["cpu_us_per_record"] == pytest.approx(1e6 * c["cpu_s"] / (RECORDS - 1))
        assert 10 < c["peak_rss_mb"] < 2000, kind
        assert c["startup_s"] > 0
        ratio = result["ratios"][kind]
        assert ratio["rate"] == pytest.approx(c["rate"] / consumers["aiokafka"]["rate"])
        assert ratio["cpu_per_record"] == pytest.approx(
            c["cpu_us_per_record"] / consumers["aiokafka"]["cpu_us_per_record"]
        )
    # the reference reads bytes only; the others decode every record, with one verdict
    assert consumers["aiokafka"]["accepted"] == consumers["aiokafka"]["rejected"] == 0
    verdicts = {(c["accepted"], c["rejected"]) for k, c in consumers.items() if k != "aiokafka"}
    assert len(verdicts) == 1
    accepted, rejected = verdicts.pop()
    assert accepted + rejected == RECORDS and accepted > 0
    # the table wrote one changelog record per update, to its own pre-created topic
    table = consumers["faust_table"]
    assert table["changelog_records"] == accepted
    assert table["changelog_flush_s"] >= 0


def test_a_consumer_that_cannot_see_every_record_fails_with_one_line(
    bench: ModuleType, broker: Any, loaded: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    topic, _ = loaded
    with pytest.raises(
        bench.BenchError, match=rf"^aiokafka: saw {RECORDS} of {RECORDS + 5} records within 8 s$"
    ):
        bench.measure(
            broker.bootstrap,
            topic,
            RECORDS + 5,
            PARTITIONS,
            tmp_path,
            kinds=("aiokafka",),
            timeout=8.0,
            session_timeout=SESSION_TIMEOUT,
        )
