"""``amplimon replay``: archived streams → the engine → the DuckDB store (contract §4).

**Order carries no meaning** (contract v1.1).  By default the archive is *staged*
(:mod:`streams.staging`): decoded in parallel by the contract decoder, deduplicated over the
whole archive (conflicting duplicates become dead letters), sorted by event time out of core,
and handed to the same :class:`monitor.engine.run.Engine` the live worker uses a whole tick at a
time.  Any order of the same records — within and across files, JSON Lines, gzip or Parquet —
gives the same findings, amplification rows, detectability and dead letters.

``arrival_order=True`` is the other question, *what would the live pipeline have done*: the
files are read in their own line order (merged across files by their running event time, as
partitions of a topic arrive side by side), through the engine's watermark, so records later
than the lateness allowance become ``late`` dead letters exactly as they would live.

The store: a replay refuses a database that already holds results unless ``existing`` says
``append`` (add this run's rows; keyed rows are updated) or ``replace`` (start a new file).
Deterministic: the same input gives the same findings (only wall-clock columns differ).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

from monitor.app.progress import NoProgress, Progress, progress_for
from monitor.core.config import Config
from monitor.core.contract import Rejected
from monitor.core.privacy import Pseudonymiser
from monitor.core.provenance import input_files
from monitor.core.records import utc_now
from monitor.core.store import Store, StoreError
from monitor.engine.history import HistoryRecorder
from monitor.engine.run import Engine, Output, StreamStats
from streams.files import Record, check_readable, merge_by_time, read_file
from streams.staging import default_workers, stage
from streams.store_sink import StoreOutput

__all__ = ["Existing", "ReplayResult", "drive", "history_replay", "replay"]

_FLUSH_EVERY = 200_000  # events between measurement flushes
Existing = Literal["refuse", "append", "replace"]


@dataclass
class ReplayResult:
    stats: StreamStats
    written: dict[str, int] = field(default_factory=dict)
    findings: int = 0
    run_id: str = ""


def drive(engine: Engine, records: Iterable[Record], *, progress: Any = None) -> StreamStats:
    """Push a record stream through ``engine`` in the given (arrival) order and close it."""
    n = 0
    push, reject = engine.push, engine.reject
    for topic, result, source, location, raw in records:
        if isinstance(result, Rejected):
            reject(result, source=source, location=location)
        else:
            push(topic, result, source=source, location=location, raw=raw)
        n += 1
        if n % 10_000 == 0:
            if progress is not None:
                progress(10_000)
            if n % _FLUSH_EVERY == 0:
                engine.flush_measurements()
    if progress is not None:
        progress(n % 10_000)
    return engine.close()


def drive_staged(
    engine: Engine,
    files: Sequence[tuple[Path, str]],
    *,
    workers: int = 1,
    work_dir: str | Path | None = None,
    progress: Progress | None = None,
) -> StreamStats:
    """Stage ``files`` (order-independent, exact duplicates, sorted) and run ``engine``."""
    progress = progress or NoProgress()
    total_bytes = sum(p.stat().st_size for p, _ in files)
    progress.phase("decoding", total_bytes, "bytes")
    with stage(
        files,
        workers=workers,
        workdir=work_dir,
        progress=lambda f: progress.update(f * total_bytes),
    ) as staged:
        staged.prepare(engine.future_limit_ms)
        for d in staged.dead():
            engine.dead_letter(
                d.topic, d.counter, d.raw, d.reason, source=d.source, location=d.location
            )
        s = staged.stats
        for topic, n in s.duplicates.items():
            if n or topic in engine.stats.duplicates:
                engine.stats.duplicates[topic] = engine.stats.duplicates.get(topic, 0) + n
        total = sum(s.events.values())
        progress.phase("detecting", total, "events")
        done = since_flush = 0
        for tick in staged.ticks(engine.tick_ms):
            engine.feed_tick(tick.index, tick.exposures, tick.rankings, tick.panel)
            n = len(tick.exposures) + len(tick.rankings) + len(tick.panel)
            done += n
            since_flush += n
            progress.update(done)
            if since_flush >= _FLUSH_EVERY:
                engine.flush_measurements()
                since_flush = 0
    progress.close()
    return engine.close()


def open_store(db: str | Path, existing: Existing) -> Store:
    """The store a run writes: refuse one that already holds results unless told."""
    path = Path(db)
    if existing == "replace" and path.exists():
        Store(path).close()  # a clear error if it is not ours to replace (locked, not DuckDB)
        path.unlink()
        Path(f"{path}.wal").unlink(missing_ok=True)
    store = Store(path)
    if existing == "refuse":
        held = {t: store.count(t) for t in ("findings", "amplification", "deadletter", "runs")}
        if any(held.values()):
            store.close()
            what = ", ".join(f"{n:,} {t}" for t, n in held.items() if n)
            raise StoreError(
                f"{path} already holds results ({what}); pass --append to add "
                "this run to them or --replace to start a new database"
            )
    return store


def replay(
    config: Config,
    db: str | Path,
    exposure: Sequence[str | Path],
    ranking: Sequence[str | Path],
    *,
    panel: Sequence[str | Path] = (),
    detectors: list[str] | None = None,
    show_progress: bool | None = None,
    config_text: str = "",
    output: Output | None = None,
    pseudonymiser: Pseudonymiser | None = None,
    history: bool = False,
    workers: int | None = None,
    arrival_order: bool = False,
    existing: Existing = "refuse",
    work_dir: str | Path | None = None,
    command: str | None = None,
) -> ReplayResult:
    """Run every detector over the files and write the store; see the module docstring.

    ``history`` adds the ``history`` table (every tick's statistics per subject);
    ``workers`` processes decode the archive (default: the machine's cores).
    """
    paths = [(check_readable(p), "exposure") for p in exposure]
    paths += [(check_readable(p), "ranking") for p in ranking]
    paths += [(check_readable(p), "panel") for p in panel]
    command = command or ("replay --history" if history else "replay")
    started = utc_now()
    run_id = uuid.uuid4().hex[:12]
    store = open_store(db, existing)
    try:
        sink = StoreOutput(store)
        recorder = HistoryRecorder(store, run_id) if history else None
        out: Output = output or sink
        engine = Engine(
            config,
            recorder.wrap(out) if recorder else out,
            detectors=detectors,
            on_tick=recorder.on_tick if recorder else None,
            pseudonymiser=pseudonymiser,
        )
        progress = progress_for(command.split()[0], show_progress)
        try:
            if arrival_order:
                sources = [read_file(p, topic) for p, topic in paths]
                progress.phase("records", None, "records")
                count = [0]

                def advance(k: int) -> None:
                    count[0] += k
                    progress.update(count[0])

                stats = drive(engine, merge_by_time(sources), progress=advance)
            else:
                stats = drive_staged(
                    engine,
                    paths,
                    workers=workers or default_workers(),
                    work_dir=work_dir,
                    progress=progress,
                )
        finally:
            progress.close()
        sink.flush()
        details: dict[str, Any] = {
            "inputs": input_files(paths),
            "config_sha256": hashlib.sha256(config_text.encode()).hexdigest(),
            "detectors": [{"name": d.name, "version": d.version} for d in engine.detectors],
            "stats": stats.as_dict(),
            "order": "arrival" if arrival_order else "event time (staged)",
        }
        written = dict(sink.written)
        if recorder is not None:
            details["history_rows"] = written["history"] = recorder.close(engine)
        store.record_run(run_id, command, started, details)
        return ReplayResult(
            stats=stats, written=written, findings=store.count("findings"), run_id=run_id
        )
    finally:
        store.close()


history_replay = partial(replay, history=True)
