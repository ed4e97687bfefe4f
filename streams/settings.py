"""The one settings object: every process setting, read from ``AMPLIMON_*`` environment
variables (or CLI options, which take precedence).  Nothing is read at import time.

The environment variable of each field is ``AMPLIMON_<FIELD>`` (upper case); the CLI's
``--help`` lists them next to the options.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "env_name", "load_settings"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AMPLIMON_", extra="ignore", frozen=True)

    # where things are
    config: str = Field("amplimon.yaml", description="configuration YAML (contract §2)")
    db: str = Field("amplimon.duckdb", description="DuckDB store of record")
    data_dir: str = Field("amplimon-data", description="snapshots, archives, run files")
    # Kafka
    broker: str = Field("127.0.0.1:9092", description="bootstrap servers, comma-separated")
    topic_exposure: str = "amplimon.exposure"
    topic_ranking: str = "amplimon.ranking"
    topic_findings: str = "amplimon.findings"
    topic_deadletter: str = "amplimon.deadletter"
    topic_measurements: str = "amplimon.measurements"
    topic_detectability: str = "amplimon.detectability"
    topic_panel: str = Field(
        "amplimon.panel",
        description="panel observations (commission-controlled; never writable by platforms)",
    )
    topic_partials: str = Field(
        "amplimon.partials",
        description="stage one → stage two: per-tick partials and unit progress (internal)",
    )
    partials_partitions: int = Field(
        1, ge=1, description="partitions of the partials topic = stage-two instances at most"
    )
    topic_state: str = Field(
        "amplimon.worker-state", description="worker checkpoints (compacted, 1 partition)"
    )
    checkpoint_seconds: float = Field(5.0, gt=0, description="worker checkpoint interval")
    idle_partition_seconds: float = Field(
        30.0, gt=0, description="a partition silent this long stops holding the watermark"
    )
    snapshot_dir: str | None = Field(
        None, description="Parquet snapshots for the dashboard (default: <db>.snapshot)"
    )
    heartbeat_file: str | None = Field(
        None, description="worker/sink touch this file while healthy (container healthchecks)"
    )
    partitions: int = Field(6, ge=1)
    replication: int = Field(1, ge=1)
    group_id: str = "amplimon"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    sasl_password_file: str | None = Field(
        None,
        description="file holding the SASL password (a container secret); "
        "AMPLIMON_SASL_PASSWORD wins if both are set",
    )
    metrics_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="Prometheus metrics of the worker and sink on this port (0 = off)",
    )
    # dashboard
    dashboard_port: int = Field(8501, ge=1, le=65535)
    # privacy
    pseudonym_key: SecretStr | None = Field(
        None, description="HMAC-SHA256 key for user pseudonyms (>= 32 chars); a file is safer"
    )
    pseudonym_key_file: str | None = Field(
        None,
        description="file holding the pseudonymisation key (default: "
        "<data_dir>/pseudonym.key, created on first use)",
    )
    # evidence-pack signatures (monitor.core.signing)
    signing_key: SecretStr | None = Field(
        None, description="Ed25519 private key (PEM) that signs evidence packs; a file is safer"
    )
    signing_key_file: str | None = Field(
        None,
        description="file holding the signing key (default: <data_dir>/signing.key, "
        "created on first use)",
    )
    signer: str | None = Field(None, description="who signs, e.g. the commission's name")
    trusted_keys: str | None = Field(
        None, description="PEM public key file, or directory of them, that verify trusts"
    )


def env_name(field: str) -> str:
    """The environment variable that sets ``field``."""
    return f"AMPLIMON_{field.upper()}"


def load_settings(**overrides: Any) -> Settings:
    """Environment first, then explicit (non-None) overrides from the CLI."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
