"""Schema migrations: a database of every earlier schema opens, migrates in one transaction,
keeps its rows and takes every write; read-only openers refuse what they cannot read.

The fixtures are SQL text (``fixtures/store_v*.sql``): the DDL of ``monitor/core/store.py`` at the
commit that used it, verbatim, and rows that ``amplimon replay`` of that commit wrote."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from monitor.core.records import DeadLetter, Detectability, Finding, Measurement
from monitor.core.schema import LATEST, MIGRATIONS, SCHEMA, schema_version
from monitor.core.store import HISTORY_COLUMNS, Store, StoreError

FIXTURES = Path(__file__).parent / "fixtures"
T = dt.datetime(2026, 5, 4, 12, tzinfo=dt.UTC)
# fixture → (schema version it is, the commit whose store wrote it)
EARLIER = {"store_v1_660d228.sql": 1, "store_v2_0a05fa5.sql": 2, "store_v3_a949e77.sql": 3}


def old_database(tmp_path: Path, fixture: str) -> Path:
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    try:
        con.execute((FIXTURES / fixture).read_text(encoding="utf-8"))
    finally:
        con.close()
    return path


def rows(con: Any, table: str, columns: list[str] | None = None) -> list[tuple[Any, ...]]:
    cols = ", ".join(f'"{c}"::VARCHAR' for c in columns) if columns else "*"
    return con.execute(f"SELECT {cols} FROM {table} ORDER BY ALL").fetchall()  # noqa: S608


def columns(con: Any, table: str) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
            "ORDER BY ordinal_position",
            [table],
        ).fetchall()
    ]


def finding(**kw: Any) -> Finding:
    values = dict(
        detector="holdout_shift",
        kind="amplification",
        platform="chirp",
        region="DE",
        window_id="w",
        subject_kind="actor",
        subject="acc-1",
        effect=1.6,
        ci_low=1.2,
        ci_high=2.0,
        p_value=0.001,
        n_exposures=100,
        severity="high",
        event_time=T,
        evidence={"n": 1},
    )
    values.update(kw)
    return Finding.new(**values)


def every_write(store: Store) -> None:
    """One write of each kind the store has (each its own transaction)."""
    store.upsert_findings([finding()])
    store.upsert_measurements(
        [
            Measurement(
                platform="chirp",
                region="DE",
                window_id="w",
                period="window",
                subject_kind="actor",
                subject="a",
                ratio=1.2,
                ci_low=1.0,
                ci_high=1.4,
                reach_ratio=1.1,
                n_ranked=10,
                n_holdout=5,
                users_ranked=8,
                users_holdout=4,
            )
        ]
    )
    store.add_deadletters(
        [DeadLetter(source="t", raw="x" * 100_000, reason="too big", location="t:1")]
    )
    store.upsert_detectability(
        [
            Detectability(
                detector="holdout_shift",
                platform="chirp",
                region="DE",
                window_id="w",
                subject_kind="actor",
                subject="a",
                mde_up=1.5,
                mde_down=0.7,
                n_exposures=10,
                flagged=False,
            )
        ]
    )
    store.record_run("r-new", "test", T, {"n": 1})
    history: dict[str, list[Any]] = {c: [None] for c in HISTORY_COLUMNS}
    history.update(
        run_id=["r-new"],
        tick_end=[T],
        record=["finding"],
        platform=["chirp"],
        region=["DE"],
        window_id=["w"],
        subject_kind=["actor"],
        subject=["a"],
    )
    store.add_history(pa.table(history))


@pytest.mark.parametrize("fixture", sorted(EARLIER))
def test_an_earlier_database_migrates_keeps_its_rows_and_takes_every_write(
    tmp_path: Path, fixture: str
) -> None:
    path = old_database(tmp_path, fixture)
    con = duckdb.connect(str(path))
    before = {
        t: (columns(con, t), rows(con, t, columns(con, t)))
        for t in ("findings", "amplification", "deadletter", "detectability", "runs", "history")
        if columns(con, t)
    }
    assert schema_version(con) == EARLIER[fixture]
    recorded = (
        [v for (v,) in con.execute("SELECT version FROM schema_version ORDER BY 1").fetchall()]
        if "schema_version"
        in {
            r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        }
        else []
    )
    con.close()
    assert all(r for _, r in before.values())  # the fixture holds rows of every table

    with Store(path) as store:
        assert store.migrated == [m.version for m in MIGRATIONS if m.version > EARLIER[fixture]]
        assert schema_version(store.con) == LATEST
        for table, (cols, old) in before.items():  # every old row, every old column, intact
            assert rows(store.con, table, cols) == old, table
        raw, size, digest = store.query("SELECT raw, raw_bytes, raw_sha256 FROM deadletter")[0]
        assert (size, digest) == (len(raw.encode()), hashlib.sha256(raw.encode()).hexdigest())
        old_id, old_status = store.query("SELECT finding_id, status FROM findings LIMIT 1")[0]
        every_write(store)
        assert store.count("findings") == len(before["findings"][1]) + 1
        assert store.count("deadletter") == len(before["deadletter"][1]) + 1
        assert store.count("detectability") == len(before.get("detectability", ("", []))[1]) + 1
        # an update of a row the old release wrote keeps its triage status
        row = dict(
            zip(
                columns(store.con, "findings"),
                store.query("SELECT * FROM findings WHERE finding_id = ?", [old_id])[0],
                strict=True,
            )
        )
        store.upsert_findings(
            [
                Finding(
                    **{f: row[f] for f in Finding.__struct_fields__ if f != "evidence"},
                    evidence={"updated": True},
                )
            ]
        )
        assert store.query(
            "SELECT status, evidence->>'$.updated' FROM findings WHERE finding_id = ?", [old_id]
        ) == [(old_status, "true")]
    with Store(path) as store:  # opened again: nothing left to migrate
        assert store.migrated == []
        assert [v for (v,) in store.query("SELECT version FROM schema_version ORDER BY 1")] == [
            *recorded,
            *(m.version for m in MIGRATIONS if m.version > EARLIER[fixture]),
        ]


def test_the_migrations_of_an_empty_database_build_exactly_the_schema() -> None:
    """A new database gets SCHEMA in one step; an old one gets it migration by migration:
    both must end with the same tables, columns, types and keys."""

    def shape(con: Any) -> list[tuple[Any, ...]]:
        cols = con.execute(
            "SELECT table_name, column_name, data_type, is_nullable, "
            "column_default FROM information_schema.columns "
            "ORDER BY ALL"
        ).fetchall()
        keys = con.execute(
            "SELECT table_name, constraint_type, constraint_column_names::VARCHAR "
            "FROM duckdb_constraints() WHERE constraint_type = 'PRIMARY KEY' "
            "ORDER BY ALL"
        ).fetchall()
        return cols + keys

    stepwise, direct = duckdb.connect(), duckdb.connect()
    for m in MIGRATIONS:
        stepwise.execute(m.sql)
    direct.execute(SCHEMA)
    assert shape(stepwise) == shape(direct)
    assert [m.version for m in MIGRATIONS] == list(range(1, LATEST + 1))


def test_read_only_openers_read_what_they_can_and_refuse_the_rest_in_one_line(
    tmp_path: Path,
) -> None:
    v2 = old_database(tmp_path, "store_v2_0a05fa5.sql")
    with Store(v2, read_only=True) as store:  # readers need nothing version 3 added
        assert store.query("SELECT count(*) FROM findings")[0][0] > 0
    (tmp_path / "v1").mkdir()
    v1 = old_database(tmp_path / "v1", "store_v1_660d228.sql")
    with pytest.raises(StoreError) as err:
        Store(v1, read_only=True)
    message = str(err.value)
    assert "schema version 1 is older than this amplimon reads (it needs version 2)" in message
    assert "\n" not in message

    newer = tmp_path / "newer.duckdb"
    Store(newer).close()
    con = duckdb.connect(str(newer))
    con.execute("INSERT INTO schema_version VALUES (?, 'from the future', now())", [LATEST + 1])
    con.close()
    for read_only in (True, False):
        with pytest.raises(StoreError) as err:
            Store(newer, read_only=read_only)
        assert f"schema version {LATEST + 1} is newer than this amplimon knows" in str(err.value)
        assert "\n" not in str(err.value)


def test_a_database_of_an_unknown_shape_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    """Findings as the bare contract lists them (no updated_at): the migration stops at the
    shape check, in one line, and rolls back everything it had done."""
    path = tmp_path / "odd.duckdb"
    con = duckdb.connect(str(path))
    con.execute((FIXTURES / "store_v2_0a05fa5.sql").read_text(encoding="utf-8"))
    con.execute("ALTER TABLE findings DROP COLUMN updated_at")
    con.close()
    with pytest.raises(StoreError) as err:
        Store(path)
    assert "table findings has no column updated_at" in str(err.value)
    con = duckdb.connect(str(path), read_only=True)
    assert schema_version(con) == 2 and "raw_bytes" not in columns(con, "deadletter")
    con.close()


def test_a_failed_write_names_its_cause_not_the_aborted_transaction(tmp_path: Path) -> None:
    with Store(tmp_path / "s.duckdb") as store:
        store.con.execute("DROP TABLE detectability")
        with pytest.raises(StoreError) as err:
            store.upsert_detectability(
                [
                    Detectability(
                        detector="d",
                        platform="p",
                        region="r",
                        window_id="w",
                        subject_kind="actor",
                        subject="s",
                        mde_up=None,
                        mde_down=None,
                        n_exposures=0,
                        flagged=False,
                    )
                ]
            )
    assert "detectability" in str(err.value) and "aborted" not in str(err.value)
