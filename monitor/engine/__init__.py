"""The event-time engine: records in, ticks closed, detectors run, outputs out.

:mod:`.ingest` (decode, dedup, pseudonymise, event-time ticks), :mod:`.analysis` (one
platform's ledger and detectors over closed ticks), :mod:`.run` (the :class:`~.run.Engine`
every driver pushes into), :mod:`.history` (per-tick history), and the scaled-out pipeline's
two halves: :mod:`.unit` (stage one: ingest, partials instead of detectors), :mod:`.partials`
(what stage one sends), :mod:`.merge` (stage two).

Layer: imports :mod:`detectors` and :mod:`monitor.core` only; it knows no source, sink,
broker, CLI or dashboard (``make lint`` checks it).  Import the modules directly; this
package re-exports nothing.
"""

__all__: list[str] = []
