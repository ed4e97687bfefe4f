"""Reading a configuration: YAML file → mapping → validated :class:`Config`.

Every problem becomes a :class:`ConfigError` whose message is one line naming the file and
the place (``amplimon.yaml: windows[0]: end is before start``); an unknown key is named with
the nearest known one (``amplimon.yaml: detection.alpah: unknown key; did you mean
'alpha'?``).  Warnings (:func:`~monitor.core.config._warnings.window_warnings`,
:func:`~monitor.core.config._warnings.registry_warnings`) are emitted as :class:`ConfigWarning`
once the configuration is valid.
"""

from __future__ import annotations

import csv
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from monitor.core.config._keys import Located, fields_at, unknown
from monitor.core.config._models import Config, ConfigError, ConfigWarning
from monitor.core.config._warnings import registry_warnings, window_warnings

__all__ = ["load_config", "parse_config"]


def _loc(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not part.startswith(("function-", "model-")):
            # A key from the file (an unknown field, a platform id) may hold a line break;
            # repr keeps the message on one line.
            part = part if part.isprintable() else repr(part)
            out += f".{part}" if out else part
    return out


def _one_line(source: str, err: ValidationError) -> str:
    errors = err.errors()
    # a typo explains the rest (a misspelt "start" is also a missing one): name it first
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = tuple(
        p
        for p in first["loc"]
        if not (isinstance(p, str) and p.startswith(("function-", "model-")))
    )
    where = _loc(loc)
    located = (first.get("ctx") or {}).get("error")
    if isinstance(located, Located):
        path = located.path
        where = f"{where}{'' if path.startswith('[') else '.'}{path}" if where else path
        msg = located.message
    elif first["type"] == "extra_forbidden" and loc:
        msg = unknown(loc[-1], fields_at(Config, loc[:-1]))
    else:
        msg = str(first["msg"]).removeprefix("Value error, ")
    return f"{source}: {where}: {msg}" if where else f"{source}: {msg}"


_MAX_WARNINGS = 20


def parse_config(data: Any, source: str = "config", base_dir: Path | None = None) -> Config:
    """Validate an already-parsed mapping; ``actors_file`` is resolved against ``base_dir``."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a YAML mapping at the top level")
    data = dict(data)
    _check_size(data, source)
    if data.get("actors_file"):
        path = Path(str(data["actors_file"]))
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        actors = data.get("actors") or []
        if not isinstance(actors, list | tuple):  # list(5) raised TypeError
            raise ConfigError(f"{source}: actors: expected a list")
        data["actors"] = list(actors) + _read_actors_csv(path, source)
    try:
        config = Config.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_one_line(source, err)) from None
    found = window_warnings(config) + registry_warnings(config)
    for message in found[:_MAX_WARNINGS]:
        warnings.warn(f"{source}: {message}", ConfigWarning, stacklevel=2)
    if len(found) > _MAX_WARNINGS:
        warnings.warn(
            f"{source}: {len(found) - _MAX_WARNINGS} more warnings like these",
            ConfigWarning,
            stacklevel=2,
        )
    return config


_MAX_VALUES = 1_000_000


def _check_size(data: Any, source: str) -> None:
    """Refuse a configuration with more than ``_MAX_VALUES`` values once YAML aliases are
    expanded.  A few hundred bytes of nested aliases ("billion laughs") load instantly as
    shared objects, pass validation (``detection`` keeps extra keys) and then blow up to
    gigabytes when the engine serialises the configuration for its fingerprint.  Counting
    stops at the limit, so the check itself is bounded."""
    stack, seen = [data], 0
    while stack:
        value = stack.pop()
        seen += 1
        if seen > _MAX_VALUES:
            raise ConfigError(
                f"{source}: too large (more than {_MAX_VALUES:,} values once "
                "YAML aliases are expanded)"
            )
        if isinstance(value, Mapping):
            stack.extend(value.values())
        elif isinstance(value, list | tuple):
            stack.extend(value)


def _printable(path: Path | str) -> str:
    """A path as written, or its repr if it holds a control character (a message is one line)."""
    text = str(path)
    return text if text.isprintable() else repr(text)


def _read_actors_csv(path: Path, source: str) -> list[dict[str, Any]]:
    shown = _printable(path)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as err:
        raise ConfigError(f"{source}: actors_file: cannot read {shown} ({err.strerror})") from None
    # ValueError: a NUL in the path, or a file that is not UTF-8 (UnicodeDecodeError);
    # csv.Error: e.g. a field over the csv module's size limit.
    except (ValueError, csv.Error) as err:
        detail = " ".join(str(err).split())
        raise ConfigError(f"{source}: actors_file: cannot read {shown} ({detail})") from None
    if rows and "actor" not in rows[0]:
        raise ConfigError(f"{source}: actors_file: {shown} has no 'actor' column")
    return [{k: v for k, v in row.items() if k and v not in (None, "")} for row in rows]


def load_config(path: str | Path) -> Config:
    """Read and validate a YAML configuration file; raises :class:`ConfigError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read ({err.strerror})") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path.name}: not UTF-8 text (byte {err.start})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path.name}: invalid YAML{where}: {problem}") from None
    # PyYAML's constructors let Python's errors out for values they fail to build:
    # ValueError/OverflowError from datetime for 2026-13-01 or an offset of +99:00, from
    # int() for "!!int x", AttributeError for "!!timestamp x", KeyError for "!!bool x"; its
    # composer recurses once per nesting level.
    except (ValueError, OverflowError, TypeError, AttributeError, LookupError) as err:
        detail = " ".join(str(err).split())
        raise ConfigError(f"{path.name}: invalid YAML: bad value ({detail})") from None
    except RecursionError:
        raise ConfigError(f"{path.name}: invalid YAML: nested too deeply") from None
    return parse_config(data, source=path.name, base_dir=path.parent)
