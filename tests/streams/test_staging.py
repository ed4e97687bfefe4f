"""Staging (streams.staging): any order of the same records → the same ticks, counts and dead
letters; every line accounted for; the same accept/reject decision and reason as the decoder."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.core.contract import Rejected
from streams.files import read_file
from streams.staging import stage
from tests.factories import HOUR, MIN, T0, exposure, ranking, slot

FUTURE = T0 + 1000 * HOUR


def line(obj: Any) -> bytes:
    return json.dumps(obj).encode() + b"\n"


def staged_view(
    files: list[tuple[Path, str]], workers: int = 1, tick_ms: int = 15 * MIN
) -> dict[str, Any]:
    with stage(files, workers=workers) as s:
        s.prepare(FUTURE)
        ticks = [
            (t.index, [e.event_id for e in t.exposures], [r.event_id for r in t.rankings])
            for t in s.ticks(tick_ms)
        ]
        dead = Counter((d.raw, d.reason, d.counter) for d in s.dead())
        return {
            "ticks": ticks,
            "dead": dead,
            "dup": dict(s.stats.duplicates),
            "conflicting": dict(s.stats.conflicting),
            "events": dict(s.stats.events),
        }


def records(rng: random.Random) -> list[bytes]:
    """A small archive: valid events, exact duplicates (also re-spelt), conflicting copies,
    malformed lines and a far-future event."""
    out: list[bytes] = []
    for i in range(60):
        e = exposure(
            event_id=f"e{i}", user=f"u{i % 7}", ts=T0 + rng.randrange(6 * HOUR), item=f"i{i % 5}"
        )
        out.append(line(e))
        if i % 9 == 0:
            out.append(line(e))  # exact duplicate
        if i % 13 == 0:
            respelt = dict(e, ts=f"{_iso(e['ts'])}")
            out.append(line(respelt))  # same event, time spelt as RFC 3339
        if i % 17 == 0:
            out.append(line(dict(e, position=e["position"] + 3)))  # conflicting copy
    out += [
        b'{"event_id": "bad", "platform": "chirp"}\n',
        b"not json\n",
        line(exposure(event_id="far", ts=FUTURE + HOUR)),
    ]
    return out


def _iso(ms: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat().replace("+00:00", "Z")


def write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(lines))
    return path


@pytest.fixture(scope="module")
def archive() -> list[bytes]:
    return records(random.Random(1))


@pytest.fixture(scope="module")
def reference(archive: list[bytes], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("ref")
    rk = [line(ranking(event_id=f"r{i}", ts=T0 + i * 7 * MIN, items=[slot()])) for i in range(20)]
    view = staged_view(
        [(write(d / "e.jsonl", archive), "exposure"), (write(d / "r.jsonl", rk), "ranking")]
    )
    view["ranking_lines"] = rk
    return view


def test_counts_and_reasons(reference: dict[str, Any], archive: list[bytes]) -> None:
    copies = {i: 1 + (i % 9 == 0) + (i % 13 == 0) for i in range(60)}  # same content
    conflicted = {i for i in range(60) if i % 17 == 0}  # i = 0, 17, 34, 51
    assert reference["dup"]["exposure"] == sum(
        n - 1 for i, n in copies.items() if i not in conflicted
    )
    # every copy of a conflicting group, none counted
    assert reference["conflicting"]["exposure"] == sum(copies[i] + 1 for i in conflicted)
    reasons = Counter(r for (_, r, _), n in reference["dead"].items() for _ in range(n))
    conflicting = [r for r in reasons if "conflicting duplicate" in r]
    assert sum(reasons[r] for r in conflicting) == reference["conflicting"]["exposure"]
    assert any("more than a day after the current wall-clock time" in r for r in reasons)
    seen = [e for _, ex, _ in reference["ticks"] for e in ex]
    assert len(seen) == len(set(seen)) == reference["events"]["exposure"] == 60 - 4
    ticks = [t for t, _, _ in reference["ticks"]]
    assert ticks == sorted(set(ticks))


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), files=st.integers(1, 3), workers=st.integers(1, 3))
def test_any_order_and_split_gives_the_same_stream(
    reference: dict[str, Any],
    archive: list[bytes],
    tmp_path_factory,
    seed: int,
    files: int,
    workers: int,
) -> None:
    rng = random.Random(seed)
    d = tmp_path_factory.mktemp("perm")
    lines = list(archive)
    rng.shuffle(lines)
    parts: list[list[bytes]] = [[] for _ in range(files)]
    for x in lines:
        parts[rng.randrange(files)].append(x)
    rk = list(reference["ranking_lines"])
    rng.shuffle(rk)
    paths = [(write(d / f"e{i}.jsonl", p), "exposure") for i, p in enumerate(parts)]
    paths.append((write(d / "r.jsonl", rk), "ranking"))
    got = staged_view(paths, workers=workers)
    for key in ("ticks", "dead", "dup", "conflicting", "events"):
        assert got[key] == reference[key], key


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.binary(max_size=200)
        | st.builds(
            lambda d: json.dumps(d).encode(),
            st.dictionaries(
                st.sampled_from(
                    [
                        "event_id",
                        "platform",
                        "ts",
                        "user",
                        "region",
                        "surface",
                        "arm",
                        "item",
                        "actor",
                        "position",
                        "label",
                    ]
                ),
                st.one_of(st.text(max_size=5), st.integers(-5, 2**45), st.none()),
            ),
        ),
        max_size=8,
    )
)
def test_staged_accept_reject_and_reason_equal_the_decoder(
    tmp_path_factory, lines: list[bytes]
) -> None:
    """Any line: staging accepts or rejects it with exactly the decoder's reason, and every
    line is accounted for (events + duplicates + conflicting + dead)."""
    d = tmp_path_factory.mktemp("any")
    clean = [x.replace(b"\n", b" ").replace(b"\r", b" ") for x in lines]
    path = write(d / "e.jsonl", [x + b"\n" for x in clean])
    direct = [r.result for r in read_file(path, "exposure")]
    rejected = Counter(r.reason for r in direct if isinstance(r, Rejected))
    with stage([(path, "exposure")]) as s:
        s.prepare(2**62)
        dead = Counter(x.reason for x in s.dead() if x.counter == "rejected")
        n_events = sum(len(t.exposures) for t in s.ticks(15 * MIN))
        st_ = s.stats
    assert dead == rejected
    accepted = len(direct) - sum(rejected.values())
    assert n_events + st_.duplicates["exposure"] + st_.conflicting["exposure"] == accepted
