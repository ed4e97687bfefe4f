"""Archived-stream sources: JSON Lines (``.jsonl``, ``.jsonl.gz``) and Parquet files.

Each file is read lazily record by record and decoded with the contract decoder; the files of
both topics are then merged in event-time order (``heapq.merge`` on each file's running
timestamp), so memory is one record per file plus the engine's reorder buffer.  Files are
expected to be in arrival order, i.e. roughly time-ordered; disorder within the lateness
allowance is absorbed by the engine, beyond it the late records become dead letters.

A bad line is a :class:`monitor.core.contract.Rejected` at its place in the stream (``file:line``).
"""

from __future__ import annotations

import gzip
import heapq
import io
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final, NamedTuple

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq

from monitor.core.contract import Event, Rejected, decode, decode_obj
from monitor.core.errors import AmplimonError
from monitor.engine.ingest import Frontier

__all__ = [
    "MAX_RECORD_BYTES",
    "iter_records",
    "location",
    "SUFFIXES",
    "Record",
    "SourceError",
    "check_readable",
    "merge_by_time",
    "read_file",
    "read_raw",
]

MAX_RECORD_BYTES: Final = 1 << 20  # 1 MiB: a longer line is rejected, not parsed
SUFFIXES: Final = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".ndjson", ".parquet", ".pq")


class SourceError(AmplimonError, RuntimeError):
    """A file cannot be read (one-line message naming it)."""


class Record(NamedTuple):
    """One record of a source: a decoded event or a rejection, with where it came from."""

    topic: str
    result: Event | Rejected
    source: str
    location: str
    raw: bytes | None = None


def _kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith(".gz"):
        return "jsonl.gz"
    return "jsonl"


def check_readable(path: str | Path) -> Path:
    """Raise :class:`SourceError` unless ``path`` is a readable file of a known format."""
    p = Path(path)
    if not p.exists():
        raise SourceError(f"{path}: no such file")
    if p.is_dir():
        raise SourceError(f"{path}: is a directory, expected a file")
    if not p.name.lower().endswith(SUFFIXES):
        raise SourceError(f"{path}: unknown format (expected .jsonl, .jsonl.gz or .parquet)")
    try:
        with p.open("rb") as fh:
            head = fh.read(4)
    except OSError as err:
        raise SourceError(f"{path}: cannot read ({err.strerror})") from None
    kind = _kind(p)
    if kind == "jsonl.gz" and head[:2] != b"\x1f\x8b":
        raise SourceError(f"{path}: not a gzip file")
    if kind == "parquet" and head != b"PAR1":
        raise SourceError(f"{path}: not a Parquet file")
    return p


def read_file(path: str | Path, topic: str) -> Iterator[Record]:
    """Decode every record of one file, in file order."""
    p = Path(path)
    source, parquet = str(p), _kind(p) == "parquet"
    for n, result, raw in iter_records(p, topic):
        where = f"{p.name}:row{n}" if parquet else f"{p.name}:{n}"
        yield Record(topic, result, source, where, raw or None)


def location(path: Path, n: int) -> str:
    """Where record ``n`` of ``path`` is: ``name:line`` (JSON Lines) or ``name:rowN``."""
    return f"{path.name}:row{n}" if _kind(path) == "parquet" else f"{path.name}:{n}"


def iter_records(
    path: Path,
    topic: str,
    *,
    share: tuple[int, int] = (0, 1),
    position: Callable[[int], None] | None = None,
) -> Iterator[tuple[int, Event | Rejected, bytes]]:
    """``(n, decoded or rejected, raw)`` for the records of one file, in file order.

    ``n`` is the 1-based line (JSON Lines) or row (Parquet) number.  ``raw`` is the line's
    bytes, or for a Parquet row its JSON text (empty for a rejection, which carries its own
    text).  ``share=(w, k)`` keeps only lines ``n − 1 ≡ w (mod k)`` (Parquet: record batches
    ``b ≡ w``), so ``k`` workers can share one file.  ``position(bytes)`` is called now and
    then with the compressed bytes read so far (progress).
    """
    if _kind(path) == "parquet":
        yield from _parquet_records(path, topic, share)
    else:
        yield from _jsonl_records(path, topic, share, position)


def read_raw(path: Path, topic: str, numbers: set[int]) -> dict[int, str]:
    """The text of records ``numbers`` of one file, as a dead letter shows it: the line (JSON
    Lines) or the row as JSON (Parquet).  Reads the file once; used for the rare records that
    are set aside after decoding (conflicting duplicates, far-future events)."""
    out: dict[int, str] = {}
    if not numbers:
        return out
    last = max(numbers)
    if _kind(path) == "parquet":
        for n, _result, raw in _parquet_records(path, topic, (0, 1)):
            if n in numbers:
                out[n] = raw.decode("utf-8", "replace")
            if n >= last:
                break
        return out
    try:
        with path.open("rb") as raw_fh:
            fh: Any = gzip.GzipFile(fileobj=raw_fh) if _kind(path) == "jsonl.gz" else raw_fh
            for n, line in enumerate(_lines(io.BufferedReader(fh, 1 << 20)), start=1):
                if n in numbers:
                    out[n] = line.decode("utf-8", "replace")
                if n >= last:
                    break
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise SourceError(f"{path}: cannot read ({_flat(err)})") from None
    return out


def _jsonl_records(
    p: Path, topic: str, share: tuple[int, int], position: Callable[[int], None] | None
) -> Iterator[tuple[int, Event | Rejected, bytes]]:
    w, k = share
    try:
        with p.open("rb") as raw_fh:
            fh: Any = gzip.GzipFile(fileobj=raw_fh) if _kind(p) == "jsonl.gz" else raw_fh
            reader = io.BufferedReader(fh, buffer_size=1 << 20)
            for lineno, line in enumerate(_lines(reader), start=1):
                if (lineno - 1) % k != w:
                    continue
                if position is not None and lineno % 65_536 <= k:
                    position(raw_fh.tell())
                if len(line) > MAX_RECORD_BYTES:
                    yield (
                        lineno,
                        Rejected(
                            topic,
                            line[:4096].decode("utf-8", "replace"),
                            f"{topic}: record larger than 1 MiB (cut)",
                        ),
                        b"",
                    )
                    continue
                if not line.strip():
                    continue
                yield lineno, decode(topic, line), line
    # zlib.error: corrupt deflate data inside a well-formed gzip header (not an OSError).
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise SourceError(f"{p}: cannot read ({_flat(err)})") from None


def _lines(reader: io.BufferedReader[Any]) -> Iterator[bytes]:
    """Lines without their newline.  An over-long line is cut at ``MAX_RECORD_BYTES + 1``
    bytes (so it is rejected) and the rest of it skipped: memory stays bounded."""
    limit = MAX_RECORD_BYTES + 2
    while True:
        line = reader.readline(limit)
        if not line:
            return
        if len(line) == limit and not line.endswith(b"\n"):
            while True:
                rest = reader.readline(1 << 20)
                if not rest or rest.endswith(b"\n"):
                    break
            # Not stripped: a cut ending in "\r" would otherwise shrink to MAX_RECORD_BYTES
            # and its head be decoded as if it were the whole line.
            yield line
            continue
        yield line.rstrip(b"\r\n")


def _parquet_records(
    p: Path, topic: str, share: tuple[int, int]
) -> Iterator[tuple[int, Event | Rejected, bytes]]:
    w, k = share
    try:
        pf = pq.ParquetFile(p)
        row = 0
        for b, batch in enumerate(pf.iter_batches(batch_size=8192)):
            if b % k != w:
                row += batch.num_rows
                continue
            try:
                rows: list[Any] = batch.to_pylist()
            except (ValueError, OverflowError):
                rows = [_row_or_rejection(batch, i, topic) for i in range(batch.num_rows)]
            for obj in rows:
                row += 1
                if isinstance(obj, Rejected):
                    yield row, obj, b""
                    continue
                clean = _drop_nulls(obj)
                result = decode_obj(topic, clean)
                raw = b"" if isinstance(result, Rejected) else _row_text(clean)
                yield row, result, raw
    # ArrowException: a corrupt file behind a valid magic number (ArrowInvalid is a
    # ValueError, not an OSError) is an unreadable file, not a crash.
    except (OSError, pa.ArrowException) as err:
        raise SourceError(f"{p}: cannot read ({_flat(err)})") from None


def _row_text(obj: dict[str, Any]) -> bytes:
    """A valid Parquet row as JSON text (what a dead letter of it would show)."""
    return msgspec.json.encode(obj, order="sorted", enc_hook=str)


def _flat(err: Exception) -> str:
    """The error on one line (Arrow's messages may end in or contain newlines)."""
    return " ".join(str(err).split())


def _row_or_rejection(batch: pa.RecordBatch, i: int, topic: str) -> dict[str, Any] | Rejected:
    """One row as a dict, or a rejection naming the column Python cannot represent.

    ``to_pylist`` fails for a whole batch on one such value (a timestamp past year 9999, a
    date32 beyond ``datetime.date``): only that row becomes a dead letter.
    """
    obj: dict[str, Any] = {}
    bad: list[str] = []
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        try:
            obj[name] = column[i].as_py()
        except (ValueError, OverflowError):
            obj[name] = f"<unreadable {column.type}>"
            bad.append(name)
    if not bad:
        return obj
    raw = msgspec.json.encode(obj, order="sorted", enc_hook=str).decode("utf-8", "replace")
    return Rejected(
        topic,
        raw,
        f"{topic}.{bad[0]}: value out of range for its type ({batch.schema.field(bad[0]).type})",
    )


def _drop_nulls(obj: dict[str, Any]) -> dict[str, Any]:
    """Parquet has a column for every field; an absent optional field is a null there."""
    out = {k: v for k, v in obj.items() if v is not None}
    items = out.get("items")
    if isinstance(items, list):
        out["items"] = [
            {k: v for k, v in it.items() if v is not None} if isinstance(it, dict) else it
            for it in items
        ]
    return out


def _timed(
    records: Iterable[Record], file_no: int, guard_ms: int
) -> Iterator[tuple[int, int, int, Record]]:
    """Each record with its file's merge key: the file's corroborated frontier
    (:class:`monitor.engine.ingest.Frontier`), so one far-ahead record cannot make the merge drain
    every other file before the rest of its own."""
    front = Frontier(guard_ms)
    last = -(2**62)
    for seq, rec in enumerate(records):
        result = rec.result
        if type(result) is not Rejected:
            ts: int = result.ts  # type: ignore[union-attr,assignment]
            held, _behind = front.observe(ts)
            # a record far ahead of its file's established frontier keeps the file's place
            last = front.value if held and front.value is not None else ts
        yield (last, file_no, seq, rec)


def merge_by_time(
    sources: Sequence[Iterable[Record]], *, guard_ms: int = 3_600_000
) -> Iterator[Record]:
    """Merge per-file record streams by event time (stable; rejections keep their place):
    the arrival order of files read side by side, as partitions of a topic arrive.

    Tuples ``(key, file_no, seq, record)`` are unique in their first three fields, so the
    merge never compares records.  The key of a file is its corroborated frontier: a record
    more than ``guard_ms`` ahead of the rest of its file does not advance it alone.
    """
    if len(sources) == 1:
        yield from sources[0]
        return
    streams = [_timed(s, i, guard_ms) for i, s in enumerate(sources)]
    for item in heapq.merge(*streams):
        yield item[3]
