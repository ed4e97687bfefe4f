"""Prometheus metrics of the worker and the sink (``AMPLIMON_METRICS_PORT``, 0 = off).

Each process keeps its own :class:`~prometheus_client.CollectorRegistry` and serves it at
``http://<host>:<port>/metrics`` (a daemon thread of ``prometheus_client``).  The pipeline
code calls a few hooks, each one line, so that they move with the loop they sit in:

================================================  ==========================================
metric                                            meaning
================================================  ==========================================
``amplimon_records_total{topic}``                 input records the worker read (rate →
                                                  records/s)
``amplimon_consumer_lag_records{component,        records on the broker not yet read, per
topic,partition}``                                partition (``component`` worker or sink)
``amplimon_watermark_seconds``                    event time up to which ticks are closed
                                                  (epoch s)
``amplimon_watermark_delay_seconds``              wall clock − that watermark, at scrape
                                                  time (a live stream: minutes; a replayed
                                                  archive: its age)
``amplimon_deadletters_total{topic,reason}``      dead letters sent, by input topic and the
                                                  field their reason names (``exposure.ts``,
                                                  ``ranking.items[].score``, ``exposure``)
``amplimon_finding_updates_total{kind,severity}`` finding versions the worker sent
``amplimon_checkpoints_total``,                   checkpoints saved; size of the last one;
``amplimon_checkpoint_bytes``,                    seconds since it was saved (at scrape time;
``amplimon_checkpoint_age_seconds``               −1 before the first)
``amplimon_sink_messages_total{table}``           output messages the sink wrote, per table
``amplimon_sink_undecodable_total``               output messages it could not decode
``amplimon_findings{kind,severity}``              findings in the store (distinct rows)
``amplimon_snapshot_age_seconds``                 seconds since the sink last published its
                                                  Parquet snapshot (−1 before the first)
================================================  ==========================================

Labels are bounded: ``reason`` keeps only the field path before the first ``:`` with array
indices dropped (at most 64 characters), never the rejected value, so a hostile platform
cannot create series at will and no record text reaches the metrics.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from monitor.core.records import DeadLetter, Detectability, Finding, Measurement

if TYPE_CHECKING:
    from monitor.engine.run import Output

__all__ = ["MetricsOutput", "SinkMetrics", "WorkerMetrics", "reason_label", "serve"]

_INDEX = re.compile(r"\[\d+\]")


def reason_label(reason: str) -> str:
    """The field a dead-letter reason names: ``ranking.items[3].score: …`` →
    ``ranking.items[].score`` (bounded, without the value)."""
    head = reason.split(":", 1)[0].strip()
    return _INDEX.sub("[]", head)[:64] or "unknown"


def serve(registry: CollectorRegistry, port: int, addr: str = "0.0.0.0") -> Any:  # noqa: S104
    """Serve ``registry`` on ``port`` (0: do nothing); returns the server (``shutdown()``)."""
    if port <= 0:
        return None
    server, _thread = start_http_server(port, addr=addr, registry=registry)
    return server


def _age(since: list[float]) -> float:
    return time.time() - since[0] if since[0] else -1.0


class WorkerMetrics:
    """The worker's metrics (see the module docstring)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.records = Counter(
            "amplimon_records", "Input records read by the worker", ["topic"], registry=r
        )
        self.lag = Gauge(
            "amplimon_consumer_lag_records",
            "Records not yet read",
            ["component", "topic", "partition"],
            registry=r,
        )
        self.watermark = Gauge(
            "amplimon_watermark_seconds",
            "Event time up to which ticks are closed (epoch seconds)",
            registry=r,
        )
        self._watermark_ms: list[float] = [0.0]
        delay = Gauge(
            "amplimon_watermark_delay_seconds", "Wall clock minus the watermark", registry=r
        )
        delay.set_function(
            lambda: time.time() - self._watermark_ms[0] / 1000 if self._watermark_ms[0] else -1.0
        )
        self.deadletters = Counter(
            "amplimon_deadletters", "Dead letters sent", ["topic", "reason"], registry=r
        )
        self.finding_updates = Counter(
            "amplimon_finding_updates", "Finding versions sent", ["kind", "severity"], registry=r
        )
        self.checkpoints = Counter("amplimon_checkpoints", "Checkpoints saved", registry=r)
        self.checkpoint_bytes = Gauge(
            "amplimon_checkpoint_bytes", "Size of the last checkpoint", registry=r
        )
        self._checkpointed: list[float] = [0.0]
        age = Gauge(
            "amplimon_checkpoint_age_seconds", "Seconds since the last checkpoint", registry=r
        )
        age.set_function(lambda: _age(self._checkpointed))

    # -- hooks ---------------------------------------------------------------------------
    def read(self, topics: Iterable[str]) -> None:
        """One call per batch: the topic of each record read."""
        counts: dict[str, int] = {}
        for topic in topics:
            counts[topic] = counts.get(topic, 0) + 1
        for topic, n in counts.items():
            self.records.labels(topic).inc(n)

    def lags(self, lags: Mapping[tuple[str, int], int], component: str = "worker") -> None:
        for (topic, partition), n in lags.items():
            self.lag.labels(component, topic, str(partition)).set(n)

    def watermarked(self, closed_until_ms: int) -> None:
        if closed_until_ms > 0:
            self._watermark_ms[0] = closed_until_ms
            self.watermark.set(closed_until_ms / 1000)

    def checkpointed(self, size: int) -> None:
        self.checkpoints.inc()
        self.checkpoint_bytes.set(size)
        self._checkpointed[0] = time.time()


class MetricsOutput:
    """Engine :class:`~monitor.engine.run.Output` wrapper that counts dead letters (by topic and
    reason) and finding versions (by kind and severity), then passes everything on."""

    def __init__(self, inner: Output, metrics: WorkerMetrics) -> None:
        self.inner, self.metrics = inner, metrics

    def deadletters(self, rows: list[DeadLetter]) -> None:
        for row in rows:
            self.metrics.deadletters.labels(row.source, reason_label(row.reason)).inc()
        self.inner.deadletters(rows)

    def findings(self, rows: list[Finding]) -> None:
        for row in rows:
            self.metrics.finding_updates.labels(row.kind, row.severity).inc()
        self.inner.findings(rows)

    def measurements(self, rows: list[Measurement]) -> None:
        self.inner.measurements(rows)

    def detectability(self, rows: list[Detectability]) -> None:
        self.inner.detectability(rows)


class SinkMetrics:
    """The sink's metrics (see the module docstring)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.messages = Counter(
            "amplimon_sink_messages", "Output messages written", ["table"], registry=r
        )
        self.undecodable = Counter(
            "amplimon_sink_undecodable", "Output messages that could not be decoded", registry=r
        )
        self.lag = Gauge(
            "amplimon_consumer_lag_records",
            "Records not yet read",
            ["component", "topic", "partition"],
            registry=r,
        )
        self.findings = Gauge(
            "amplimon_findings", "Findings in the store", ["kind", "severity"], registry=r
        )
        self._published: list[float] = [0.0]
        age = Gauge("amplimon_snapshot_age_seconds", "Seconds since the last snapshot", registry=r)
        age.set_function(lambda: _age(self._published))

    # -- hooks ---------------------------------------------------------------------------
    def wrote(self, tables: Iterable[str], undecodable: int = 0) -> None:
        """One call per batch: the table of each message written."""
        counts: dict[str, int] = {}
        for table in tables:
            counts[table] = counts.get(table, 0) + 1
        for table, n in counts.items():
            self.messages.labels(table).inc(n)
        if undecodable:
            self.undecodable.inc(undecodable)

    def published(self, findings: Iterable[tuple[str, str, int]]) -> None:
        """After a snapshot: the store's findings per (kind, severity)."""
        self._published[0] = time.time()
        self.findings.clear()
        for kind, severity, n in findings:
            self.findings.labels(kind, severity).set(n)

    def lags(self, lags: Mapping[tuple[str, int], int]) -> None:
        for (topic, partition), n in lags.items():
            self.lag.labels("sink", topic, str(partition)).set(n)
