"""``amplimon merge``: stage two of the live pipeline on faust-streaming.

Stage one (``amplimon worker``, any number of them) sends per-tick partials and unit progress
to the partials topic, partitioned by platform (:mod:`monitor.partials`).  This Faust app
runs one agent over that topic: for each of its partitions a :class:`monitor.merge.Merger`
turns the partials of every unit into complete ticks, in order, and runs the detectors
(:class:`monitor.analysis.Analysis`, one per platform); findings, measurements,
detectability and late-partial dead letters go to the output topics the sink reads, as the
one-process worker's did.

**State in a Faust Table, recovered after a kill.**  Everything the merger needs survives in
the table ``<app>-merge`` (changelog topic, compacted, partitioned like the partials topic):
the units' progress, partials waiting for their tick to complete, and every merged tick's
input (the merged partial: what the detectors were given).  The detectors' state itself is
not serialised at all: after a kill or a rebalance, the new owner of a partition rebuilds
its mergers from the table by running the stored merged ticks through new analyses —
deterministic, so the same findings (which the sink upserts) and the same state.  Table
values are msgpack sealed with an HMAC (:mod:`monitor.sealed`): nothing written to the
changelog by anyone else is accepted, and nothing there is code.

**Why Faust here and not in stage one**: stage two sees a few messages per unit and tick,
not every event; Faust's per-event stream machinery is measured too slow for stage one
(``benchmarks/bench_faust.py``), and its partitioned, changelogged tables are what stage two
needs.  Delivery is at least once; the merger is idempotent under redelivery.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from monitor.analysis import Analysis
from monitor.config import Config
from monitor.contract import Exposure, Ranking
from monitor.ingest import ClosedTick
from monitor.merge import Merger
from monitor.partials import Message, TickPartial, UnitProgress, decode
from monitor.privacy import load_pseudonymiser
from monitor.records import DeadLetter
from monitor.sealed import Sealer, SealError
from monitor.settings import Settings
from streams.kafka._config import Topics, _servers, sasl_password
from streams.kafka.output import KafkaOutput

__all__ = ["MergeState", "build_app"]

log = logging.getLogger("amplimon.merge")


class MergedTick(msgspec.Struct, kw_only=True):
    """What the detectors were given for one platform and tick, and from which units."""

    platform: str
    index: int
    units: list[int]
    exposures: list[Exposure] = []
    rankings: list[Ranking] = []


_KEY = msgspec.msgpack.Encoder()


def _key(*parts: Any) -> bytes:
    return _KEY.encode(list(parts))


@dataclass
class MergeState:
    """The mergers of the partials partitions this process owns, persisted into ``table``
    (any mutable mapping of bytes → bytes: a Faust Table, or a dict in tests)."""

    config: Config
    output: KafkaOutput
    table: Any
    sealer: Sealer
    detectors: list[str] | None = None
    mergers: dict[int, Merger] = field(default_factory=dict)

    # -- the agent's step ---------------------------------------------------------------
    def handle(self, partition: int, value: bytes | None) -> int:
        """One message of the partials topic; returns how many ticks ran."""
        try:
            message = decode(value or b"")
        except (msgspec.DecodeError, msgspec.ValidationError) as err:
            log.warning("partials partition %d: not a partial or progress message (%s)",
                        partition, " ".join(str(err).split()))
            return 0
        merger = self.merger(partition)
        if merger.closed:
            return 0
        ran = merger.add(message)
        self._persist(partition, merger, message)
        if merger.finished:
            merger.close()
            self.table[_key(partition, "closed")] = self.sealer.seal(b"1")
        elif ran:
            for analysis in merger.analyses.values():
                analysis.flush_measurements()
        return ran

    def merger(self, partition: int) -> Merger:
        merger = self.mergers.get(partition)
        if merger is None:
            merger = self.mergers[partition] = self._recover(partition)
        return merger

    def forget(self, partitions: Iterable[int]) -> None:
        """Partitions this process no longer owns (a rebalance moved them)."""
        for p in partitions:
            self.mergers.pop(p, None)

    def _late(self, part: TickPartial) -> None:
        rows = []
        for topic, events in (("exposure", part.exposures), ("ranking", part.rankings)):
            for e in events:
                rows.append(DeadLetter(
                    source="merge", raw=msgspec.json.encode(e).decode(),
                    reason=(f"{topic}.ts: arrived after its tick was merged (unit "
                            f"{part.unit} had fallen silent and stage two went on)"),
                    location=f"{part.platform}:{part.index}:{e.event_id}"))
        if rows:
            self.output.deadletters(rows)

    # -- persistence --------------------------------------------------------------------
    def _put(self, key: bytes, obj: Any) -> None:
        self.table[key] = self.sealer.seal(msgspec.msgpack.encode(obj))

    def _persist(self, partition: int, merger: Merger, message: Message) -> None:
        if isinstance(message, UnitProgress):
            self._put(_key(partition, "progress", message.unit),
                      merger.progress[message.unit])
        elif merger.pending.get(message.platform, {}).get(message.index, {}).get(
                message.unit) is message:
            self._put(_key(partition, "part", message.platform, message.index, message.unit),
                      message)
        self._put(_key(partition, "merged_until"), merger.merged_until)

    def _merged(self, partition: int, platform: str, tick: ClosedTick,
                units: frozenset[int]) -> None:
        """A tick about to run: store its merged input, drop its partials."""
        self._put(_key(partition, "tick", platform, tick.index),
                  MergedTick(platform=platform, index=tick.index, units=sorted(units),
                             exposures=list(tick.exposures), rankings=list(tick.rankings)))
        for u in units:
            self.table.pop(_key(partition, "part", platform, tick.index, u), None)

    def _recover(self, partition: int) -> Merger:
        """A merger for ``partition`` rebuilt from the table (empty if it holds nothing)."""
        merger = Merger(lambda _platform: Analysis(self.config, self.output,
                                                   detectors=self.detectors),
                        late=self._late)
        ticks: list[MergedTick] = []
        closed = False
        for raw_key, raw in list(self.table.items()):
            try:
                key = msgspec.msgpack.decode(raw_key)
                if not isinstance(key, list) or not key or key[0] != partition:
                    continue
                data = self.sealer.open(raw)
            except (msgspec.DecodeError, SealError) as err:
                log.warning("merge table: skipping an entry that is not ours (%s)", err)
                continue
            kind = key[1]
            if kind == "progress":
                merger.progress[key[2]] = msgspec.msgpack.decode(data, type=UnitProgress)
            elif kind == "part":
                part = msgspec.msgpack.decode(data, type=TickPartial)
                merger.pending.setdefault(part.platform, {}).setdefault(
                    part.index, {})[part.unit] = part
            elif kind == "tick":
                ticks.append(msgspec.msgpack.decode(data, type=MergedTick))
            elif kind == "merged_until":
                merger.merged_until = msgspec.msgpack.decode(data, type=int)
            elif kind == "closed":
                closed = True
        if merger.progress:
            merger.units = next(iter(merger.progress.values())).units
        for t in sorted(ticks, key=lambda t: (t.index, t.platform)):
            merger.rerun(t.platform, ClosedTick(t.index, t.exposures, t.rankings),
                         frozenset(t.units))
        merger.merged = lambda platform, tick, units: self._merged(partition, platform,
                                                                   tick, units)
        if closed:
            merger.close()
        if ticks:
            log.info("partials partition %d: rebuilt from %d merged ticks", partition,
                     len(ticks))
        return merger


def faust_credentials(settings: Settings) -> Any:
    """The broker security settings as Faust credentials (None for PLAINTEXT)."""
    import faust
    from aiokafka.helpers import create_ssl_context

    protocol = settings.security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = None
    if protocol in ("SSL", "SASL_SSL"):
        context = create_ssl_context(cafile=settings.ssl_cafile,
                                     certfile=settings.ssl_certfile,
                                     keyfile=settings.ssl_keyfile)
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    return faust.SASLCredentials(username=settings.sasl_username,
                                 password=sasl_password(settings),
                                 ssl_context=context,
                                 mechanism=settings.sasl_mechanism or "PLAIN")


def build_app(settings: Settings, config: Config, *, session_timeout_s: float = 10.0,
              detectors: list[str] | None = None,
              announce: Callable[[str], None] = log.info) -> Any:
    """The stage-two Faust app (``app.main()`` / ``faust.Worker(app).execute_from_command
    line()`` runs it)."""
    import faust

    topics = Topics.from_settings(settings)
    pseudonymiser = load_pseudonymiser(settings)
    app = faust.App(
        f"{settings.group_id}-merge",
        broker=";".join(f"kafka://{s}" for s in _servers(settings)),
        broker_credentials=faust_credentials(settings),
        store="memory://", web_enabled=False, autodiscover=False,
        topic_partitions=settings.partials_partitions,
        topic_replication_factor=settings.replication,
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=session_timeout_s,
        broker_heartbeat_interval=min(3.0, session_timeout_s / 3),
        broker_commit_every=100, broker_commit_interval=1.0,
        stream_wait_empty=False, table_cleanup_interval=3600.0)
    partials = app.topic(topics.partials, key_type=bytes, value_type=bytes,
                         key_serializer="raw", value_serializer="raw",
                         partitions=settings.partials_partitions)
    table = app.Table("merge", default=None, partitions=settings.partials_partitions,
                      schema=faust.Schema(key_type=bytes, value_type=bytes,
                                          key_serializer="raw", value_serializer="raw"))
    output = KafkaOutput(topics)
    state = MergeState(config, output, table,
                       Sealer(pseudonymiser.derive_key("merge-state")), detectors=detectors)
    app.amplimon_state = state  # for tests and status

    @app.agent(partials)
    async def merge(stream: Any) -> None:
        async for event in stream.events():
            ran = state.handle(event.message.partition, event.value)
            pending = output.drain()
            for t, key, value in pending:
                await app.producer.send_and_wait(t, key, value, None, None, None)
            if ran:
                log.debug("ran %d ticks", ran)

    @app.on_partitions_revoked.connect
    async def revoked(_app: Any, revoked: set[Any], **_kw: Any) -> None:
        state.forget(tp.partition for tp in revoked if tp.topic == topics.partials)

    announce(f"merging partials of {topics.partials} ({settings.partials_partitions} "
             f"partitions) as {app.conf.id}")
    return app
