"""Configuration (contract §2): election windows, the actor registry, disclosures, detection.

One YAML file, validated with pydantic.  Every problem becomes a :class:`ConfigError` whose
message is one line naming the file and the place, e.g.
``amplimon.yaml: windows[0]: end is before start``.

Extensions beyond the contract (all optional): ``detection.tick_minutes``,
``detection.lateness_minutes`` and per-detector settings; ``platforms.<id>.holdout_share``.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterable, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticSerializationError

__all__ = [
    "ActorEntry",
    "Config",
    "ConfigError",
    "Detection",
    "Disclosure",
    "Period",
    "Window",
    "covers",
    "load_config",
    "parse_config",
]

ActorKind = Literal["candidate", "party", "official", "media", "other"]
_REGION_PATTERN = r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$"


class ConfigError(ValueError):
    """An invalid configuration; ``str(err)`` is one line naming file and place."""


def covers(jurisdiction: str, region: str) -> bool:
    """True if ``jurisdiction`` covers ``region``: equal, or a country covering its subdivision.

    >>> covers("DE", "DE-BY"), covers("DE", "DE"), covers("DE-BY", "DE"), covers("D", "DE")
    (True, True, False, False)
    """
    return region == jurisdiction or region.startswith(jurisdiction + "-")


def _aware(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        raise ValueError("timestamp needs a time zone (e.g. 2026-05-04T00:00:00Z)")
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00; pydantic reports only ValueError
        raise ValueError("timestamp out of range") from None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Period(_Model):
    """Half-open event-time interval [start, end)."""

    start: dt.datetime
    end: dt.datetime

    _tz_start = field_validator("start")(_aware)
    _tz_end = field_validator("end")(_aware)

    @model_validator(mode="after")
    def _ordered(self) -> Period:
        if self.end <= self.start:
            raise ValueError("end is before start")
        return self

    @property
    def start_ms(self) -> int:
        return int(self.start.timestamp() * 1000)

    @property
    def end_ms(self) -> int:
        return int(self.end.timestamp() * 1000)

    def contains_ms(self, ts_ms: int) -> bool:
        return self.start_ms <= ts_ms < self.end_ms


class Window(Period):
    """A designated election period in one jurisdiction, with its baseline period."""

    id: str = Field(min_length=1)
    jurisdiction: str = Field(pattern=_REGION_PATTERN)
    name: str = ""
    baseline: Period | None = None

    @field_validator("jurisdiction", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _baseline_before(self) -> Window:
        if self.baseline is not None and self.baseline.end > self.start:
            raise ValueError("baseline must end before the window starts")
        if self.baseline is None:
            # The default baseline is computed later, by the engine; a window starting near
            # year 1 would make that raise OverflowError there instead of failing here.
            try:
                self.start - (self.end - self.start)
            except OverflowError:
                raise ValueError("default baseline (same length before start) is out of "
                                 "range; give baseline explicitly") from None
        return self

    @property
    def baseline_period(self) -> Period:
        """The baseline; default: the same length right before the window starts."""
        if self.baseline is not None:
            return self.baseline
        return Period(start=self.start - (self.end - self.start), end=self.start)

    @property
    def window_period(self) -> Period:
        return Period(start=self.start, end=self.end)

    def periods(self) -> dict[str, Period]:
        return {"baseline": self.baseline_period, "window": self.window_period}


class ActorEntry(_Model):
    """A registered political actor (a row of the commission's registry)."""

    actor: str = Field(min_length=1)
    name: str = ""
    kind: ActorKind = "other"
    group: str | None = None
    regions: tuple[str, ...] = ()

    @field_validator("regions", mode="before")
    @classmethod
    def _regions(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [r for r in value.replace(";", ",").split(",") if r.strip()]
        if not isinstance(value, list | tuple | None):
            return value  # pydantic names the type error; iterating 5 raised TypeError
        return tuple(str(r).strip().upper() for r in value or ())

    @field_validator("group", mode="before")
    @classmethod
    def _group(cls, value: Any) -> Any:
        return value or None

    def monitored_in(self, jurisdiction: str) -> bool:
        """An actor is monitored in a window if one of its regions covers, or is covered by,
        the window's jurisdiction; an actor with no regions is monitored everywhere."""
        if not self.regions:
            return True
        return any(covers(r, jurisdiction) or covers(jurisdiction, r) for r in self.regions)


class Disclosure(_Model):
    """A ranking intervention a platform declared, with the label users must see."""

    platform: str = Field(min_length=1)
    intervention: str = Field(min_length=1)
    label: str | None = None
    actors: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    description: str = ""

    @field_validator("start", "end")
    @classmethod
    def _tz(cls, value: dt.datetime | None) -> dt.datetime | None:
        return None if value is None else _aware(value)

    @field_validator("regions", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        if not isinstance(value, list | tuple | None):
            return value  # pydantic names the type error; iterating 5 raised TypeError
        return tuple(str(r).upper() for r in value or ())

    @model_validator(mode="after")
    def _ordered(self) -> Disclosure:
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("end is before start")
        return self

    def covers(self, platform: str, intervention: str, actor: str, group: str | None,
               region: str, ts_ms: int) -> bool:
        """Does this disclosure cover an intervention on ``actor``'s item at ``ts_ms``?

        Empty ``actors`` and ``groups`` = all actors; empty ``regions`` = all regions;
        missing ``start``/``end`` = unbounded.
        """
        if platform != self.platform or intervention != self.intervention:
            return False
        if (self.actors or self.groups) and actor not in self.actors and (
            group is None or group not in self.groups
        ):
            return False
        if self.regions and not any(covers(r, region) for r in self.regions):
            return False
        if self.start is not None and ts_ms < self.start.timestamp() * 1000:
            return False
        return not (self.end is not None and ts_ms >= self.end.timestamp() * 1000)


class PlatformEntry(_Model):
    holdout_share: float | None = Field(default=None, gt=0, lt=1)


class Detection(_Model):
    """Detection settings; ``alpha`` is the false-alarm budget for a whole window, all
    subjects, detectors and looks together."""

    model_config = ConfigDict(extra="allow", frozen=True)

    alpha: float = Field(default=0.01, gt=0, lt=1)
    tick_minutes: float = Field(default=15, gt=0, le=24 * 60)
    lateness_minutes: float = Field(default=10, ge=0, le=7 * 24 * 60)

    @field_validator("tick_minutes")
    @classmethod
    def _whole_ms(cls, value: float) -> float:
        if int(value * 60_000) < 1:  # tick_ms 0 made the engine divide by zero
            raise ValueError("tick must be at least 1 ms")
        return value

    @model_validator(mode="after")
    def _serialisable(self) -> Detection:
        # Extra keys are kept as given, unvalidated; the engine fingerprints the whole
        # configuration as JSON (checkpoints), so a value JSON cannot hold -- a lone surrogate
        # ("\ud800" in YAML), !!binary bytes that are not UTF-8 -- would fail there, mid-run.
        try:
            self.model_dump_json()
        except PydanticSerializationError as err:
            detail = " ".join(str(err).split())
            raise ValueError(f"extra settings cannot be written as JSON ({detail})") from None
        return self

    @property
    def tick_ms(self) -> int:
        return int(self.tick_minutes * 60_000)

    @property
    def lateness_ms(self) -> int:
        return int(self.lateness_minutes * 60_000)

    def params(self, detector: str) -> dict[str, Any]:
        """Per-detector settings from ``detection.<detector>: {...}`` (empty if absent)."""
        extra = self.model_extra or {}
        value = extra.get(detector) or {}
        if not isinstance(value, Mapping):
            raise ValueError(f"detection.{detector}: expected a mapping")
        return dict(value)


class Config(_Model):
    """The whole configuration (contract §2)."""

    windows: tuple[Window, ...] = Field(min_length=1)
    actors: tuple[ActorEntry, ...] = ()
    actors_file: str | None = None
    disclosures: tuple[Disclosure, ...] = ()
    detection: Detection = Detection()
    platforms: dict[str, PlatformEntry] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _unique(self) -> Config:
        seen: set[str] = set()
        for i, w in enumerate(self.windows):
            if w.id in seen:
                raise ValueError(f"windows[{i}]: duplicate window id {w.id!r}")
            seen.add(w.id)
        actors: set[str] = set()
        for i, a in enumerate(self.actors):
            if a.actor in actors:
                raise ValueError(f"actors[{i}]: duplicate actor {a.actor!r}")
            actors.add(a.actor)
        return self

    @cached_property
    def registry(self) -> dict[str, ActorEntry]:
        """Actor id → registry entry."""
        return {a.actor: a for a in self.actors}

    @cached_property
    def groups(self) -> dict[str, tuple[str, ...]]:
        """Group name → member actor ids (registry order)."""
        out: dict[str, list[str]] = {}
        for a in self.actors:
            if a.group:
                out.setdefault(a.group, []).append(a.actor)
        return {g: tuple(m) for g, m in out.items()}

    def windows_covering(self, region: str) -> list[Window]:
        return [w for w in self.windows if covers(w.jurisdiction, region)]

    def disclosures_for(self, platform: str, intervention: str, actor: str, region: str,
                        ts_ms: int) -> list[Disclosure]:
        group = self.registry[actor].group if actor in self.registry else None
        return [d for d in self.disclosures
                if d.covers(platform, intervention, actor, group, region, ts_ms)]


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
    first = err.errors()[0]
    where = _loc(first["loc"])
    msg = str(first["msg"]).removeprefix("Value error, ")
    if msg.startswith(("windows[", "actors[")):
        where, msg = msg.split(": ", 1)
    return f"{source}: {where}: {msg}" if where else f"{source}: {msg}"


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
        return Config.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_one_line(source, err)) from None


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
            raise ConfigError(f"{source}: too large (more than {_MAX_VALUES:,} values once "
                              "YAML aliases are expanded)")
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
