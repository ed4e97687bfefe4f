"""Fixtures of the live-pipeline tests: a small simulated election, its replay reference, and
one embedded broker for the session (each test gets its own topics and groups)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.app.replay import replay
from monitor.core.store import Store
from streams.settings import Settings
from tests.streams.kafka.kafka_support import GARBAGE, Simulation, Tables, read_tables

_names = itertools.count(1)


@pytest.fixture(scope="session")
def simulation(tmp_path_factory: pytest.TempPathFactory) -> Simulation:
    """The simulator's ``demo`` election at a quarter of its users (~21 k records, every
    finding kind, duplicates, malformed lines, late deliveries within the allowance)."""
    from streams.simulator import scenario, write_simulation

    out = tmp_path_factory.mktemp("sim")
    paths = write_simulation(out, scenario("demo", seed=1, scale=0.25), fmt="jsonl.gz")
    return Simulation(out, Path(paths["exposure"]), Path(paths["ranking"]), Path(paths["config"]))


@pytest.fixture(scope="session")
def reference(simulation: Simulation, tmp_path_factory: pytest.TempPathFactory) -> Tables:
    """``amplimon replay`` of the simulation: what the live pipeline must reproduce."""
    db = tmp_path_factory.mktemp("ref") / "replay.duckdb"
    replay(simulation.config, db, [simulation.exposure], [simulation.ranking], show_progress=False)
    with Store(db) as store:
        return read_tables(store.con)


@pytest.fixture(scope="session")
def broker() -> Iterator[Any]:
    from streams.kafka.broker import EmbeddedBroker

    with EmbeddedBroker() as b:
        yield b


@pytest.fixture
def make_settings(broker: Any) -> Callable[..., Settings]:
    """Settings on the session broker with topic names and a group of their own."""

    def make(**overrides: Any) -> Settings:
        n = next(_names)
        prefix = f"t{n}"
        fields: dict[str, Any] = {
            "broker": broker.bootstrap,
            "partitions": 3,
            "group_id": f"{prefix}-amplimon",
            "checkpoint_seconds": 1.0,
            **{
                f"topic_{t}": f"{prefix}.{t}"
                for t in (
                    "exposure",
                    "ranking",
                    "findings",
                    "deadletter",
                    "measurements",
                    "detectability",
                    "state",
                    "partials",
                    "panel",
                )
            },
        }
        fields.update(overrides)
        return Settings(**fields)

    return make


@pytest.fixture(scope="session")
def loaded_inputs(broker: Any, simulation: Simulation) -> dict[str, str]:
    """Input topics holding the simulation, then ``GARBAGE`` (alternating topics), then the
    end-of-stream markers — produced once, read by several tests with their own groups."""
    from streams.kafka.producer import make_producer, produce, send_end_of_stream
    from streams.kafka.topics import create_topics

    topics = {
        "topic_exposure": "shared.exposure",
        "topic_ranking": "shared.ranking",
        "topic_panel": "shared.panel",
    }
    settings = Settings(broker=broker.bootstrap, partitions=3, **topics)
    create_topics(settings)
    produce(settings, simulation.files)
    producer = make_producer(settings)
    for i, junk in enumerate(GARBAGE):
        producer.send((settings.topic_exposure, settings.topic_ranking)[i % 2], value=junk)
    producer.flush()
    send_end_of_stream(
        producer, [settings.topic_exposure, settings.topic_ranking, settings.topic_panel]
    )
    producer.close()
    return topics
