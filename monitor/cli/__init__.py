"""The ``amplimon`` command line.

Each command lives in its own ``_name`` module with a ``register(app)`` function.  Every
failure the user can fix — a bad argument, an unreadable file, an invalid configuration —
ends as **one line** on stderr, ``amplimon: <problem>``, and exit status 2; no traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import typer
from typer.exceptions import TyperException

from monitor.cli import (
    _audit,
    _dashboard,
    _demo,
    _evidence,
    _findings,
    _live,
    _purge,
    _replay,
    _research,
    _simulate,
)
from monitor.errors import UserError

__all__ = ["app", "main"]

app = typer.Typer(name="amplimon", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False,
                  help="Election-period algorithmic amplification monitor.")

for _module in (_replay, _simulate, _findings, _demo, _dashboard, _evidence, _live, _audit,
                _research, _purge):
    _module.register(app)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    try:
        result = app(args=list(argv) if argv is not None else None, prog_name="amplimon",
                     standalone_mode=False)
    except TyperException as err:  # typer's (vendored click) usage errors
        if type(err).__name__ == "NoArgsIsHelpError":
            return 0
        print(f"amplimon: {_one_line(err.format_message())}", file=sys.stderr)
        return 2 if err.exit_code in (1, 2) else err.exit_code
    except UserError as err:
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
