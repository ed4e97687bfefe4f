"""``amplimon audit``: a platform's self-audit report (HTML, optionally PDF)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from streams.settings import env_name

__all__ = ["register"]


def cmd_audit(
    config: Annotated[
        Path,
        typer.Option(
            "--config", "-c", help="configuration YAML", envvar=env_name("config"), show_envvar=True
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="HTML report to write")],
    exposure: Annotated[
        list[Path] | None,
        typer.Option(
            "--exposure", help="exposure files (.jsonl, .jsonl.gz, .parquet); repeat or list"
        ),
    ] = None,
    ranking: Annotated[
        list[Path] | None,
        typer.Option(
            "--ranking", help="ranking files (.jsonl, .jsonl.gz, .parquet); repeat or list"
        ),
    ] = None,
    panel: Annotated[
        list[Path] | None,
        typer.Option(
            "--panel",
            help="panel observations: exposure-format records seen on panellists' "
            "devices (contract v1.1 §5); repeat or list",
        ),
    ] = None,
    pdf: Annotated[
        Path | None, typer.Option("--pdf", help="also write the report as PDF (offline)")
    ] = None,
    db: Annotated[
        Path | None,
        typer.Option("--db", help="keep the DuckDB store here (default: a temporary one)"),
    ] = None,
    detector: Annotated[
        list[str] | None,
        typer.Option("--detector", "-d", help="run only these detectors (default: all enabled)"),
    ] = None,
    title: Annotated[str | None, typer.Option("--title", help="report title")] = None,
    pdf_engine: Annotated[
        str,
        typer.Option(
            "--pdf-engine",
            help="auto (Chromium if installed, else matplotlib), chromium or matplotlib",
        ),
    ] = "auto",
    progress: Annotated[
        bool | None,
        typer.Option("--progress/--no-progress", help="progress bars (default: on a terminal)"),
    ] = None,
) -> None:
    """Run every detector on a platform's logs and write a self-contained audit report."""
    from monitor.app.audit import PdfError, run_audit

    if not exposure and not ranking:
        raise typer.BadParameter("give at least one --exposure or --ranking file")
    if out.suffix.lower() not in (".html", ".htm"):
        raise typer.BadParameter(f"{out}: the report is HTML (name it .html)", param_hint="--out")
    if pdf_engine not in ("auto", "chromium", "matplotlib"):
        raise typer.BadParameter(f"unknown PDF engine {pdf_engine!r}", param_hint="--pdf-engine")
    try:
        result = run_audit(
            config,
            exposure or [],
            ranking or [],
            out,
            panel=panel or [],
            pdf=pdf,
            db=db,
            detectors=detector,
            show_progress=progress,
            title=title,
            pdf_engine=pdf_engine,
        )
    except PdfError as err:
        raise typer.BadParameter(str(err), param_hint="--pdf") from None
    sev = result.data.severity_counts()
    found = ", ".join(f"{n} {s}" for s, n in sev.items() if n) or "none"
    typer.echo(
        f"audit: {len(result.data.findings)} findings ({found}); report {out} "
        f"({result.html_bytes / 1024:,.0f} KiB)"
        + (f", PDF {result.pdf_path} ({result.pdf_engine})" if result.pdf_path else ""),
        err=True,
    )


def register(app: typer.Typer) -> None:
    app.command("audit")(cmd_audit)
