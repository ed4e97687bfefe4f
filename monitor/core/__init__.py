"""The domain core, the bottom layer: what every other layer speaks.

The contract's event types and decoder (:mod:`.contract`), the configuration (:mod:`.config`),
output records (:mod:`.records`), the one error root (:mod:`.errors`), user pseudonyms
(:mod:`.privacy`), the DuckDB store of record and its schema (:mod:`.store`, :mod:`.schema`),
signing and sealing (:mod:`.signing`, :mod:`.sealed`), actor-id look-alikes (:mod:`.identity`,
:mod:`.lookalike`), the triage log, provenance hashes and safe text.

Imports nothing from amplimon outside ``monitor.core`` (``make lint`` checks it).  Import the
modules directly; this package re-exports nothing.
"""

__all__: list[str] = []
