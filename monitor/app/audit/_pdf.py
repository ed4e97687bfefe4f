"""The report as PDF, offline.

Two engines, no network either way:

* ``chromium`` — headless Chromium prints the very HTML report (``--print-to-pdf``), with
  networking disabled and every request sent to a dead local proxy, so the PDF looks like
  the HTML.  Used when a Chromium binary is found (Debian: ``apt-get install chromium``).
* ``matplotlib`` — no browser needed: the same data drawn as pages with matplotlib's PDF
  backend (text pages for the summary, findings, data quality and methods; the forest plots
  and every finding's chart as figures).  Plainer, always available.

``auto`` picks Chromium when present, else matplotlib.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import textwrap
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

import monitor.app.audit._charts as charts
from monitor.app.audit._data import AuditData
from monitor.app.audit._html import Names, finding_figure, forest_rows, sentence
from monitor.core.errors import AmplimonError

__all__ = ["PdfError", "chromium_command", "find_chromium", "write_pdf"]

ENGINES = ("auto", "chromium", "matplotlib")
_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


class PdfError(AmplimonError, RuntimeError):
    """The PDF could not be produced (one-line message)."""


def find_chromium() -> str | None:
    for name in _CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def chromium_command(chromium: str, profile: str, *extra: str) -> list[str]:
    """Headless Chromium with no network: background services off, a throw-away profile,
    and a proxy on a closed local port so any request fails instead of leaving the box."""
    return [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--no-first-run",
        "--no-default-browser-check",
        "--proxy-server=http://127.0.0.1:9",
        "--proxy-bypass-list=<-loopback>",
        f"--user-data-dir={profile}",
        *extra,
    ]


def _chromium_pdf(html_path: Path, pdf_path: Path, chromium: str, timeout: float) -> None:
    with tempfile.TemporaryDirectory(prefix="amplimon-chromium-") as profile:
        cmd = chromium_command(
            chromium,
            profile,
            "--no-pdf-header-footer",
            f"--print-to-pdf={pdf_path}",
            html_path.resolve().as_uri(),
        )
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        try:
            done = subprocess.run(  # noqa: S603
                cmd,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
                env=env,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            raise PdfError(f"chromium failed to print the report ({err})") from None
    if done.returncode != 0 or not pdf_path.exists() or pdf_path.stat().st_size == 0:
        tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        raise PdfError(f"chromium failed to print the report ({tail[0]})")


# -- matplotlib engine ---------------------------------------------------------------------------
_LINES_PER_PAGE = 62


def _text_pages(pdf: PdfPages, title: str, lines: list[str]) -> None:
    wrapped: list[str] = []
    for line in lines:
        wrapped += textwrap.wrap(line, 98, subsequent_indent="    ") or [""]
    for start in range(0, max(len(wrapped), 1), _LINES_PER_PAGE):
        fig = Figure(figsize=(8.27, 11.69))
        fig.text(
            0.06,
            0.965,
            title if start == 0 else f"{title} (continued)",
            fontsize=13,
            weight="bold",
            va="top",
        )
        fig.text(
            0.06,
            0.935,
            "\n".join(wrapped[start : start + _LINES_PER_PAGE]),
            fontsize=7.6,
            family="DejaVu Sans Mono",
            va="top",
        )
        pdf.savefig(fig)


def _figure_page(pdf: PdfPages, fig: Figure, caption: list[str]) -> None:
    if caption:
        fig.text(
            0.01, -0.02, "\n".join(textwrap.fill(c, 120) for c in caption), fontsize=7, va="top"
        )
    pdf.savefig(fig, bbox_inches="tight")


def _fmt(v: Any) -> str:
    return "—" if v is None else f"{v:.3g}" if isinstance(v, float) else str(v)


def _matplotlib_pdf(data: AuditData, pdf_path: Path, title: str) -> None:
    names = Names(data)
    with PdfPages(pdf_path, metadata={"Title": title, "Creator": "amplimon"}) as pdf:
        sev = data.severity_counts()
        lines = [
            f"{len(data.findings)} findings: " + ", ".join(f"{k} {s}" for s, k in sev.items()),
            f"False-alarm budget alpha = {data.config.detection.alpha:g} per window.",
            "",
        ]
        for f in data.findings:
            lines.append(
                f"[{f['severity'].upper()}] {f['kind']} — "
                f"{names.subject(f['subject_kind'], f['subject'])} "
                f"({f['platform']} {f['region']} {f['window_id']})"
            )
            lines.append(
                f"    effect {_fmt(f['effect'])} CI {_fmt(f['ci_low'])}–"
                f"{_fmt(f['ci_high'])}  p {_fmt(f['p_value'])}  n {f['n_exposures']}"
                f"  since {f['event_time']}  id {f['finding_id']}"
            )
            lines.append("    " + sentence(f, names))
        _text_pages(pdf, title, lines)
        for platform, window_id, _region in data.cells():
            rows = forest_rows(data, names, platform, window_id)
            _figure_page(
                pdf,
                charts.forest(rows, f"{platform} · {window_id}: ranked ÷ holdout exposure ratio"),
                [],
            )
        for f in data.findings:
            fig, caption = finding_figure(f, data, names)
            if fig is not None:
                _figure_page(
                    pdf,
                    fig,
                    [f"{f['severity'].upper()} {f['kind']}: {sentence(f, names)}", caption],
                )
        stats = data.stats
        quality = [f"{k}: {v}" for k, v in stats.items()] + ["", "Dead letters by reason:"]
        quality += [f"  {n:6d}  {k}  e.g. {ex[:80]}" for k, n, ex in data.deadletter_reasons()]
        quality += ["", "Arm balance (users ranked / holdout, holdout share, declared):"]
        quality += [
            f"  {b['platform']} {b['window_id']} {b['period']}: {b['users_ranked']} / "
            f"{b['users_holdout']}  {_fmt(b['holdout_share'])}  {_fmt(b['declared'])}"
            for b in data.arm_balance()
        ]
        quality += ["", "Minimum detectable effects (actors not flagged; up / down):"]
        for r in data.actor_mde():
            cells = "  ".join(
                f"{d}: {_fmt(x['mde_up'])}/{_fmt(x['mde_down'])}"
                for d, x in r["by_detector"].items()
            )
            quality.append(f"  {r['actor']} {r['window_id']}: {cells}")
        _text_pages(pdf, "Data quality and detectability", quality)
        methods: list[str] = []
        for m in data.methods:
            methods += (
                [
                    f"== {m.display_name} ({m.name}); alpha share {m.alpha_share:.3g}",
                    m.description,
                    "",
                ]
                + m.doc.splitlines()
                + [""]
            )
        _text_pages(pdf, "Methods", methods)


def write_pdf(
    data: AuditData,
    html_path: Path,
    pdf_path: Path,
    *,
    engine: str = "auto",
    title: str = "amplimon self-audit",
    timeout: float = 180.0,
) -> str:
    """Write ``pdf_path``; returns the engine used (``chromium`` or ``matplotlib``)."""
    if engine not in ENGINES:
        raise PdfError(f"unknown PDF engine {engine!r}; known: {', '.join(ENGINES)}")
    pdf_path.parent.mkdir(parents=True, exist_ok=True)
    chromium = find_chromium() if engine in ("auto", "chromium") else None
    if engine == "chromium" and chromium is None:
        raise PdfError(
            "no Chromium found (install Debian's chromium, or use --pdf-engine matplotlib)"
        )
    if chromium is not None:
        _chromium_pdf(html_path, pdf_path, chromium, timeout)
        return "chromium"
    _matplotlib_pdf(data, pdf_path, title)
    return "matplotlib"
