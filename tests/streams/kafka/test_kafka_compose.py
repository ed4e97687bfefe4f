"""docker-compose.yml: parsed and checked (no Docker engine needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dashboard.settings import ENV as DASHBOARD_ENV
from monitor.settings import Settings, env_name

ROOT = Path(__file__).resolve().parents[3]
SETTINGS_ENV = {env_name(f) for f in Settings.model_fields}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


def test_kafka_runs_in_kraft_mode_with_a_healthcheck_and_a_volume(compose):
    kafka = compose["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = kafka["environment"]
    assert "controller" in env["KAFKA_PROCESS_ROLES"] and "broker" in env["KAFKA_PROCESS_ROLES"]
    assert "ZOOKEEPER" not in " ".join(env).upper()
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert "kafka-broker-api-versions" in " ".join(kafka["healthcheck"]["test"])
    assert any(v.startswith("kafka-data:") for v in kafka["volumes"])


def test_pipeline_services_are_configured_by_settings_variables(compose):
    services = compose["services"]
    for name in ("topics", "worker", "sink", "archive", "dashboard"):
        service = services[name]
        assert service["image"].startswith("${AMPLIMON_IMAGE")
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        env = service["environment"]
        unknown = {k for k in env if k not in SETTINGS_ENV | set(DASHBOARD_ENV.values())}
        assert not unknown, (name, unknown)
        for var in ("AMPLIMON_BROKER", "AMPLIMON_SECURITY_PROTOCOL", "AMPLIMON_SSL_CAFILE",
                    "AMPLIMON_SSL_CERTFILE", "AMPLIMON_SSL_KEYFILE", "AMPLIMON_SASL_MECHANISM",
                    "AMPLIMON_SASL_USERNAME", "AMPLIMON_SASL_PASSWORD"):
            assert var in env, (name, var)
    assert services["worker"]["command"] == ["worker"]
    assert services["sink"]["command"] == ["sink"]
    assert services["topics"]["command"] == ["topics", "create"]
    for name in ("worker", "sink", "archive"):
        assert services[name]["depends_on"]["topics"]["condition"] == \
            "service_completed_successfully"
    assert services["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_long_running_services_have_healthchecks_and_volumes(compose):
    services = compose["services"]
    for name in ("worker", "sink", "dashboard"):
        assert services[name]["healthcheck"]["test"][0] == "CMD", name
    assert "AMPLIMON_HEARTBEAT_FILE" in services["worker"]["environment"]
    data = [v for v in services["sink"]["volumes"] if v.startswith("amplimon-data:")]
    assert data == ["amplimon-data:/data"]
    assert services["dashboard"]["environment"]["AMPLIMON_DASHBOARD_DATA"] == \
        services["sink"]["environment"]["AMPLIMON_SNAPSHOT_DIR"]
    assert set(compose["volumes"]) >= {"kafka-data", "amplimon-data", "amplimon-archive"}


def test_the_image_is_buildable_from_the_repository_root():
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text(encoding="utf-8")
    assert dockerfile.startswith("#") and "FROM python:3.11" in dockerfile
    for package in ("monitor", "streams", "detectors", "dashboard"):
        assert f"COPY {package} " in dockerfile
        assert (ROOT / package).is_dir()
    assert 'ENTRYPOINT ["amplimon"]' in dockerfile


def test_the_heartbeat_healthcheck(tmp_path):
    from streams.kafka._heartbeat import Heartbeat, is_fresh

    path = tmp_path / "hb"
    assert not is_fresh(path)
    Heartbeat(path).beat()
    assert is_fresh(path, 60)
