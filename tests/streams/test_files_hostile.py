"""Hostile archive files through the path ``amplimon replay`` takes (read_file → merge_by_time →
drive → Engine → store): every line is accounted for — accepted + duplicates + late + rejected
== lines — and every rejected or late line is a dead letter with a one-line reason; an
unreadable file is one :class:`SourceError` line, never a traceback."""

from __future__ import annotations

import gzip
import json
import math
import tempfile
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz.properties import check_files, check_reason, one_line
from fuzz.strategies import line_files
from monitor.app.replay import replay
from monitor.core.contract import Exposure, Rejected
from monitor.core.store import Store
from streams.files import MAX_RECORD_BYTES, SourceError, read_file
from tests.factories import T0, config, exposure, ranking, slot
from tests.memory_support import peak_memory

MEMORY_LIMIT = 64 * 2**20


def line(obj: object) -> bytes:
    return json.dumps(obj).encode() + b"\n"


def results(path: Path, topic: str = "exposure") -> list:
    return [r.result for r in read_file(path, topic)]


# -- the property --------------------------------------------------------------------------
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(line_files("exposure"), line_files("ranking"), st.booleans(), st.booleans())
def test_every_line_of_hostile_files_is_accounted_for(
    exp: list[bytes], rank: list[bytes], gz_exp: bool, gz_rank: bool
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        check_files(
            Path(tmp), {"exposure": exp, "ranking": rank}, {"exposure": gz_exp, "ranking": gz_rank}
        )


# -- over-long lines -----------------------------------------------------------------------
@pytest.mark.timeout(60)
@pytest.mark.parametrize("gz", [False, True])
def test_lines_over_1_mib_are_dead_lettered_and_reading_goes_on(tmp_path: Path, gz: bool) -> None:
    good = json.dumps(exposure(event_id="ok-1")).encode()
    exact = good[:-1] + b" " * (MAX_RECORD_BYTES - len(good)) + b"}"  # exactly 1 MiB: valid
    slate = json.dumps(ranking([slot(item=f"i{i}", position=i + 1) for i in range(100_000)]))
    body = b"".join(
        [
            good + b"\n",
            b"x" * (MAX_RECORD_BYTES + 1) + b"\n",  # one byte over
            exact + b"\r\n",
            slate.encode() + b"\n",  # a 100,000-item slate is ~9 MB: cut, not parsed
            b"[" * (5 * MAX_RECORD_BYTES) + b"\n",  # 5 MiB of nesting
            line(exposure(event_id="ok-2")),
            b"y" * (3 * MAX_RECORD_BYTES),  # last line, no newline
        ]
    )
    path = tmp_path / ("big.jsonl.gz" if gz else "big.jsonl")
    path.write_bytes(gzip.compress(body, compresslevel=1) if gz else body)
    with peak_memory(MEMORY_LIMIT):
        got = results(path)
    kinds = [type(r).__name__ for r in got]
    assert kinds == [
        "Exposure",
        "Rejected",
        "Exposure",
        "Rejected",
        "Rejected",
        "Exposure",
        "Rejected",
    ]
    for r in got:
        if isinstance(r, Rejected):
            assert r.reason == "exposure: record larger than 1 MiB (cut)"
            assert len(r.raw) <= 4096


@pytest.mark.timeout(60)
def test_gzip_bomb_of_one_endless_line_is_read_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "bomb.jsonl.gz"
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip container
    chunk = b"{" * (8 << 20)
    with path.open("wb") as fh:
        for _ in range(16):  # 128 MiB of "{" in ~130 KB
            fh.write(comp.compress(chunk))
        fh.write(comp.compress(b"\n" + line(exposure())) + comp.flush())
    with peak_memory(MEMORY_LIMIT):
        got = results(path)
    assert [type(r) for r in got] == [Rejected, Exposure]


def test_regression_cut_line_ending_in_cr_is_not_taken_for_a_whole_record(tmp_path: Path) -> None:
    # A line cut at the 1 MiB limit whose kept head ends in "\r" used to be stripped back
    # to MAX_RECORD_BYTES and decoded as if it were the whole line.
    rec = json.dumps(exposure()).encode()
    head = rec[:-1] + b" " * (MAX_RECORD_BYTES - len(rec)) + b"}"  # valid, exactly 1 MiB
    path = tmp_path / "cut.jsonl"
    path.write_bytes(head + b"\r\r" + b"garbage" * 10 + b"\n" + line(exposure()))
    got = results(path)
    assert [type(r) for r in got] == [Rejected, Exposure]
    assert got[0].reason == "exposure: record larger than 1 MiB (cut)"


def test_regression_invalid_utf8_line_is_a_dead_letter_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "utf8.jsonl"
    path.write_bytes(
        line(exposure(user="PLACEHOLDER")).replace(b"PLACEHOLDER", b"\xff\xfe") + line(exposure())
    )
    got = results(path)
    assert [type(r) for r in got] == [Rejected, Exposure]
    assert got[0].reason == "exposure: not valid UTF-8 text"


# -- unreadable files ----------------------------------------------------------------------
def corrupt_gzip() -> bytes:
    data = bytearray(gzip.compress(b"".join(line(exposure()) for _ in range(500))))
    for i in range(30, 60):
        data[i] ^= 0xFF
    return bytes(data)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("corrupt.jsonl.gz", corrupt_gzip()),  # regression: zlib.error escaped
        ("truncated.jsonl.gz", gzip.compress(line(exposure()) * 200)[:-40]),
        ("trailing.jsonl.gz", gzip.compress(line(exposure())) + b"garbage"),
        ("random.jsonl.gz", b"\x1f\x8b" + bytes(range(256))),
        ("garbage.parquet", b"PAR1" + bytes(range(256))),  # regression: ArrowInvalid escaped
        ("truncated.parquet", b"PAR1" + b"\x00" * 8 + b"PAR1"),  # regression: "\n" in message
    ],
)
def test_unreadable_files_are_one_line_source_errors(
    tmp_path: Path, name: str, content: bytes
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(SourceError) as err:
        results(path)
    assert one_line(str(err.value)) and str(err.value).startswith(str(path))


# -- Parquet values a JSON line cannot carry -----------------------------------------------
def test_parquet_non_finite_scores_and_odd_timestamps(tmp_path: Path) -> None:
    rows = [
        ranking([slot(score=math.nan)]),
        ranking([slot(organic_score=math.inf)]),
        ranking([slot(score=-math.inf, organic_score=None)]),
        ranking(),
    ]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "r.parquet")
    got = results(tmp_path / "r.parquet", "ranking")
    assert [r.reason if isinstance(r, Rejected) else "ok" for r in got] == [
        "ranking.items[0].score: expected a finite number, got nan",
        "ranking.items[0].organic_score: expected a finite number, got inf",
        "ranking.items[0].score: expected a finite number, got -inf",
        "ok",
    ]


def test_regression_parquet_timestamp_beyond_year_9999_rejects_only_its_row(tmp_path: Path) -> None:
    # pyarrow's to_pylist raised OverflowError for the whole batch (and the replay died).
    n = 4
    table = pa.table(
        {
            "event_id": [f"e{i}" for i in range(n)],
            "platform": ["chirp"] * n,
            "ts": pa.array([T0, 10**15, T0 + 1, -(10**16)], type=pa.timestamp("ms", tz="UTC")),
            "user": ["u1"] * n,
            "region": ["DE"] * n,
            "surface": ["feed"] * n,
            "arm": ["ranked"] * n,
            "item": ["i1"] * n,
            "actor": ["acc-1"] * n,
            "position": [1] * n,
            "x": pa.array([0, 0, 0, 2**31 - 1], type=pa.date32()),  # unknown column, also bad
        }
    )
    pq.write_table(table, tmp_path / "ts.parquet")
    got = results(tmp_path / "ts.parquet")
    assert [type(r) for r in got] == [Exposure, Rejected, Exposure, Rejected]
    assert got[1].reason.startswith("exposure.ts: value out of range for its type")
    for r in (got[1], got[3]):
        check_reason(r.reason, "exposure.")
        assert '"event_id":"e' in r.raw


# -- end to end: replay into DuckDB --------------------------------------------------------
@pytest.mark.timeout(60)
def test_replay_of_hostile_files_writes_every_rejection_to_duckdb(tmp_path: Path) -> None:
    exp = tmp_path / "exposure.jsonl.gz"
    rank = tmp_path / "ranking.jsonl"
    exp_lines = [line(exposure(ts=T0 + i * 60_000)) for i in range(20)]
    exp_lines += [
        b"\xff\xfe\n",
        b"[" * 200_000 + b"\n",
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000 + b"\n",
        line(exposure(user="\u202e\U0001d54f\x00")),
        exp_lines[3],
        line(exposure(ts="2026-13-01T00:00:00Z")),
        line(exposure(ts=T0 - 86_400_000)),
    ]
    exp.write_bytes(gzip.compress(b"".join(exp_lines)))
    rank.write_bytes(
        line(ranking([slot(score=1.0)]))
        + b'{"items": [NaN]}\n'
        + line(ranking([slot(item=f"i{i}", position=i + 1) for i in range(10_001)]))
    )
    # Order carries no meaning: the record a day older than the rest is an ordinary event
    # (staged replay sorts first) ...
    db = tmp_path / "out.duckdb"
    result = replay(config(), db, [exp], [rank], show_progress=False)
    s = result.stats
    assert s.accepted == {"exposure": 22, "ranking": 1}
    assert s.duplicates == {"exposure": 1, "ranking": 0}
    assert s.late == {"exposure": 0, "ranking": 0}
    assert s.rejected == {"exposure": 4, "ranking": 2}
    with Store(db, read_only=True) as store:
        reasons = [r for (r,) in store.query("SELECT reason FROM deadletter")]
    assert len(reasons) == 6
    for reason in reasons:
        check_reason(reason, ("exposure", "ranking"))
    # ... while in arrival order (the live pipeline's view) it comes after its tick closed
    db2 = tmp_path / "arrival.duckdb"
    s = replay(config(), db2, [exp], [rank], show_progress=False, arrival_order=True).stats
    assert s.accepted == {"exposure": 21, "ranking": 1}
    assert s.late == {"exposure": 1, "ranking": 0}
    with Store(db2, read_only=True) as store:
        assert store.count("deadletter") == 7
