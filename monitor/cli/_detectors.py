"""``amplimon detectors``: the registry, and how ``detection.alpha`` is split between them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from detectors import REGISTRY, default_names
from detectors.registry import alpha_shares
from monitor.cli._findings import wide_console
from monitor.core.config import Detection, load_config

__all__ = ["register"]


def cmd_detectors(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="read detection.alpha from this configuration (default: the default alpha)",
        ),
    ] = None,
) -> None:
    """List the registered detectors and their part of the false-alarm budget.

    A statistical detector gets alpha_d = alpha × weight_d / Σ weight (Bonferroni across
    detectors): the shares add up to 1 and the alpha_d to detection.alpha.
    """
    alpha = (load_config(config).detection if config else Detection()).alpha
    names = default_names()
    shares = alpha_shares(1.0, names)
    alphas = alpha_shares(alpha, names)
    table = Table(
        "name", "kinds", "weight", "share of alpha", f"alpha_d (alpha = {alpha:g})", "description"
    )
    for spec in REGISTRY.values():
        statistical = spec.budget_weight > 0 and spec.name in names
        table.add_row(
            spec.name,
            ", ".join(spec.kinds) or "(measurement)",
            f"{spec.budget_weight:g}" if spec.budget_weight else "—",
            f"{shares[spec.name]:.3f}" if statistical else "—",
            f"{alphas[spec.name]:.3g}" if statistical else "—",
            spec.description,
        )
    total = sum(shares.values())
    table.add_section()
    table.add_row(
        "total",
        "",
        f"{sum(REGISTRY[n].budget_weight for n in names):g}",
        f"{total:.3f}",
        f"{sum(alphas.values()):.3g}",
        "",
    )
    console = wide_console()
    console.print(table)
    console.print(
        "weight: a detector's claim on the budget; share = weight ÷ total weight; "
        "— = a logged fact or a measurement, which spends no alpha"
    )


def register(app: typer.Typer) -> None:
    app.command("detectors")(cmd_detectors)
