"""``amplimon audit`` as a function: replay with history, then the report (HTML, PDF)."""

from __future__ import annotations

import importlib
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from monitor.app.audit._data import AuditData, load_audit
from monitor.app.audit._html import render_html
from monitor.app.audit._pdf import write_pdf
from monitor.app.replay import ReplayResult, history_replay
from monitor.core.config import ConfigError, load_config

__all__ = ["AuditResult", "run_audit"]


@dataclass
class AuditResult:
    data: AuditData
    replay: ReplayResult
    html_path: Path
    html_bytes: int
    pdf_path: Path | None = None
    pdf_engine: str | None = None


def run_audit(
    config_path: Path,
    exposure: Sequence[Path],
    ranking: Sequence[Path],
    out: Path,
    *,
    panel: Sequence[Path] = (),
    pdf: Path | None = None,
    db: Path | None = None,
    detectors: list[str] | None = None,
    show_progress: bool | None = None,
    title: str | None = None,
    pdf_engine: str = "auto",
) -> AuditResult:
    """Replay the streams through every registered detector (with history), render the
    self-contained report to ``out`` and, if asked, a PDF.  ``db`` keeps the store (default:
    a temporary one, removed afterwards)."""
    importlib.import_module("detectors")  # the registry (log_integrity included)
    config = load_config(config_path)
    text = config_path.read_text(encoding="utf-8")
    show = sys.stderr.isatty() if show_progress is None else show_progress
    with tempfile.TemporaryDirectory(prefix="amplimon-audit-") as tmp:
        store = db if db is not None else Path(tmp) / "audit.duckdb"
        try:
            result = history_replay(
                config,
                store,
                exposure,
                ranking,
                panel=panel,
                detectors=detectors,
                show_progress=show,
                config_text=text,
                command="audit",
            )
        except ConfigError as err:
            raise ConfigError(f"{config_path.name}: {err}") from None
        data = load_audit(store, config)
        if db is None:  # the report must not name a file that is about to be deleted
            data.db = ""
        html = _render(data, title, show)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(html, encoding="utf-8")
        audit = AuditResult(data=data, replay=result, html_path=out, html_bytes=out.stat().st_size)
        if pdf is not None:
            audit.pdf_engine = write_pdf(
                data, out, pdf, engine=pdf_engine, title=title or "amplimon self-audit"
            )
            audit.pdf_path = pdf
    return audit


def _render(data: AuditData, title: str | None, show: bool) -> str:
    if not show or not data.findings:
        return render_html(data, title=title)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(
        TextColumn("[bold]report"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("findings drawn"),
        transient=True,
    ) as bar:
        task = bar.add_task("report", total=len(data.findings))
        return render_html(data, title=title, progress=lambda: bar.advance(task))
