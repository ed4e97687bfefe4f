"""Research replay, diff and export: the worked example of docs/for-researchers.md, run as
written — one simulated election replayed with ``--history`` under two configurations that
differ in one threshold (``detection.alpha`` 0.05 vs 0.0005), compared, and exported."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from monitor.app.research import diff_runs, export_parquet
from monitor.cli import main
from tests.monitor.app.audit.doc_example import run_worked_example

STATISTICAL = {"holdout_shift", "rank_uplift", "score_shift", "missing_label", "log_integrity"}


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("research-doc")
    done = run_worked_example("for-researchers.md", work)
    return {"dir": work, "out": done, "diff": json.loads((work / "diff.json").read_text())}


def rows(db: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_configurations_differ_in_one_threshold(example) -> None:
    a = (example["dir"] / "sim" / "amplimon.yaml").read_text().splitlines()
    b = (example["dir"] / "sim" / "strict.yaml").read_text().splitlines()
    changed = [(x, y) for x, y in zip(a, b, strict=True) if x != y]
    assert changed == [("  alpha: 0.05", "  alpha: 0.0005")]


def test_diff_stricter_alpha_only_removes_or_delays_findings(example) -> None:
    d = example["diff"]
    summary = d["summary"]
    assert summary["new"] == 0
    assert summary["gone"] + summary["changed"] > 0, summary
    assert sum(summary.values()) == len(d["findings"])
    for f in d["findings"]:
        if f["status"] == "gone":
            assert f["detector"] in STATISTICAL, f
        if f["status"] in ("changed", "unchanged"):
            ta = dt.datetime.fromisoformat(f["a"]["event_time"])
            tb = dt.datetime.fromisoformat(f["b"]["event_time"])
            assert tb >= ta, f  # a higher e-value threshold is crossed no earlier
        if f["detector"] == "undisclosed_intervention":  # a logged fact: spends no alpha
            assert f["status"] == "unchanged", f
    # The table output names what moved.
    text = example["out"].stdout
    assert "amplimon diff" in text and f"{summary['gone']} gone" in text


def test_history_tells_what_was_known_when(example) -> None:
    for name in ("a", "b"):
        db = example["dir"] / f"{name}.duckdb"
        # the last measurement of every subject equals the amplification table
        last = rows(
            db,
            """
            SELECT h.platform, h.window_id, h.period, h.subject_kind, h.subject,
                   h.n_ranked, h.n_holdout, h.users_ranked, h.users_holdout, h.ratio
            FROM history h WHERE record = 'measurement'
            QUALIFY row_number() OVER (PARTITION BY platform, window_id, period, subject_kind,
                                       subject ORDER BY tick_end DESC) = 1""",
        )
        table = rows(
            db,
            """SELECT platform, window_id, period, subject_kind, subject,
                                   n_ranked, n_holdout, users_ranked, users_holdout, ratio
                            FROM amplification""",
        )
        assert sorted(last, key=str) == sorted(table, key=str)
        # counts only grow, tick after tick
        assert (
            rows(
                db,
                """
            SELECT count(*) FROM (SELECT n_ranked - lag(n_ranked) OVER (
                PARTITION BY platform, window_id, period, subject_kind, subject
                ORDER BY tick_end) AS d FROM history WHERE record = 'measurement')
            WHERE d < 0""",
            )[0][0]
            == 0
        )
        # every finding has its updates; the first at (or after) its first crossing, the
        # last with the final numbers
        check = rows(
            db,
            """
            SELECT f.finding_id, f.detector, f.event_time, f.effect, min(h.tick_end),
                   count(h.tick_end), arg_max(h.effect, h.tick_end)
            FROM findings f LEFT JOIN history h
              ON h.finding_id = f.finding_id AND h.record = 'finding'
            GROUP BY f.finding_id, f.detector, f.event_time, f.effect""",
        )
        assert check
        for fid, detector, crossed, effect, first, n, last_effect in check:
            assert n > 0 and last_effect == effect, (fid, detector)
            assert first >= crossed, (fid, detector)
        info = json.loads(rows(db, "SELECT info FROM runs")[0][0])
        assert info["history_rows"] == rows(db, "SELECT count(*) FROM history")[0][0] > 0


def test_a_stricter_threshold_is_crossed_later_in_the_history(example) -> None:
    delayed = [
        f
        for f in example["diff"]["findings"]
        if f["status"] == "changed" and "event_time" in f["changes"]
    ]
    for f in delayed[:5]:
        first = {}
        for name in ("a", "b"):
            first[name] = rows(
                example["dir"] / f"{name}.duckdb",
                f"SELECT min(tick_end) FROM history WHERE finding_id = '{f['finding_id']}'",
            )[0][0]
        assert first["b"] > first["a"]


def test_export_writes_every_table(example) -> None:
    out = example["dir"] / "tables"
    db = example["dir"] / "b.duckdb"
    tables = [t for (t,) in rows(db, "SELECT table_name FROM information_schema.tables")]
    assert {"findings", "amplification", "deadletter", "detectability", "runs", "history"} <= set(
        tables
    )
    for t in tables:
        table = pq.read_table(out / f"{t}.parquet")
        assert table.num_rows == rows(db, f"SELECT count(*) FROM {t}")[0][0], t
    evidence = pq.read_table(out / "findings.parquet").column("evidence").to_pylist()
    assert all(isinstance(json.loads(e), dict) for e in evidence)


def test_diff_of_a_run_with_itself_is_unchanged(example) -> None:
    db = example["dir"] / "a.duckdb"
    d = diff_runs(db, db)
    assert d.summary["unchanged"] == len(d.entries) > 0


def test_diff_and_export_errors_are_one_line(example, tmp_path: Path, capsys) -> None:
    assert main(["diff", str(tmp_path / "nope.duckdb"), str(example["dir"] / "a.duckdb")]) == 2
    assert (
        main(["export", "--db", str(tmp_path / "nope.duckdb"), "--parquet", str(tmp_path / "x")])
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(e.startswith("amplimon: ") and "no such" in e for e in err)


def test_export_function_returns_row_counts(example, tmp_path: Path) -> None:
    written = export_parquet(example["dir"] / "a.duckdb", tmp_path / "t")
    assert written["history"] > 0 and (tmp_path / "t" / "history.parquet").exists()
