"""Configuration (contract §2): election windows, the actor registry, disclosures, detection.

One YAML file, validated with pydantic (:func:`load_config`, :func:`parse_config`).  Every
problem is a :class:`ConfigError` whose message is one line naming the file and the place,
e.g. ``amplimon.yaml: windows[0]: end is before start``.  Strict: an unknown key anywhere is
an error that suggests the nearest known key (``detection.alpah: unknown key; did you mean
'alpha'?``); ``detection.<detector>`` sections must name a registered detector and only its
keyword arguments; a disclosure naming an actor or group the registry does not have is an
error, and so is an actor alias (contract v1.1 §5, ``actors[].aliases``) that is empty, the
actor's own id, or another actor's id or alias.  What is valid but probably not meant (two
windows of one jurisdiction overlapping, a default baseline inside another election window,
two actors whose ids read alike once case, punctuation and look-alike characters are set
aside, a ``platforms.<id>`` never seen in the data) is a :class:`ConfigWarning`, printed by
the CLI as ``amplimon: warning: …``.

Times: the engine works in integer epoch milliseconds, so every configuration time is
rounded to the nearest millisecond when read (half a millisecond rounds up):
``2026-05-04T00:00:00.0004Z`` is ``2026-05-04T00:00:00Z``, and a configuration with
sub-millisecond digits behaves exactly like its millisecond rounding.

Extensions beyond the contract (all optional): ``detection.tick_minutes``,
``detection.lateness_minutes`` and ``detection.<detector>: {parameter: value}``;
``platforms.<id>.holdout_share``.
"""

from monitor.core.config._load import load_config, parse_config
from monitor.core.config._models import (
    ActorEntry,
    Config,
    ConfigError,
    ConfigWarning,
    Detection,
    Disclosure,
    Period,
    PlatformEntry,
    Window,
    covers,
    declare_detector,
    epoch_ms,
)
from monitor.core.config._warnings import registry_warnings, unseen_platforms, window_warnings

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
    "load_config",
    "parse_config",
    "registry_warnings",
    "unseen_platforms",
    "window_warnings",
]
