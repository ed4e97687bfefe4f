"""The ``amplimon`` command line.

Each command lives in its own ``_name`` module with a ``register(app)`` function.  Every
failure the user can fix — a bad argument, an unreadable file, an invalid configuration —
ends as **one line** on stderr, ``amplimon: <problem>``, and exit status 2; no traceback.
A configuration that is valid but probably not meant (:class:`monitor.core.config.ConfigWarning`)
is one line ``amplimon: warning: <problem>`` on stderr, printed when it is found.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, TextIO

import typer
from typer.exceptions import TyperException

from monitor.cli import (
    _argv,
    _audit,
    _dashboard,
    _demo,
    _detectors,
    _evidence,
    _findings,
    _help,
    _live,
    _purge,
    _replay,
    _research,
    _simulate,
)
from monitor.core.config import ConfigWarning
from monitor.core.errors import AmplimonError

__all__ = ["app", "main"]

app = typer.Typer(
    name="amplimon",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Election-period algorithmic amplification monitor.",
)


def _version(value: bool) -> None:
    if value:
        try:
            typer.echo(f"amplimon {version('amplimon')}")
        except PackageNotFoundError:  # run from a source tree that was never installed
            typer.echo("amplimon (not installed: no package metadata)")
        raise typer.Exit(0)


@app.callback()
def _root(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="print the installed version and exit",
            is_eager=True,
            callback=_version,
        ),
    ] = False,
) -> None:
    """Election-period algorithmic amplification monitor."""


for _module in (
    _replay,
    _detectors,
    _simulate,
    _findings,
    _demo,
    _dashboard,
    _evidence,
    _live,
    _audit,
    _research,
    _purge,
):
    _module.register(app)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    with warnings.catch_warnings():
        shown = warnings.showwarning

        def show(
            message: Warning | str,
            category: type[Warning],
            filename: str,
            lineno: int,
            file: TextIO | None = None,
            line: str | None = None,
        ) -> None:
            if issubclass(category, ConfigWarning):
                print(f"amplimon: warning: {_one_line(str(message))}", file=sys.stderr)
            else:
                shown(message, category, filename, lineno, file, line)

        warnings.simplefilter("always", ConfigWarning)
        warnings.showwarning = show
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    command = _help.plain_help(typer.main.get_command(app))
    args = _argv.spread_values(command, sys.argv[1:] if argv is None else argv)
    try:
        result = command.main(args=args, prog_name="amplimon", standalone_mode=False)
    except TyperException as err:  # typer's (vendored click) usage errors
        if type(err).__name__ == "NoArgsIsHelpError":
            return 0
        print(f"amplimon: {_one_line(err.format_message())}", file=sys.stderr)
        return 2 if err.exit_code in (1, 2) else err.exit_code
    except AmplimonError as err:
        print(f"amplimon: {_one_line(str(err))}", file=sys.stderr)
        return 2
    except typer.Exit as err:
        return err.exit_code
    except (typer.Abort, KeyboardInterrupt):
        print("amplimon: interrupted", file=sys.stderr)
        return 130
    return result if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
