"""The live pipeline on one machine: embedded broker, topics, worker and sink as processes.

For ``amplimon demo`` and tests::

    with LiveStack(config="amplimon.yaml", db="out/amplimon.duckdb", work_dir="out") as stack:
        produce(stack.settings, [("exposure.jsonl.gz", "exposure"), ...], speed=600)
        ...  # the dashboard reads stack.snapshot_dir

The worker and the sink run as ``python -m monitor worker|sink`` child processes, each in its
own session, logging to ``<work_dir>/<name>.log``.  :meth:`LiveStack.stop` (also on leaving
the ``with`` block, and at interpreter exit) sends SIGTERM — the worker checkpoints and the
sink finishes its batch and snapshot — then SIGKILL after ``grace`` seconds, then stops the
broker.  On Linux the children also get SIGTERM if this process dies without cleaning up
(``PR_SET_PDEATHSIG``), so no orphans are left behind — the signal follows the *thread*
that started them, so start the stack from one that lives as long as it (the main thread).
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from pydantic import SecretStr

from streams.kafka._process import die_with_parent
from streams.kafka.broker import EmbeddedBroker
from streams.kafka.topics import create_topics
from streams.settings import Settings, env_name, load_settings
from streams.snapshot import default_snapshot_dir

__all__ = ["LiveStack", "Service"]


class Service:
    """One ``python -m monitor <args>`` child process."""

    def __init__(
        self, name: str, args: list[str], log_path: Path, env: dict[str, str] | None = None
    ) -> None:
        self.name = name
        self.args = args
        self.log_path = log_path
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.killed = False  # SIGKILLed on purpose: its exit status is no failure
        self._log: IO[bytes] | None = None

    def start(self) -> Service:
        self._log = self.log_path.open("ab")
        env = {**os.environ, **(self.env or {}), "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(  # noqa: S603  # our own interpreter and module
            [sys.executable, "-m", "monitor", *self.args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )  # noqa: PLW1509
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        if self.running:
            assert self.process is not None
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, grace: float = 15.0) -> int | None:
        """SIGTERM, wait up to ``grace`` s, then SIGKILL; returns the exit status."""
        proc = self.process
        if proc is None:
            return None
        self.signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL now (crash tests)."""
        self.killed = True
        self.signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""


class LiveStack:
    """Broker + topics + worker + sink; see the module docstring.

    ``settings`` supplies topic names, group id, partitions and security options (passed to
    the children as ``AMPLIMON_*`` variables); ``bootstrap`` uses a running broker instead
    of starting the embedded one.
    """

    def __init__(
        self,
        config: str | Path,
        db: str | Path,
        work_dir: str | Path,
        *,
        settings: Settings | None = None,
        bootstrap: str | None = None,
        port: int | None = None,
        snapshot_dir: str | Path | None = None,
        checkpoint_seconds: float = 2.0,
        fast_rebalance: bool = True,
        workers: int = 1,
        worker_args: tuple[str, ...] = (),
        sink_args: tuple[str, ...] = (),
        merge_args: tuple[str, ...] = (),
    ) -> None:
        self.config = Path(config)
        self.db = Path(db)
        self.work_dir = Path(work_dir)
        self.base_settings = settings or load_settings(partitions=3)
        self.port = port
        self.snapshot_dir = Path(snapshot_dir) if snapshot_dir else default_snapshot_dir(db)
        self.checkpoint_seconds = checkpoint_seconds
        self.workers = workers
        self.fast_rebalance = fast_rebalance
        self.worker_args, self.sink_args = worker_args, sink_args  # e.g. --metrics-port P
        self.merge_args = merge_args
        self.broker: EmbeddedBroker | None = None
        self._bootstrap = bootstrap
        self.services: dict[str, Service] = {}

    @property
    def bootstrap(self) -> str:
        if self._bootstrap is not None:
            return self._bootstrap
        assert self.broker is not None, "stack not started"
        return self.broker.bootstrap

    @property
    def settings(self) -> Settings:
        update: dict[str, Any] = {
            "broker": self.bootstrap,
            "config": str(self.config),
            "db": str(self.db),
            "snapshot_dir": str(self.snapshot_dir),
            "checkpoint_seconds": self.checkpoint_seconds,
        }
        if "data_dir" not in self.base_settings.model_fields_set:
            update["data_dir"] = str(self.work_dir)  # the pseudonymisation key lives there
        return self.base_settings.model_copy(update=update)

    def env(self) -> dict[str, str]:
        """The settings as the ``AMPLIMON_*`` variables the children read."""
        values = self.settings.model_dump()
        return {
            env_name(k): str(v.get_secret_value() if isinstance(v, SecretStr) else v)
            for k, v in values.items()
            if v is not None
        }

    def _timeouts(self) -> list[str]:
        return ["--session-timeout", "6"] if self.fast_rebalance else []

    def start(self) -> LiveStack:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        atexit.register(self.stop)
        try:
            if self._bootstrap is None:
                self.broker = EmbeddedBroker(self.port, log_file=self.work_dir / "broker.log")
                self.broker.start()
            create_topics(self.settings)
            for _ in range(self.workers):
                self.start_worker()
            self.start_merge()
            self.start_sink()
        except BaseException:
            self.stop()
            raise
        return self

    def start_worker(self, *extra: str, name: str | None = None) -> Service:
        """Another stage-one worker (``worker``, ``worker-2``, … unless named)."""
        if name is None:  # the first name free (never used, or its process has ended)
            names = ("worker" if i == 1 else f"worker-{i}" for i in range(1, 1000))
            name = next(n for n in names if n not in self.services or not self.services[n].running)
        return self._start(name, ["worker", *self._timeouts(), *self.worker_args, *extra])

    def start_merge(self, *extra: str) -> Service:
        return self._start("merge", ["merge", *self._timeouts(), *self.merge_args, *extra])

    def start_sink(self, *extra: str) -> Service:
        return self._start("sink", ["sink", *self._timeouts(), *self.sink_args, *extra])

    def _start(self, name: str, args: list[str]) -> Service:
        old = self.services.get(name)
        if old is not None and old.running:
            raise RuntimeError(f"{name} is already running")
        service = Service(name, args, self.work_dir / f"{name}.log", self.env())
        self.services[name] = service.start()
        return service

    def wait_for(
        self, predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.2
    ) -> None:
        """Poll ``predicate`` until true; raises TimeoutError naming ``what`` and the logs."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            for s in self.services.values():
                if s.killed:
                    continue  # stopped on purpose (a fault test)
                if s.process is not None and s.process.poll() not in (None, 0):
                    raise RuntimeError(
                        f"{s.name} exited with {s.process.returncode}:\n{s.log_text()[-3000:]}"
                    )
            time.sleep(interval)
        logs = "\n".join(f"--- {s.name}\n{s.log_text()[-2000:]}" for s in self.services.values())
        raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}\n{logs}")

    def stop(self, grace: float = 15.0) -> None:
        # workers first, then stage two, then the sink: each one's last outputs reach the next
        order = sorted(self.services, key=lambda n: (not n.startswith("worker"), n != "merge", n))
        for name in order:
            self.services[name].stop(grace)
        if self.broker is not None:
            self.broker.stop()
            self.broker = None
        atexit.unregister(self.stop)

    def __enter__(self) -> LiveStack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
