"""``--exposure FILE [FILE ...]``: several values after one repeatable option.

The replay command of the contract (§4) is ``amplimon replay ... --exposure FILE [FILE ...]
--ranking FILE [FILE ...]``; Click options take one value each, so ``--exposure a b`` was
refused ("unexpected extra argument b").  :func:`spread_values` rewrites such a command line
into the repeated form Click reads (``--exposure a --exposure b``) for every repeatable
option of a command that has no positional arguments (where a bare word can only be another
value).  Anything else passes through unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from typer.core import TyperArgument, TyperOption

__all__ = ["spread_values"]


def spread_values(command: Any, args: Sequence[str]) -> list[str]:
    """``args`` with ``--opt a b`` → ``--opt a --opt b`` for repeatable options."""
    args = list(args)
    cmd, i = command, 0
    while i < len(args) and args[i] in getattr(cmd, "commands", {}):
        cmd = cmd.commands[args[i]]
        i += 1
    params = getattr(cmd, "params", [])
    if any(isinstance(p, TyperArgument) for p in params):
        return args
    repeatable = {
        name for p in params if isinstance(p, TyperOption) and p.multiple for name in p.opts
    }
    out, option, values = args[:i], None, 0
    for k, word in enumerate(args[i:], start=i):
        if word == "--":
            return out + args[k:]
        if word.startswith("-") and word != "-":
            name, given, _ = word.partition("=")  # --exposure=a b: a is its first value
            option, values = (name if name in repeatable else None), int(bool(given))
            out.append(word)
        elif option is not None and values > 0:
            out += [option, word]
        else:
            values += 1
            out.append(word)
    return out
