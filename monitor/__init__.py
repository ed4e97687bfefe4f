"""amplimon core: contract models, configuration, the event-time engine, the store, the CLI.

The package root re-exports only the dependency-free core (contract, configuration,
records); import :mod:`monitor.engine.run`, :mod:`monitor.core.store` and :mod:`monitor.app.replay`
directly (they depend on :mod:`detectors`, which depends on this core).
"""

from monitor.core.config import Config, ConfigError, load_config, parse_config
from monitor.core.contract import Exposure, RankedItem, Ranking, Rejected, decode
from monitor.core.records import DeadLetter, Finding, Measurement

__all__ = [
    "Config",
    "ConfigError",
    "DeadLetter",
    "Exposure",
    "Finding",
    "Measurement",
    "RankedItem",
    "Ranking",
    "Rejected",
    "decode",
    "load_config",
    "parse_config",
]

__version__ = "0.1.0"
