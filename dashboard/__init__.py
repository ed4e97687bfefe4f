"""Streamlit dashboard for electoral commissions: live alerts, finding detail, amplification
overview, triage, evidence packs, access control and registries.

Layout: pure logic (unit-tested) in ``data`` (reading the monitor's tables), ``state`` and
``migrations`` (the dashboard's SQLite file), ``auth``, ``triage``, ``alerts``, ``explain``,
``chartdata``, ``charts``, ``overview``, ``pack`` (signed evidence packs), ``csvsafe``
(spreadsheet-safe CSV), ``text`` (platform text made inert for Markdown) and
``registries``; Streamlit rendering in ``app`` (entry point), ``ui`` (shared
glue), ``views/`` (one module per page) and ``routes/`` (the page scripts).  Start it with
``amplimon dashboard --data PATH``.
"""

__all__: list[str] = []
