"""Order-independent, exact staging of archived streams (``replay``, ``audit``, ``research``).

Archives arrive in whatever order a warehouse stores them (contract §4, v1.1: *the order of
lines within and across files carries no meaning*).  Staging turns any order of the same
records into the same event-time-ordered, deduplicated stream, out of core:

**Pass 1 — decode (parallel).**  Every line (JSON Lines, gzip) or row (Parquet) is decoded by
the contract decoder (:mod:`monitor.core.contract`, the one the live worker uses, so the accept /
reject decision and the reason are exactly the live ones).  ``workers`` processes share each
file: worker ``w`` of ``n`` decodes lines ``i ≡ w (mod n)`` (Parquet: record batches).  An
accepted record is written to a columnar Parquet shard as its key (platform, event_id,
event time, user), its *canonical* encoding (``msgspec`` JSON of the validated event: time in
epoch ms, region upper case, unknown fields dropped) and the original text; a rejected one to
a dead-letter shard with its reason and ``file:line``.

**Pass 2 — duplicates and order (DuckDB).**  Over the whole archive, records sharing
(platform, topic, event_id) are one event when their canonical encodings are equal (counted
once, the other copies in ``duplicates``) and a *conflicting duplicate* when they differ: then
no copy is counted — which one is "right" would depend on arrival order — and every copy
becomes a dead letter with the reason ``conflicting duplicate …`` and its original text.
Events beyond the far-future limit become dead letters.  The rest are read back sorted by
``(ts, platform, event_id)`` — DuckDB sorts in parallel and spills to ``workdir`` — and
handed to the engine a whole event-time tick at a time.

Guarantee: for every permutation of the input records within and across files, the tick
contents, the dead-letter multiset ``(raw, reason)`` and the counters are identical (only the
``file:line`` locations move with the records).  Memory: bounded by DuckDB's
``memory_limit`` and one batch per worker, not by the archive.
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Final

import duckdb
import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from monitor.core.contract import Exposure, Ranking, Rejected
from monitor.engine.ingest import ClosedTick
from streams.bulk import EVENT_SCHEMAS, ShardWriter
from streams.files import SourceError, iter_records, location, read_raw

__all__ = ["StagedArchive", "StagingStats", "stage"]

TOPICS: Final = ("exposure", "ranking", "panel")
_BATCH: Final = 32_768  # records per Parquet write and per read-back batch
_DEAD_SCHEMA: Final = pa.schema(
    [
        ("topic", pa.string()),
        ("src", pa.int32()),
        ("line", pa.int64()),
        ("raw", pa.string()),
        ("reason", pa.string()),
    ]
)
_DECODERS: Final[dict[str, msgspec.json.Decoder[Any]]] = {
    "exposure": msgspec.json.Decoder(list[Exposure]),
    "ranking": msgspec.json.Decoder(list[Ranking]),
    "panel": msgspec.json.Decoder(list[Exposure]),
}


@dataclass(frozen=True, slots=True)
class SourceFile:
    path: Path
    topic: str

    def location(self, n: int) -> str:
        return location(self.path, n)


@dataclass
class StagingStats:
    """Counters of the staging passes, per topic."""

    decoded: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TOPICS, 0))
    rejected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TOPICS, 0))
    duplicates: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TOPICS, 0))
    conflicting: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TOPICS, 0))
    future: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TOPICS, 0))
    events: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TOPICS, 0))


class DeadRecord(msgspec.Struct, frozen=True):
    """A record that does not reach the engine: where it was, its text and why."""

    topic: str
    source: str
    location: str
    raw: str
    reason: str
    counter: str  # the StreamStats counter it belongs to: rejected | conflicting


# -- pass 1: decode ---------------------------------------------------------------------------
class _DeadWriter:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list[tuple[str, int, int, str, str]] = []
        self.count = 0
        self._writer: pq.ParquetWriter | None = None

    def add(self, topic: str, src: int, line: int, raw: str, reason: str) -> None:
        self.rows.append((topic, src, line, raw, reason))
        if len(self.rows) >= 4096:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        cols = list(zip(*self.rows, strict=True))
        table = pa.Table.from_arrays(
            [pa.array(list(v), type=f.type) for v, f in zip(cols, _DEAD_SCHEMA, strict=True)],
            schema=_DEAD_SCHEMA,
        )
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, _DEAD_SCHEMA, compression="lz4")
        self._writer.write_table(table)
        self.count += table.num_rows
        self.rows = []

    def close(self) -> None:
        self.flush()
        if self._writer is not None:
            self._writer.close()


def _decode_share(
    files: Sequence[SourceFile],
    workdir: Path,
    w: int,
    n: int,
    progress: Callable[[int, int, int], None] | None = None,
) -> None:
    """Pass 1 for worker ``w`` of ``n``: decode its share of every file into shards.

    Raises :class:`SourceError` for a file that cannot be read (the whole run stops: an
    unreadable archive is not a dead letter).
    """
    con = duckdb.connect(config={"threads": 1})
    shards = {t: ShardWriter(workdir, f"{t}-{w}", t, con) for t in TOPICS}
    dead = _DeadWriter(workdir / f"dead-{w}.parquet")
    try:
        for src, f in enumerate(files):
            add = shards[f.topic].add
            at = None if progress is None else partial(progress, w, src)
            for line, result, _raw in iter_records(f.path, f.topic, share=(w, n), position=at):
                if type(result) is Rejected:
                    dead.add(f.topic, src, line, result.raw, result.reason)
                else:
                    add(src, line, result)  # type: ignore[arg-type]
            if at is not None:
                at(f.path.stat().st_size)
        for s in shards.values():
            s.close()
    finally:
        con.close()
        dead.close()


def _worker_main(
    files: Sequence[SourceFile], workdir: str, w: int, n: int, shared: Any, results: Any
) -> None:
    """Process entry point: puts ``None`` or the one-line error (errors as data)."""

    def report(worker: int, src: int, pos: int) -> None:
        shared[worker * len(files) + src] = pos

    try:
        _decode_share(files, Path(workdir), w, n, report)
    except SourceError as err:
        results.put(str(err))
    else:
        results.put(None)


# -- the staged archive -----------------------------------------------------------------------
class StagedArchive:
    """The decoded shards of one run and the DuckDB connection that reads them (pass 2).

    Use as a context manager; the working directory is removed on exit.
    """

    def __init__(
        self, files: Sequence[SourceFile], workdir: Path, *, memory_limit: str, threads: int
    ) -> None:
        self.files = list(files)
        self.workdir = workdir
        self.stats = StagingStats()
        self.con = duckdb.connect(str(workdir / "staging.duckdb"))
        self.con.execute(f"SET memory_limit = '{memory_limit}'")
        self.con.execute(f"SET threads = {max(1, threads)}")
        self.con.execute(f"SET temp_directory = '{workdir / 'spill'}'")
        self.con.execute("SET preserve_insertion_order = false")
        self._prepared = False

    def __enter__(self) -> StagedArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.con.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- pass 2 -------------------------------------------------------------------------------
    def _shards(self, topic: str) -> list[str]:
        return sorted(str(p) for p in self.workdir.glob(f"{topic}-*-*.parquet"))

    def prepare(self, future_limit_ms: int) -> None:
        """Find duplicate groups and far-future events (once, before reading)."""
        con = self.con
        for t in TOPICS:
            shards = self._shards(t)
            if shards:
                con.execute(
                    f"CREATE OR REPLACE VIEW {t} AS SELECT * FROM read_parquet({_sql_list(shards)})"
                )
            else:
                empty = pa.table(
                    {f.name: pa.array([], f.type) for f in EVENT_SCHEMAS[t]}
                    | {"src": pa.array([], pa.int32()), "line": pa.array([], pa.int64())}
                )
                con.register(f"{t}_empty", empty)
                con.execute(f"CREATE OR REPLACE TABLE {t} AS SELECT * FROM {t}_empty")
                con.unregister(f"{t}_empty")
            # one event = equal content: every contract field (time as epoch ms)
            con.execute(f"""CREATE OR REPLACE TABLE {t}_groups AS
                SELECT platform, event_id, count(*) AS n,
                       count(DISTINCT {_content(t)}) AS k
                FROM {t} GROUP BY platform, event_id HAVING count(*) > 1""")
            dup, conflict = con.execute(f"""SELECT
                coalesce(sum(n - 1) FILTER (WHERE k = 1), 0),
                coalesce(sum(n) FILTER (WHERE k > 1), 0) FROM {t}_groups""").fetchall()[0]
            self.stats.duplicates[t] = int(dup)
            self.stats.conflicting[t] = int(conflict)
            con.execute(f"""CREATE OR REPLACE TABLE {t}_conflicts AS
                SELECT platform, event_id, n, k FROM {t}_groups WHERE k > 1""")
            # the copies that do not reach the engine: every copy of a conflicting group,
            # every copy but the first (in file order) of an exact-duplicate group
            con.execute(f"""CREATE OR REPLACE TABLE {t}_drop AS
                SELECT src, line FROM (
                    SELECT e.src, e.line, g.k, row_number() OVER (
                        PARTITION BY e.platform, e.event_id ORDER BY e.src, e.line) AS r
                    FROM {t} e JOIN {t}_groups g USING (platform, event_id))
                WHERE k > 1 OR r > 1""")
            con.execute(
                f"""CREATE OR REPLACE TABLE {t}_future AS
                SELECT platform, event_id, arg_min(src, (src, line)) AS src,
                       arg_min(line, (src, line)) AS line
                FROM {t} ANTI JOIN {t}_conflicts USING (platform, event_id)
                WHERE ts > $limit
                GROUP BY platform, event_id""",
                {"limit": int(future_limit_ms)},
            )
            (future,) = con.execute(f"SELECT count(*) FROM {t}_future").fetchall()[0]
            self.stats.future[t] = int(future)
            (decoded,) = con.execute(f"SELECT count(*) FROM {t}").fetchall()[0]
            self.stats.decoded[t] = int(decoded)
            self.stats.events[t] = (
                int(decoded) - self.stats.duplicates[t] - self.stats.conflicting[t] - int(future)
            )
        self._future_limit = int(future_limit_ms)
        self._prepared = True

    def dead(self) -> Iterator[DeadRecord]:
        """Every record that does not reach the engine, in a canonical order.

        Conflicting copies and far-future events keep their original text: it is read back
        from the source file (only when there are such records).
        """
        con = self.con
        names = [str(f.path) for f in self.files]
        dead_shards = sorted(str(p) for p in self.workdir.glob("dead-*.parquet"))
        if dead_shards:
            rows = con.execute(f"""SELECT topic, src, line, raw, reason
                FROM read_parquet({_sql_list(dead_shards)}) ORDER BY src, line""").fetchall()
            for topic, src, line, raw, reason in rows:
                yield DeadRecord(
                    topic, names[src], self.files[src].location(line), raw, reason, "rejected"
                )
        for t in TOPICS:
            conflicts = con.execute(f"""SELECT e.src, e.line, c.n, c.k, e.event_id
                FROM {t} e JOIN {t}_conflicts c USING (platform, event_id)
                ORDER BY e.src, e.line""").fetchall()
            future = con.execute(f"SELECT src, line FROM {t}_future ORDER BY src, line").fetchall()
            raw = self._raw_text(
                {(src, line) for src, line, *_ in conflicts} | {(src, line) for src, line in future}
            )
            for src, line, n, k, event_id in conflicts:
                yield DeadRecord(
                    t,
                    names[src],
                    self.files[src].location(line),
                    raw[(src, line)],
                    f"{t}.event_id: conflicting duplicate: {k} different records in {n} "
                    f"copies share {event_id!r}; none is counted",
                    "conflicting",
                )
            for src, line in future:
                yield DeadRecord(
                    t,
                    names[src],
                    self.files[src].location(line),
                    raw[(src, line)],
                    f"{t}.ts: more than a day after the current wall-clock time",
                    "rejected",
                )

    def _raw_text(self, wanted: set[tuple[int, int]]) -> dict[tuple[int, int], str]:
        out: dict[tuple[int, int], str] = {}
        for src in sorted({s for s, _ in wanted}):
            lines = {n for s, n in wanted if s == src}
            f = self.files[src]
            for n, text in read_raw(f.path, f.topic, lines).items():
                out[(src, n)] = text
        return out

    def ticks(
        self, tick_ms: int, *, partition: tuple[int, int] | None = None
    ) -> Iterator[ClosedTick]:
        """Closed ticks (exposures, rankings, panel records) in event-time order.

        Within a tick, events are in canonical order ``(ts, platform, event_id)``.
        ``partition=(p, n)`` keeps only users with ``hash(user) % n == p``.
        """
        if not self._prepared:
            raise RuntimeError("prepare() first")
        streams = [self._topic_ticks(t, tick_ms, partition) for t in TOPICS]
        heads: list[tuple[int, list[Any]] | None] = [next(s, None) for s in streams]
        while any(h is not None for h in heads):
            idx = min(h[0] for h in heads if h is not None)
            out: list[list[Any]] = [[], [], []]
            for i, h in enumerate(heads):
                if h is not None and h[0] == idx:
                    out[i] = h[1]
                    heads[i] = next(streams[i], None)
            yield ClosedTick(idx, out[0], out[1], out[2])

    def _topic_ticks(
        self, t: str, tick_ms: int, partition: tuple[int, int] | None
    ) -> Iterator[tuple[int, list[Any]]]:
        p, n = partition or (0, 1)
        cur = self.con.cursor()
        reader = cur.sql(
            f"""SELECT ts, to_json({_content(t)}) AS canon
            FROM {t} ANTI JOIN {t}_drop USING (src, line)
            WHERE ts <= $limit AND hash(user) % $n = $p
            ORDER BY ts, platform, event_id""",
            params={"limit": self._future_limit, "n": n, "p": p},
        ).to_arrow_reader(_BATCH)
        decode = _DECODERS[t].decode
        current: int | None = None
        bucket: list[Any] = []
        for batch in reader:
            if not batch.num_rows:
                continue
            idx = batch.column(0).to_numpy() // tick_ms
            events = decode("[" + ",".join(batch.column(1).to_pylist()) + "]")
            cuts = [0, *(np.flatnonzero(np.diff(idx)) + 1).tolist(), len(events)]
            for a, b in itertools.pairwise(cuts):
                i = int(idx[a])
                if i != current:
                    if current is not None:
                        yield current, bucket
                    current, bucket = i, []
                bucket.extend(events[a:b])
        if current is not None:
            yield current, bucket
        cur.close()


def _content(topic: str) -> str:
    """SQL: the event's contract fields as one struct (equal structs = the same event)."""
    fields = EVENT_SCHEMAS[topic].names
    return "struct_pack(" + ", ".join(f'"{f}" := "{f}"' for f in fields) + ")"


def _sql_list(paths: Sequence[str]) -> str:
    """A SQL list literal of our own shard paths (a view cannot take parameters)."""
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


def stage(
    files: Sequence[tuple[Path, str]],
    *,
    workers: int = 1,
    workdir: str | Path | None = None,
    memory_limit: str = "1GB",
    progress: Callable[[float], None] | None = None,
) -> StagedArchive:
    """Pass 1 over ``files`` (``(path, topic)`` pairs) with ``workers`` processes.

    The shards go to a new private directory under ``workdir`` (default: the system's
    temporary directory), removed when the archive is closed.  ``progress(fraction)`` is
    called from this process while the workers run.  Raises :class:`SourceError` if a file
    cannot be read.
    """
    sources = [SourceFile(Path(p), t) for p, t in files]
    for s in sources:
        if s.topic not in TOPICS:
            raise ValueError(f"unknown topic {s.topic!r}")
    base = Path(tempfile.mkdtemp(prefix="amplimon-stage-", dir=workdir))
    workers = max(1, int(workers))
    try:
        if workers == 1:
            total = sum(s.path.stat().st_size or 1 for s in sources)
            done = [0] * len(sources)

            def report(_w: int, src: int, pos: int) -> None:
                done[src] = pos
                if progress is not None:
                    progress(min(1.0, sum(done) / total))

            _decode_share(sources, base, 0, 1, report)
        else:
            _run_workers(sources, base, workers, progress)
        return StagedArchive(sources, base, memory_limit=memory_limit, threads=workers)
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise


def _run_workers(
    sources: Sequence[SourceFile],
    base: Path,
    workers: int,
    progress: Callable[[float], None] | None,
) -> None:
    # fork: the children start with this process's modules (no re-import of ``__main__``,
    # which spawn and forkserver would run again, and no second start-up of numpy & co.);
    # they only decode and write their own shard files.
    ctx = mp.get_context("fork")
    shared = ctx.Array("q", workers * len(sources), lock=False)
    results = ctx.SimpleQueue()
    total = sum(s.path.stat().st_size or 1 for s in sources) * workers
    procs = [
        ctx.Process(
            target=_worker_main, args=(sources, str(base), w, workers, shared, results), daemon=True
        )
        for w in range(workers)
    ]
    for p in procs:
        p.start()
    errors: list[str] = []
    try:
        pending = workers
        while pending:
            if results.empty():
                if progress is not None:
                    progress(min(1.0, sum(shared[:]) / total))
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(f"decoding worker exited with status {dead[0].exitcode}")
                time.sleep(0.1)
                continue
            error = results.get()
            pending -= 1
            if error is not None:
                errors.append(error)
    finally:
        for p in procs:
            if p.is_alive() and errors:
                p.terminate()
            p.join()
    if errors:
        raise SourceError(errors[0])


def default_workers() -> int:
    """The machine's cores (as this process may use them)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
