"""Faults of the live pipeline: a broker that dies and comes back empty, a broker that stops
answering for a while, a sink killed between its DuckDB commit and its offset commit, a
sink whose disk is full.  Each ends with exactly what ``amplimon replay`` writes (or exact
row counts), and each fault is reported in one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.core.privacy import Pseudonymiser, load_key
from monitor.core.records import DeadLetter, Finding, Measurement, utc_now
from monitor.core.store import Store
from monitor.engine.run import Engine
from streams.files import merge_by_time, read_file
from streams.kafka.broker import EmbeddedBroker
from streams.kafka.driver import EngineDriver, Message
from streams.kafka.output import MAX_MESSAGE_BYTES, encode_row
from streams.kafka.producer import make_producer, produce
from streams.kafka.sink import run_sink
from streams.kafka.stack import LiveStack
from streams.kafka.topics import create_topics, group_lag
from streams.memory import ListOutput
from streams.settings import Settings, env_name
from streams.snapshot import read_snapshot
from tests.streams.kafka.kafka_support import Tables, assert_same_results, read_tables

pytestmark = pytest.mark.broker


class _Enough(Exception):
    """Stops :func:`produce` part-way (raised from its ``on_send``)."""


def produce_first(settings: Settings, files: list[tuple[Path, str]], n: int) -> None:
    """The first ``n`` records of the stream, no end-of-stream marker."""
    sent = [0]

    def on_send(rec: Any, at: float) -> None:
        sent[0] += 1
        if sent[0] >= n:
            raise _Enough

    with pytest.raises(_Enough):
        produce(settings, files, on_send=on_send)


def produce_rest(settings: Settings, files: list[tuple[Path, str]], n: int) -> None:
    """The stream after its first ``n`` records (as :func:`produce` sends them), then the
    end-of-stream markers."""
    from streams.files import merge_by_time, read_file
    from streams.kafka.producer import send_end_of_stream, send_event

    names = {"exposure": settings.topic_exposure, "ranking": settings.topic_ranking}
    producer = make_producer(settings)
    try:
        records = merge_by_time([read_file(path, topic) for path, topic in files])
        for i, rec in enumerate(records):
            if i >= n:
                send_event(producer, names[rec.topic], getattr(rec.result, "user", None), rec.raw)
        producer.flush()
        send_end_of_stream(producer, [*names.values(), settings.topic_panel])
    finally:
        producer.close()


def converged(stack: LiveStack, reference: Tables) -> Callable[[], bool]:
    """The sink's published snapshot holds exactly replay's results.  (Not group lags:
    Tansu's ListOffsets can answer less than a partition's end, so a lag can read 0 early.)"""

    def check() -> bool:
        if not (stack.snapshot_dir / "manifest.json").exists():
            return False
        con = read_snapshot(stack.snapshot_dir)
        try:
            got = read_tables(con)
        finally:
            con.close()
        try:
            assert_same_results(got, reference)
        except (AssertionError, KeyError):
            return False
        return got.deadletters == reference.deadletters

    return check


def snapshot_value(directory: Path, query: str) -> Any:
    """The answer of ``query`` (or the row count of the table named so) in the sink's
    published snapshot; None before the first one.  The sink publishes within a second of
    its writes, and its database is its own while it runs."""
    if not (directory / "manifest.json").exists():
        return None
    con = read_snapshot(directory)
    try:
        sql = query if " " in query else f"SELECT count(*) FROM {query}"  # noqa: S608
        return con.execute(sql).fetchone()[0]
    finally:
        con.close()


def end_offset(settings: Settings, topic: str) -> int:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=settings.broker)
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return sum(consumer.end_offsets(tps).values())
    finally:
        consumer.close()


def logged(stack: LiveStack, name: str, text: str) -> Callable[[], bool]:
    return lambda: text in stack.services[name].log_text()


@pytest.fixture
def brokers(tmp_path: Path) -> Iterator[list[EmbeddedBroker]]:
    """This test's own brokers (it kills them): the first is started, more may be added."""
    started = [EmbeddedBroker(log_file=tmp_path / "broker.log").start()]
    yield started
    for broker in started:
        broker.stop()


def live_stack(simulation: Any, tmp_path: Path, broker: EmbeddedBroker) -> LiveStack:
    settings = Settings(broker=broker.bootstrap, partitions=3, group_id="faults")
    return LiveStack(
        simulation.config_path,
        tmp_path / "live.duckdb",
        tmp_path,
        settings=settings,
        bootstrap=broker.bootstrap,
        checkpoint_seconds=0.5,
    )


def test_broker_restarted_empty_on_the_same_port(simulation, reference, brokers, tmp_path):
    """SIGKILL the in-memory broker mid-stream, start a new one on the same port, recreate
    the topics and re-produce the whole stream: worker and sink notice, say so in one line
    each, start over on the new broker, and the store ends exactly as replay's — no finding
    or dead letter twice, none lost."""
    first = brokers[0]
    bootstrap = first.bootstrap
    with live_stack(simulation, tmp_path, first) as stack:
        settings = stack.settings
        stack.wait_for(logged(stack, "worker", "holding units"), 60, "the worker to join")
        produce_first(settings, simulation.files, 12_000)
        stack.wait_for(
            lambda: (
                end_offset(settings, settings.topic_state) > 2
                and end_offset(settings, settings.topic_findings) > 0
                and (snapshot_value(stack.snapshot_dir, "deadletter") or 0) > 0
            ),
            60,
            "a checkpoint, findings and the sink's first dead letters",
        )

        os.killpg(first.process.pid, signal.SIGKILL)  # every topic and offset is gone
        first.process.wait()
        for name in ("worker", "sink"):
            stack.wait_for(
                logged(stack, name, f"broker {bootstrap} unreachable"),
                30,
                f"the {name} to report the outage",
            )
        brokers.append(EmbeddedBroker(first.port, log_file=tmp_path / "broker2.log").start())
        create_topics(settings)  # the operator: `amplimon topics create`
        produce(settings, simulation.files, end_of_stream=True)  # the platform, again
        for name in ("worker", "sink"):
            stack.wait_for(
                logged(stack, name, "came back without its data"),
                60,
                f"the {name} to notice the new broker",
            )
        stack.wait_for(
            converged(stack, reference), 120, "the results to converge on replay's", interval=0.5
        )
        worker_log = stack.services["worker"].log_text()
        sink_log = stack.services["sink"].log_text()
    with Store(stack.db) as store:
        got = read_tables(store.con)
    assert_same_results(got, reference)
    assert got.deadletters == reference.deadletters
    assert sorted(got.deadletter_reasons) == sorted(reference.deadletter_reasons)
    for text in (worker_log, sink_log):
        assert text.count(f"broker {bootstrap} unreachable") == 1, text
        assert text.count("came back without its data") == 1, text
    assert "Traceback" not in worker_log + sink_log


def test_broker_that_stops_answering_for_a_while(simulation, reference, brokers, tmp_path):
    """SIGSTOP the broker (a hung or restarting Kafka that keeps its data), SIGCONT it:
    worker and sink report the outage, keep their state, resume where they were, and the
    rest of the stream gives exactly replay's results."""
    broker = brokers[0]
    with live_stack(simulation, tmp_path, broker) as stack:
        settings = stack.settings
        stack.wait_for(logged(stack, "worker", "holding units"), 60, "the worker to join")
        produce_first(settings, simulation.files, 9_000)
        stack.wait_for(
            lambda: (
                end_offset(settings, settings.topic_state) > 2
                and (snapshot_value(stack.snapshot_dir, "amplification") or 0) > 0
            ),
            60,
            "a checkpoint and the sink's first writes",
        )
        os.killpg(broker.process.pid, signal.SIGSTOP)
        try:
            for name in ("worker", "sink"):
                stack.wait_for(
                    logged(stack, name, f"broker {broker.bootstrap} unreachable"),
                    40,
                    f"the {name} to report the outage",
                )
        finally:
            os.killpg(broker.process.pid, signal.SIGCONT)
        for name in ("worker", "sink"):
            stack.wait_for(
                logged(stack, name, "came back with its data"), 60, f"the {name} to resume"
            )
        produce_rest(settings, simulation.files, 9_000)
        stack.wait_for(
            converged(stack, reference), 120, "the results to converge on replay's", interval=0.5
        )
        worker_log = stack.services["worker"].log_text()
    with Store(stack.db) as store:
        got = read_tables(store.con)
    assert_same_results(got, reference)
    assert got.deadletters == reference.deadletters
    assert "without its data" not in worker_log and "restored checkpoint" not in worker_log


# -- the sink alone: rows produced straight to the output topics -----------------------------
AT = utc_now()


def dead_letter(i: int, size: int = 200) -> DeadLetter:
    return DeadLetter(
        source="t.exposure",
        raw=f"{i:06d}" + "x" * size,
        reason="broken",
        location=f"t.exposure/0@{i}",
        received_at=AT,
    )


def finding(i: int, version: int) -> Finding:
    return Finding.new(
        detector="test",
        kind="amplification",
        platform="chirp",
        region="north",
        window_id="w1",
        subject_kind="actor",
        subject=f"actor{i}",
        effect=1.0 + version,
        ci_low=1.0,
        ci_high=9.0,
        p_value=0.01,
        n_exposures=100 * version,
        severity="high",
        event_time=AT,
        detected_at=AT,
        evidence={"version": version},
    )


def measurement(i: int, n: int) -> Measurement:
    return Measurement(
        platform="chirp",
        region="north",
        window_id="w1",
        period="window",
        subject_kind="actor",
        subject=f"actor{i}",
        ratio=1.5,
        ci_low=1.0,
        ci_high=2.0,
        reach_ratio=1.2,
        n_ranked=n,
        n_holdout=n,
        users_ranked=10,
        users_holdout=10,
    )


def send_rows(settings: Settings, rows: list[Any]) -> None:
    topic = {
        DeadLetter: settings.topic_deadletter,
        Finding: settings.topic_findings,
        Measurement: settings.topic_measurements,
    }
    producer = make_producer(settings)
    try:
        for row in rows:
            key, value = encode_row(row)
            producer.send(topic[type(row)], key=key, value=value)
        producer.flush()
    finally:
        producer.close()


def sink_lag(settings: Settings) -> int:
    return group_lag(
        settings,
        f"{settings.group_id}-sink",
        [
            settings.topic_findings,
            settings.topic_measurements,
            settings.topic_deadletter,
            settings.topic_detectability,
        ],
    )


def start_sink(
    settings: Settings,
    db: Path,
    log: Path,
    *,
    code: str = "",
    preexec: Callable[[], None] | None = None,
) -> subprocess.Popen[bytes]:
    """``amplimon sink`` in a child process; ``code`` runs in it first (fault injection)."""
    env = {env_name(k): str(v) for k, v in settings.model_dump().items() if v is not None}
    script = (
        f"{code}\nimport sys\nfrom monitor.cli import main\n"
        f"sys.exit(main(['sink', '--db', {str(db)!r}, '--session-timeout', '6']))"
    )
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-c", script],
            stdout=out,
            stderr=out,  # noqa: S603
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
            preexec_fn=preexec,
        )  # noqa: PLW1509


def wait(
    predicate: Callable[[], bool],
    timeout: float,
    what: str,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            text = log.read_text() if log is not None else ""
            raise AssertionError(
                f"sink exited with {proc.returncode} waiting for {what}:\n{text[-3000:]}"
            )
        time.sleep(0.5)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def counts(db: Path) -> dict[str, int]:
    with Store(db) as store:
        return {t: store.count(t) for t in ("findings", "amplification", "deadletter")}


def published(db: Path, want: dict[str, int]) -> Callable[[], bool]:
    """Each query of ``want`` (see :func:`snapshot_value`) has its value in the snapshot."""
    directory = Path(f"{db}.snapshot")
    return lambda: all(snapshot_value(directory, q) == n for q, n in want.items())


def test_sink_crash_between_commits_then_full_disk_then_exact_counts(make_settings, tmp_path):
    """Three sink runs on one database.

    1. SIGKILL right after a DuckDB commit, before the offset commit: the batch is stored,
       its offsets are not committed.
    2. A file size limit (``RLIMIT_FSIZE``, SIGXFSZ ignored: writes fail with EFBIG as they
       fail with ENOSPC on a full disk): the sink re-reads the first rows, then fails on
       the big ones — exit 2, one ``amplimon:`` line, no traceback; the database opens and
       holds every row committed before; the published snapshot is whole.
    3. With space: it reads the uncommitted batches again and every count is exact, every
       finding at its last version."""
    import resource

    settings = make_settings()
    create_topics(settings)
    db, log = tmp_path / "sink.duckdb", tmp_path / "sink.log"
    rows = (
        [finding(i, v) for v in (1, 2) for i in range(20)]
        + [measurement(i, 5) for i in range(30)]
        + [dead_letter(i) for i in range(300)]
    )
    send_rows(settings, rows)
    unread = sink_lag(settings)
    kill_at_commit = (
        "import os, signal, kafka\n"
        "def commit(self, *args, **kwargs):\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "kafka.KafkaConsumer.commit = commit"
    )
    proc = start_sink(settings, db, log, code=kill_at_commit)
    assert proc.wait(60) == -signal.SIGKILL
    assert sum(counts(db).values()) > 0  # the killed sink's transaction is there...
    assert sink_lag(settings) == unread  # ...and its offsets are not

    limit = 3 << 20

    def full_disk() -> None:  # in the child, before exec
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = start_sink(settings, db, log, preexec=full_disk)
    try:
        wait(
            published(db, {"findings": 20, "amplification": 30, "deadletter": 300}),
            60,
            "the first rows",
            proc,
            log,
        )
        send_rows(
            settings,
            [finding(i, 3) for i in range(20)] + [dead_letter(i, 4000) for i in range(300, 2300)],
        )  # ~8 MB
        status = proc.wait(60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = log.read_text()
    errors = [line for line in text.splitlines() if line.startswith("amplimon:")]
    assert status == 2, text[-3000:]
    assert len(errors) == 1 and "File too large" in errors[0], text[-3000:]
    assert "Traceback" not in text
    with Store(db) as store:  # committed before the fault: all there
        assert store.count("deadletter") >= 300 and store.count("amplification") == 30
        stored = {r[0] for r in store.query("SELECT location FROM deadletter")}
    assert {dead_letter(i).location for i in range(300)} <= stored
    snapshot_dir = Path(f"{db}.snapshot")
    assert not list(snapshot_dir.glob(".*.tmp"))  # and what is there reads whole:
    assert snapshot_value(snapshot_dir, "deadletter") >= 300

    done, failed = threading.Event(), []  # this one in-process: it only has to catch up

    def sink() -> None:
        try:
            run_sink(settings, db, stop=done)
        except BaseException as err:  # reported below
            failed.append(err)

    thread = threading.Thread(target=sink)
    thread.start()
    try:
        want = {
            "findings": 20,
            "amplification": 30,
            "deadletter": 2300,
            "SELECT min(n_exposures) FROM findings": 300,
        }
        wait(lambda: bool(failed) or published(db, want)(), 60, "the sink to catch up")
    finally:
        done.set()
        thread.join(30)
    assert not failed and not thread.is_alive()
    assert counts(db) == {"findings": 20, "amplification": 30, "deadletter": 2300}
    with Store(db) as store:
        assert store.query("SELECT DISTINCT n_exposures, status FROM findings") == [(300, "new")]


# -- poison pills: hostile records ahead of the stream ---------------------------------------
def hostile_records(simulation: Any, settings: Settings) -> list[tuple[str, bytes | None, bytes]]:
    """(topic, key, value) a hostile or broken platform sends ahead of its stream: a 5 MB
    ``item``, a 2 MB binary blob, empty messages with and without a key, a record on the
    other topic, one three days ahead of the clock, and an unkeyed copy of the first event
    (a duplicate: counted once)."""
    first = {
        t: next(r.raw for r in merge_by_time([read_file(p, t)]) if r.raw)
        for p, t in simulation.files
    }
    event = json.loads(first["exposure"])
    huge = json.dumps(
        {**event, "event_id": "hostile-5mb", "user": "hostile-user", "item": "x" * 5_000_000}
    ).encode()
    ahead = json.dumps(
        {**event, "event_id": "hostile-future", "ts": int(time.time() * 1000) + 3 * 86_400_000}
    ).encode()
    e, r = settings.topic_exposure, settings.topic_ranking
    return [
        (e, b"hostile-user", huge),
        (r, None, b"\x01" * 2_000_000),
        (e, None, b""),
        (r, b"hostile-user", b""),
        (e, b"u", first["ranking"]),
        (r, b"u", first["exposure"]),
        (e, b"u", ahead),
        (e, None, first["exposure"]),
    ]


def test_hostile_records_ahead_of_the_stream_give_replays_result(
    simulation, reference, make_settings, tmp_path
):
    """Poison pills first, then the stream, a worker SIGKILLed and restarted in the middle:
    nothing stops the pipeline (it used to crash-loop on the 5 MB record's dead letter),
    each hostile record is one dead letter — bounded, with the whole record's size and
    SHA-256 — and the results are replay's.  No message on an output topic is larger than
    a Kafka message."""
    settings = make_settings()
    hostile = hostile_records(simulation, settings)
    with LiveStack(
        simulation.config_path,
        tmp_path / "live.duckdb",
        tmp_path,
        settings=settings,
        bootstrap=settings.broker,
        checkpoint_seconds=0.5,
    ) as stack:
        stack.wait_for(logged(stack, "worker", "holding units"), 60, "the worker to join")
        producer = make_producer(settings, max_request_size=8 << 20)  # Tansu takes 5 MB
        for topic, key, value in hostile:
            producer.send(topic, key=key, value=value)
        producer.close()
        produce_first(settings, simulation.files, 10_000)
        stack.wait_for(
            lambda: (
                end_offset(settings, settings.topic_state) > 2
                and (snapshot_value(stack.snapshot_dir, "deadletter") or 0) >= 7
            ),
            90,
            "a checkpoint and the hostile records' dead letters",
        )
        stack.services["worker"].kill()
        stack.start_worker()
        produce_rest(settings, simulation.files, 10_000)
        extra = len(hostile) - 1  # the unkeyed copy is a duplicate, not a dead letter
        stack.wait_for(
            lambda: (
                snapshot_value(stack.snapshot_dir, "detectability") == reference.detectability
                and snapshot_value(stack.snapshot_dir, "deadletter")
                == reference.deadletters + extra
            ),
            120,
            "the end of the stream",
        )
        worker_log = stack.services["worker"].log_text()
        data_dir = Path(stack.settings.data_dir)  # where the worker keeps its key
    with Store(stack.db) as store:
        got = read_tables(store.con)
        rows = store.query(
            "SELECT location, raw, raw_bytes, raw_sha256 FROM deadletter "
            "WHERE location NOT LIKE '%.jsonl.gz:%' ORDER BY location"
        )
    assert_same_results(got, reference)
    assert "restored checkpoint" in worker_log and "Traceback" not in worker_log

    # the dead letters an engine makes of the hostile records: each stored once, as #1
    key, _ = load_key(None, None, data_dir)
    out = ListOutput()
    engine = Engine(simulation.config, out, auto_watermark=False, pseudonymiser=Pseudonymiser(key))
    driver = EngineDriver(
        engine, {settings.topic_exposure: "exposure", settings.topic_ranking: "ranking"}
    )
    driver.process([Message(t, 0, i, v) for i, (t, _, v) in enumerate(hostile)])
    want = sorted(out.dead, key=lambda d: d.location)
    assert len(want) == extra
    assert sorted(got.deadletter_reasons) == sorted(
        reference.deadletter_reasons + [d.reason for d in want]
    )
    hostile_rows = [
        r for r in rows if r[0].split(":")[0] in {settings.topic_exposure, settings.topic_ranking}
    ]
    assert [(d.location, d.raw, d.raw_bytes, d.raw_sha256) for d in want] == [
        r for r in hostile_rows if r[0] in {d.location for d in want}
    ]
    assert all(loc.endswith("#1") for loc, *_ in hostile_rows)
    assert max(r[2] for r in hostile_rows) > 5_000_000  # the whole size of the 5 MB record
    assert max(len(r[1].encode()) for r in hostile_rows) <= 64 * 1024

    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        settings.topic_deadletter,
        settings.topic_findings,
        bootstrap_servers=settings.broker,
        auto_offset_reset="earliest",
        consumer_timeout_ms=3000,
        max_partition_fetch_bytes=16 << 20,
    )
    sizes = [len(m.key or b"") + len(m.value or b"") for m in consumer]
    consumer.close()
    assert sizes and max(sizes) <= MAX_MESSAGE_BYTES
