"""The configuration's models (contract §2) and their validation rules.

Times are rounded to the nearest millisecond when read (the engine's resolution; half a
millisecond rounds up), so a configuration with sub-millisecond digits behaves exactly like
its millisecond rounding; ``start_ms``/``end_ms`` are exact integers (no float arithmetic).
Every key is known: an unknown one is an error naming it with the nearest known key, and
``detection.<detector>`` sections are checked against the detectors' keyword arguments
(:func:`declare_detector`).  A disclosure names registered actors and groups only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticSerializationError

from monitor.core.config._keys import Located, nearest, printable, unknown
from monitor.core.errors import AmplimonError

__all__ = [
    "ActorEntry",
    "Config",
    "ConfigError",
    "ConfigWarning",
    "Detection",
    "Disclosure",
    "Period",
    "PlatformEntry",
    "Window",
    "covers",
    "declare_detector",
    "epoch_ms",
]

ActorKind = Literal["candidate", "party", "official", "media", "other"]
_REGION_PATTERN = r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$"


class ConfigError(AmplimonError, ValueError):
    """An invalid configuration; ``str(err)`` is one line naming file and place."""


class ConfigWarning(UserWarning):
    """A valid configuration that is probably not what was meant (one line)."""


def covers(jurisdiction: str, region: str) -> bool:
    """True if ``jurisdiction`` covers ``region``: equal, or a country covering its subdivision.

    >>> covers("DE", "DE-BY"), covers("DE", "DE"), covers("DE-BY", "DE"), covers("D", "DE")
    (True, True, False, False)
    """
    return region == jurisdiction or region.startswith(jurisdiction + "-")


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_ONE_MS = dt.timedelta(milliseconds=1)


def epoch_ms(value: dt.datetime) -> int:
    """Epoch milliseconds of an aware datetime, exactly (floor; integer arithmetic)."""
    return (value - _EPOCH) // _ONE_MS


def _aware(value: dt.datetime) -> dt.datetime:
    """UTC, rounded to the nearest millisecond (the engine's resolution; half rounds up)."""
    if value.tzinfo is None:
        raise ValueError("timestamp needs a time zone (e.g. 2026-05-04T00:00:00Z)")
    try:
        value = value.astimezone(dt.UTC)
        sub = value.microsecond % 1000
        if sub:
            value -= dt.timedelta(microseconds=sub)
            if sub >= 500:
                value += _ONE_MS
        return value
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
        return epoch_ms(self.start)

    @property
    def end_ms(self) -> int:
        return epoch_ms(self.end)

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
                raise ValueError(
                    "default baseline (same length before start) is out of "
                    "range; give baseline explicitly"
                ) from None
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


def _split(value: str) -> list[str]:
    """``"DE;AT"`` / ``"DE, AT"`` → ``["DE", "AT"]`` (empty pieces dropped): a list in one
    ``actors_file`` cell."""
    return [r for r in value.replace(";", ",").split(",") if r.strip()]


class ActorEntry(_Model):
    """A registered political actor (a row of the commission's registry).

    ``aliases`` (contract v1.1 §5) are other ids under which the platform logs the same
    account; exposures and ranking items under an alias count for the actor.  Like ``actor``
    they are stripped of surrounding whitespace and compared exactly; in an ``actors_file``
    they are one cell, ``;``- or ``,``-separated like ``regions``.  An alias is never empty,
    never the actor's own id, never listed twice, and never another actor's id or alias
    (:class:`Config` checks the last)."""

    actor: str = Field(min_length=1)
    name: str = ""
    kind: ActorKind = "other"
    group: str | None = None
    regions: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()

    @field_validator("regions", mode="before")
    @classmethod
    def _regions(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = _split(value)
        if not isinstance(value, list | tuple | None):
            return value  # pydantic names the type error; iterating 5 raised TypeError
        return tuple(str(r).strip().upper() for r in value or ())

    @field_validator("aliases", mode="before")
    @classmethod
    def _alias_list(cls, value: Any) -> Any:
        # a string is one actors_file cell; a YAML list is taken item by item (pydantic
        # rejects a non-string item rather than turning 12345 into "12345")
        if isinstance(value, str):
            return _split(value)
        return () if value is None else value

    @model_validator(mode="after")
    def _aliases(self) -> ActorEntry:
        seen: set[str] = set()
        for i, alias in enumerate(self.aliases):
            if not alias:
                raise Located(f"aliases[{i}]", "empty id")
            if alias == self.actor:
                raise Located(f"aliases[{i}]", f"{alias!r} is the actor's own id")
            if alias in seen:
                raise Located(f"aliases[{i}]", f"{alias!r} is listed twice")
            seen.add(alias)
        return self

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

    @property
    def start_ms(self) -> int | None:
        return None if self.start is None else epoch_ms(self.start)

    @property
    def end_ms(self) -> int | None:
        return None if self.end is None else epoch_ms(self.end)

    def names(self, actor: str, group: str | None) -> bool:
        """Does this disclosure name ``actor`` (itself or its ``group``)?  Empty ``actors``
        and ``groups`` = all actors."""
        if not self.actors and not self.groups:
            return True
        return actor in self.actors or (group is not None and group in self.groups)

    def in_region(self, region: str) -> bool:
        """Does it apply in ``region``?  Empty ``regions`` = all regions."""
        return not self.regions or any(covers(r, region) for r in self.regions)

    def covers(
        self,
        platform: str,
        intervention: str,
        actor: str,
        group: str | None,
        region: str,
        ts_ms: int,
    ) -> bool:
        """Does this disclosure cover an intervention on ``actor``'s item at ``ts_ms``?

        Empty ``actors`` and ``groups`` = all actors; empty ``regions`` = all regions;
        missing ``start``/``end`` = unbounded.
        """
        if platform != self.platform or intervention != self.intervention:
            return False
        if not self.names(actor, group) or not self.in_region(region):
            return False
        start, end = self.start_ms, self.end_ms
        if start is not None and ts_ms < start:
            return False
        return not (end is not None and ts_ms >= end)


class PlatformEntry(_Model):
    holdout_share: float | None = Field(default=None, gt=0, lt=1)


# Detector name → its parameter names (None: any), declared by the detector registry
# (``detectors.registry.register``) so that ``detection.<detector>`` sections can be checked
# here without the configuration importing the detectors.
_DETECTORS: dict[str, frozenset[str] | None] = {}


def declare_detector(name: str, parameters: Iterable[str] | None) -> None:
    """Make ``detection.<name>`` a known section whose keys are ``parameters`` (None: any)."""
    _DETECTORS[name] = None if parameters is None else frozenset(parameters)


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
    def _known(self) -> Detection:
        self.check_sections()
        return self

    def check_sections(self, detectors: Mapping[str, frozenset[str] | None] | None = None) -> None:
        """Every extra key names a detector (of ``detectors``, default: the declared ones)
        and holds a mapping of that detector's keyword arguments; raises :class:`Located`
        (a ``ValueError``) naming the first unknown key and the nearest known one.

        Before any detector is declared, mapping-valued sections cannot be checked here; the
        detector registry's ``build`` checks them again."""
        catalogue = _DETECTORS if detectors is None else detectors
        settings = list(type(self).model_fields)
        for key, value in (self.model_extra or {}).items():
            if key not in catalogue:
                if catalogue or not isinstance(value, Mapping | None):
                    raise Located(printable(key), unknown(key, [*settings, *catalogue]))
                continue
            if value is None:
                continue
            if not isinstance(value, Mapping):
                raise Located(key, f"expected a mapping of {key}'s parameters")
            parameters = catalogue[key]
            if parameters is None:
                continue
            for name in value:
                if name not in parameters:
                    raise Located(
                        f"{key}.{printable(name)}", unknown(name, parameters, f"parameter of {key}")
                    )

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
                raise Located(f"windows[{i}]", f"duplicate window id {w.id!r}")
            seen.add(w.id)
        actors: dict[str, int] = {}
        for i, a in enumerate(self.actors):
            if a.actor in actors:
                raise Located(f"actors[{i}]", f"duplicate actor {a.actor!r}")
            actors[a.actor] = i
        aliases: dict[str, int] = {}
        for i, a in enumerate(self.actors):
            for alias in a.aliases:
                if alias in actors:
                    j = actors[alias]
                    raise Located(
                        f"actors[{i}].aliases",
                        f"alias {alias!r} of {a.actor!r} is the id of actors[{j}]",
                    )
                if alias in aliases:
                    j = aliases[alias]
                    raise Located(
                        f"actors[{i}].aliases",
                        f"alias {alias!r} of {a.actor!r} is also an alias of "
                        f"actors[{j}] ({self.actors[j].actor!r})",
                    )
                aliases[alias] = i
        return self

    @model_validator(mode="after")
    def _references(self) -> Config:
        """A disclosure names registered actors and groups only (a typo would leave the
        boost it declares undisclosed, or disclose nothing)."""
        groups = {a.group for a in self.actors if a.group}
        for i, d in enumerate(self.disclosures):
            for field, names, known in (
                ("actors", d.actors, self.registry.keys()),
                ("groups", d.groups, groups),
            ):
                for name in names:
                    if name not in known:
                        owner = self.aliases.get(name) if field == "actors" else None
                        near = nearest(name, known)
                        if owner is not None:
                            hint = f" (it is an alias of {owner!r}; name the actor id)"
                        else:
                            hint = f"; did you mean {near!r}?" if near else ""
                        raise Located(
                            f"disclosures[{i}].{field}",
                            f"{field[:-1]} {name!r} is not in the actor registry{hint}",
                        )
        return self

    @cached_property
    def registry(self) -> dict[str, ActorEntry]:
        """Actor id → registry entry."""
        return {a.actor: a for a in self.actors}

    @cached_property
    def aliases(self) -> dict[str, str]:
        """Alias → the id of the actor it belongs to (exact ids; see ``monitor.core.identity``
        for look-alikes)."""
        return {alias: a.actor for a in self.actors for alias in a.aliases}

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

    def disclosures_for(
        self, platform: str, intervention: str, actor: str, region: str, ts_ms: int
    ) -> list[Disclosure]:
        group = self.registry[actor].group if actor in self.registry else None
        return [
            d
            for d in self.disclosures
            if d.covers(platform, intervention, actor, group, region, ts_ms)
        ]
