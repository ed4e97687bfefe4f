"""What must hold for any input: a valid event or a dead letter with a one-line reason,
a :class:`Config` or a one-line :class:`ConfigError` — never another exception.

Each ``check_*`` function raises ``AssertionError`` (or lets the unexpected exception out)
when the property fails; the tests and ``fuzz/run.py`` call them with hypothesis inputs.
"""

from __future__ import annotations

import functools
import gzip
import re
import tempfile
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec

from monitor.app.replay import drive
from monitor.core.config import Config, ConfigError, ConfigWarning, load_config, parse_config
from monitor.core.contract import Exposure, Ranking, Rejected, decode, decode_obj
from monitor.engine.run import Engine, StreamStats
from streams.files import MAX_RECORD_BYTES, merge_by_time, read_file
from streams.kafka.driver import EngineDriver, Message, is_end_of_stream
from streams.memory import ListOutput
from tests.factories import FAR_FUTURE_MS, config

__all__ = [
    "INPUTS",
    "check_config_obj",
    "check_config_text",
    "check_decode",
    "check_decode_obj",
    "check_driver",
    "check_event",
    "check_files",
    "check_reason",
    "one_line",
    "scratch_dir",
    "write_csv_fixtures",
]

_TYPES = {"exposure": Exposure, "ranking": Ranking}
_TS_MIN_MS, _TS_MAX_MS = 946_684_800_000, 4_102_444_800_000
_REGION = re.compile(r"[A-Z]{2}(-[A-Z0-9]{1,3})?")
_LINE_BREAKS = frozenset("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")
INPUTS = {"in.exposure": "exposure", "in.ranking": "ranking"}


@functools.cache
def _config() -> Config:
    return config()


def one_line(text: str) -> bool:
    """Non-empty and free of every character Python's ``str.splitlines`` breaks on."""
    return bool(text.strip()) and _LINE_BREAKS.isdisjoint(text)


def check_reason(reason: str, prefix: str | tuple[str, ...]) -> None:
    assert one_line(reason), f"reason is not one non-empty line: {reason!r}"
    assert reason.startswith(prefix), f"reason does not name the topic/file: {reason!r}"
    reason.encode("utf-8")  # a store (DuckDB, Kafka) needs valid UTF-8


def check_event(topic: str, event: Any) -> None:
    """An accepted event is normalised, UTF-8 clean and survives a JSON round trip."""
    assert isinstance(event, _TYPES[topic]), type(event)
    assert type(event.ts) is int and _TS_MIN_MS <= event.ts < _TS_MAX_MS, event.ts
    assert _REGION.fullmatch(event.region), event.region
    again = decode(topic, msgspec.json.encode(event))  # UnicodeEncodeError: not UTF-8 safe
    assert again == event, (again, event)


def check_result(topic: str, result: Any) -> None:
    if isinstance(result, Rejected):
        assert result.topic == topic
        check_reason(result.reason, topic)
        result.raw.encode("utf-8")
    else:
        check_event(topic, result)


def check_decode(topic: str, raw: bytes | str) -> Any:
    """``decode`` of any bytes (or str): an event or a rejection, never an exception."""
    result = decode(topic, raw)
    check_result(topic, result)
    return result


def check_decode_obj(topic: str, obj: Any) -> Any:
    """``decode_obj`` of any parsed object (a Parquet row, a simulator dict)."""
    result = decode_obj(topic, obj)
    check_result(topic, result)
    return result


# -- files through the replay path ---------------------------------------------------------
def _expected_records(lines: Iterable[bytes]) -> int:
    """Records the reader must produce: every line except blank ones (as the reader reads:
    newline stripped, then blank if only ASCII whitespace)."""
    return sum(
        1
        for line in lines
        if line.rstrip(b"\r\n").strip() or len(line.rstrip(b"\r\n")) > MAX_RECORD_BYTES
    )


def check_files(directory: Path, lines: dict[str, list[bytes]], gz: dict[str, bool]) -> StreamStats:
    """Write one file per topic, replay them as ``amplimon replay`` does (read_file →
    merge_by_time → drive → Engine) and account for every line: accepted + duplicates +
    late + rejected + conflicting == lines per topic, and every late, rejected or
    conflicting line is a dead letter with a one-line reason."""
    paths = []
    for topic, topic_lines in lines.items():
        data = b"".join(topic_lines)
        path = directory / (f"{topic}.jsonl.gz" if gz[topic] else f"{topic}.jsonl")
        path.write_bytes(gzip.compress(data, compresslevel=1) if gz[topic] else data)
        paths.append((path, topic))
    out = ListOutput()
    engine = Engine(_config(), out, now_ms=lambda: FAR_FUTURE_MS)
    stats = drive(engine, merge_by_time([read_file(p, t) for p, t in paths]))
    for topic, topic_lines in lines.items():
        seen = (
            stats.accepted[topic]
            + stats.duplicates[topic]
            + stats.late[topic]
            + stats.rejected[topic]
            + stats.conflicting[topic]
        )
        assert seen == _expected_records(topic_lines), (topic, stats.as_dict())
    dead = sum(stats.late.values()) + sum(stats.rejected.values()) + sum(stats.conflicting.values())
    assert len(out.dead) == dead, (len(out.dead), stats.as_dict())
    for d in out.dead:
        check_reason(d.reason, ("exposure", "ranking"))
        d.raw.encode("utf-8")
        assert d.location and d.source
    return stats


# -- the Kafka driver, without a broker ----------------------------------------------------
def check_driver(
    batches: list[list[tuple[str, int, bytes | None, list[tuple[str, Any]]]]],
) -> EngineDriver:
    """Feed batches of messages to an :class:`EngineDriver`, then end every partition: every
    message that is not an end marker is counted once and every rejection is a dead letter."""
    out = ListOutput()
    engine = Engine(_config(), out, auto_watermark=False, now_ms=lambda: FAR_FUTURE_MS)
    driver = EngineDriver(engine, INPUTS, idle_ms=3_600_000, clock=lambda: 0.0)
    # Only the partitions in use: an assigned partition without events holds the watermark
    # back, and the late and after-the-end paths would never be reached.
    partitions = sorted({(t, p) for batch in batches for t, p, _, _ in batch}) or [
        ("in.exposure", 0)
    ]
    driver.assign(partitions)
    offsets = dict.fromkeys(partitions, 0)
    expected = 0
    eos = [("amplimon-control", b"end-of-stream")]
    for batch in [*batches, [(t, p, None, eos) for t, p in partitions]]:
        messages = []
        for topic, partition, value, headers in batch:
            m = Message(topic, partition, offsets[(topic, partition)], value, tuple(headers))
            offsets[(topic, partition)] += 1
            expected += not is_end_of_stream(m)
            messages.append(m)
        driver.process(messages)
        driver.advance()
    assert driver.closed
    s = engine.stats
    counted = sum(
        sum(d.values()) for d in (s.accepted, s.duplicates, s.late, s.rejected, s.conflicting)
    )
    assert counted == expected, (expected, s.as_dict())
    assert len(out.dead) == (
        sum(s.late.values()) + sum(s.rejected.values()) + sum(s.conflicting.values())
    )
    for d in out.dead:
        check_reason(d.reason, ("exposure", "ranking"))
        d.raw.encode("utf-8")
    return driver


# -- configuration -------------------------------------------------------------------------
def write_csv_fixtures(directory: Path) -> None:
    """The actors files that ``strategies.CSV_NAMES`` refers to (some of them broken)."""
    (directory / "bad-utf8.csv").write_bytes(b"actor,name\nacc-1,\xff\xfe\n")
    (directory / "no-actor-column.csv").write_text("name,kind\nx,party\n")
    (directory / "huge-field.csv").write_text("actor\n" + "x" * 200_000 + "\n")
    (directory / "nul.csv").write_bytes(b"actor,name\nacc-\x009,x\n")
    (directory / "good.csv").write_text(
        "actor,name,kind,group,regions\nacc-9,Nine,party,party-b,DE;FR\n"
    )


def _check_config(cfg: Config) -> None:
    """An accepted configuration is usable: periods computable, ticks of at least 1 ms, a
    bounded serialisation (the engine fingerprints it), an engine can be built on it."""
    for w in cfg.windows:
        for period in w.periods().values():
            assert period.start_ms < period.end_ms
    assert cfg.detection.tick_ms >= 1 and cfg.detection.lateness_ms >= 0
    assert len(cfg.model_dump_json()) < 50_000_000
    Engine(cfg, ListOutput())


def check_config_obj(obj: Any, base_dir: Path | None = None) -> Config | ConfigError:
    try:
        with warnings.catch_warnings(record=True) as found:
            warnings.simplefilter("always", ConfigWarning)
            cfg = parse_config(obj, source="fuzz.yaml", base_dir=base_dir)
    except ConfigError as err:
        check_reason(str(err), "fuzz.yaml: ")
        return err
    for w in found:  # a warning is one line naming the file, like an error
        check_reason(str(w.message), "fuzz.yaml: ")
    _check_config(cfg)
    return cfg


def check_config_text(path: Path, data: bytes) -> Config | ConfigError:
    path.write_bytes(data)
    try:
        with warnings.catch_warnings(record=True) as found:
            warnings.simplefilter("always", ConfigWarning)
            cfg = load_config(path)
    except ConfigError as err:
        check_reason(str(err), (f"{path.name}: ", f"{path}: "))
        return err
    for w in found:
        check_reason(str(w.message), (f"{path.name}: ", f"{path}: "))
    _check_config(cfg)
    return cfg


def scratch_dir() -> Path:
    """A fresh directory with the CSV fixtures (for callers without pytest's tmp_path)."""
    path = Path(tempfile.mkdtemp(prefix="amplimon-fuzz-"))
    write_csv_fixtures(path)
    return path
