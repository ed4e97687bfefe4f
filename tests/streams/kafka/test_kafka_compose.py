"""docker-compose.yml: parsed and checked without a Docker engine — every image pinned, every
command an existing one, every file, secret and config in the repository or made by
``make secrets``, every variable with a default or in ``.env.example``, healthchecks, SASL_SSL
listeners, ACLs, secrets; and the scripts it relies on (``deploy/make_secrets.py``,
``deploy/kafka/init-acls.sh``) run here."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import click
import pytest
import typer
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from dashboard.settings import ENV as DASHBOARD_ENV
from monitor.core.config import load_config
from monitor.core.privacy import load_key
from streams.settings import Settings, env_name

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = ROOT / "docker-compose.yml"
SETTINGS_ENV = {env_name(f) for f in Settings.model_fields}
# Variables of the compose file read by code that is not merged yet (issue 15: the dashboard
# signs evidence packs with the Ed25519 key in this file, PKCS#8 PEM as deploy/make_secrets.py
# writes it).  Drop the entry once a Settings field or the dashboard's ENV names it.
PENDING_ENV = {"AMPLIMON_SIGNING_KEY_FILE"}
# What the third-party images ship, from their documentation: the Kafka distribution's
# bin/ unpacked at /opt/kafka (kafka.apache.org, "Docker"; apache/kafka's docker/jvm/
# Dockerfile), bash (the image's own scripts are bash); Caddy's binary and its default
# config path /etc/caddy/Caddyfile (hub.docker.com/_/caddy), busybox wget (Alpine).
IMAGE_FILES = {
    "apache/kafka": {
        "/opt/kafka/bin/kafka-broker-api-versions.sh",
        "/opt/kafka/bin/kafka-acls.sh",
        "/opt/kafka/bin/kafka-configs.sh",
        "bash",
    },
    "caddy": {"caddy", "/etc/caddy/Caddyfile", "wget"},
}
_VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def dotenv_example() -> dict[str, str]:
    text = (ROOT / ".env.example").read_text(encoding="utf-8")
    return dict(
        line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")
    )


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's variable substitution: ``${V}``, ``${V:-default}``, ``${V:?error}``."""

    def value(m: re.Match[str]) -> str:
        name, op, arg = m.group("name"), m.group("op"), m.group("arg")
        if env.get(name):
            return env[name]
        if op in (":-", "-"):
            return arg
        raise AssertionError(f"${{{name}}} has no default and is not set in .env.example")

    return _VAR.sub(value, text)


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The compose file as `docker compose` sees it with .env.example as the .env."""
    return yaml.safe_load(interpolate(COMPOSE.read_text(encoding="utf-8"), dotenv_example()))


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `make secrets` makes, in a scratch deployment directory."""
    out = tmp_path_factory.mktemp("deploy")
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "deploy" / "make_secrets.py"),
            "--dir",
            str(out),
            "init",
            "--kafka-host",
            "kafka.commission.example",
            "--dashboard-host",
            "dashboard.commission.example",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    return out


def amplimon_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in compose["services"].items() if "build" in s}


# -- images ----------------------------------------------------------------------------------
def test_every_image_is_built_here_or_pinned_by_version_and_digest(compose):
    for name, service in compose["services"].items():
        if "build" in service:
            assert service["build"]["dockerfile"] == "deploy/Dockerfile", name
            continue
        assert re.fullmatch(
            r"[a-z0-9./-]+:\d+(\.\d+)+(-[a-z]+)?@sha256:[0-9a-f]{64}", service["image"]
        ), (name, service["image"])
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text(encoding="utf-8")
    base = re.search(r"^FROM (\S+)", dockerfile, re.M)
    assert base and re.fullmatch(r"python:3\.11\.\d+-slim-\w+@sha256:[0-9a-f]{64}", base[1])
    # built from the lock file, with hashes, and the project without resolving anything
    assert "pip install --require-hashes --no-deps -r requirements-runtime.lock" in dockerfile
    assert "pip install --no-deps --no-build-isolation ." in dockerfile
    for package in ("monitor", "streams", "detectors", "dashboard"):
        assert f"COPY {package} " in dockerfile and (ROOT / package).is_dir()
    assert 'ENTRYPOINT ["amplimon"]' in dockerfile


# -- variables -------------------------------------------------------------------------------
def test_every_variable_has_a_default_or_is_documented_in_env_example(raw):
    text = COMPOSE.read_text(encoding="utf-8")
    documented = dotenv_example()
    used = {m.group("name") for m in _VAR.finditer(text)}
    for m in _VAR.finditer(text):
        if m.group("op") not in (":-", "-"):
            assert m.group("name") in documented, m.group(0)
    assert set(documented) <= used, set(documented) - used  # no stale documentation
    assert "KAFKA_ADVERTISED_HOST" in used and "AMPLIMON_PLATFORM" in used


def test_every_amplimon_variable_is_one_the_code_reads(compose):
    readers = SETTINGS_ENV | set(DASHBOARD_ENV.values()) | PENDING_ENV
    for name, service in amplimon_services(compose).items():
        unknown = {k for k in service["environment"] if k not in readers}
        assert not unknown, (name, unknown)


# -- files, secrets, configs -------------------------------------------------------------------
def test_every_file_exists_or_is_made_by_make_secrets(compose, made):
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^secrets: .*\n\t.*deploy/make_secrets.py init", makefile, re.M)
    named = [
        entry["file"] for section in ("secrets", "configs") for entry in compose[section].values()
    ]
    for service in compose["services"].values():
        named += [v.split(":")[0] for v in service.get("volumes", []) if v.startswith(".")]
    for path in named:
        rel = Path(path).relative_to(".")
        if rel.parts[:2] in (("deploy", "secrets"), ("deploy", "certs")):
            assert (made / rel.relative_to("deploy")).is_file(), f"make secrets: {rel}"
        else:
            assert (ROOT / rel).exists(), rel
    load_config(ROOT / "deploy" / "config" / "amplimon.yaml")  # the shipped configuration
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8")
    assert "/deploy/secrets/" in ignored and "/deploy/certs/" in ignored


def test_services_use_only_declared_secrets_configs_and_volumes(compose):
    for name, service in compose["services"].items():
        for ref in service.get("secrets", []):
            assert ref in compose["secrets"], (name, ref)
        for ref in service.get("configs", []):
            assert ref["source"] in compose["configs"], (name, ref)
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source.startswith(".") or source in compose["volumes"], (name, volume)
        mounted = {f"/run/secrets/{s}" for s in service.get("secrets", [])}
        for var, value in service.get("environment", {}).items():
            if var.endswith(("_KEY_FILE", "_PASSWORD_FILE")):  # secrets: mounted there
                assert value in mounted, (name, var, value)


def test_one_pseudonymisation_key_for_every_service_and_no_writes_under_app(compose):
    services = amplimon_services(compose)
    keyed = {n for n, s in services.items() if "AMPLIMON_PSEUDONYM_KEY_FILE" in s["environment"]}
    assert keyed == {"worker", "archive"}
    assert {services[n]["environment"]["AMPLIMON_PSEUDONYM_KEY_FILE"] for n in keyed} == {
        "/run/secrets/pseudonym_key"
    }
    assert compose["secrets"]["pseudonym_key"]["file"] == "./deploy/secrets/pseudonym.key"
    assert (
        services["dashboard"]["environment"]["AMPLIMON_SIGNING_KEY_FILE"]
        == "/run/secrets/signing_key"
    )
    for name, service in services.items():
        env = service["environment"]
        assert env.get("AMPLIMON_DATA_DIR") == "/data", name  # the volume, not /app
        for var in ("AMPLIMON_DB", "AMPLIMON_SNAPSHOT_DIR", "AMPLIMON_DASHBOARD_DATA"):
            assert var not in env or env[var].startswith("/data/"), (name, var)
    for name in ("worker", "sink", "dashboard"):
        assert "amplimon-data:/data" in services[name]["volumes"], name
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text(encoding="utf-8")
    assert "AMPLIMON_DATA_DIR=/data" in dockerfile and "chown amplimon /data" in dockerfile


# -- commands and healthchecks -------------------------------------------------------------------
def _amplimon_command(
    args: list[str], env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parse ``amplimon ARGS`` with the service's environment: subcommands and options must
    exist and every required value must be given (nothing runs)."""
    from monitor.cli import app

    node: click.Command = typer.main.get_command(app)
    rest, path = list(args), ["amplimon"]
    while isinstance(node, click.Group):
        assert rest, f"{' '.join(path)}: a subcommand is needed"
        sub = node.commands.get(rest[0])
        assert sub is not None, f"{' '.join(path)} has no command {rest[0]!r}"
        path.append(rest.pop(0))
        node = sub
    with monkeypatch.context() as m:
        for key in [k for k in os.environ if k.startswith("AMPLIMON_")]:
            m.delenv(key)
        for key, value in env.items():
            m.setenv(key, str(value))
        node.make_context(" ".join(path), rest)


def test_every_command_exists(compose, monkeypatch):
    for service in amplimon_services(compose).values():
        _amplimon_command(service["command"], service["environment"], monkeypatch)
    targets = {c["target"] for s in compose["services"].values() for c in s.get("configs", [])}
    for name, service in compose["services"].items():
        if "build" in service:
            continue
        image = service["image"].split(":")[0]
        command = service.get("command") or []
        if command:  # `bash FILE`: bash is in the image, FILE is mounted as a config
            assert command[0] in IMAGE_FILES[image] and command[1] in targets, (name, command)
        test = service["healthcheck"]["test"] if "healthcheck" in service else []
        if test:
            assert test[0] == "CMD" and test[1] in IMAGE_FILES[image], (name, test)
    script = (ROOT / "deploy" / "kafka" / "init-acls.sh").read_text(encoding="utf-8")
    for tool in re.findall(r'"\$BIN/([\w.-]+)"', script):
        assert f"/opt/kafka/bin/{tool}" in IMAGE_FILES["apache/kafka"], tool
    caddy = [c["target"] for c in compose["services"]["proxy"]["configs"]]
    assert "/etc/caddy/Caddyfile" in caddy


def test_long_running_services_have_healthchecks(compose):
    for name, service in compose["services"].items():
        if service.get("restart") == "no":
            continue
        test = service["healthcheck"]["test"]
        assert test[0] == "CMD", name
        if test[1] == "python":  # our image: the snippet compiles and its import exists
            code = test[3]
            compile(code, name, "exec")
            for module, attr in re.findall(r"from ([\w.]+) import (\w+)", code):
                assert hasattr(__import__(module, fromlist=[attr]), attr), (name, module, attr)
            heartbeat = re.search(r"is_fresh\('([^']+)'", code)
            if heartbeat:
                assert service["environment"]["AMPLIMON_HEARTBEAT_FILE"] == heartbeat[1]


def test_dependencies_run_in_order(compose):
    services = compose["services"]
    assert services["kafka-init"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert services["kafka-init"]["network_mode"] == "service:kafka"  # reaches ADMIN on lo
    assert (
        services["topics"]["depends_on"]["kafka-init"]["condition"]
        == "service_completed_successfully"
    )
    for name in ("worker", "sink", "archive"):
        assert (
            services[name]["depends_on"]["topics"]["condition"] == "service_completed_successfully"
        )
    assert services["proxy"]["depends_on"]["dashboard"]["condition"] == "service_healthy"


# -- Kafka: listeners, authentication, authorisation ---------------------------------------------
def _listeners(value: str) -> dict[str, str]:
    return dict(item.split("://", 1) for item in value.split(","))


def test_kafka_listens_sasl_ssl_by_name_with_an_authorizer(compose):
    kafka = compose["services"]["kafka"]
    env = kafka["environment"]
    protocols = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    listeners, advertised = (
        _listeners(env["KAFKA_LISTENERS"]),
        _listeners(env["KAFKA_ADVERTISED_LISTENERS"]),
    )
    for name, protocol in protocols.items():
        if protocol == "PLAINTEXT":  # only on the container's loopback
            assert listeners[name].startswith("localhost:"), name
        else:
            assert protocol == "SASL_SSL" and listeners[name].startswith(":"), name
    assert advertised["INTERNAL"] == "kafka:9092"
    assert advertised["EXTERNAL"] == "kafka.commission.example:9094"  # from the variable
    raw_text = COMPOSE.read_text(encoding="utf-8")
    assert "EXTERNAL://${KAFKA_ADVERTISED_HOST:?" in raw_text
    assert "SSL://" not in env["KAFKA_ADVERTISED_LISTENERS"]  # see the compose comment
    assert env["KAFKA_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
    for name in ("INTERNAL", "EXTERNAL"):
        jaas = env[f"KAFKA_LISTENER_NAME_{name}_SCRAM___SHA___512_SASL_JAAS_CONFIG"]
        assert jaas.startswith("org.apache.kafka.common.security.scram.ScramLoginModule")
        assert "=" not in jaas  # the image's env-to-properties tool drops values with '='
    assert (
        env["KAFKA_AUTHORIZER_CLASS_NAME"]
        == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    )
    assert env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    assert env["KAFKA_SSL_KEYSTORE_TYPE"] == "PEM"
    assert env["KAFKA_SSL_KEYSTORE_LOCATION"] == "/run/secrets/kafka_keystore"
    assert "KAFKA_ZOOKEEPER_CONNECT" not in env and "controller" in env["KAFKA_PROCESS_ROLES"]
    assert any(v.startswith("kafka-data:") for v in kafka["volumes"])
    for name, service in amplimon_services(compose).items():
        env = service["environment"]
        if "AMPLIMON_BROKER" in env:
            assert env["AMPLIMON_BROKER"] == advertised["INTERNAL"], name
            assert env["AMPLIMON_SECURITY_PROTOCOL"] == "SASL_SSL", name
            assert env["AMPLIMON_SASL_MECHANISM"] == "SCRAM-SHA-512", name
            assert "kafka_amplimon_password" in service["secrets"], name


@pytest.fixture
def fake_kafka_bin(tmp_path: Path) -> tuple[Path, Path]:
    """kafka-configs.sh and kafka-acls.sh stand-ins that record their arguments."""
    bin_dir, log = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    for tool in ("kafka-configs.sh", "kafka-acls.sh"):
        script = bin_dir / tool
        script.write_text(f'#!/usr/bin/env bash\necho "{tool} $*" >> "{log}"\n')
        script.chmod(0o755)
    return bin_dir, log


def _run_init(bin_dir: Path, tmp_path: Path, platforms: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "amplimon.password").write_text("pw-amplimon\n")
    (tmp_path / "platforms").write_text(platforms)
    env = {
        **os.environ,
        "KAFKA_BIN": str(bin_dir),
        "AMPLIMON_PASSWORD_FILE": str(tmp_path / "amplimon.password"),
        "PLATFORMS_FILE": str(tmp_path / "platforms"),
    }
    return subprocess.run(
        ["bash", str(ROOT / "deploy" / "kafka" / "init-acls.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_the_acl_job_lets_a_platform_write_its_own_topics_only(fake_kafka_bin, tmp_path):
    bin_dir, log = fake_kafka_bin
    run = _run_init(bin_dir, tmp_path, "chirp pw-chirp\n# a comment\n\nsquawk pw-squawk\n")
    assert run.returncode == 0, run.stderr
    calls = log.read_text().splitlines()
    admin = "--bootstrap-server localhost:9095"
    assert all(admin in c for c in calls)
    acls = [c for c in calls if c.startswith("kafka-acls.sh")]
    chirp = [c for c in acls if "User:chirp" in c]
    assert len(chirp) == 1
    assert re.findall(r"--operation (\w+)", chirp[0]) == ["Write", "Describe"]
    assert re.findall(r"--topic (\S+)", chirp[0]) == [
        "amplimon.exposure.chirp",
        "amplimon.ranking.chirp",
    ]
    assert "prefixed" not in chirp[0] and "--group" not in chirp[0]
    assert any("User:amplimon" in c and "--topic amplimon." in c and "prefixed" in c for c in acls)
    scram = [c for c in calls if c.startswith("kafka-configs.sh")]
    assert [re.search(r"--entity-name (\S+)", c)[1] for c in scram] == [
        "amplimon",
        "chirp",
        "squawk",
    ]
    assert "password=pw-chirp]" in scram[1]
    assert "kafka-init: done (2 platform principals)" in run.stdout


def test_the_acl_job_refuses_a_bad_platform_line(fake_kafka_bin, tmp_path):
    bin_dir, _ = fake_kafka_bin
    run = _run_init(bin_dir, tmp_path, "Chirp*  \n")
    assert run.returncode == 2 and "bad line" in run.stderr


# -- make secrets ---------------------------------------------------------------------------------
def test_make_secrets_makes_a_ca_certificates_and_keys_that_work(made, tmp_path):
    ca = x509.load_pem_x509_certificate((made / "certs" / "ca.crt").read_bytes())
    keystore = (made / "secrets" / "kafka-keystore.pem").read_bytes()
    kafka = x509.load_pem_x509_certificates(keystore)[0]
    kafka.verify_directly_issued_by(ca)
    names = kafka.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"kafka", "localhost", "kafka.commission.example"} <= set(
        names.get_values_for_type(x509.DNSName)
    )
    assert kafka.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=365)
    dashboard = x509.load_pem_x509_certificates((made / "certs" / "dashboard.crt").read_bytes())
    dashboard[0].verify_directly_issued_by(ca)
    signing = serialization.load_pem_private_key(
        (made / "secrets" / "signing.key").read_bytes(), None
    )
    assert isinstance(signing, ed25519.Ed25519PrivateKey)
    key, _ = load_key(None, made / "secrets" / "pseudonym.key", tmp_path)
    assert len(key) >= 32
    assert len((made / "secrets" / "kafka-amplimon.password").read_text().strip()) >= 32
    assert (made / "secrets").stat().st_mode & 0o077 == 0  # the directory is private

    # a real TLS handshake: a client trusting only the CA reaches "kafka" over the keystore
    (tmp_path / "keystore.pem").write_bytes(keystore)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(tmp_path / "keystore.pem")
    client_ctx = ssl.create_default_context(cafile=str(made / "certs" / "ca.crt"))
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve() -> None:
            conn, _ = listener.accept()
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(b"ok")

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw_sock,
            client_ctx.wrap_socket(raw_sock, server_hostname="kafka") as tls,
        ):
            assert tls.recv(2) == b"ok"
        thread.join(10)


def test_make_secrets_keeps_what_exists_and_adds_platforms(made, tmp_path):
    copy = tmp_path / "deploy"
    shutil.copytree(made, copy)
    before = {p.name: p.read_bytes() for p in (copy / "secrets").iterdir()}
    script = [sys.executable, str(ROOT / "deploy" / "make_secrets.py"), "--dir", str(copy)]
    again = subprocess.run(
        [*script, "init", "--kafka-host", "other.example"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert again.returncode == 0 and "created" not in again.stdout
    assert {p.name: p.read_bytes() for p in (copy / "secrets").iterdir()} == before
    added = subprocess.run(
        [*script, "add-platform", "chirp"], capture_output=True, text=True, timeout=60, check=False
    )
    assert added.returncode == 0, added.stderr
    line = (copy / "secrets" / "kafka-platforms").read_text().splitlines()
    assert len(line) == 1 and line[0].split()[0] == "chirp" and line[0].split()[1] in added.stdout
    for bad in ("chirp", "Chirp!"):
        refused = subprocess.run(
            [*script, "add-platform", bad], capture_output=True, text=True, timeout=60, check=False
        )
        assert refused.returncode == 2 and refused.stderr.startswith("secrets: ")
        assert refused.stderr.count("\n") == 1


def test_the_heartbeat_healthcheck(tmp_path):
    from streams.kafka._heartbeat import Heartbeat, is_fresh

    path = tmp_path / "hb"
    assert not is_fresh(path)
    Heartbeat(path).beat()
    assert is_fresh(path, 60)
