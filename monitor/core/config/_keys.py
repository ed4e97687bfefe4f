"""Unknown configuration keys: where they are, what was probably meant.

A typo in a configuration key must not silently fall back to a default
(``detection: {alpah: 0.05}`` used to run with alpha 0.01), so every unknown key is an error
that names the key and, when one is close enough, the known key it resembles
(:func:`difflib.get_close_matches`, ratio >= 0.6).
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

__all__ = ["Located", "fields_at", "nearest", "printable", "unknown"]


class Located(ValueError):
    """A validation problem at ``path`` (dotted, relative to the model that raised it)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path, self.message = path, message


def printable(key: object) -> str:
    """A key as written, or its repr if it is not a printable string (messages are one line)."""
    return key if isinstance(key, str) and key.isprintable() else repr(key)


def nearest(name: object, known: Iterable[str]) -> str | None:
    """The known name closest to ``name``, if any is close enough to be a likely typo."""
    if not isinstance(name, str):
        return None
    match = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return match[0] if match else None


def unknown(name: object, known: Iterable[str], what: str = "key") -> str:
    """``unknown key; did you mean 'alpha'?`` or, with no close match, the known names."""
    known = sorted(known)
    near = nearest(name, known)
    if near is not None:
        return f"unknown {what}; did you mean {near!r}?"
    return f"unknown {what} (known: {', '.join(known)})" if known else f"unknown {what}"


def _unwrap(tp: Any) -> Any:
    """``X | None`` → ``X``."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp
    return tp


def fields_at(root: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The field names of the model found by following ``loc`` (a pydantic error location)
    from ``root``; empty if the path leads elsewhere."""
    tp: Any = root
    for part in loc:
        tp = _unwrap(tp)
        origin = typing.get_origin(tp)
        if isinstance(part, int) and origin in (tuple, list):
            tp = typing.get_args(tp)[0]
        elif origin is dict:
            tp = typing.get_args(tp)[1]
        elif (
            isinstance(tp, type)
            and issubclass(tp, BaseModel)
            and isinstance(part, str)
            and part in tp.model_fields
        ):
            tp = tp.model_fields[part].annotation
        else:
            return []
    tp = _unwrap(tp)
    return list(tp.model_fields) if isinstance(tp, type) and issubclass(tp, BaseModel) else []
