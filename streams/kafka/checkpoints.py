"""Worker checkpoints in a compacted Kafka topic (``amplimon.worker-state``, 1 partition).

A checkpoint (:class:`streams.kafka.driver.Checkpoint`, zlib-compressed) is cut into chunks
of at most 512 KiB (under Kafka's default 1 MiB message limit) and written as

* ``<name>/<slot>/<i>`` — chunk ``i`` of generation ``g``, ``slot = g % 2``;
* ``<name>/manifest`` — written last: generation, slot, chunk count, SHA-256.

Two alternating slots mean a crash while writing generation ``g + 1`` leaves generation
``g`` intact (its chunks are in the other slot, and the manifest still names it); compaction
keeps the latest value of each key, so the topic stays at about two checkpoints per worker.
Loading reads the partition to its end and keeps the newest value per key.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from typing import Any

from streams.kafka._errors import PipelineError

__all__ = ["CheckpointError", "CheckpointStore"]

_CHUNK = 512 * 1024


class CheckpointError(PipelineError):
    """A checkpoint cannot be read or written (one-line message)."""


class CheckpointStore:
    """Reads and writes the checkpoints of worker ``name`` (the consumer group id)."""

    def __init__(self, options: dict[str, Any], topic: str, name: str) -> None:
        self.options = options
        self.topic = topic
        self.name = name
        self.generation = 0

    async def load(self) -> bytes | None:
        """The latest complete checkpoint, or None."""
        from aiokafka import AIOKafkaConsumer, TopicPartition

        tp = TopicPartition(self.topic, 0)
        consumer = AIOKafkaConsumer(**self.options, enable_auto_commit=False, group_id=None,
                                    max_partition_fetch_bytes=4 * _CHUNK)
        await consumer.start()
        latest: dict[str, tuple[bytes | None, dict[str, bytes]]] = {}
        prefix = f"{self.name}/"
        try:
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            end = (await consumer.end_offsets([tp]))[tp]
            while await consumer.position(tp) < end:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                for rec in batch.get(tp, []):
                    key = (rec.key or b"").decode()
                    if key.startswith(prefix):
                        latest[key] = (rec.value, dict(rec.headers or ()))
        finally:
            await consumer.stop()
        manifest_value = latest.get(f"{prefix}manifest", (None, {}))[0]
        if not manifest_value:
            return None
        manifest = json.loads(manifest_value)
        self.generation = manifest["generation"]
        parts = []
        for i in range(manifest["chunks"]):
            value, headers = latest.get(f"{prefix}{manifest['slot']}/{i}", (None, {}))
            if value is None or headers.get("generation") != str(self.generation).encode():
                raise CheckpointError(f"checkpoint {self.name} generation {self.generation}: "
                                      f"chunk {i} missing in {self.topic}")
            parts.append(value)
        data = b"".join(parts)
        if hashlib.sha256(data).hexdigest() != manifest["sha256"]:
            raise CheckpointError(f"checkpoint {self.name}: checksum mismatch in {self.topic}")
        return zlib.decompress(data)

    async def save(self, producer: Any, checkpoint: bytes) -> None:
        """Write a new generation; returns once the broker has acknowledged all of it."""
        data = zlib.compress(checkpoint, 1)
        self.generation += 1
        slot = self.generation % 2
        header = [("generation", str(self.generation).encode())]
        chunks = [data[i:i + _CHUNK] for i in range(0, len(data), _CHUNK)] or [b""]
        futures = [await producer.send(self.topic, key=f"{self.name}/{slot}/{i}".encode(),
                                       value=chunk, partition=0, headers=header)
                   for i, chunk in enumerate(chunks)]
        for fut in futures:
            await fut
        manifest = {"generation": self.generation, "slot": slot, "chunks": len(chunks),
                    "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        await (await producer.send(self.topic, key=f"{self.name}/manifest".encode(),
                                   value=json.dumps(manifest).encode(), partition=0))

    async def clear(self, producer: Any) -> None:
        """Forget the checkpoint (``amplimon worker --reset-state``)."""
        await (await producer.send(self.topic, key=f"{self.name}/manifest".encode(),
                                   value=None, partition=0))
