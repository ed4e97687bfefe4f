"""Broker, topics and the live commands' command-line behaviour."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from monitor.cli import main
from streams.kafka.broker import BrokerError, EmbeddedBroker, free_port, wait_ready
from streams.kafka.stack import LiveStack
from streams.kafka.topics import create_topics, topic_plan

pytestmark = pytest.mark.broker


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_embedded_broker_starts_ready_and_stops_cleanly():
    with EmbeddedBroker() as broker:
        pid = broker.process.pid
        wait_ready(broker.bootstrap, timeout=5)
        with pytest.raises(BrokerError, match="in use"):
            EmbeddedBroker(broker.port, ready_timeout=5).start()  # port taken
    assert not alive(pid)


def test_create_topics_is_idempotent(make_settings):
    settings = make_settings(partitions=4)
    first = create_topics(settings)
    assert set(first.values()) == {"created"}
    assert create_topics(settings) == dict.fromkeys(first, "exists")
    plan = topic_plan(settings)
    assert plan[settings.topic_exposure] == 4 and plan[settings.topic_state] == 1
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(bootstrap_servers=settings.broker)
    try:
        assert len(consumer.partitions_for_topic(settings.topic_findings)) == 4
        assert len(consumer.partitions_for_topic(settings.topic_state)) == 1
    finally:
        consumer.close()


def test_cli_topics_create_and_one_line_errors(make_settings, simulation, capsys):
    settings = make_settings()
    env = {
        "AMPLIMON_TOPIC_EXPOSURE": settings.topic_exposure,
        "AMPLIMON_TOPIC_RANKING": settings.topic_ranking,
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        assert main(["worker", "--config", "nope.yaml", "--broker", settings.broker]) == 2
        assert "nope.yaml" in capsys.readouterr().err
        cfg = simulation.config_path
        assert main(["worker", "--config", str(cfg), "--broker", settings.broker]) == 2
        err = capsys.readouterr().err
        errors = [line for line in err.splitlines() if line.startswith("amplimon:")]
        assert len(errors) == 1 and "missing topics" in errors[0]
        assert main(["topics", "create", "--broker", settings.broker, "--partitions", "2"]) == 0
        assert settings.topic_exposure in capsys.readouterr().out
        assert main(["produce", "missing.jsonl", "--broker", settings.broker]) == 2
        assert main(["produce", str(cfg), "--speed", "2", "--max"]) == 2
        assert main(["produce", str(cfg), "--speed", "0"]) == 2
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_broker_command_runs_until_sigterm():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor", "broker", "--port", str(port)],
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        wait_ready(f"127.0.0.1:{port}", timeout=30)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        assert "broker stopped" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    with pytest.raises(BrokerError):
        wait_ready(f"127.0.0.1:{port}", timeout=1)


def test_live_stack_leaves_no_processes(simulation, tmp_path: Path):
    stack = LiveStack(simulation.config_path, tmp_path / "x.duckdb", tmp_path)
    stack.start()
    pids = [s.process.pid for s in stack.services.values()] + [stack.broker.process.pid]
    time.sleep(1)
    stack.stop(grace=20)
    assert not any(alive(p) for p in pids)
