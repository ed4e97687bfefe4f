"""Disk faults under the store and its snapshots: a full disk, a read-only directory, a path
under a file, a read-only connection.  Each is one ``StoreError`` line (the CLI's
``amplimon: <problem>``, exit 2), and the files stay readable: every transaction committed
before the fault is there, the failed one is wholly absent, the previous snapshot unchanged.

A full disk is simulated with ``RLIMIT_FSIZE`` in a child process (SIGXFSZ ignored, so a
write past the limit fails with EFBIG, as it fails with ENOSPC on a full disk); a read-only
directory, since the tests may run as root, by a forked child that drops to ``nobody``."""

from __future__ import annotations

import datetime as dt
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.core.records import DeadLetter
from monitor.core.store import Store, StoreError
from streams.snapshot import SnapshotPublisher, publish_snapshot, read_snapshot

AT = dt.datetime(2026, 5, 4, 12, tzinfo=dt.UTC)
BATCH = 400


def dead_letters(batch: int, n: int = BATCH, size: int = 300) -> list[DeadLetter]:
    """``n`` rows of about ``size`` bytes of text that does not compress."""
    return [
        DeadLetter(
            source=f"batch-{batch}",
            raw=os.urandom(size // 2).hex(),
            reason="broken",
            location=f"{batch}:{i}",
            received_at=AT,
        )
        for i in range(n)
    ]


def file_size_limit(limit: int) -> Callable[[], None]:
    def preexec() -> None:  # in the child, before exec
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return preexec


def run_child(code: str, *args: str, limit: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,  # noqa: S603
        text=True,
        timeout=120,
        preexec_fn=file_size_limit(limit),  # noqa: PLW1509
        check=False,
        cwd=Path(__file__).parents[3],
    )


WRITER = f"""
import datetime as dt
import sys
from monitor.core.records import DeadLetter
from monitor.core.store import Store, StoreError
AT = dt.datetime(2026, 5, 4, 12, tzinfo=dt.UTC)
def dead_letters(batch, n={BATCH}, size=300):
    return [DeadLetter(source=f"batch-{{batch}}", raw=f"{{i:05d}}" + "x" * size,
                       reason="broken", location=f"{{batch}}:{{i}}", received_at=AT)
            for i in range(n)]
store = Store(sys.argv[1])
batch = 0
try:
    while True:
        store.add_deadletters(dead_letters(batch))
        batch += 1
except StoreError as err:
    print(batch)
    print(err)
    store.add_deadletters(dead_letters(10_000, n=1, size=0))  # a tiny one may still fit
    print("small write after the fault: ok")
finally:
    store.close()
"""


def test_full_disk_fails_one_batch_whole_and_keeps_every_committed_one(tmp_path):
    db = tmp_path / "full.duckdb"
    done = run_child(WRITER, str(db), limit=1 << 20)
    assert done.returncode == 0, done.stderr
    committed, message, after = done.stdout.splitlines()
    assert int(committed) >= 1
    assert "write failed, nothing of it was stored" in message and "File too large" in message
    assert after == "small write after the fault: ok"  # the failed commit left no debris
    with Store(db) as store:  # reopened without the limit: readable, nothing torn
        per_batch = dict(store.query("SELECT source, count(*) FROM deadletter GROUP BY 1"))
        store.add_deadletters(dead_letters(99))  # and writable again, with space
    assert per_batch == {**{f"batch-{b}": BATCH for b in range(int(committed))}, "batch-10000": 1}


def test_full_disk_while_publishing_leaves_the_previous_snapshot(tmp_path):
    db, snapshot = tmp_path / "s.duckdb", tmp_path / "s.duckdb.snapshot"
    with Store(db) as store:
        store.add_deadletters(dead_letters(0, n=50))
        publish_snapshot(store, snapshot)
        store.add_deadletters(dead_letters(1, n=1000, size=2000))  # ~2 MB of text
    before = {p.name: p.read_bytes() for p in snapshot.iterdir()}
    code = (
        "import sys\nfrom monitor.core.store import Store, StoreError\n"
        "from streams.snapshot import publish_snapshot\n"
        "with Store(sys.argv[1]) as store:\n"
        "    try:\n        publish_snapshot(store, sys.argv[2])\n"
        "    except StoreError as err:\n        print(err)\n"
    )
    done = run_child(code, str(db), str(snapshot), limit=256 << 10)
    assert done.returncode == 0, done.stderr
    message = done.stdout.strip()
    assert "cannot publish the snapshot" in message and "previous snapshot is unchanged" in message
    assert "\n" not in message
    assert {p.name: p.read_bytes() for p in snapshot.iterdir()} == before  # no temp file
    con = read_snapshot(snapshot)
    try:
        assert con.execute("SELECT count(*) FROM deadletter").fetchone()[0] == 50
    finally:
        con.close()


def test_publisher_removes_files_of_a_killed_writer(tmp_path):
    snapshot = tmp_path / "snap"
    snapshot.mkdir()
    (snapshot / ".findings.parquet.123.tmp").write_bytes(b"half a file")
    (snapshot / "findings.parquet").write_bytes(b"kept")
    with Store() as store:
        SnapshotPublisher(store, snapshot)
    assert sorted(p.name for p in snapshot.iterdir()) == ["findings.parquet"]


def test_database_under_a_file_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError) as err:
        Store(blocker / "sub" / "x.duckdb")
    assert "cannot open database" in str(err.value) and "Not a directory" in str(err.value)
    # the sink stops with that line before it contacts any broker
    assert main(["sink", "--db", str(blocker / "x.duckdb"), "--broker", "127.0.0.1:1"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and lines[-1].startswith("amplimon: ")  # "sink: <db> …", the error
    assert "Not a directory" in lines[-1]


def _as_nobody(action: Callable[[], str]) -> str:
    """``action()`` run by an unprivileged user: a forked child that drops root, or this
    process when the tests do not run as root (the directory is then read-only to us)."""
    if os.geteuid() != 0:
        return action()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover  # the child
        status = 1
        try:
            os.close(read)
            os.setgid(65534)
            os.setuid(65534)
            os.write(write, action().encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        out = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, out
    return out


def test_read_only_directory_and_file_are_one_line(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    with Store(ro / "existing.duckdb") as store:
        store.add_deadletters(dead_letters(0, n=3))
    os.chmod(tmp_path, 0o755)  # pytest's directories are private to their owner
    os.chmod(ro, 0o555)
    os.chmod(ro / "existing.duckdb", 0o444)

    def open_both() -> str:
        messages = []
        for name in ("new.duckdb", "existing.duckdb"):
            try:
                Store(ro / name).close()
                messages.append(f"{name}: opened")
            except StoreError as err:
                messages.append(str(err))
        return "\n".join(messages)

    try:
        new, existing = _as_nobody(open_both).splitlines()
    finally:
        os.chmod(ro, 0o755)
    assert "cannot open database" in new and "Permission denied" in new
    assert "cannot open database" in existing and "Permission denied" in existing
    with Store(ro / "existing.duckdb") as store:
        assert store.count("deadletter") == 3


def test_read_only_connection_refuses_writes_in_one_line(tmp_path):
    db = tmp_path / "x.duckdb"
    with pytest.raises(StoreError, match="cannot open database"):
        Store(db, read_only=True)  # nothing there to read
    Store(db).close()
    with Store(db, read_only=True) as store, pytest.raises(StoreError) as err:
        store.add_deadletters(dead_letters(0, n=1))
    assert "write failed" in str(err.value) and "\n" not in str(err.value)
