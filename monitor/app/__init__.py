"""The application: what a user runs, built from the engine and the streams.

:mod:`.replay` (archives through the engine into a store), :mod:`.audit` (the platform
self-audit report), :mod:`.research` (run comparison and export), :mod:`.retention` (purging
per the retention rules), :mod:`.packverify` (evidence-pack verification), :mod:`.progress`
(progress bars and lines).

Layer: imports :mod:`streams`, :mod:`monitor.engine`, :mod:`detectors`, :mod:`monitor.core`;
never the dashboard or the CLI (``make lint`` checks it).  Import the modules directly; this
package re-exports nothing.
"""

__all__: list[str] = []
