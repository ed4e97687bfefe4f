"""Pseudonymisation at ingest: the keyed hash, the key's life cycle, scrubbing of dead
letters, and end to end — no raw user key in DuckDB, the audit report or an evidence pack."""

from __future__ import annotations

import hashlib
import pickle
import re
import stat
import threading
from pathlib import Path

import msgspec
import pytest

from monitor.app.replay import replay
from monitor.cli import main
from monitor.core.privacy import Pseudonymiser, PseudonymKeyError, load_key, load_pseudonymiser
from streams.memory import ListOutput
from streams.settings import Settings
from tests.factories import exposure
from tests.privacy_support import duckdb_texts, leaks, raw_users

KEY = b"0123456789abcdef0123456789abcdef"


def hmac_sha256_by_definition(key: bytes, msg: bytes) -> str:
    """RFC 2104 from the hash alone: H((K ⊕ opad) ‖ H((K ⊕ ipad) ‖ m))."""
    block = key.ljust(64, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in block) + msg).digest()
    return hashlib.sha256(bytes(b ^ 0x5C for b in block) + inner).hexdigest()


# -- the keyed hash ------------------------------------------------------------------------
@pytest.mark.parametrize("user", ["u1", "alice@example.org", "ユーザー", "𝔲𝔰𝔢𝔯", "x" * 512])
def test_pseudonym_is_the_truncated_hmac(user: str) -> None:
    want = "u_" + hmac_sha256_by_definition(KEY, user.encode())[:32]
    assert Pseudonymiser(KEY)(user) == want


def test_same_user_same_pseudonym_only_under_the_same_key() -> None:
    a, b = Pseudonymiser(KEY), Pseudonymiser(KEY[::-1])
    assert a("u1") == a("u1") != a("u2")
    assert a("u1") != b("u1") and a.key_id != b.key_id


def test_key_is_never_serialised_or_shown() -> None:
    p = Pseudonymiser(KEY)
    with pytest.raises(TypeError, match="never serialised"):
        pickle.dumps(p)
    assert KEY.decode() not in repr(p) and p.key_id in repr(p)


def test_short_key_is_refused() -> None:
    with pytest.raises(PseudonymKeyError, match="too short: 5 bytes"):
        Pseudonymiser(b"short")


# -- where the key comes from --------------------------------------------------------------
def test_key_from_environment_text(tmp_path: Path) -> None:
    key, source = load_key("k" * 40, None, tmp_path)
    assert key == b"k" * 40 and source == "AMPLIMON_PSEUDONYM_KEY"
    assert not (tmp_path / "pseudonym.key").exists()


def test_key_from_file(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("f" * 64 + "\n")
    path.chmod(0o600)
    assert load_key(None, path, tmp_path / "data") == (b"f" * 64, str(path))


def test_missing_or_short_key_file_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(PseudonymKeyError, match=r"key file .*nope does not exist"):
        load_key(None, tmp_path / "nope", tmp_path)
    short = tmp_path / "short"
    short.write_text("abc")
    with pytest.raises(PseudonymKeyError, match="too short: 3 bytes") as err:
        load_key(None, short, tmp_path)
    assert "\n" not in str(err.value)


def test_default_key_file_is_created_private_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    key, source = load_key(None, None, data)
    path = data / "pseudonym.key"
    assert source.startswith(str(path)) and "created" in source
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(key) == 64
    assert load_key(None, None, data) == (key, str(path))  # reused, not replaced


def test_processes_racing_to_create_the_key_agree(tmp_path: Path) -> None:
    keys: list[bytes] = []
    barrier = threading.Barrier(8)

    def load() -> None:
        barrier.wait()
        keys.append(load_key(None, None, tmp_path)[0])

    threads = [threading.Thread(target=load) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(keys) == 8 and len(set(keys)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["pseudonym.key"]  # no temp files left


def test_settings_hide_the_key() -> None:
    s = Settings(pseudonym_key="s" * 40, sasl_password="hunter2")  # noqa: S106
    assert "s" * 40 not in repr(s) and "hunter2" not in repr(s)
    assert load_pseudonymiser(s).key_id == Pseudonymiser(b"s" * 40).key_id


# -- scrubbing raw text ----------------------------------------------------------------------
def test_scrub_replaces_every_user_member_of_a_json_object() -> None:
    p = Pseudonymiser(KEY)
    raw = msgspec.json.encode({"user": "alice", "meta": {"user": 42}, "items": [{"user": None}]})
    out = msgspec.json.decode(p.scrub(raw.decode()))
    assert out == {"user": p("alice"), "meta": {"user": p("42")}, "items": [{"user": p("null")}]}


@pytest.mark.parametrize(
    "raw",
    [
        '{"event_id": "e1", "user": "alice", "ts": ',  # truncated JSON
        '{"event_id": "e1", "user": "alice',  # cut inside the value
        'garbage "user" : "alice" more garbage',  # not JSON at all
        '{"user": "al\\"ice", "x": [' + "[" * 5000,  # escaped quote, deep nesting
        '{"user": alice}',  # bare token
    ],
)
def test_scrub_replaces_users_in_broken_text(raw: str) -> None:
    p = Pseudonymiser(KEY)
    out = p.scrub(raw)
    assert "alice" not in out and 'al\\"ice' not in out and '"u_' in out


def test_scrub_leaves_text_without_users_alone() -> None:
    assert Pseudonymiser(KEY).scrub('{"event_id": "x", "users": 3}') == (
        '{"event_id": "x", "users": 3}'
    )


def test_reason_about_the_user_field_loses_the_value() -> None:
    p = Pseudonymiser(KEY)
    assert p.scrub_reason("exposure.user: expected string, got 12345") == (
        "exposure.user: expected string"
    )
    assert p.scrub_reason("exposure.position: expected integer >= 1, got 0") == (
        "exposure.position: expected integer >= 1, got 0"
    )


# -- the engine -------------------------------------------------------------------------------
def test_engine_hands_detectors_pseudonyms_and_scrubs_dead_letters(tmp_path: Path) -> None:
    from monitor.engine.run import Engine
    from tests.factories import config

    out = ListOutput()
    p = Pseudonymiser(KEY)
    seen: list[str] = []
    eng = Engine(
        config(),
        out,
        now_ms=lambda: 4_000_000_000_000,
        pseudonymiser=p,
        on_tick=lambda tick, _: seen.extend(e.user for e in tick.exposures),
    )
    good = exposure(user="alice")
    eng.ingest("exposure", msgspec.json.encode(good), source="t")
    eng.ingest("exposure", msgspec.json.encode({**exposure(user="bob"), "position": 0}), source="t")
    eng.ingest("exposure", msgspec.json.encode({**exposure(), "user": 987654321}), source="t")
    eng.close()
    assert seen == [p("alice")]
    texts = [d.raw + d.reason for d in out.dead]
    assert len(texts) == 2 and not leaks(texts, {"bob", "987654321"})
    assert p("bob") in texts[0]


def test_a_checkpoint_does_not_resume_under_another_key() -> None:
    from monitor.engine.run import Engine
    from tests.factories import config

    cfg = config()
    state = Engine(cfg, ListOutput(), pseudonymiser=Pseudonymiser(KEY)).snapshot()
    assert KEY not in state
    Engine(cfg, ListOutput(), pseudonymiser=Pseudonymiser(KEY)).restore(state)
    with pytest.raises(ValueError, match="pseudonymisation key"):
        Engine(cfg, ListOutput(), pseudonymiser=Pseudonymiser(KEY[::-1])).restore(state)


# -- end to end ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The demo election (faults injected: malformed lines, duplicates, late events)."""
    from streams.simulator import scenario, write_simulation

    out = tmp_path_factory.mktemp("privacy-sim")
    paths = write_simulation(out, scenario("demo", seed=3, scale=0.15), fmt="jsonl.gz")
    return {k: Path(v) for k, v in paths.items()}


def test_replay_cli_writes_no_raw_user_key_and_keeps_its_key_outside(
    sim: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("AMPLIMON_DATA_DIR", str(data))
    db = tmp_path / "o.duckdb"
    assert (
        main(
            [
                "replay",
                "--config",
                str(sim["config"]),
                "--db",
                str(db),
                "--exposure",
                str(sim["exposure"]),
                "--ranking",
                str(sim["ranking"]),
                "--no-progress",
            ]
        )
        == 0
    )
    users = raw_users([sim["exposure"], sim["ranking"]])
    assert len(users) > 400
    texts = duckdb_texts(db)
    assert not leaks(texts, users)
    key = (data / "pseudonym.key").read_bytes().strip()
    assert key not in db.read_bytes()
    # dead letters carry the same pseudonyms the detectors counted under
    p = Pseudonymiser(key)
    dead = [t for t in texts if '"user"' in t]
    assert dead, "the simulation injects malformed records that name a user"
    assert any(p(u) in t for t in dead for u in users)


def test_audit_report_and_evidence_pack_hold_no_raw_user_key(
    sim: dict[str, Path], tmp_path: Path
) -> None:
    import zipfile
    from io import BytesIO

    from dashboard import pack
    from dashboard.data import open_source
    from monitor.app.audit import run_audit
    from monitor.core.config import load_config
    from monitor.core.signing import SigningKey

    db = tmp_path / "a.duckdb"
    result = run_audit(
        sim["config"],
        [sim["exposure"]],
        [sim["ranking"]],
        tmp_path / "r.html",
        db=db,
        show_progress=False,
    )
    users = raw_users([sim["exposure"], sim["ranking"]])
    html = result.html_path.read_text(encoding="utf-8")
    assert not leaks([html], users)
    assert not re.search(r"\bu_[0-9a-f]{32}\b", html)  # aggregates only: not even pseudonyms
    snap = open_source(db).load()
    assert len(snap.findings) > 0
    config = load_config(sim["config"])
    key = SigningKey.generate()
    for row in snap.findings.to_dict("records")[:5]:
        built = pack.build_pack(
            row,
            snap.amplification,
            config,
            key=key,
            config_text=sim["config"].read_text(encoding="utf-8"),
        )
        with zipfile.ZipFile(BytesIO(built.data)) as zf:
            texts = [
                zf.read(n).decode("utf-8", "replace")
                for n in zf.namelist()
                if not n.endswith((".png", ".parquet"))
            ]
        assert not leaks(texts, users)


def test_replay_library_default_key_is_per_process(sim: dict[str, Path], tmp_path: Path) -> None:
    """Without a key (library use), a random one still keeps raw keys out of the store."""
    from monitor.core.config import load_config

    db = tmp_path / "lib.duckdb"
    replay(load_config(sim["config"]), db, [sim["exposure"]], [sim["ranking"]], show_progress=False)
    assert not leaks(duckdb_texts(db), raw_users([sim["exposure"], sim["ranking"]]))
