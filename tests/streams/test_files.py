"""File sources: JSONL, gzip and Parquet read alike; merge by event time; bounded lines."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from monitor.core.contract import Exposure, Ranking, Rejected
from streams.files import (
    MAX_RECORD_BYTES,
    SourceError,
    check_readable,
    merge_by_time,
    read_file,
)
from tests.factories import MIN, T0, exposure, ranking, slot


def write_jsonl(path: Path, rows: list, gz: bool = False) -> Path:
    data = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows).encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def test_jsonl_and_gzip_read_alike(tmp_path: Path) -> None:
    rows = [exposure(ts=T0 + i * MIN) for i in range(5)] + ["{broken"]
    a = [r.result for r in read_file(write_jsonl(tmp_path / "a.jsonl", rows), "exposure")]
    b = [
        r.result for r in read_file(write_jsonl(tmp_path / "b.jsonl.gz", rows, gz=True), "exposure")
    ]
    assert a == b
    assert isinstance(a[-1], Rejected)
    assert all(isinstance(x, Exposure) for x in a[:-1])


def test_parquet_rows_with_items_structs(tmp_path: Path) -> None:
    rows = [
        ranking(
            [slot(), slot(item="i2", position=2, organic_score=None, interventions=["x"])], ts=T0
        ),
        ranking([slot(position=0)], ts=T0 + MIN),
    ]
    path = tmp_path / "r.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    out = list(read_file(path, "ranking"))
    assert isinstance(out[0].result, Ranking)
    assert out[0].result.items[1].interventions == ["x"]
    assert (
        out[0].result.items[0].interventions is None or out[0].result.items[0].interventions == []
    )
    assert isinstance(out[1].result, Rejected)
    assert out[1].result.reason == "ranking.items[0].position: expected integer >= 1, got 0"
    assert out[1].location == "r.parquet:row2"


def test_merge_by_event_time(tmp_path: Path) -> None:
    ex = write_jsonl(tmp_path / "e.jsonl", [exposure(ts=T0 + i * 2 * MIN) for i in range(5)])
    rk = write_jsonl(tmp_path / "r.jsonl", [ranking(ts=T0 + i * 3 * MIN) for i in range(4)])
    merged = list(merge_by_time([read_file(ex, "exposure"), read_file(rk, "ranking")]))
    ts = [r.result.ts for r in merged]
    assert ts == sorted(ts)
    assert len(merged) == 9


def test_overlong_line_rejected_and_reading_goes_on(tmp_path: Path) -> None:
    big = json.dumps(exposure(item="x" * (MAX_RECORD_BYTES + 10)))
    path = write_jsonl(tmp_path / "big.jsonl", [exposure(), big, exposure()])
    out = list(read_file(path, "exposure"))
    assert [type(r.result) for r in out] == [Exposure, Rejected, Exposure]
    assert "larger than 1 MiB" in out[1].result.reason
    assert len(out[1].result.raw) <= 4096
    assert out[2].location == "big.jsonl:3"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.jsonl", None, "no such file"),
        ("data.csv", b"a,b", "unknown format"),
        ("fake.jsonl.gz", b"not gzip", "not a gzip file"),
        ("fake.parquet", b"not parquet", "not a Parquet file"),
    ],
)
def test_unreadable_inputs_named(
    tmp_path: Path, name: str, content: bytes | None, message: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SourceError, match=message):
        check_readable(path)
