"""dashboard.state: schema migrations from every earlier schema, private file modes."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import bcrypt
import pytest

from dashboard import migrations
from dashboard.auth import Auth
from dashboard.state import StateError, StateStore
from tests.dashboard.state_schemas import V0_UNVERSIONED

LATEST = migrations.MIGRATIONS[-1].version
T = "2026-05-04T12:00:00+00:00"


def fill(path: Path, version: int) -> None:
    """A state file as the release with schema ``version`` left it, with rows in every table
    that version had (version 0: before migrations existed)."""
    con = sqlite3.connect(path, isolation_level=None)
    if version == 0:
        con.executescript(V0_UNVERSIONED)
    else:
        migrations.migrate(con, migrations.MIGRATIONS[:version])
    pw = bcrypt.hashpw(b"correct horse", bcrypt.gensalt(4))
    con.execute("INSERT INTO users VALUES ('ana', 'analyst', ?, ?, 'cli', 0)", (pw, T))
    con.execute("INSERT INTO sessions VALUES ('abc', 'ana', ?, ?)", (T, T))
    con.execute(
        "INSERT INTO audit_log (finding_id, who, at, action, from_status, to_status, "
        "note) VALUES ('f1', 'ana', ?, 'acknowledge', 'new', 'acknowledged', 'seen')",
        (T,),
    )
    con.execute(
        "INSERT INTO exports (finding_id, who, at, manifest_sha256, bytes) "
        "VALUES ('f1', 'ana', ?, 'ab', 10)",
        (T,),
    )
    con.execute(
        "INSERT INTO registry_uploads (who, at, filename, sha256, text) "
        "VALUES ('ana', ?, 'r.yaml', 'cd', 'windows: []')",
        (T,),
    )
    if version < 2:
        con.execute("INSERT INTO login_attempts VALUES ('ana', 2, ?, NULL)", (T,))
    else:
        con.execute(
            "INSERT INTO login_failures VALUES ('account', 'ana', '1.2.3.4', 2, ?, NULL)", (T,)
        )
    con.close()


@pytest.mark.parametrize("version", range(LATEST))
def test_a_file_of_every_earlier_schema_opens_and_keeps_its_rows(
    tmp_path: Path, version: int
) -> None:
    path = tmp_path / "state.sqlite"
    fill(path, version)
    store = StateStore(path)
    assert store.version == LATEST and len(store.state_id) == 16
    with store.connect() as con:
        applied = [
            r[0] for r in con.execute("SELECT version FROM schema_migrations ORDER BY version")
        ]
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert applied == list(range(1, LATEST + 1))
    assert "login_failures" in tables and "login_attempts" not in tables
    auth = Auth(store, dummy_rounds=4)
    assert auth.login("ana", "correct horse", client="10.0.0.1").user is not None
    assert [e.note for e in store.history("f1")] == ["seen"]
    assert store.latest_statuses()["f1"].to_status == "acknowledged"
    assert store.exports("f1")[0]["manifest_sha256"] == "ab"
    assert store.latest_registry()["filename"] == "r.yaml"
    assert StateStore(path).state_id == store.state_id  # reopening changes nothing


def test_a_newer_schema_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    StateStore(path)
    with sqlite3.connect(path) as con:
        con.execute("INSERT INTO schema_migrations VALUES (99, 'future', ?)", (T,))
    with pytest.raises(StateError, match="written by a newer amplimon .schema version 99"):
        StateStore(path)


def test_processes_opening_an_old_file_at_once_migrate_it_once(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "state.sqlite"
    fill(path, 0)
    code = (
        "import sys; from dashboard.state import StateStore; print(StateStore(sys.argv[1]).version)"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(path)],
            cwd=Path(__file__).resolve().parents[2],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0 and out.strip() == str(LATEST), err
    with sqlite3.connect(path) as con:
        assert con.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == LATEST
        assert con.execute("SELECT count(*) FROM meta").fetchone()[0] == 1


def test_state_files_are_private(tmp_path: Path) -> None:
    path = tmp_path / "new" / "state.sqlite"
    store = StateStore(path)
    with store.connect(write=True) as con:  # while open, the WAL and shared memory exist
        con.execute("DELETE FROM sessions")
        for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    old = tmp_path / "old.sqlite"
    fill(old, 0)
    old.chmod(0o644)
    StateStore(old)
    assert stat.S_IMODE(old.stat().st_mode) == 0o600
