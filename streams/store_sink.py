"""Engine output that writes the DuckDB store in batches (replay, audit)."""

from __future__ import annotations

from monitor.core.records import DeadLetter, Detectability, Finding, Measurement, keep_latest
from monitor.core.store import Store

__all__ = ["StoreOutput"]


class StoreOutput:
    """Buffers rows and writes them through Arrow, one transaction per flush.

    Findings and measurements are keyed, so only the latest version of each row is kept in
    the buffer; dead letters are appended.
    """

    def __init__(self, store: Store, *, max_buffer: int = 50_000) -> None:
        self.store = store
        self.max_buffer = max_buffer
        self._findings: dict[str, Finding] = {}
        self._measurements: dict[tuple[str, ...], Measurement] = {}
        self._dead: list[DeadLetter] = []
        self._detectability: list[Detectability] = []
        self.written = {"findings": 0, "amplification": 0, "deadletter": 0, "detectability": 0}

    def findings(self, rows: list[Finding]) -> None:
        keep_latest(self._findings, rows)
        self._maybe_flush()

    def measurements(self, rows: list[Measurement]) -> None:
        self._measurements.update((m.key, m) for m in rows)
        self._maybe_flush()

    def deadletters(self, rows: list[DeadLetter]) -> None:
        self._dead.extend(rows)
        self._maybe_flush()

    def detectability(self, rows: list[Detectability]) -> None:
        self._detectability.extend(rows)

    def _maybe_flush(self) -> None:
        if len(self._findings) + len(self._measurements) + len(self._dead) >= self.max_buffer:
            self.flush()

    def flush(self) -> None:
        """Write the buffers in one transaction: on a failed write (disk full) none of them
        is stored, and they are kept (the caller gets the
        :class:`~monitor.core.store.StoreError`)."""
        if not (self._findings or self._measurements or self._dead or self._detectability):
            return
        store = self.store
        with store.transaction():
            written = {
                "findings": store.upsert_findings(self._findings.values()),
                "amplification": store.upsert_measurements(self._measurements.values()),
                "deadletter": store.add_deadletters(self._dead),
                "detectability": store.upsert_detectability(self._detectability),
            }
        for table, n in written.items():
            self.written[table] += n
        self._findings, self._measurements, self._dead, self._detectability = {}, {}, [], []
