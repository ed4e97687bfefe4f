"""Help text in the usual command-line convention, not Python type placeholders.

Typer 0.29 renders each parameter's Python type (``--progress <bool>``, ``--exposure
<list[Path]>``, ``--help <bool>``) and a required argument as ``{pack}``.  amplimon's help
shows what a user types instead: a flag takes no value, an option's value is a capitalised
word (``PATH``, ``TEXT``, ``INTEGER``, ``FLOAT``, or the option's own ``metavar``), an
argument is its name in capitals (``PACK``; ``[PACK]`` when optional, ``FILES...`` when
repeated).  :func:`plain_help` applies this to every command of a Click command tree once,
after Typer has built it.
"""

from __future__ import annotations

import datetime as dt
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperArgument, TyperOption

__all__ = ["plain_help"]

_NAMES: dict[Any, str] = {
    str: "TEXT",
    int: "INTEGER",
    float: "FLOAT",
    Path: "PATH",
    dt.datetime: "DATETIME",
}


class _Argument(TyperArgument):
    """An argument shown as ``NAME`` (required), ``[NAME]`` (optional), ``NAME...``."""

    def _usage_display_name(self) -> str:
        name = self.display_name_raw if self.required else f"[{self.display_name_raw}]"
        return name + ("..." if self.nargs != 1 else "")

    def display_type_rich(self, ctx: Any) -> str | None:
        return None  # the name column already says what to give


def _value_name(option: TyperOption) -> str:
    desc = option.type_descriptor
    if desc.is_choice and desc.choices:
        return "|".join(str(c) for c in desc.choices)
    if desc.is_path:
        return "PATH"
    annotation = desc.annotation
    if desc.is_list:
        annotation = typing.get_args(annotation)[0]
    return _NAMES.get(annotation, getattr(annotation, "__name__", "VALUE").upper())


def _commands(command: Any) -> Iterator[Any]:
    yield command
    for sub in getattr(command, "commands", {}).values():
        yield from _commands(sub)


def plain_help(command: Any) -> Any:
    """Give every parameter of ``command`` and its subcommands a conventional metavar."""
    for cmd in _commands(command):
        params = list(cmd.params)
        help_option = cmd.get_help_option(typer.Context(cmd))
        if help_option is not None:
            params.append(help_option)
        for param in params:
            if isinstance(param, TyperArgument):
                if param.metavar is None:
                    param.metavar = (param.name or "value").upper()
                param.__class__ = _Argument
            elif isinstance(param, TyperOption) and param.metavar is None:
                param.metavar = "" if param.is_flag else _value_name(param)
    return command
