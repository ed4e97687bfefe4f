"""``amplimon replay``: archived streams → the engine → the DuckDB store (contract §4).

Reads the files lazily, merges both topics in event-time order, drives the same
:class:`monitor.engine.Engine` the live worker uses, and writes ``findings``,
``amplification`` and ``deadletter``.  Deterministic: the same input gives the same findings
(only the wall-clock columns differ).
"""

from __future__ import annotations

import hashlib
import sys
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.config import Config
from monitor.contract import Rejected
from monitor.engine import Engine, Output, StreamStats
from monitor.privacy import Pseudonymiser
from monitor.provenance import input_files
from monitor.records import utc_now
from monitor.store import Store
from streams.files import Record, check_readable, merge_by_time, read_file
from streams.store_sink import StoreOutput

__all__ = ["ReplayResult", "drive", "replay"]

_FLUSH_EVERY = 200_000  # records between measurement flushes


@dataclass
class ReplayResult:
    stats: StreamStats
    written: dict[str, int] = field(default_factory=dict)
    findings: int = 0
    run_id: str = ""


def drive(engine: Engine, records: Iterable[Record], *, progress: Any = None) -> StreamStats:
    """Push a record stream through ``engine`` and close it."""
    n = 0
    push, reject = engine.push, engine.reject
    for topic, result, source, location, raw in records:
        if type(result) is Rejected:
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


def replay(config: Config, db: str | Path, exposure: Sequence[str | Path],
           ranking: Sequence[str | Path], *, detectors: list[str] | None = None,
           show_progress: bool | None = None, config_text: str = "",
           output: Output | None = None,
           pseudonymiser: Pseudonymiser | None = None) -> ReplayResult:
    """Run every detector over the files and write the store; see module docstring."""
    paths = [(check_readable(p), "exposure") for p in exposure]
    paths += [(check_readable(p), "ranking") for p in ranking]
    started = utc_now()
    store = Store(db)
    try:
        sink = StoreOutput(store)
        engine = Engine(config, output or sink, detectors=detectors,
                        pseudonymiser=pseudonymiser)
        sources = [read_file(p, topic) for p, topic in paths]
        show = sys.stderr.isatty() if show_progress is None else show_progress
        if show:
            stats = _with_progress(engine, sources)
        else:
            stats = drive(engine, merge_by_time(sources))
        sink.flush()
        run_id = uuid.uuid4().hex[:12]
        store.record_run(run_id, "replay", started, {
            "inputs": input_files(paths),
            "config_sha256": hashlib.sha256(config_text.encode()).hexdigest(),
            "detectors": [{"name": d.name, "version": d.version} for d in engine.detectors],
            "stats": stats.as_dict(),
        })
        findings = store.count("findings")
        return ReplayResult(stats=stats, written=dict(sink.written), findings=findings,
                            run_id=run_id)
    finally:
        store.close()


def _with_progress(engine: Engine, sources: list[Iterable[Record]]) -> StreamStats:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("[bold]replay"), BarColumn(), MofNCompleteColumn(),
               TextColumn("records · {task.fields[rate]} events/s"), TimeElapsedColumn())
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task("replay", total=None, rate="—")

        def advance(k: int) -> None:
            bar.advance(task, k)
            elapsed = bar.tasks[0].elapsed or 0
            done = bar.tasks[0].completed
            bar.update(task, rate=f"{done / elapsed:,.0f}" if elapsed else "—")

        return drive(engine, merge_by_time(sources), progress=advance)
