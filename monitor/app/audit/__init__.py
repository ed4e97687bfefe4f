"""Platform self-audit: the commission's detectors on a platform's own logs, as a report.

``run_audit`` replays archived streams through every registered detector (with the
per-tick history), then renders a self-contained HTML report (:func:`render_html`) and,
optionally, a PDF without network access (:func:`write_pdf`).  :func:`load_audit` reads the
report's data from any finished run's store.
"""

from monitor.app.audit._data import AuditData, load_audit
from monitor.app.audit._html import render_html
from monitor.app.audit._pdf import PdfError, find_chromium, write_pdf
from monitor.app.audit._run import AuditResult, run_audit

__all__ = [
    "AuditData",
    "AuditResult",
    "PdfError",
    "find_chromium",
    "load_audit",
    "render_html",
    "run_audit",
    "write_pdf",
]
