"""Research replay: what was known when — every tick's statistics per subject.

A :class:`HistoryRecorder` rides on the engine's ``on_tick`` hook.  After each closed
event-time tick it keeps

* the ``amplification`` measurement row of every monitored subject in each ledger cell the
  tick touched (the ratio, its CI and the exact counts *as of that tick*), and
* every finding update the detectors emitted in that tick,

each stamped with the tick's end (``tick_end``), in the ``history`` table of the store
(:data:`monitor.store.HISTORY_SCHEMA`).  Finding updates emitted when the stream ends
(``Detector.finish``) are stamped with the end of the last tick.  The detectors are not
touched: the recorder only reads the shared ledger and tees the engine's output, so a replay
with history writes the same ``findings`` and ``amplification`` rows as one without.

:func:`history_replay` is :func:`monitor.replay.replay` with the recorder attached.
"""

from __future__ import annotations

import hashlib
import sys
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from detectors import Tick
from detectors.amplification import measure
from detectors.ledger import SubjectKey
from monitor.config import Config
from monitor.engine import Engine, Output, StreamStats
from monitor.privacy import Pseudonymiser
from monitor.provenance import input_files
from monitor.records import DeadLetter, Detectability, Finding, Measurement, ms_to_datetime, utc_now
from monitor.replay import ReplayResult, drive
from monitor.store import HISTORY_COLUMNS, Store
from streams.files import Record, check_readable, merge_by_time, read_file
from streams.store_sink import StoreOutput

__all__ = ["HistoryRecorder", "history_replay"]

_TYPES = {"tick_end": pa.timestamp("ms", tz="UTC"), "ratio": pa.float64(),
          "reach_ratio": pa.float64(), "effect": pa.float64(), "ci_low": pa.float64(),
          "ci_high": pa.float64(), "p_value": pa.float64(), "n_exposures": pa.int64(),
          "n_ranked": pa.int64(), "n_holdout": pa.int64(), "users_ranked": pa.int64(),
          "users_holdout": pa.int64()}
_SCHEMA = pa.schema([(c, _TYPES.get(c, pa.string())) for c in HISTORY_COLUMNS])


class _Tee:
    """Forwards the engine's output and keeps this tick's finding updates."""

    def __init__(self, inner: Output, recorder: HistoryRecorder) -> None:
        self.inner = inner
        self.recorder = recorder

    def findings(self, rows: list[Finding]) -> None:
        self.recorder.pending.extend(rows)
        self.inner.findings(rows)

    def measurements(self, rows: list[Measurement]) -> None:
        self.inner.measurements(rows)

    def deadletters(self, rows: list[DeadLetter]) -> None:
        self.inner.deadletters(rows)

    def detectability(self, rows: list[Detectability]) -> None:
        self.inner.detectability(rows)


class HistoryRecorder:
    """Collects the per-tick history of one run and writes it to ``store`` in batches.

    Use: ``engine = Engine(config, recorder.wrap(output), on_tick=recorder.on_tick)``, drive
    the engine, then :meth:`close` (after ``engine.close()``).
    """

    def __init__(self, store: Store, run_id: str, *, flush_rows: int = 100_000) -> None:
        self.store = store
        self.run_id = run_id
        self.flush_rows = flush_rows
        self.pending: list[Finding] = []
        self.rows = 0
        self._cols: dict[str, list[Any]] = {c: [] for c in HISTORY_COLUMNS}
        self._subjects: dict[str, list[SubjectKey]] = {}
        store.reset_history()

    def wrap(self, output: Output) -> Output:
        return _Tee(output, self)

    def on_tick(self, tick: Tick, engine: Engine) -> None:
        end = ms_to_datetime(tick.end_ms)
        self._stamp_findings(end)
        ledger = engine.ledger
        windows = {w.id: w for w in engine.config.windows}
        for key in sorted(ledger.touched):
            cell = ledger.cells[key]
            subjects = self._subjects.get(key[1])
            if subjects is None:
                subjects = self._subjects[key[1]] = ledger.monitored_subjects(windows[key[1]])
            for subject in subjects:
                m = measure(cell, subject)
                self._add(tick_end=end, record="measurement", platform=m.platform,
                          region=m.region, window_id=m.window_id, period=m.period,
                          subject_kind=m.subject_kind, subject=m.subject, ratio=m.ratio,
                          reach_ratio=m.reach_ratio, ci_low=m.ci_low, ci_high=m.ci_high,
                          n_ranked=m.n_ranked, n_holdout=m.n_holdout,
                          users_ranked=m.users_ranked, users_holdout=m.users_holdout)
        if len(self._cols["run_id"]) >= self.flush_rows:
            self.flush()

    def close(self, engine: Engine) -> int:
        """Stamp the end-of-stream finding updates and write what is left; returns rows."""
        last = engine.stats.last_ts
        self._stamp_findings(ms_to_datetime(last if last is not None else 0))
        self.flush()
        return self.rows

    def _stamp_findings(self, end: Any) -> None:
        for f in self.pending:
            self._add(tick_end=end, record="finding", platform=f.platform, region=f.region,
                      window_id=f.window_id, subject_kind=f.subject_kind, subject=f.subject,
                      detector=f.detector, kind=f.kind, finding_id=f.finding_id,
                      effect=f.effect, ci_low=f.ci_low, ci_high=f.ci_high, p_value=f.p_value,
                      severity=f.severity, n_exposures=f.n_exposures)
        self.pending = []

    def _add(self, **values: Any) -> None:
        values["run_id"] = self.run_id
        for c, col in self._cols.items():
            col.append(values.get(c))

    def flush(self) -> None:
        n = len(self._cols["run_id"])
        if n:
            batch = pa.table({c: pa.array(v, type=_SCHEMA.field(c).type)
                              for c, v in self._cols.items()}, schema=_SCHEMA)
            self.rows += self.store.add_history(batch)
            self._cols = {c: [] for c in HISTORY_COLUMNS}


def history_replay(config: Config, db: str | Path, exposure: Sequence[str | Path],
                   ranking: Sequence[str | Path], *, detectors: list[str] | None = None,
                   show_progress: bool | None = None, config_text: str = "",
                   command: str = "replay --history",
                   pseudonymiser: Pseudonymiser | None = None) -> ReplayResult:
    """:func:`monitor.replay.replay` plus the ``history`` table (same arguments, same
    ``findings``/``amplification``/``deadletter``/``detectability``/``runs`` rows)."""
    paths = [(check_readable(p), "exposure") for p in exposure]
    paths += [(check_readable(p), "ranking") for p in ranking]
    started = utc_now()
    run_id = uuid.uuid4().hex[:12]
    store = Store(db)
    try:
        sink = StoreOutput(store)
        recorder = HistoryRecorder(store, run_id)
        engine = Engine(config, recorder.wrap(sink), detectors=detectors,
                        on_tick=recorder.on_tick, pseudonymiser=pseudonymiser)
        sources = [read_file(p, topic) for p, topic in paths]
        show = sys.stderr.isatty() if show_progress is None else show_progress
        records = merge_by_time(sources)
        stats = _drive_with_progress(engine, records) if show else drive(engine, records)
        sink.flush()
        history_rows = recorder.close(engine)
        store.record_run(run_id, command, started, {
            "inputs": input_files(paths),
            "config_sha256": hashlib.sha256(config_text.encode()).hexdigest(),
            "detectors": [{"name": d.name, "version": d.version} for d in engine.detectors],
            "stats": stats.as_dict(),
            "history_rows": history_rows,
        })
        return ReplayResult(stats=stats, written=dict(sink.written) | {"history": history_rows},
                            findings=store.count("findings"), run_id=run_id)
    finally:
        store.close()


def _drive_with_progress(engine: Engine, records: Iterable[Record]) -> StreamStats:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("[bold]replay"), BarColumn(), TextColumn("{task.completed:,} records"),
               TimeElapsedColumn())
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task("replay", total=None)
        return drive(engine, records, progress=lambda k: bar.advance(task, k))
