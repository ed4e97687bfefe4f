"""`amplimon demo`: the live demo starts every part, serves its dashboard on a free port, stops
them all (no orphans) and removes its temporary folder; its configuration raises no finding on
disclosed, correctly labelled accounts."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.app.replay import replay
from monitor.cli import main
from monitor.cli._demo import dashboard_port
from monitor.cli._live_demo import DEMO_PASSWORD, DEMO_USER, simulate_recent
from monitor.core.config import load_config
from monitor.core.store import Store


def _descendants(root: int) -> set[int]:
    """All live processes below ``root`` (by parent pid)."""
    parent: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, ppid in parent.items() if ppid in frontier} - found
        found |= frontier
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:200]
    except OSError:
        return "?"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port another program listens on (as a second dashboard would)."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def _serving(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=5) as r:
            return r.status == 200
    except OSError:
        return False


@pytest.mark.broker
def test_live_demo_runs_and_stops_cleanly_on_sigint(tmp_path: Path, taken_port: int) -> None:
    # The usual dashboard port is taken: the demo serves on another one and prints that one;
    # it works in a temporary folder, which is gone once it has stopped.
    env = {**os.environ, "TMPDIR": str(tmp_path), "AMPLIMON_DASHBOARD_PORT": str(taken_port)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor", "demo", "--speed", "3000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True
    )
    reader.start()
    work = None
    try:
        deadline = time.monotonic() + 120
        # ready = the dashboard is up and the producer runs; then wait for the sink's first
        # snapshot with measurements in it
        while time.monotonic() < deadline:
            work = next(tmp_path.glob("amplimon-demo-*"), work)
            ready = any("producing the simulated streams" in line for line in lines)
            if (
                ready
                and work is not None
                and (work / "amplimon.duckdb.snapshot" / "amplification.parquet").exists()
            ):
                break
            assert proc.poll() is None, "".join(lines)
            time.sleep(0.5)
        else:
            pytest.fail("demo not producing within 120 s:\n" + "".join(lines))
        children = _descendants(proc.pid)
        assert len(children) >= 4  # broker, worker, sink, dashboard
        url = next(line for line in lines if "dashboard: http://" in line)
        port = int(re.search(r"http://127\.0\.0\.1:(\d+)", url).group(1))
        assert port != taken_port and f"(port {taken_port} is in use)" in url, url
        assert "login commission / demo-password" in url
        assert _serving(port)
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:  # say what is still running, then fail
            alive = {pid: _cmdline(pid) for pid in [proc.pid, *children] if _alive(pid)}
            logs = {p.name: p.read_text(errors="replace")[-600:] for p in work.glob("*.log")}
            pytest.fail(
                f"demo still running 90 s after SIGINT; alive: {alive}\n"
                f"output:\n{''.join(lines)[-2000:]}\nlogs: {logs}"
            )
        reader.join(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = "".join(lines)
    assert proc.returncode == 0, out
    assert "Traceback" not in out
    assert [pid for pid in children if _alive(pid)] == []
    assert not _serving(port)
    assert list(tmp_path.glob("amplimon-demo-*")) == [], out  # the working folder is gone
    assert f"removed the working folder {work}" in out


def test_demo_refuses_an_explicit_port_that_is_taken(
    taken_port: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert main(["demo", "--port", str(taken_port)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"amplimon: Invalid value for --port: port {taken_port} is in use; choose "
        "another, or leave --port out to take a free one\n"
    )
    assert list(tmp_path.iterdir()) == []  # refused before anything was started or written


def test_demo_takes_the_next_free_port_when_the_usual_one_is_taken(
    taken_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AMPLIMON_DASHBOARD_PORT", str(taken_port))
    port, why = dashboard_port(None)
    assert port != taken_port and why == f"port {taken_port} is in use"
    with socket.socket() as s:  # and it is free indeed
        s.bind(("127.0.0.1", port))
    monkeypatch.setenv("AMPLIMON_DASHBOARD_PORT", str(port))
    assert dashboard_port(None) == (port, None)


def test_offline_demo_prints_findings_and_removes_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert main(["demo", "--offline", "--scenario", "undisclosed"]) == 0
    captured = capsys.readouterr()
    assert "undisclosed_intervention" in captured.out
    assert "explore: amplimon findings" not in captured.out  # it would name a removed file
    assert list(tmp_path.iterdir()) == []
    assert "removed the working folder" in captured.err


def test_dashboard_stops_on_sigterm_and_frees_its_port(tmp_path: Path) -> None:
    db = tmp_path / "amplimon.duckdb"
    Store(db).close()  # an empty store of record
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "monitor",
            "dashboard",
            "--data",
            str(db),
            "--port",
            str(port),
            "--state",
            str(tmp_path / "state.sqlite"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while not _serving(port):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
            time.sleep(0.25)
        processes = {proc.pid, *_descendants(proc.pid)}
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert [pid for pid in processes if _alive(pid)] == []
    assert not _serving(port)
    with socket.socket() as s:  # nothing listens there any more
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))


def test_readme_says_how_to_sign_in_to_the_demo_where_make_demo_is() -> None:
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text(encoding="utf-8")
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block, after = quick.split("```bash\n", 1)[1].split("```", 1)
    assert [line.split("#")[0].strip() for line in block.splitlines()] == ["make demo", "make test"]
    first_paragraph = after.strip().split("\n\n", 1)[0]
    assert "make demo" in first_paragraph
    assert f"`{DEMO_USER}`" in first_paragraph and f"`{DEMO_PASSWORD}`" in first_paragraph
    commands = readme.split("## Commands", 1)[1].split("\n## ", 1)[0]
    assert "`amplimon --version`" in commands


# -- the live demo's configuration (issue 11 item 3) ------------------------------------------
_FINDING_COLUMNS = (
    "finding_id, detector, kind, platform, region, window_id, subject_kind, "
    "subject, effect, ci_low, ci_high, p_value, n_exposures, severity, "
    "event_time, evidence"
)
_MICROS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


def _replayed(config: Path, paths: dict[str, Path], db: Path) -> list[tuple]:
    replay(load_config(config), db, [paths["exposure"]], [paths["ranking"]])
    with Store(db, read_only=True) as store:
        return store.query(f"SELECT {_FINDING_COLUMNS} FROM findings ORDER BY finding_id")


def _ms_rounding(text: str) -> str:
    """Every RFC 3339 time with microseconds rewritten as its millisecond rounding (half up)."""

    def rounded(match: re.Match[str]) -> str:
        t = dt.datetime.fromisoformat(match.group(0).replace("Z", "+00:00"))
        t = t.replace(microsecond=0) + dt.timedelta(milliseconds=(t.microsecond + 500) // 1000)
        return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    return _MICROS.sub(rounded, text)


def test_live_demo_config_raises_nothing_on_disclosed_labelled_accounts(tmp_path: Path) -> None:
    # The live demo shifts its simulated election to end just before the wall clock, whose
    # microseconds end up in every configured time; the engine works in milliseconds.  A
    # disclosure starting 0.869 ms after its window was never applied, and the disclosed,
    # correctly labelled media account got a MEDIUM "amplification" finding.
    now = dt.datetime(2026, 6, 1, 12, 0, 26, 402869, tzinfo=dt.UTC)
    paths = simulate_recent(tmp_path, "demo", 1, now=now)
    text = paths["config"].read_text(encoding="utf-8")
    assert _MICROS.search(text), "the demo's configured times carry microseconds"
    rows = _replayed(paths["config"], paths, tmp_path / "us.duckdb")

    truth = json.loads(paths["truth"].read_text(encoding="utf-8"))["interventions"]
    labelled = {
        (iv["subject_kind"], iv["subject"])
        for iv in truth
        if iv["disclosed"] and iv["unlabelled_share"] == 0
    }
    unlabelled = {
        (iv["subject_kind"], iv["subject"])
        for iv in truth
        if iv["disclosed"] and iv["unlabelled_share"] > 0
    }
    assert labelled and unlabelled  # the scenario has both
    wrong = [
        (r[1], r[2], r[7])
        for r in rows
        if (r[6], r[7]) in labelled or ((r[6], r[7]) in unlabelled and r[2] != "missing_label")
    ]
    assert wrong == []
    assert any(r[2] == "missing_label" and (r[6], r[7]) in unlabelled for r in rows)

    # ... and exactly the findings of the same configuration rounded to milliseconds
    rounded = tmp_path / "rounded.yaml"
    rounded.write_text(_ms_rounding(text), encoding="utf-8")
    assert not _MICROS.search(rounded.read_text(encoding="utf-8"))
    assert _replayed(rounded, paths, tmp_path / "ms.duckdb") == rows
