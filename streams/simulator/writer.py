"""Write a simulation to disk: streams, ``amplimon.yaml`` and ``truth.json``."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any, Final

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .config import dump_yaml
from .params import SimParams
from .simulation import TOPICS, Simulation, simulate

__all__ = ["FORMATS", "write_simulation"]

FORMATS: Final = ("jsonl.gz", "jsonl", "parquet")

_COMMON: Final = [
    ("event_id", pa.string()),
    ("platform", pa.string()),
    ("ts", pa.string()),
    ("user", pa.string()),
    ("region", pa.string()),
    ("surface", pa.string()),
    ("arm", pa.string()),
    ("request", pa.string()),
]
_ITEM: Final = pa.struct(
    [
        ("item", pa.string()),
        ("actor", pa.string()),
        ("position", pa.int64()),
        ("score", pa.float64()),
        ("organic_score", pa.float64()),
        ("interventions", pa.list_(pa.string())),
    ]
)
SCHEMAS: Final = {
    "exposure": pa.schema(
        _COMMON
        + [
            ("item", pa.string()),
            ("actor", pa.string()),
            ("position", pa.int64()),
            ("label", pa.string()),
        ]
    ),
    "ranking": pa.schema(_COMMON + [("items", pa.list_(_ITEM))]),
}


def write_simulation(
    out_dir: str | Path, params: SimParams | Simulation, fmt: str = "jsonl.gz"
) -> dict[str, Path]:
    """Simulate (unless given a finished :class:`Simulation`) and write the run.

    Files: ``exposure.<ext>`` and ``ranking.<ext>`` in arrival order (duplicates included;
    malformed lines interleaved in JSON Lines formats only), ``panel.<ext>`` when the run
    has a panel, ``amplimon.yaml`` (contract §2)
    and ``truth.json`` (see :mod:`streams.simulator.truth`).

    Parquet holds the same columns with ``items`` as a list of structs; ``ts`` is always an
    RFC 3339 string there (a Parquet column has one type), epoch-ms values are rendered in UTC.

    Args:
        out_dir: Directory (created if missing).
        params: Parameters to simulate, or a simulation already run.
        fmt: ``jsonl.gz``, ``jsonl`` or ``parquet``.

    Returns:
        Paths by role: ``exposure``, ``ranking``, (``panel``,) ``config``, ``truth``.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt: expected one of {FORMATS}, got {fmt!r}")
    sim = params if isinstance(params, Simulation) else simulate(params)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for topic in TOPICS:
        path = out / f"{topic}.{fmt}"
        if fmt == "parquet":
            _write_parquet(path, topic, sim.records(topic))
        else:
            _write_jsonl(path, topic, sim, gz=fmt == "jsonl.gz")
        paths[topic] = path
    if sim.panel:  # panel observations (contract v1.1 §5), in the exposure format
        path = out / f"panel.{fmt}"
        if fmt == "parquet":
            _write_parquet(path, "exposure", sim.panel)
        else:
            _write_jsonl(path, "panel", sim, gz=fmt == "jsonl.gz")
        paths["panel"] = path
    paths["config"] = out / "amplimon.yaml"
    paths["config"].write_text(dump_yaml(sim.config), encoding="utf-8")
    paths["truth"] = out / "truth.json"
    paths["truth"].write_text(json.dumps(sim.truth, indent=1) + "\n", encoding="utf-8")
    return paths


def _jsonl_chunks(topic: str, sim: Simulation) -> list[bytes]:
    records = sim.records(topic)
    bad = sorted(
        (at, line)
        for (t, line), at in zip(sim.malformed, sim.malformed_at, strict=True)
        if t == topic
    )
    encoder = msgspec.json.Encoder()
    chunks, start = [], 0
    for at, line in bad:
        chunks.append(encoder.encode_lines(records[start:at]))
        chunks.append(line.encode() + b"\n")
        start = at
    chunks.append(encoder.encode_lines(records[start:]))
    return chunks


def _write_jsonl(path: Path, topic: str, sim: Simulation, gz: bool) -> None:
    chunks = _jsonl_chunks(topic, sim)
    if not gz:
        path.write_bytes(b"".join(chunks))
        return
    with (
        path.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0) as f,
    ):
        for chunk in chunks:
            f.write(chunk)


def _ts_text(values: list[Any]) -> list[str]:
    ints = [i for i, v in enumerate(values) if isinstance(v, int)]
    if not ints:
        return values
    out = list(values)
    ms = np.array([values[i] for i in ints], dtype="datetime64[ms]")
    for i, s in zip(ints, np.datetime_as_string(ms, unit="ms").tolist(), strict=True):
        out[i] = s + "Z"
    return out


def _write_parquet(path: Path, topic: str, records: list[dict[str, Any]]) -> None:
    schema = SCHEMAS[topic]
    columns: dict[str, list[Any]] = {name: [r.get(name) for r in records] for name in schema.names}
    columns["ts"] = _ts_text(columns["ts"])
    table = pa.table(
        {n: pa.array(columns[n], type=schema.field(n).type) for n in schema.names}, schema=schema
    )
    pq.write_table(table, path, compression="zstd")
