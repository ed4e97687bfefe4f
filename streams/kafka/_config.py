"""Client options from the one :class:`streams.settings.Settings` object.

Every Kafka client amplimon creates (kafka-python for the producer, admin, sink and archive;
aiokafka for the worker) gets its bootstrap servers and TLS/SASL options from here, so a
deployment configures security once, with ``AMPLIMON_SECURITY_PROTOCOL``,
``AMPLIMON_SSL_CAFILE``, ``AMPLIMON_SASL_MECHANISM``, ``AMPLIMON_SASL_USERNAME``, …  The
password comes from ``AMPLIMON_SASL_PASSWORD`` or, in containers, from a secret file named by
``AMPLIMON_SASL_PASSWORD_FILE``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.kafka._errors import PipelineError
from streams.settings import Settings

__all__ = [
    "EPOCH_HEADER",
    "ConfigurationError",
    "Topics",
    "aiokafka_options",
    "kafka_python_options",
    "sasl_password",
]

# Header on every message of the partials topic: the cluster id of the broker the sending
# worker's session verified.  Stage two drops a message whose epoch is not its own broker's:
# an old session's producer, closed during an outage, can deliver its last batches to a new,
# empty broker on the same address (stale progress would make stage two merge ticks early).
EPOCH_HEADER = "amplimon-broker"


class ConfigurationError(PipelineError):
    """A client setting cannot be used (one-line message)."""


@dataclass(frozen=True, slots=True)
class Topics:
    """Topic names (contract §1 defaults, configurable through the settings)."""

    exposure: str = "amplimon.exposure"
    ranking: str = "amplimon.ranking"
    findings: str = "amplimon.findings"
    deadletter: str = "amplimon.deadletter"
    measurements: str = "amplimon.measurements"
    detectability: str = "amplimon.detectability"
    state: str = "amplimon.worker-state"
    partials: str = "amplimon.partials"
    panel: str = "amplimon.panel"

    @classmethod
    def from_settings(cls, s: Settings) -> Topics:
        return cls(
            exposure=s.topic_exposure,
            ranking=s.topic_ranking,
            findings=s.topic_findings,
            deadletter=s.topic_deadletter,
            measurements=s.topic_measurements,
            detectability=s.topic_detectability,
            state=s.topic_state,
            partials=s.topic_partials,
            panel=s.topic_panel,
        )

    @property
    def inputs(self) -> dict[str, str]:
        """Kafka topic → contract topic (``exposure`` / ``ranking`` / ``panel``)."""
        return {self.exposure: "exposure", self.ranking: "ranking", self.panel: "panel"}

    @property
    def outputs(self) -> dict[str, str]:
        """Kafka topic → store table the sink writes."""
        return {
            self.findings: "findings",
            self.measurements: "amplification",
            self.deadletter: "deadletter",
            self.detectability: "detectability",
        }


def _servers(s: Settings) -> list[str]:
    return [b.strip() for b in s.broker.split(",") if b.strip()]


def sasl_password(s: Settings) -> str | None:
    """``AMPLIMON_SASL_PASSWORD``, else the first line of ``AMPLIMON_SASL_PASSWORD_FILE``
    (a container secret); a file that cannot be read is a one-line :class:`ConfigurationError`."""
    if s.sasl_password is not None:
        return s.sasl_password.get_secret_value()
    if not s.sasl_password_file:
        return None
    try:
        text = Path(s.sasl_password_file).read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigurationError(
            f"cannot read the SASL password file {s.sasl_password_file}: {err.strerror or err}"
        ) from None
    return text.splitlines()[0].strip() if text.strip() else ""


def _sasl(s: Settings) -> dict[str, Any]:
    if not s.security_protocol.startswith("SASL"):
        return {}
    password = sasl_password(s)
    return {
        "sasl_mechanism": s.sasl_mechanism or "PLAIN",
        "sasl_plain_username": s.sasl_username,
        "sasl_plain_password": password,
    }


def kafka_python_options(s: Settings) -> dict[str, Any]:
    """Connection options for any kafka-python client (producer, consumer, admin)."""
    opts: dict[str, Any] = {
        "bootstrap_servers": _servers(s),
        "security_protocol": s.security_protocol,
    }
    if s.security_protocol in ("SSL", "SASL_SSL"):
        opts.update(ssl_cafile=s.ssl_cafile, ssl_certfile=s.ssl_certfile, ssl_keyfile=s.ssl_keyfile)
    opts.update(_sasl(s))
    return opts


def aiokafka_options(s: Settings) -> dict[str, Any]:
    """The same options for aiokafka (TLS as an ``ssl.SSLContext``)."""
    opts: dict[str, Any] = {
        "bootstrap_servers": _servers(s),
        "security_protocol": s.security_protocol,
    }
    if s.security_protocol in ("SSL", "SASL_SSL"):
        from aiokafka.helpers import create_ssl_context

        opts["ssl_context"] = create_ssl_context(
            cafile=s.ssl_cafile, certfile=s.ssl_certfile, keyfile=s.ssl_keyfile
        )
    opts.update(_sasl(s))
    return opts
