"""Worker checkpoints in a compacted Kafka topic (``amplimon.worker-state``, 1 partition).

A checkpoint (:class:`streams.kafka.driver.Checkpoint`, zlib-compressed) is cut into chunks
of at most 512 KiB (under Kafka's default 1 MiB message limit) and written as

* ``<name>/<slot>/<i>`` — chunk ``i`` of generation ``g``, ``slot = g % 2``;
* ``<name>/manifest`` — written last: generation, slot, chunk count, SHA-256.

Two alternating slots mean a crash while writing generation ``g + 1`` leaves generation
``g`` intact (its chunks are in the other slot, and the manifest still names it); compaction
keeps the latest value of each key, so the topic stays at about two checkpoints per worker.
Loading reads the partition to its end and keeps the newest value per key.  A save that fails
half-way (broker gone) is retried under the *same* generation, so it never overwrites the
slot of the last complete one.

**A broker that lost its data.**  The store remembers the offset of its last manifest.  On a
healthy broker offsets only grow (compaction keeps them), so a new manifest at or below that
offset, or a manifest that is no longer there (:meth:`CheckpointStore.verify`), means the
broker restarted empty: :class:`BrokerDataLost`.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from typing import Any

from streams.kafka._errors import PipelineError

__all__ = ["BrokerDataLost", "CheckpointError", "CheckpointStore"]

_CHUNK = 512 * 1024


class CheckpointError(PipelineError):
    """A checkpoint cannot be read or written (one-line message)."""


class BrokerDataLost(PipelineError):
    """The broker no longer holds what it acknowledged (a restarted in-memory broker)."""


class CheckpointStore:
    """Reads and writes the checkpoints of worker ``name`` (the consumer group id)."""

    def __init__(self, options: dict[str, Any], topic: str, name: str) -> None:
        self.options = options
        self.topic = topic
        self.name = name
        self.generation = 0
        self.offset: int | None = None  # of the last manifest this store wrote or loaded
        self._unsure = False  # a save failed: its manifest may or may not be on the broker

    def forget(self) -> None:
        """Start again at generation 0 (the broker lost the checkpoints)."""
        self.generation = 0
        self.offset = None
        self._unsure = False

    async def _read(self) -> dict[str, tuple[bytes | None, dict[str, bytes], int]]:
        """The newest value, headers and offset of each of this worker's keys."""
        from aiokafka import AIOKafkaConsumer, TopicPartition

        tp = TopicPartition(self.topic, 0)
        consumer = AIOKafkaConsumer(
            **self.options,
            enable_auto_commit=False,
            group_id=None,
            max_partition_fetch_bytes=4 * _CHUNK,
        )
        await consumer.start()
        latest: dict[str, tuple[bytes | None, dict[str, bytes], int]] = {}
        prefix = f"{self.name}/"
        try:
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            # Tansu's ListOffsets may answer less than the end (the last batch's first
            # offset + 1); the high watermark of a fetch is right
            end = (await consumer.end_offsets([tp]))[tp]
            while await consumer.position(tp) < max(end, consumer.highwater(tp) or 0):
                batch = await consumer.getmany(tp, timeout_ms=1000)
                for rec in batch.get(tp, []):
                    key = (rec.key or b"").decode()
                    if key.startswith(prefix):
                        latest[key] = (rec.value, dict(rec.headers or ()), rec.offset)
        finally:
            await consumer.stop()
        return latest

    def _manifest(
        self, latest: dict[str, tuple[bytes | None, dict[str, bytes], int]]
    ) -> dict[str, Any] | None:
        value, _, offset = latest.get(f"{self.name}/manifest", (None, {}, -1))
        if not value:
            self.generation, self.offset = 0, None
            return None
        manifest: dict[str, Any] = json.loads(value)
        self.generation, self.offset = manifest["generation"], offset
        return manifest

    async def load(self) -> bytes | None:
        """The latest complete checkpoint, or None."""
        latest = await self._read()
        manifest = self._manifest(latest)
        if manifest is None:
            return None
        parts = []
        for i in range(manifest["chunks"]):
            value, headers, _ = latest.get(f"{self.name}/{manifest['slot']}/{i}", (None, {}, -1))
            if value is None or headers.get("generation") != str(self.generation).encode():
                raise CheckpointError(
                    f"checkpoint {self.name} generation {self.generation}: "
                    f"chunk {i} missing in {self.topic}"
                )
            parts.append(value)
        data = b"".join(parts)
        if hashlib.sha256(data).hexdigest() != manifest["sha256"]:
            raise CheckpointError(f"checkpoint {self.name}: checksum mismatch in {self.topic}")
        return zlib.decompress(data)

    async def save(self, producer: Any, checkpoint: bytes) -> None:
        """Write a new generation; returns once the broker has acknowledged all of it.

        The chunks go to the slot the live manifest does not name.  After a failed save the
        live manifest is read back first: the broker may have stored the manifest whose
        acknowledgement was lost.  Raises :class:`BrokerDataLost` if the manifest landed at
        or below the offset of the previous one: the topic was recreated since.
        """
        if self._unsure:
            previous = self.offset
            self._manifest(await self._read())
            if previous is not None and (self.offset is None or self.offset < previous):
                raise BrokerDataLost(
                    f"checkpoint topic {self.topic} lost the manifest at offset {previous}"
                )
            self._unsure = False
        data = zlib.compress(checkpoint, 1)
        generation = self.generation + 1  # counted only once the manifest is acknowledged
        slot = generation % 2
        header = [("generation", str(generation).encode())]
        chunks = [data[i : i + _CHUNK] for i in range(0, len(data), _CHUNK)] or [b""]
        manifest = {
            "generation": generation,
            "slot": slot,
            "chunks": len(chunks),
            "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
        }
        self._unsure = True
        futures = []
        try:
            for i, chunk in enumerate(chunks):
                futures.append(
                    await producer.send(
                        self.topic,
                        key=f"{self.name}/{slot}/{i}".encode(),
                        value=chunk,
                        partition=0,
                        headers=header,
                    )
                )
            for fut in futures:
                await fut
        except BaseException:
            for fut in futures:  # the others fail later, when nobody waits for them
                fut.add_done_callback(lambda f: f.cancelled() or f.exception())
            raise
        meta = await (
            await producer.send(
                self.topic,
                key=f"{self.name}/manifest".encode(),
                value=json.dumps(manifest).encode(),
                partition=0,
            )
        )
        previous, self.offset, self.generation = self.offset, meta.offset, generation
        self._unsure = False
        if previous is not None and meta.offset <= previous:
            raise BrokerDataLost(
                f"checkpoint topic {self.topic} starts again at offset "
                f"{meta.offset} (the last checkpoint was at {previous})"
            )

    async def verify(self) -> bool:
        """Whether the last manifest this store wrote or loaded is still on the broker."""
        from aiokafka import AIOKafkaConsumer, TopicPartition

        if self.offset is None:
            return True
        tp = TopicPartition(self.topic, 0)
        consumer = AIOKafkaConsumer(
            **self.options,
            enable_auto_commit=False,
            group_id=None,
            max_partition_fetch_bytes=4 * _CHUNK,
        )
        await consumer.start()
        try:
            consumer.assign([tp])
            consumer.seek(tp, self.offset)
            batch = await consumer.getmany(tp, timeout_ms=5000)
            end = consumer.highwater(tp)
        finally:
            await consumer.stop()
        first = next(iter(batch.get(tp, [])), None)
        if first is None:  # the log ends before our manifest, or no answer in time
            return end is None or end > self.offset
        if first.offset != self.offset:
            return False  # gone: compaction keeps the latest manifest, and that was ours
        try:
            return bool(
                first.key == f"{self.name}/manifest".encode()
                and json.loads(first.value)["generation"] == self.generation
            )
        except (ValueError, TypeError, KeyError):
            return False

    async def clear(self, producer: Any) -> None:
        """Forget the checkpoint (``amplimon worker --reset-state``)."""
        await (
            await producer.send(
                self.topic, key=f"{self.name}/manifest".encode(), value=None, partition=0
            )
        )
