"""The DuckDB store's schema and its migrations: one version number per schema change.

A database records its schema in ``schema_version`` — one row per migration applied
(``version``, ``description``, ``applied_at``); its version is the largest.  Databases
written before this table existed are recognised by their tables (version 1: the contract's
tables; version 2: plus ``detectability``).

* **Opened for writing** (:func:`migrate`): the missing migrations are applied in order, in
  **one transaction** with their ``schema_version`` rows — all of them or none (a failure
  leaves the file as it was and raises :class:`SchemaError`).  A new database gets
  :data:`SCHEMA` and every version at once.  Then every table is checked against
  :data:`SCHEMA` (names and types of columns): a database of another shape is refused in one
  line instead of failing at its first write.
* **Opened read-only** (:func:`check_readable`): nothing can change, so a database older
  than a migration that readers need (:attr:`Migration.readers_need`) is refused in one line,
  and so is one *newer* than this code knows (written by a later amplimon).

Adding a change: append a :class:`Migration` with the next version (its SQL must work on
the previous version's tables — DuckDB's ``ADD COLUMN IF NOT EXISTS`` / ``CREATE TABLE IF
NOT EXISTS`` forms), change :data:`SCHEMA` to the result, and add the previous schema as a
fixture of ``tests/monitor/core/test_store_migrations.py`` (which checks that the migrations of
an empty database give exactly :data:`SCHEMA`).  Never edit a migration that has shipped.

The optional ``history`` table (research replay) is created on first use
(:data:`HISTORY_SCHEMA`); a migration that changes it must check that it exists.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from typing import Final

import duckdb

from monitor.core.errors import AmplimonError

__all__ = [
    "HISTORY_SCHEMA",
    "LATEST",
    "MIGRATIONS",
    "SCHEMA",
    "TRIAGE_SCHEMA",
    "VERSION_TABLE",
    "Migration",
    "SchemaError",
    "check_readable",
    "migrate",
    "schema_version",
]

VERSION_TABLE: Final = "schema_version"


class SchemaError(AmplimonError, RuntimeError):
    """The database's schema cannot be used by this amplimon (one-line message)."""


@dataclass(frozen=True)
class Migration:
    """One schema change.

    Attributes:
        version: 1, 2, 3, … in order, never reused.
        description: What changed (stored in ``schema_version``).
        sql: Statements that turn the previous version's tables into this version's.
        readers_need: Whether this code's read-only readers need the change (a table or
            column they query): a database without it is refused by :func:`check_readable`.
    """

    version: int
    description: str
    sql: str
    readers_need: bool


_CONTRACT_TABLES = """
CREATE TABLE IF NOT EXISTS findings (
    finding_id   VARCHAR PRIMARY KEY,
    detector     VARCHAR NOT NULL,
    kind         VARCHAR NOT NULL,
    platform     VARCHAR NOT NULL,
    region       VARCHAR NOT NULL,
    window_id    VARCHAR NOT NULL,
    surface      VARCHAR,
    subject_kind VARCHAR NOT NULL,
    subject      VARCHAR NOT NULL,
    effect       DOUBLE,
    ci_low       DOUBLE,
    ci_high      DOUBLE,
    p_value      DOUBLE,
    n_exposures  BIGINT,
    severity     VARCHAR,
    event_time   TIMESTAMPTZ,
    detected_at  TIMESTAMPTZ,
    evidence     JSON,
    status       VARCHAR DEFAULT 'new',
    updated_at   TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS amplification (
    platform      VARCHAR NOT NULL,
    region        VARCHAR NOT NULL,
    window_id     VARCHAR NOT NULL,
    period        VARCHAR NOT NULL,
    subject_kind  VARCHAR NOT NULL,
    subject       VARCHAR NOT NULL,
    ratio         DOUBLE,
    ci_low        DOUBLE,
    ci_high       DOUBLE,
    reach_ratio   DOUBLE,
    n_ranked      BIGINT,
    n_holdout     BIGINT,
    users_ranked  BIGINT,
    users_holdout BIGINT,
    reach_ranked  BIGINT,
    reach_holdout BIGINT,
    computed_at   TIMESTAMPTZ,
    PRIMARY KEY (platform, region, window_id, period, subject_kind, subject)
);
CREATE TABLE IF NOT EXISTS deadletter (
    dl_id       VARCHAR PRIMARY KEY,
    source      VARCHAR,
    raw         VARCHAR,
    reason      VARCHAR,
    received_at TIMESTAMPTZ,
    location    VARCHAR
);
CREATE TABLE IF NOT EXISTS runs (
    run_id      VARCHAR PRIMARY KEY,
    command     VARCHAR,
    started_at  TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    info        JSON
);
"""

_DETECTABILITY = """
CREATE TABLE IF NOT EXISTS detectability (
    detector     VARCHAR NOT NULL,
    platform     VARCHAR NOT NULL,
    region       VARCHAR NOT NULL,
    window_id    VARCHAR NOT NULL,
    subject_kind VARCHAR NOT NULL,
    subject      VARCHAR NOT NULL,
    mde_up       DOUBLE,
    mde_down     DOUBLE,
    n_exposures  BIGINT,
    flagged      BOOLEAN,
    computed_at  TIMESTAMPTZ,
    PRIMARY KEY (detector, platform, region, window_id, subject_kind, subject)
);
"""

# Analysts' triage in the store of record (monitor/core/triagelog.py): one row per status change,
# keyed by the dashboard state file it came from and its number there.
_TRIAGE = """
CREATE TABLE IF NOT EXISTS triage (
    state_id    VARCHAR NOT NULL,
    seq         BIGINT NOT NULL,
    finding_id  VARCHAR NOT NULL,
    who         VARCHAR NOT NULL,
    triaged_at  TIMESTAMPTZ NOT NULL,
    action      VARCHAR NOT NULL,
    from_status VARCHAR NOT NULL,
    to_status   VARCHAR NOT NULL,
    note        VARCHAR NOT NULL,
    applied_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (state_id, seq)
);
"""

MIGRATIONS: Final[tuple[Migration, ...]] = (
    Migration(
        1,
        "contract tables: findings, amplification, deadletter, runs",
        _CONTRACT_TABLES,
        readers_need=True,
    ),
    Migration(2, "detectability: minimum detectable effects", _DETECTABILITY, readers_need=True),
    # Rows written before version 3 hold the whole record: their size and hash are exact.
    Migration(
        3,
        "deadletter.raw_bytes, raw_sha256: size and SHA-256 of the whole record (raw is bounded)",
        """
        ALTER TABLE deadletter ADD COLUMN IF NOT EXISTS raw_bytes BIGINT;
        ALTER TABLE deadletter ADD COLUMN IF NOT EXISTS raw_sha256 VARCHAR;
        UPDATE deadletter SET raw_bytes = strlen(raw), raw_sha256 = sha256(raw)
            WHERE raw IS NOT NULL AND raw_bytes IS NULL;
        """,
        readers_need=False,
    ),
    Migration(
        4,
        "triage: analysts' status changes (who, when, note) behind findings.status",
        _TRIAGE,
        readers_need=False,
    ),
)
LATEST: Final = MIGRATIONS[-1].version
TRIAGE_SCHEMA: Final = _TRIAGE

# The schema of a new database: every migration's result.  (Kept as one text so that the
# snapshot reader and the dashboard can create the tables, empty, in one statement.)
SCHEMA: Final = (
    _CONTRACT_TABLES.replace(
        "    location    VARCHAR\n",
        "    location    VARCHAR,\n    raw_bytes   BIGINT,\n    raw_sha256  VARCHAR\n",
    )
    + _DETECTABILITY
    + _TRIAGE
)

# Research replay (``--history``): every tick's statistics per subject — the measurement row
# of each cell the tick touched, and each finding update — stamped with the tick's end.
# Created on first use, so stores without history keep the contract's tables only.
HISTORY_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS history (
    run_id        VARCHAR NOT NULL,
    tick_end      TIMESTAMPTZ NOT NULL,
    record        VARCHAR NOT NULL,   -- 'measurement' or 'finding'
    platform      VARCHAR NOT NULL,
    region        VARCHAR NOT NULL,
    window_id     VARCHAR NOT NULL,
    period        VARCHAR,            -- measurement: 'baseline' or 'window'
    subject_kind  VARCHAR NOT NULL,
    subject       VARCHAR NOT NULL,
    detector      VARCHAR,            -- finding
    kind          VARCHAR,            -- finding
    finding_id    VARCHAR,            -- finding
    ratio         DOUBLE,             -- measurement
    reach_ratio   DOUBLE,             -- measurement
    effect        DOUBLE,             -- finding
    ci_low        DOUBLE,             -- bounds on ratio (measurement) or effect (finding)
    ci_high       DOUBLE,
    p_value       DOUBLE,             -- finding
    severity      VARCHAR,            -- finding
    n_exposures   BIGINT,             -- finding
    n_ranked      BIGINT,             -- measurement
    n_holdout     BIGINT,
    users_ranked  BIGINT,
    users_holdout BIGINT
);
"""

_VERSION_DDL = f"""
CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (
    version     INTEGER PRIMARY KEY,
    description VARCHAR NOT NULL,
    applied_at  TIMESTAMPTZ NOT NULL
);
"""


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
    ).fetchall()
    return {r[0] for r in rows}


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    """The database's schema version: the ``schema_version`` table's largest, else what its
    tables show (2 with ``detectability``, 1 with the contract's tables, 0 if empty)."""
    tables = _tables(con)
    if VERSION_TABLE in tables:
        row = con.execute(f"SELECT max(version) FROM {VERSION_TABLE}").fetchone()  # noqa: S608
        return int(row[0]) if row and row[0] is not None else 0
    if "detectability" in tables:
        return 2
    return 1 if tables & {"findings", "amplification", "deadletter", "runs"} else 0


@functools.cache
def _expected() -> dict[str, dict[str, str]]:
    """Table → column → type of :data:`SCHEMA` (from an empty in-memory database)."""
    con = duckdb.connect()
    try:
        con.execute(SCHEMA)
        return _columns(con)
    finally:
        con.close()


def _columns(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for table, column, kind in con.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'main' ORDER BY table_name, ordinal_position"
    ).fetchall():
        out.setdefault(table, {})[column] = kind
    return out


def _check_shape(con: duckdb.DuckDBPyConnection, path: str) -> None:
    """Every table of :data:`SCHEMA` has (at least) its columns, of its types."""
    found = _columns(con)
    for table, columns in _expected().items():
        have = found.get(table)
        if have is None:
            raise SchemaError(
                f"{path}: table {table} is missing: not an amplimon database of a known schema"
            )
        for column, kind in columns.items():
            if column not in have:
                raise SchemaError(
                    f"{path}: table {table} has no column {column}: not an "
                    "amplimon database of a known schema"
                )
            if have[column] != kind:
                raise SchemaError(
                    f"{path}: column {table}.{column} is {have[column]}, "
                    f"expected {kind}: not an amplimon database of a known "
                    "schema"
                )


def _newer(path: str, version: int) -> SchemaError:
    return SchemaError(
        f"{path}: schema version {version} is newer than this amplimon knows "
        f"(up to {LATEST}); it was written by a later release — upgrade "
        "amplimon to open it"
    )


def migrate(con: duckdb.DuckDBPyConnection, path: str) -> list[int]:
    """Bring the database to :data:`LATEST` (module docstring); returns the versions applied
    now (``[]`` if it was current).  Raises :class:`SchemaError`, changing nothing."""
    try:
        con.begin()
    except duckdb.Error as err:
        raise SchemaError(
            f"{path}: cannot open the database for writing ({_first_line(err)})"
        ) from None
    version = 0
    try:
        version = schema_version(con)
        if version > LATEST:
            raise _newer(path, version)
        pending = [m for m in MIGRATIONS if m.version > version]
        if version == 0:
            con.execute(SCHEMA)  # a new database: the result of every migration at once
        else:
            for m in pending:
                con.execute(m.sql)
        if pending:
            con.execute(_VERSION_DDL)
            for m in pending:
                con.execute(
                    f"INSERT INTO {VERSION_TABLE} VALUES (?, ?, now())",  # noqa: S608
                    [m.version, m.description],
                )
        _check_shape(con, path)
        con.commit()
    except BaseException as err:
        with contextlib.suppress(duckdb.Error):  # a failed commit has rolled back already
            con.rollback()
        if isinstance(err, duckdb.Error):
            raise SchemaError(
                f"{path}: cannot migrate the database from schema version "
                f"{version} to {LATEST}, nothing was changed "
                f"({_first_line(err)})"
            ) from None
        raise
    return [m.version for m in pending]


def check_readable(con: duckdb.DuckDBPyConnection, path: str) -> int:
    """The version of a database opened read-only, if this code can read it; else
    :class:`SchemaError` (newer than known, or older than a migration readers need)."""
    version = schema_version(con)
    if version > LATEST:
        raise _newer(path, version)
    needed = [m.version for m in MIGRATIONS if m.version > version and m.readers_need]
    if needed:
        raise SchemaError(
            f"{path}: schema version {version} is older than this amplimon "
            f"reads (it needs version {max(needed)}); any amplimon command "
            "that writes to it migrates it first"
        )
    if version == LATEST:
        _check_shape(con, path)
    return version


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
