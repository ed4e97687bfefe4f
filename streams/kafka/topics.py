"""``amplimon topics create``: the topics of the live pipeline, with their partition counts.

=========================  ==========  ====================================================
topic (default name)       partitions  key
=========================  ==========  ====================================================
``amplimon.exposure``      N           ``user`` (contract §1)
``amplimon.ranking``       N           ``user``
``amplimon.findings``      N           ``finding_id`` (updates of one finding stay ordered)
``amplimon.measurements``  N           platform|region|window|period|subject
``amplimon.deadletter``    N           ``dl_id``
``amplimon.detectability`` N           detector|platform|region|window|subject
``amplimon.worker-state``  1           worker checkpoints, ``cleanup.policy=compact``
=========================  ==========  ====================================================

``N`` = ``--partitions`` (``AMPLIMON_PARTITIONS``).  Creating an existing topic is not an
error, so the command is safe to run at every deployment.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from streams.kafka._config import Topics, kafka_python_options
from streams.kafka._errors import PipelineError
from streams.kafka.broker import admin_client
from streams.settings import Settings

__all__ = ["TopicError", "create_topics", "group_lag", "missing_topics", "topic_plan"]


class TopicError(PipelineError):
    """Topics cannot be created or are missing (one-line message)."""


def topic_plan(settings: Settings, partitions: int | None = None) -> dict[str, int]:
    """Topic name → partition count."""
    t = Topics.from_settings(settings)
    n = partitions or settings.partitions
    plan = dict.fromkeys(
        (t.exposure, t.ranking, t.panel, t.findings, t.measurements, t.deadletter, t.detectability),
        n,
    )
    plan[t.state] = 1
    plan[t.partials] = settings.partials_partitions
    return plan


def create_topics(settings: Settings, partitions: int | None = None) -> dict[str, str]:
    """Create the missing topics; returns topic → ``created`` / ``exists``."""
    from kafka.admin import NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    plan = topic_plan(settings, partitions)
    state_topic = Topics.from_settings(settings).state
    try:
        admin = admin_client(**kafka_python_options(settings), request_timeout_ms=10_000)
    except (KafkaError, OSError, ValueError) as err:
        raise TopicError(f"cannot reach the broker at {settings.broker} ({err})") from None
    try:
        existing = set(admin.list_topics())
        result = {name: "exists" for name in plan if name in existing}
        for name, n in plan.items():
            if name in existing:
                continue
            configs = {"cleanup.policy": "compact"} if name == state_topic else {}
            topic = NewTopic(name, n, settings.replication, topic_configs=configs)
            try:
                admin.create_topics([topic])
            except TopicAlreadyExistsError:
                result[name] = "exists"
                continue
            except KafkaError as err:
                raise TopicError(f"cannot create topic {name} ({err})") from None
            result[name] = "created"
        return result
    finally:
        admin.close()


def missing_topics(settings: Settings, names: Iterable[str]) -> list[str]:
    """The topics of ``names`` the broker does not have."""
    from kafka.errors import KafkaError

    try:
        admin = admin_client(**kafka_python_options(settings), request_timeout_ms=10_000)
    except (KafkaError, OSError, ValueError) as err:
        raise TopicError(f"cannot reach the broker at {settings.broker} ({err})") from None
    try:
        existing = set(admin.list_topics())
    finally:
        admin.close()
    return [n for n in names if n not in existing]


def group_lag(settings: Settings, group: str, names: Iterable[str]) -> int:
    """Messages of ``names`` not yet committed by consumer group ``group`` (monitoring)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        **kafka_python_options(settings), group_id=group, enable_auto_commit=False
    )
    try:
        tps = [
            TopicPartition(t, p)
            for t in names
            for p in sorted(consumer.partitions_for_topic(t) or ())
        ]
        ends = _log_ends(consumer, tps)
        return sum(max(0, ends[tp] - (consumer.committed(tp) or 0)) for tp in tps)
    finally:
        consumer.close(autocommit=False)


def _log_ends(consumer: Any, tps: list[Any], wait_s: float = 2.0) -> dict[Any, int]:
    """End offset of each partition.  The embedded broker (Tansu 0.6) answers ListOffsets
    ``latest`` with the first offset of the partition's last batch, not the log end; the
    high-water mark of a fetch is right.  So fetch from the reported end and take the
    larger of the two (on Apache Kafka both agree)."""
    ends: dict[Any, int] = consumer.end_offsets(tps)
    if not tps:
        return ends
    consumer.assign(tps)
    for tp in tps:
        consumer.seek(tp, ends[tp])
    deadline = time.monotonic() + wait_s
    seen: dict[Any, int] = {}
    while len(seen) < len(tps) and time.monotonic() < deadline:
        consumer.poll(timeout_ms=100, max_records=1)
        for tp in tps:
            high = consumer.highwater(tp)
            if high is not None:
                seen[tp] = high
    return {tp: max(ends[tp], seen.get(tp, ends[tp])) for tp in tps}
