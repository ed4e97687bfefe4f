"""Exact parallel analysis of a staged archive: groups of detectors in separate processes.

After staging (:mod:`streams.staging`) the archive is one event-time-sorted, deduplicated
stream.  The analysis of that stream splits along a seam that is independent *by
construction*: a detector reads only the configuration, the shared exposure ledger and its
own state (:class:`detectors.base.DetectorContext`); nothing reads another detector.  So
``k`` processes each re-derive the ledger from the same sorted stream and run *a group* of
the detectors; together they run every detector on exactly the ticks one process would have
run it on, and their outputs — findings, amplification rows, detectability, each keyed by
its detector — are disjoint and are merged by key.

Why it is exact:

* **The same ticks.**  Every shard reads the prepared archive read-only with the same query
  (:meth:`streams.staging.StagedArchive.ticks`): the same ticks, the same events in the same
  canonical order, pseudonymised with the same key (the shards are forked from the driver).
* **The same detectors.**  They are built once in the driver, before the fork, with their
  shares of the false-alarm budget computed over *all* selected detectors (Bonferroni,
  :func:`detectors.registry.alpha_shares`); a shard keeps its group and drops the rest.
* **What each detector reads.**  A shard decodes only the topics its detectors read
  (:attr:`detectors.base.Detector.reads`; the exposures always, for the ledger) and hands
  them every tick all the same, the others' event lists empty: ``holdout_shift`` alone
  skips the ranking log, the bulk of the decoding.
* **The same inputs to** ``finish``: the ingest counters (dead letters, duplicates) are
  counted by the driver before the fork; ``accepted`` per topic and platform comes from a
  shard that reads every topic (``note_ingest`` of a detector that reads fewer topics may
  see fewer accepted events of the topics it does not read; none of them uses those).
* **Disjoint outputs.**  A finding's id, a detectability row's key and an amplification row
  come from one detector, hence one shard; each shard keeps the latest version of each row
  (earliest ``event_time``, as :class:`streams.store_sink.StoreOutput` does) and the driver
  writes them.  Dead letters and the run's counters come from the driver and one shard only.

Balance: groups are formed greedily (longest first) from each detector's measured cost
model, :data:`COST` (per event and per tick: the archive's size decides which detectors are
heavy), plus the cost every shard pays once — reading the stream and deriving the ledger
(:data:`SHARD_BASE_COST`); no more shards than make the slowest one faster.

Limit: every shard still reads every event and derives the whole ledger, so the speed-up is
bounded by the number of detector groups (and by the heaviest detector alone); it does not
scale past a handful of cores.  Splitting by platform is *not* exact here: the log-integrity
check reports conflicting duplicates of all platforms together (ingest counts are per
topic), and every platform's detectors are evaluated at every tick any platform has events.
The path beyond is per-user-partition additive aggregates for every detector (issue 12).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle  # noqa: S403  # files this module's own forked children wrote, see _collect
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from detectors.base import Detector
from monitor.core.config import ConfigWarning
from monitor.core.records import DeadLetter, Detectability, Finding, Measurement, keep_latest
from monitor.engine.run import Engine, StreamStats
from streams.staging import StagedArchive

__all__ = ["COST", "SHARD_BASE_COST", "plan", "run_shards", "topics_read"]

#: Cost model of each detector: (CPU µs per event, CPU ms per tick) of ``observe`` +
#: ``evaluate`` + ``finish``, fitted on the staged ``scenario("default", seed=7)`` at scales
#: 1 and 10 (0.24 M and 2.4 M records, the same 480 ticks; each detector alone in a shard,
#: less a shard with none).  The holdout comparison and the log checks grow with the events
#: (per-user sums), the score detectors mostly with the ticks (per-slate and per-item fits),
#: so no one static share balances every archive.  A detector not listed: (1 µs, 1 ms).
COST: dict[str, tuple[float, float]] = {
    "holdout_shift": (14.6, 0.0),
    "log_integrity": (5.6, 0.15),
    "rank_uplift": (1.9, 3.7),
    "score_shift": (1.9, 4.0),
    "missing_label": (1.1, 0.0),
    "undisclosed_intervention": (0.9, 0.0),
    "amplification": (0.0, 0.0),
}
#: What every shard pays once, same units: reading and decoding the sorted stream,
#: pseudonymising it, deriving the ledger.
SHARD_BASE_COST = (8.5, 0.0)

_FLUSH_EVERY = 200_000  # events between measurement flushes (as monitor.app.replay)


def _seconds(cost: tuple[float, float], events: int, ticks: int) -> float:
    per_event_us, per_tick_ms = cost
    return per_event_us * 1e-6 * events + per_tick_ms * 1e-3 * ticks


def plan(
    names: Sequence[str], workers: int, *, events: int = 1_000_000, ticks: int = 500
) -> list[list[str]]:
    """Detector groups for ``workers`` processes over an archive of ``events`` events in
    ``ticks`` ticks, balanced by :data:`COST` (greedy, longest first).

    Each group keeps the order of ``names``; groups are ordered by their first detector.
    Fewer groups than workers when there are fewer detectors, or when another shard would
    cost more (its :data:`SHARD_BASE_COST`) than it saves.
    """
    names = list(names)
    order = {n: i for i, n in enumerate(names)}
    cost = {n: _seconds(COST.get(n, (1.0, 1.0)), events, ticks) for n in names}
    base = _seconds(SHARD_BASE_COST, events, ticks)
    best: list[list[str]] = [names]
    best_span = base + sum(cost.values())
    for k in range(2, min(workers, len(names)) + 1):
        bins: list[list[str]] = [[] for _ in range(k)]
        load = [base] * k
        for n in sorted(names, key=lambda n: (-cost[n], order[n])):
            i = min(range(k), key=lambda j: (load[j], j))
            bins[i].append(n)
            load[i] += cost[n]
        if max(load) < best_span:
            best_span = max(load)
            best = [sorted(b, key=order.__getitem__) for b in bins if b]
    return sorted(best, key=lambda b: order[b[0]])


class _Collect:
    """A shard's :class:`monitor.engine.analysis.Output`: the latest version of each keyed row
    (earliest ``event_time`` kept, as the store keeps it), for the driver to write."""

    def __init__(self) -> None:
        self.found: dict[str, Finding] = {}
        self.rows: dict[tuple[str, ...], Measurement] = {}
        self.mde: list[Detectability] = []
        self.dead: list[DeadLetter] = []

    def findings(self, rows: list[Finding]) -> None:
        keep_latest(self.found, rows)

    def measurements(self, rows: list[Measurement]) -> None:
        self.rows.update((m.key, m) for m in rows)

    def deadletters(self, rows: list[DeadLetter]) -> None:
        self.dead.extend(rows)

    def detectability(self, rows: list[Detectability]) -> None:
        self.mde.extend(rows)


ALL_TOPICS: frozenset[str] = frozenset({"exposure", "ranking", "panel"})


def topics_read(detectors: Sequence[Detector]) -> frozenset[str]:
    """What a shard running ``detectors`` must read: their :attr:`Detector.reads`, and the
    exposures for the shared ledger."""
    out = {"exposure"}
    for d in detectors:
        out |= d.reads
    return frozenset(out)


def _shard_main(
    engine: Engine,
    staged: StagedArchive,
    group: list[str],
    topics: frozenset[str],
    index: int,
    done: Any,
    result: Path,
) -> None:
    """Entry point of shard ``index`` (forked): run ``group`` over the whole stream, reading
    the events of ``topics`` (every tick all the same)."""
    try:
        warnings.simplefilter("ignore", ConfigWarning)  # the driver warns, once
        into = _Collect()
        engine.output = into
        a = engine.analysis
        a.detectors = [d for d in a.detectors if d.name in group]
        staged.attach()
        n = since_flush = 0
        for tick in staged.ticks(engine.tick_ms, topics=topics):
            engine.feed_tick(tick.index, tick.exposures, tick.rankings, tick.panel)
            k = len(tick.exposures) + len(tick.rankings) + len(tick.panel)
            n += k
            since_flush += k
            done[index] = n
            if since_flush >= _FLUSH_EVERY:
                engine.flush_measurements()
                since_flush = 0
        stats = engine.close()
        payload: tuple[str, Any] = ("ok", (into, stats, time.process_time()))
    except BaseException:  # noqa: BLE001  # reported to the driver, which raises
        payload = ("error", traceback.format_exc())
    with result.open("wb") as f:
        pickle.dump(payload, f, protocol=pickle.HIGHEST_PROTOCOL)


def run_shards(
    engine: Engine,
    staged: StagedArchive,
    groups: list[list[str]],
    *,
    progress: Callable[[int], None] | None = None,
    cpu: list[float] | None = None,
) -> StreamStats:
    """Run ``groups`` of ``engine``'s detectors in forked processes over ``staged`` (already
    prepared, its dead letters and duplicates counted in ``engine``); write their merged
    output to ``engine.output`` and return the run's counters (module docstring).

    ``progress(events)`` is called with the events the slowest shard has analysed; ``cpu``
    receives each shard's CPU seconds (benchmarks: the critical path on free cores).
    """
    by_name = {d.name: d for d in engine.detectors}
    topics = [topics_read([by_name[n] for n in g]) for g in groups]
    # the run's counters (accepted events per topic and platform) come from a shard that
    # reads every topic: the first such, or shard 0 made to
    main = next((i for i, t in enumerate(topics) if t == ALL_TOPICS), 0)
    topics[main] = ALL_TOPICS
    ctx = mp.get_context("fork")
    done = ctx.Array("q", len(groups), lock=False)
    results = [staged.workdir / f"shard-{i}.pickle" for i in range(len(groups))]
    staged.detach()
    procs = [
        ctx.Process(
            target=_shard_main,
            args=(engine, staged, g, topics[i], i, done, results[i]),
            daemon=True,
        )
        for i, g in enumerate(groups)
    ]
    for p in procs:
        p.start()
    try:
        while any(p.is_alive() for p in procs):
            if progress is not None:
                progress(min(done[:]))
            time.sleep(0.1)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join()
    outputs = [_collect(path, p.exitcode) for path, p in zip(results, procs, strict=True)]
    if progress is not None:
        progress(min(done[:]))
    out = engine.output
    for into, _stats, seconds in outputs:
        if cpu is not None:
            cpu.append(seconds)
        if into.found:
            out.findings(list(into.found.values()))
        if into.rows:
            out.measurements(list(into.rows.values()))
        if into.dead:
            out.deadletters(into.dead)
        if into.mde:
            out.detectability(into.mde)
    stats = outputs[main][1]
    engine.stats = stats
    engine.ingest_unit.stats = stats
    a = engine.analysis
    a.ticks, a.first_ts, a.last_ts = stats.ticks, stats.first_ts, stats.last_ts
    engine.warn_unseen_platforms()
    return stats


def _collect(path: Path, exitcode: int | None) -> tuple[_Collect, StreamStats, float]:
    if not path.exists():
        raise RuntimeError(f"analysis shard exited with status {exitcode} and no result")
    with path.open("rb") as f:
        status, value = pickle.load(f)  # noqa: S301  # written by our own child, just above
    os.unlink(path)
    if status != "ok":
        raise RuntimeError(f"analysis shard failed:\n{value}")
    return value
