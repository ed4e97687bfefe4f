"""Kafka TLS and SASL settings reach both clients (kafka-python and aiokafka), and a real TLS
handshake with mutual authentication happens with them — against a local TLS endpoint that
records the handshake (the embedded broker speaks plaintext only)."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from streams.kafka._config import ConfigurationError, aiokafka_options, kafka_python_options
from streams.settings import Settings

PASSWORD = "correct horse battery staple"  # noqa: S105  # a test secret


# -- a throwaway CA, a server and a client certificate -------------------------------------
def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path


def _write(
    path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None = None
) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        path.with_suffix(".key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca_key, other_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    _write(d / "ca.pem", _cert("amplimon-test-ca", ca_key, "amplimon-test-ca", ca_key, ca=True))
    _write(d / "other-ca.pem", _cert("someone-else", other_key, "someone-else", other_key, ca=True))
    for who in ("server", "client"):
        key = ec.generate_private_key(ec.SECP256R1())
        _write(d / f"{who}.pem", _cert(f"amplimon-{who}", key, "amplimon-test-ca", ca_key), key)
    return Pki(
        d / "ca.pem",
        d / "server.pem",
        d / "server.key",
        d / "client.pem",
        d / "client.key",
        d / "other-ca.pem",
    )


# -- a TLS endpoint that records handshakes ----------------------------------------------------
@dataclass
class TlsEndpoint:
    port: int
    peers: list[str] = field(default_factory=list)  # client certificate CNs
    failures: list[str] = field(default_factory=list)
    first_bytes: list[bytes] = field(default_factory=list)


@pytest.fixture
def tls_endpoint(pki: Pki):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.server_cert, pki.server_key)
    ctx.load_verify_locations(pki.ca)
    ctx.verify_mode = ssl.CERT_REQUIRED  # mutual TLS: the client must show its certificate
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    endpoint = TlsEndpoint(server.getsockname()[1])
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            conn.settimeout(5)
            try:
                with ctx.wrap_socket(conn, server_side=True) as tls:
                    cert = tls.getpeercert() or {}
                    cn = dict(x[0] for x in cert.get("subject", ()))
                    endpoint.peers.append(cn.get("commonName", "?"))
                    endpoint.first_bytes.append(tls.recv(64))  # the client's first request
            except (ssl.SSLError, OSError) as err:
                endpoint.failures.append(type(err).__name__)
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield endpoint
    stop.set()
    thread.join(5)
    server.close()


def _settings(pki: Pki, port: int, *, ca: Path | None = None, **kw: object) -> Settings:
    fields: dict[str, object] = {
        "broker": f"127.0.0.1:{port}",
        "security_protocol": "SSL",
        "ssl_cafile": str(ca or pki.ca),
        "ssl_certfile": str(pki.client_cert),
        "ssl_keyfile": str(pki.client_key),
        **kw,
    }
    return Settings(**fields)


# -- options -----------------------------------------------------------------------------------
def test_plaintext_has_no_tls_or_sasl_options() -> None:
    opts = kafka_python_options(Settings(broker="a:1, b:2"))
    assert opts == {"bootstrap_servers": ["a:1", "b:2"], "security_protocol": "PLAINTEXT"}
    assert aiokafka_options(Settings(broker="a:1")) == {
        "bootstrap_servers": ["a:1"],
        "security_protocol": "PLAINTEXT",
    }


def test_sasl_ssl_options_reach_both_clients(pki: Pki) -> None:
    s = _settings(
        pki,
        9093,
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="amplimon",
        sasl_password=PASSWORD,
    )
    kp = kafka_python_options(s)
    assert kp["security_protocol"] == "SASL_SSL" and kp["ssl_cafile"] == str(pki.ca)
    assert (kp["ssl_certfile"], kp["ssl_keyfile"]) == (str(pki.client_cert), str(pki.client_key))
    assert (kp["sasl_mechanism"], kp["sasl_plain_username"], kp["sasl_plain_password"]) == (
        "SCRAM-SHA-512",
        "amplimon",
        PASSWORD,
    )
    ak = aiokafka_options(s)
    assert isinstance(ak["ssl_context"], ssl.SSLContext)
    assert ak["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    assert ak["sasl_plain_password"] == PASSWORD and ak["sasl_mechanism"] == "SCRAM-SHA-512"
    # and the secret does not show when settings are printed or dumped for a log
    assert PASSWORD not in repr(s) and PASSWORD not in s.model_dump_json()


def test_the_sasl_password_can_come_from_a_secret_file(tmp_path: Path) -> None:
    """Containers get the password as a secret file (AMPLIMON_SASL_PASSWORD_FILE)."""
    secret = tmp_path / "kafka-amplimon.password"
    secret.write_text(PASSWORD + "\n")
    s = Settings(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="amplimon",
        sasl_password_file=str(secret),
    )
    assert kafka_python_options(s)["sasl_plain_password"] == PASSWORD
    assert aiokafka_options(s)["sasl_plain_password"] == PASSWORD
    missing = Settings(
        security_protocol="SASL_SSL",
        sasl_username="amplimon",
        sasl_password_file=str(tmp_path / "nope"),
    )
    with pytest.raises(ConfigurationError) as err:
        kafka_python_options(missing)
    assert "cannot read the SASL password file" in str(err.value) and "\n" not in str(err.value)


def test_sasl_plain_is_the_default_mechanism() -> None:
    s = Settings(security_protocol="SASL_PLAINTEXT", sasl_username="u", sasl_password="p")
    assert kafka_python_options(s)["sasl_mechanism"] == "PLAIN"


# -- real handshakes ---------------------------------------------------------------------------
def _wait(predicate, what: str, timeout: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_kafka_python_does_mutual_tls_with_the_settings(
    pki: Pki, tls_endpoint: TlsEndpoint
) -> None:
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError

    opts = kafka_python_options(_settings(pki, tls_endpoint.port))
    with pytest.raises(KafkaError):  # the endpoint is not a broker: it hangs up after TLS
        KafkaConsumer(**opts, request_timeout_ms=3000, bootstrap_timeout_ms=2000)
    _wait(lambda: tls_endpoint.peers, "a TLS handshake")
    assert tls_endpoint.peers[0] == "amplimon-client"
    assert tls_endpoint.first_bytes[0], "the client spoke Kafka over the TLS channel"


def test_aiokafka_does_mutual_tls_with_the_settings(pki: Pki, tls_endpoint: TlsEndpoint) -> None:
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaError

    async def connect() -> None:
        producer = AIOKafkaProducer(
            **aiokafka_options(_settings(pki, tls_endpoint.port)), request_timeout_ms=3000
        )
        try:
            await producer.start()
        finally:
            await producer.stop()

    with pytest.raises(KafkaError):
        asyncio.run(connect())
    _wait(lambda: tls_endpoint.peers, "a TLS handshake")
    assert tls_endpoint.peers[0] == "amplimon-client"


def test_a_broker_certificate_from_another_ca_is_refused(
    pki: Pki, tls_endpoint: TlsEndpoint
) -> None:
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError

    opts = kafka_python_options(_settings(pki, tls_endpoint.port, ca=pki.other_ca))
    with pytest.raises(KafkaError):
        KafkaConsumer(**opts, request_timeout_ms=3000, bootstrap_timeout_ms=2000)
    _wait(lambda: tls_endpoint.failures, "the refused handshake")
    assert tls_endpoint.peers == []  # the client verified the server and hung up
