"""Research replay: what was known when — every tick's statistics per subject.

A :class:`HistoryRecorder` rides on the engine's ``on_tick`` hook.  After each closed
event-time tick it keeps

* the ``amplification`` measurement row of every monitored subject in each ledger cell the
  tick touched (the ratio, its CI and the exact counts *as of that tick*), and
* every finding update the detectors emitted in that tick,

each stamped with the tick's end (``tick_end``), in the ``history`` table of the store
(:data:`monitor.core.store.HISTORY_SCHEMA`).  Finding updates emitted when the stream ends
(``Detector.finish``) are stamped with the end of the last tick.  The detectors are not
touched: the recorder only reads the shared ledger and tees the engine's output, so a replay
with history writes the same ``findings`` and ``amplification`` rows as one without.

:func:`monitor.app.replay.history_replay` is the replay with the recorder attached.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from detectors import Tick
from detectors.amplification import measure
from detectors.ledger import SubjectKey
from monitor.core.records import DeadLetter, Detectability, Finding, Measurement, ms_to_datetime
from monitor.core.store import HISTORY_COLUMNS, Store
from monitor.engine.analysis import Analysis, Output

__all__ = ["HistoryRecorder"]

_TYPES = {
    "tick_end": pa.timestamp("ms", tz="UTC"),
    "ratio": pa.float64(),
    "reach_ratio": pa.float64(),
    "effect": pa.float64(),
    "ci_low": pa.float64(),
    "ci_high": pa.float64(),
    "p_value": pa.float64(),
    "n_exposures": pa.int64(),
    "n_ranked": pa.int64(),
    "n_holdout": pa.int64(),
    "users_ranked": pa.int64(),
    "users_holdout": pa.int64(),
}
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

    def on_tick(self, tick: Tick, engine: Analysis) -> None:
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
                self._add(
                    tick_end=end,
                    record="measurement",
                    platform=m.platform,
                    region=m.region,
                    window_id=m.window_id,
                    period=m.period,
                    subject_kind=m.subject_kind,
                    subject=m.subject,
                    ratio=m.ratio,
                    reach_ratio=m.reach_ratio,
                    ci_low=m.ci_low,
                    ci_high=m.ci_high,
                    n_ranked=m.n_ranked,
                    n_holdout=m.n_holdout,
                    users_ranked=m.users_ranked,
                    users_holdout=m.users_holdout,
                )
        if len(self._cols["run_id"]) >= self.flush_rows:
            self.flush()

    def close(self, engine: Any) -> int:
        """Stamp the end-of-stream finding updates and write what is left; returns rows."""
        last = engine.stats.last_ts
        self._stamp_findings(ms_to_datetime(last if last is not None else 0))
        self.flush()
        return self.rows

    def _stamp_findings(self, end: Any) -> None:
        for f in self.pending:
            self._add(
                tick_end=end,
                record="finding",
                platform=f.platform,
                region=f.region,
                window_id=f.window_id,
                subject_kind=f.subject_kind,
                subject=f.subject,
                detector=f.detector,
                kind=f.kind,
                finding_id=f.finding_id,
                effect=f.effect,
                ci_low=f.ci_low,
                ci_high=f.ci_high,
                p_value=f.p_value,
                severity=f.severity,
                n_exposures=f.n_exposures,
            )
        self.pending = []

    def _add(self, **values: Any) -> None:
        values["run_id"] = self.run_id
        for c, col in self._cols.items():
            col.append(values.get(c))

    def flush(self) -> None:
        n = len(self._cols["run_id"])
        if n:
            batch = pa.table(
                {c: pa.array(v, type=_SCHEMA.field(c).type) for c, v in self._cols.items()},
                schema=_SCHEMA,
            )
            self.rows += self.store.add_history(batch)
            self._cols = {c: [] for c in HISTORY_COLUMNS}
