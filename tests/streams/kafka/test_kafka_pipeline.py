"""The live pipeline end to end on the embedded broker: ``amplimon worker`` and ``amplimon
sink`` processes must write exactly what ``amplimon replay`` writes — also when they are
killed mid-stream and restarted, and with garbage on the input topics."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from monitor.core.contract import Rejected, decode
from monitor.core.store import Store
from streams.kafka.producer import produce
from streams.kafka.stack import LiveStack
from streams.kafka.topics import group_lag
from tests.privacy_support import duckdb_texts, leaks, parquet_texts, raw_users
from tests.streams.kafka.kafka_support import GARBAGE, assert_same_results, read_tables

pytestmark = pytest.mark.broker


def drained(stack: LiveStack) -> bool:
    """The workers have committed every input, stage two every partial and the sink every
    output."""
    s = stack.settings
    outputs = [s.topic_findings, s.topic_measurements, s.topic_deadletter, s.topic_detectability]
    return (
        group_lag(s, s.group_id, [s.topic_exposure, s.topic_ranking]) == 0
        and group_lag(s, f"{s.group_id}-merge", [s.topic_partials]) == 0
        and group_lag(s, f"{s.group_id}-sink", outputs) == 0
    )


def stored(stack: LiveStack):
    with Store(stack.db) as store:
        return read_tables(store.con)


def test_worker_and_sink_write_what_replay_writes(
    simulation, reference, make_settings, loaded_inputs, tmp_path: Path
):
    settings = make_settings(**loaded_inputs)  # the simulation, garbage, end-of-stream
    with LiveStack(
        simulation.config_path,
        tmp_path / "live.duckdb",
        tmp_path,
        settings=settings,
        bootstrap=settings.broker,
    ) as stack:
        stack.wait_for(lambda: drained(stack), 120, "worker and sink to drain the topics")
        assert stack.services["worker"].running, stack.services["worker"].log_text()
    got = stored(stack)
    assert_same_results(got, reference)
    assert got.deadletters == reference.deadletters + len(GARBAGE)
    extra = list(got.deadletter_reasons)
    for reason in reference.deadletter_reasons:
        extra.remove(reason)
    for i, junk in enumerate(GARBAGE):
        topic = ("exposure", "ranking")[i % 2]
        result = decode(topic, junk) if junk else None
        want = result.reason if isinstance(result, Rejected) else f"{topic}: empty message"
        assert want in extra
    snapshot_findings = stack.snapshot_dir / "findings.parquet"
    assert snapshot_findings.exists()
    # privacy: no raw user key in the store, the dashboard's snapshots or the process logs
    users = raw_users([simulation.exposure, simulation.ranking])
    logs = [svc.log_text() for svc in stack.services.values()]
    assert not leaks(duckdb_texts(stack.db) + parquet_texts(stack.snapshot_dir) + logs, users)
    assert "pseudonymising user keys with key" in stack.services["worker"].log_text()
    key = (Path(stack.settings.data_dir) / "pseudonym.key").read_text().strip()
    assert not any(key in text for text in logs)  # the secret itself is never logged


def test_killed_worker_and_sink_lose_and_duplicate_nothing(
    simulation, reference, make_settings, tmp_path: Path
):
    settings = make_settings()
    with LiveStack(
        simulation.config_path,
        tmp_path / "live.duckdb",
        tmp_path,
        settings=settings,
        bootstrap=settings.broker,
        checkpoint_seconds=0.5,
    ) as stack:
        worker = stack.services["worker"]
        stack.wait_for(lambda: "holding units" in worker.log_text(), 60, "the worker to join")
        # ~5 days of event time in ~15 s, end-of-stream marker at the end
        feeder = threading.Thread(
            target=produce,
            args=(stack.settings, simulation.files),
            kwargs={"speed": 30_000.0, "end_of_stream": True},
        )
        feeder.start()
        try:
            state_written = _offsets_growing(stack, settings.topic_state)
            stack.wait_for(state_written, 60, "a worker checkpoint")
            time.sleep(1.0)
            assert feeder.is_alive()
            worker.kill()  # SIGKILL mid-stream
            stack.start_worker()
            findings = stack.snapshot_dir / "amplification.parquet"
            stack.wait_for(
                lambda: findings.exists() and findings.stat().st_size > 0,
                60,
                "the sink's first writes",
            )
            assert feeder.is_alive()
            stack.services["sink"].kill()  # SIGKILL while it writes
            stack.start_sink()
            stack.services["merge"].kill()  # stage two too: rebuilt from its table
            stack.start_merge()
        finally:
            feeder.join()
        stack.wait_for(lambda: drained(stack), 150, "worker and sink to drain the topics")
        worker_log = stack.services["worker"].log_text()
    assert "restored checkpoint" in worker_log
    assert_same_results(stored(stack), reference)


def _offsets_growing(stack: LiveStack, topic: str):
    from kafka import KafkaConsumer, TopicPartition

    def check() -> bool:
        consumer = KafkaConsumer(bootstrap_servers=stack.bootstrap)
        try:
            tp = TopicPartition(topic, 0)
            return consumer.end_offsets([tp])[tp] > 2
        finally:
            consumer.close()

    return check


@pytest.mark.parametrize("workers", [2, 3])
def test_workers_join_leave_and_die_and_the_result_is_replays(
    simulation, reference, make_settings, tmp_path: Path, workers: int
):
    """Stage one scaled out: ``workers`` workers share the units (input partition pairs);
    mid-stream one more joins (a rebalance moves units), then one is killed (SIGKILL: its
    units are resumed elsewhere from their checkpoints).  The store equals replay's."""
    settings = make_settings(partitions=4)
    with LiveStack(
        simulation.config_path,
        tmp_path / "live.duckdb",
        tmp_path,
        settings=settings,
        bootstrap=settings.broker,
        workers=workers,
        checkpoint_seconds=0.5,
    ) as stack:
        names = [n for n in stack.services if n.startswith("worker")]
        assert len(names) == workers
        stack.wait_for(
            lambda: all("holding units" in stack.services[n].log_text() for n in names),
            90,
            "every worker to hold units",
        )
        feeder = threading.Thread(
            target=produce,
            args=(stack.settings, simulation.files),
            kwargs={"speed": 20_000.0, "end_of_stream": True},
        )
        feeder.start()
        try:
            stack.wait_for(_offsets_growing(stack, settings.topic_state), 60, "a unit checkpoint")
            joined = stack.start_worker()
            stack.wait_for(
                lambda: "holding units" in joined.log_text(), 90, "the new worker to take units"
            )
            victim = stack.services[names[0]]
            victim.kill()
        finally:
            feeder.join()
        stack.wait_for(lambda: drained(stack), 240, "workers, merge and sink to drain")
        logs = "".join(
            stack.services[n].log_text() for n in stack.services if n.startswith("worker")
        )
    assert "restored checkpoint" in logs  # units moved and resumed
    assert_same_results(stored(stack), reference)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _scrape(port: int) -> dict[tuple[str, tuple], float]:
    """Sample name and labels → value, from a /metrics endpoint (empty if not up yet)."""
    import urllib.error
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    except (urllib.error.URLError, OSError):
        return {}
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text.decode())
        for s in f.samples
    }


def _total(samples: dict, name: str, **labels: str) -> float:
    return sum(
        v
        for (n, ls), v in samples.items()
        if n == name and all((k, v2) in ls for k, v2 in labels.items())
    )


def test_worker_and_sink_serve_prometheus_metrics(
    simulation, reference, make_settings, loaded_inputs, tmp_path: Path
):
    """Scraped from the running processes: every record read, every dead letter by reason,
    no lag once drained, a recent checkpoint, and the sink's findings per kind and severity
    equal to the store's."""
    from streams.files import read_file

    settings = make_settings(**loaded_inputs)
    worker_port, sink_port, merge_port = _free_port(), _free_port(), _free_port()
    # every record produced, the garbage, and one end-of-stream marker per partition of the
    # three input topics (exposure, ranking, panel; 3 partitions each): the worker counts all
    markers = 3 * 3
    records = sum(1 for p, t in simulation.files for _ in read_file(p, t)) + len(GARBAGE) + markers
    with LiveStack(
        simulation.config_path,
        tmp_path / "live.duckdb",
        tmp_path,
        settings=settings,
        bootstrap=settings.broker,
        worker_args=("--metrics-port", str(worker_port)),
        sink_args=("--metrics-port", str(sink_port)),
        merge_args=("--metrics-port", str(merge_port)),
    ) as stack:
        stack.wait_for(lambda: drained(stack), 120, "worker and sink to drain the topics")
        stack.wait_for(
            lambda: _total(_scrape(sink_port), "amplimon_findings") == len(reference.findings),
            30,
            "the sink's findings gauge",
        )
        worker, sink, merge = _scrape(worker_port), _scrape(sink_port), _scrape(merge_port)
        assert "metrics on port" in stack.services["worker"].log_text()
    exposure, ranking = settings.topic_exposure, settings.topic_ranking
    assert _total(worker, "amplimon_records_total") == records
    assert _total(worker, "amplimon_records_total", topic=exposure) > 0
    assert _total(worker, "amplimon_records_total", topic=ranking) > 0
    assert _total(worker, "amplimon_deadletters_total") == reference.deadletters + len(GARBAGE)
    assert _total(worker, "amplimon_deadletters_total", topic=exposure, reason="exposure") >= 2
    lags = [v for (n, ls), v in worker.items() if n == "amplimon_consumer_lag_records"]
    assert len(lags) == markers and set(lags) == {0}  # one per input partition
    assert worker[("amplimon_watermark_seconds", ())] > 1.7e9
    assert worker[("amplimon_watermark_delay_seconds", ())] > 0
    assert _total(worker, "amplimon_checkpoints_total") >= 1
    assert 0 <= worker[("amplimon_checkpoint_age_seconds", ())] < 120
    assert worker[("amplimon_checkpoint_bytes", ())] > 1000
    # the detectors run in stage two: it counts the finding versions it sends
    assert _total(merge, "amplimon_finding_updates_total") >= len(reference.findings)
    assert _total(merge, "amplimon_records_total", topic=settings.topic_partials) > 0
    with Store(stack.db) as store:
        by_kind = store.query("SELECT kind, severity, count(*) FROM findings GROUP BY ALL")
    for kind, severity, n in by_kind:
        assert sink[("amplimon_findings", (("kind", kind), ("severity", severity)))] == n
    assert _total(sink, "amplimon_sink_messages_total", table="findings") >= len(reference.findings)
    assert 0 <= sink[("amplimon_snapshot_age_seconds", ())] < 120
