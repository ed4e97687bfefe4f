#!/usr/bin/env python3
"""The keys, passwords and certificates of the compose stack (``make secrets``).

::

    python deploy/make_secrets.py init [--dir deploy] [--kafka-host HOST] [--dashboard-host HOST]
    python deploy/make_secrets.py add-platform NAME [--dir deploy]

``init`` creates what ``docker-compose.yml`` names, **only what is missing** (re-running it
never replaces a key: a new pseudonymisation key would make every stored pseudonym and the
worker's checkpoint unusable):

=====================================  ==========================================  ==========
file                                   what                                        read by
=====================================  ==========================================  ==========
``certs/ca.crt``                       the deployment's CA (give it to platforms)  all
``secrets/ca.key``                     its private key (keep it offline after      —
                                       issuing)
``secrets/kafka-keystore.pem``         Kafka's TLS key (PKCS#8) + certificate for  kafka
                                       ``kafka``, ``localhost`` and ``--kafka-host``
``certs/dashboard.crt``,               the reverse proxy's TLS certificate for     proxy
``secrets/dashboard.key``              ``--dashboard-host`` and ``localhost``
``secrets/pseudonym.key``              HMAC key of user pseudonyms (64 hex chars)  worker,
                                                                                   archive
``secrets/signing.key``                Ed25519 key of evidence packs (PKCS#8 PEM)  dashboard
``secrets/kafka-amplimon.password``    SCRAM password of the ``amplimon`` service  amplimon
                                       principal                                   services
``secrets/kafka-platforms``            one line per platform principal:            kafka-init
                                       ``NAME PASSWORD`` (``add-platform``)
=====================================  ==========================================  ==========

``add-platform NAME`` adds a SCRAM principal for a platform (a new line of
``secrets/kafka-platforms``) and prints what to hand to the platform; ``docker compose up
kafka-init`` then creates its credential and its ACLs (it may write only
``amplimon.exposure.NAME`` and ``amplimon.ranking.NAME``).

**File ownership.**  Compose mounts secret files as they are on the host (it cannot change
owner or mode of a file secret), so each must be readable by the user its container runs as:
run as root (``sudo make secrets``), the script gives each file to that user (Kafka 1000,
amplimon 10001, the proxy root) with mode 0400; run as another user it leaves them 0644
inside the ``secrets/`` directory, which is 0700, and says so.

Keys: EC P-256 for TLS, Ed25519 for signing, ``secrets.token_hex`` for passwords and the
HMAC key; certificates valid ``--days`` (825) days, the CA ten years.  Needs the
``cryptography`` package (installed by ``make install``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import re
import secrets
import sys
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KAFKA_UID = 1000  # apache/kafka runs as appuser
AMPLIMON_UID = 10001  # deploy/Dockerfile's amplimon user
PROXY_UID = 0  # caddy runs as root
_PLATFORM = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class SecretsError(RuntimeError):
    """A one-line problem (the script prints it and exits 2)."""


def _pem_key(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "amplimon"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _san(hosts: list[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(h for h in hosts if h):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


class Deployment:
    """The files of one deployment directory (``deploy/`` by default)."""

    def __init__(
        self, root: Path, *, chown: bool | None = None, say: Callable[[str], None] = print
    ) -> None:
        self.root = root
        self.secrets = root / "secrets"
        self.certs = root / "certs"
        self.chown = os.geteuid() == 0 if chown is None else chown
        self.say = say

    # -- files ---------------------------------------------------------------------------
    def _write(self, path: Path, data: bytes, *, secret: bool, uid: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if secret:
            path.parent.chmod(0o700)
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        if not secret:
            tmp.chmod(0o644)
        elif self.chown:
            os.chown(tmp, uid, uid)
            tmp.chmod(0o400)
        else:
            tmp.chmod(0o644)  # readable by the container's user; the 0700 directory guards it
        os.replace(tmp, path)
        self.say(f"created {path}")

    def _missing(self, *paths: Path) -> bool:
        present = [p for p in paths if p.exists()]
        for p in present:
            self.say(f"kept    {p}")
        return not present

    # -- init ----------------------------------------------------------------------------
    def init(self, kafka_host: str, dashboard_host: str, days: int = 825) -> None:
        ca_key, ca_cert = self._ca()
        if self._missing(self.secrets / "kafka-keystore.pem"):
            key, cert = self._issue(
                ca_key, ca_cert, "kafka", ["kafka", "localhost", kafka_host], days
            )
            self._write(
                self.secrets / "kafka-keystore.pem",
                _pem_key(key) + _pem_cert(cert) + _pem_cert(ca_cert),
                secret=True,
                uid=KAFKA_UID,
            )
        if self._missing(self.secrets / "dashboard.key", self.certs / "dashboard.crt"):
            key, cert = self._issue(
                ca_key, ca_cert, dashboard_host, [dashboard_host, "localhost"], days
            )
            self._write(self.secrets / "dashboard.key", _pem_key(key), secret=True, uid=PROXY_UID)
            self._write(
                self.certs / "dashboard.crt",
                _pem_cert(cert) + _pem_cert(ca_cert),
                secret=False,
                uid=PROXY_UID,
            )
        if self._missing(self.secrets / "pseudonym.key"):
            self._write(
                self.secrets / "pseudonym.key",
                secrets.token_hex(32).encode() + b"\n",
                secret=True,
                uid=AMPLIMON_UID,
            )
        if self._missing(self.secrets / "signing.key"):
            self._write(
                self.secrets / "signing.key",
                _pem_key(ed25519.Ed25519PrivateKey.generate()),
                secret=True,
                uid=AMPLIMON_UID,
            )
        if self._missing(self.secrets / "kafka-amplimon.password"):
            self._write(
                self.secrets / "kafka-amplimon.password",
                secrets.token_hex(24).encode() + b"\n",
                secret=True,
                uid=AMPLIMON_UID,
            )
        if self._missing(self.secrets / "kafka-platforms"):
            self._write(self.secrets / "kafka-platforms", b"", secret=True, uid=KAFKA_UID)
        if not self.chown:
            self.say(
                f"note: not run as root, so the files in {self.secrets} are mode 0644 "
                "(the directory is 0700); run `sudo make secrets` on a fresh directory "
                "to give each only to the container user that reads it"
            )

    def _ca(self) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key_path, cert_path = self.secrets / "ca.key", self.certs / "ca.crt"
        if key_path.exists() and cert_path.exists():
            key = serialization.load_pem_private_key(key_path.read_bytes(), None)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise SecretsError(f"{key_path}: not an EC private key")
            self.say(f"kept    {key_path}")
            return key, x509.load_pem_x509_certificate(cert_path.read_bytes())
        if key_path.exists() or cert_path.exists():
            raise SecretsError(
                f"one of {key_path} and {cert_path} is missing: restore it, or "
                "remove the other to start a new CA (then every certificate "
                "must be issued again)"
            )
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name("amplimon CA"))
            .issuer_name(_name("amplimon CA"))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        self._write(key_path, _pem_key(key), secret=True, uid=0)
        self._write(cert_path, _pem_cert(cert), secret=False, uid=0)
        return key, cert

    @staticmethod
    def _issue(
        ca_key: ec.EllipticCurvePrivateKey,
        ca_cert: x509.Certificate,
        cn: str,
        hosts: list[str],
        days: int,
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(_san(hosts), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        return key, cert

    # -- platforms -----------------------------------------------------------------------
    def add_platform(self, name: str) -> str:
        """A new platform principal; returns its password."""
        if not _PLATFORM.match(name):
            raise SecretsError(
                f"platform name {name!r}: use lower-case letters, digits, - and "
                "_ (it becomes a principal and part of topic names)"
            )
        path = self.secrets / "kafka-platforms"
        if not path.exists():
            raise SecretsError(f"{path} does not exist: run `make secrets` first")
        lines = path.read_text(encoding="utf-8").splitlines()
        if any(line.split()[:1] == [name] for line in lines):
            raise SecretsError(f"platform {name} is already in {path}")
        password = secrets.token_hex(24)
        data = "".join(f"{line}\n" for line in [*lines, f"{name} {password}"]).encode()
        self._write(path, data, secret=True, uid=KAFKA_UID)
        return password


def _dotenv(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines of compose's ``.env`` (comments and blanks skipped)."""
    if not path.is_file():
        return {}
    pairs = (
        line.split("=", 1)
        for line in path.read_text(encoding="utf-8").splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    )
    return {k.strip(): v.split(" #", 1)[0].strip().strip("'\"") for k, v in pairs}


def main(argv: list[str] | None = None) -> int:
    here = Path(__file__).resolve().parent
    env = {**_dotenv(here.parent / ".env"), **os.environ}
    parser = argparse.ArgumentParser(
        description="Keys, passwords and certificates of the "
        "compose stack (see the module docstring)."
    )
    parser.add_argument(
        "--dir", type=Path, default=here, help="deployment directory (default: deploy/)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    init = sub.add_parser("init", help="create what is missing")
    init.add_argument(
        "--kafka-host",
        default=env.get("KAFKA_ADVERTISED_HOST", ""),
        help="the name platforms reach Kafka by (default: KAFKA_ADVERTISED_HOST "
        "from the environment or .env)",
    )
    init.add_argument(
        "--dashboard-host",
        default=env.get("AMPLIMON_DASHBOARD_HOST", "localhost"),
        help="the dashboard's name (default: AMPLIMON_DASHBOARD_HOST from the "
        "environment or .env, else localhost)",
    )
    init.add_argument("--days", type=int, default=825, help="certificate lifetime")
    add = sub.add_parser("add-platform", help="add a platform principal")
    add.add_argument("name")
    args = parser.parse_args(argv)
    deployment = Deployment(args.dir)
    try:
        if args.command == "init":
            if not args.kafka_host:
                raise SecretsError(
                    "give --kafka-host (or KAFKA_ADVERTISED_HOST in .env): the "
                    "name platforms reach Kafka by, written into its "
                    "certificate"
                )
            deployment.init(args.kafka_host, args.dashboard_host, args.days)
        else:
            password = deployment.add_platform(args.name)
            print(
                f"platform {args.name}: SASL_SSL, mechanism SCRAM-SHA-512, user {args.name}, "
                f"password {password}, CA {deployment.certs / 'ca.crt'}; topics "
                f"amplimon.exposure.{args.name} and amplimon.ranking.{args.name}.  Apply it: "
                "docker compose up kafka-init"
            )
    except (SecretsError, OSError, ValueError) as err:
        print(f"secrets: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
