"""In-memory sources and sinks, so pipelines are tested end to end without a broker."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from monitor.core.contract import decode_obj
from monitor.core.records import DeadLetter, Detectability, Finding, Measurement
from streams.files import Record

__all__ = ["ListOutput", "records_from_dicts"]


@dataclass
class ListOutput:
    """Collects what the engine emits; ``latest_findings`` keeps the last version per id."""

    finding_updates: list[Finding] = field(default_factory=list)
    measurement_rows: list[Measurement] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    detectability_rows: list[Detectability] = field(default_factory=list)

    def findings(self, rows: list[Finding]) -> None:
        self.finding_updates.extend(rows)

    def measurements(self, rows: list[Measurement]) -> None:
        self.measurement_rows.extend(rows)

    def deadletters(self, rows: list[DeadLetter]) -> None:
        self.dead.extend(rows)

    def detectability(self, rows: list[Detectability]) -> None:
        self.detectability_rows.extend(rows)

    @property
    def latest_findings(self) -> dict[str, Finding]:
        return {f.finding_id: f for f in self.finding_updates}

    @property
    def latest_measurements(self) -> dict[tuple[str, ...], Measurement]:
        return {m.key: m for m in self.measurement_rows}


def records_from_dicts(
    topic: str, rows: Iterable[Mapping[str, Any]], source: str = "memory"
) -> Iterator[Record]:
    """Validate parsed records (e.g. the simulator's) as a record stream."""
    for i, row in enumerate(rows, start=1):
        yield Record(topic, decode_obj(topic, dict(row)), source, f"{source}:{i}")
