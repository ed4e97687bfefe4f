"""`amplimon demo`: the live demo starts every part, and stops them all (no orphans)."""

from __future__ import annotations

import datetime as dt
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.cli._live_demo import simulate_recent
from monitor.config import load_config
from monitor.replay import replay
from monitor.store import Store


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


@pytest.mark.broker
def test_live_demo_runs_and_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    work = tmp_path / "demo"
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "demo", "--out", str(work),
                             "--port", str(port), "--speed", "3000"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")),
                              daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        # ready = the dashboard is up and the producer runs; then wait for the sink's first
        # snapshot with measurements in it
        while time.monotonic() < deadline:
            ready = any("producing the simulated streams" in line for line in lines)
            if ready and (work / "amplimon.duckdb.snapshot" / "amplification.parquet").exists():
                break
            assert proc.poll() is None, "".join(lines)
            time.sleep(0.5)
        else:
            pytest.fail("demo not producing within 120 s:\n" + "".join(lines))
        children = _descendants(proc.pid)
        assert len(children) >= 4  # broker, worker, sink, dashboard
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:  # say what is still running, then fail
            alive = {pid: _cmdline(pid) for pid in [proc.pid, *children] if _alive(pid)}
            logs = {p.name: p.read_text(errors="replace")[-600:] for p in work.glob("*.log")}
            pytest.fail(f"demo still running 90 s after SIGINT; alive: {alive}\n"
                        f"output:\n{''.join(lines)[-2000:]}\nlogs: {logs}")
        reader.join(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = "".join(lines)
    assert proc.returncode == 0, out
    assert "dashboard: http://127.0.0.1:" in out
    assert "Traceback" not in out
    assert [pid for pid in children if _alive(pid)] == []


def test_offline_demo_prints_findings(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                      ) -> None:
    assert main(["demo", "--offline", "--out", str(tmp_path), "--scenario", "undisclosed"]) == 0
    out = capsys.readouterr().out
    assert "undisclosed_intervention" in out
    assert (tmp_path / "amplimon.duckdb").exists()


# -- the live demo's configuration (issue 11 item 3) ------------------------------------------
_FINDING_COLUMNS = ("finding_id, detector, kind, platform, region, window_id, subject_kind, "
                    "subject, effect, ci_low, ci_high, p_value, n_exposures, severity, "
                    "event_time, evidence")
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
    labelled = {(iv["subject_kind"], iv["subject"]) for iv in truth
                if iv["disclosed"] and iv["unlabelled_share"] == 0}
    unlabelled = {(iv["subject_kind"], iv["subject"]) for iv in truth
                  if iv["disclosed"] and iv["unlabelled_share"] > 0}
    assert labelled and unlabelled  # the scenario has both
    wrong = [(r[1], r[2], r[7]) for r in rows if (r[6], r[7]) in labelled
             or ((r[6], r[7]) in unlabelled and r[2] != "missing_label")]
    assert wrong == []
    assert any(r[2] == "missing_label" and (r[6], r[7]) in unlabelled for r in rows)

    # ... and exactly the findings of the same configuration rounded to milliseconds
    rounded = tmp_path / "rounded.yaml"
    rounded.write_text(_ms_rounding(text), encoding="utf-8")
    assert not _MICROS.search(rounded.read_text(encoding="utf-8"))
    assert _replayed(rounded, paths, tmp_path / "ms.duckdb") == rows
