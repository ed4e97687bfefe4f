"""Metrics without a broker: bounded labels, the engine output wrapper, the HTTP endpoint, and
the Grafana dashboard in deploy/ querying only metrics the code exports (and all of them)."""

from __future__ import annotations

import datetime as dt
import json
import re
import socket
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from monitor.core.records import DeadLetter, Finding
from streams.kafka.metrics import MetricsOutput, SinkMetrics, WorkerMetrics, reason_label, serve
from streams.memory import ListOutput

ROOT = Path(__file__).resolve().parents[3]
DASHBOARD = ROOT / "deploy" / "grafana" / "amplimon-dashboard.json"


def exported() -> set[str]:
    """The series names the worker's and the sink's registries can expose (a counter
    ``x`` as ``x_total``), labelled ones included before their first sample."""
    names: set[str] = set()
    for metrics in (WorkerMetrics(), SinkMetrics()):
        for family in metrics.registry.collect():
            names.add(f"{family.name}_total" if family.type == "counter" else family.name)
    return names


def test_reason_labels_name_the_field_never_the_value() -> None:
    assert (
        reason_label('exposure.item: expected string of length <= 512, got "xxxx"')
        == "exposure.item"
    )
    assert reason_label("ranking.items[4711].score: expected number") == "ranking.items[].score"
    assert reason_label("exposure: empty message") == "exposure"
    assert len(reason_label("x" * 10_000 + ": y")) == 64 and reason_label(": y") == "unknown"


def test_the_output_wrapper_counts_dead_letters_and_findings_and_passes_them_on() -> None:
    metrics, inner = WorkerMetrics(), ListOutput()
    out = MetricsOutput(inner, metrics)
    out.deadletters(
        [
            DeadLetter(source="in.exposure", raw="", reason="exposure: empty message"),
            DeadLetter(source="in.exposure", raw="{", reason="exposure: not valid JSON"),
        ]
    )
    t = dt.datetime(2026, 5, 4, tzinfo=dt.UTC)
    out.findings(
        [
            Finding.new(
                detector="d",
                kind="amplification",
                platform="p",
                region="DE",
                window_id="w",
                subject_kind="actor",
                subject="a",
                effect=2.0,
                ci_low=1.5,
                ci_high=2.5,
                p_value=0.001,
                n_exposures=10,
                severity="high",
                event_time=t,
                evidence={},
            )
        ]
    )
    assert len(inner.dead) == 2 and len(inner.finding_updates) == 1
    r = metrics.registry
    assert (
        r.get_sample_value(
            "amplimon_deadletters_total", {"topic": "in.exposure", "reason": "exposure"}
        )
        == 2
    )
    assert (
        r.get_sample_value(
            "amplimon_finding_updates_total", {"kind": "amplification", "severity": "high"}
        )
        == 1
    )


def test_the_endpoint_serves_the_registry_and_port_0_is_off() -> None:
    metrics = WorkerMetrics()
    assert serve(metrics.registry, 0) is None
    metrics.read(["in.exposure"] * 3 + ["in.ranking"])
    metrics.lags({("in.exposure", 0): 7})
    metrics.watermarked(1_777_593_600_000)
    metrics.checkpointed(1234)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = serve(metrics.registry, port, addr="127.0.0.1")
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
    finally:
        server.shutdown()
        server.server_close()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text.decode())
        for s in f.samples
    }
    assert samples[("amplimon_records_total", (("topic", "in.exposure"),))] == 3
    assert (
        samples[
            (
                "amplimon_consumer_lag_records",
                (("component", "worker"), ("partition", "0"), ("topic", "in.exposure")),
            )
        ]
        == 7
    )
    assert samples[("amplimon_watermark_seconds", ())] == 1_777_593_600
    assert samples[("amplimon_watermark_delay_seconds", ())] > 0
    assert samples[("amplimon_checkpoint_bytes", ())] == 1234
    assert 0 <= samples[("amplimon_checkpoint_age_seconds", ())] < 60


def test_the_grafana_dashboard_shows_every_metric_and_only_exported_ones() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    queried = {m for e in exprs for m in re.findall(r"\bamplimon_[a-z_]+", e)}
    names = exported()
    assert queried and queried <= names, queried - names
    assert queried == names  # and every metric has a panel
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)) and dashboard["uid"] == "amplimon-live"
