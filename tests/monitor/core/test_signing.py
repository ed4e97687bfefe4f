"""monitor.core.signing: the deployment's key (env, file, created 0600), fingerprints, trust;
``amplimon keys export``."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.core.signing import (
    KEY_FILE_NAME,
    PublicKey,
    SigningKey,
    SigningKeyError,
    existing_signing_key,
    fingerprint,
    load_public_keys,
    load_signing_key,
    signing_key_from,
    trusted_keys,
)
from streams.settings import load_settings


def test_default_key_is_created_once_0600_and_reused(tmp_path: Path) -> None:
    keys: list[SigningKey] = []
    threads = [
        threading.Thread(target=lambda: keys.append(load_signing_key(None, None, tmp_path)))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    path = tmp_path / KEY_FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len({k.public.raw for k in keys}) == 1  # racing processes all use one key
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert path.read_text().startswith("-----BEGIN PRIVATE KEY-----")


def test_key_from_env_text_and_from_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    created = load_signing_key(None, None, tmp_path, signer="Commission")
    pem = (tmp_path / KEY_FILE_NAME).read_text()
    from_env = load_signing_key(pem, None, tmp_path / "elsewhere")
    from_file = load_signing_key(None, tmp_path / KEY_FILE_NAME, tmp_path / "elsewhere")
    assert created.public.raw == from_env.public.raw == from_file.public.raw
    assert not (tmp_path / "elsewhere").exists()  # nothing created when a key is given
    monkeypatch.setenv("AMPLIMON_SIGNING_KEY", pem)
    monkeypatch.setenv("AMPLIMON_SIGNER", "Electoral Commission")
    key = signing_key_from(load_settings())
    assert key.public.raw == created.public.raw and key.signer == "Electoral Commission"
    assert pem.split("\n")[1] not in repr(key)
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(key)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not a key", "not an unencrypted PEM private key"),
        (None, "does not exist"),
    ],
)
def test_bad_key_files_are_one_line_errors(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "k.pem"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SigningKeyError, match=message):
        load_signing_key(None, path, tmp_path)


def test_a_non_ed25519_key_is_refused(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    with pytest.raises(SigningKeyError, match="not an Ed25519 key"):
        load_signing_key(pem, None, tmp_path)


def test_fingerprint_is_openssh_style() -> None:
    import base64
    import hashlib

    key = SigningKey.generate()
    fp = key.public.fingerprint
    assert fp == fingerprint(key.public.raw) and fp.startswith("SHA256:") and "=" not in fp
    assert base64.b64decode(fp[7:] + "=") == hashlib.sha256(key.public.raw).digest()


def test_signatures_verify_only_for_their_data_and_key() -> None:
    key, other = SigningKey.generate(), SigningKey.generate()
    sig = key.sign(b"manifest")
    assert key.public.verify(sig, b"manifest")
    assert not key.public.verify(sig, b"manifest!")
    assert not other.public.verify(sig, b"manifest")
    assert not key.public.verify(b"short", b"manifest")


def test_trusted_keys_from_file_dir_and_own_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = SigningKey.generate(), SigningKey.generate()
    both = tmp_path / "both.pem"
    both.write_text(a.public.pem() + b.public.pem())
    assert [k.raw for k in load_public_keys(both)] == [a.public.raw, b.public.raw]
    folder = tmp_path / "trusted"
    folder.mkdir()
    (folder / "a.pem").write_text(a.public.pem())
    (folder / "notes.txt").write_text("ignored")
    assert [k.raw for k in load_public_keys(folder)] == [a.public.raw]
    settings = load_settings()
    assert trusted_keys(settings) == []  # nothing configured, and no key is created
    assert existing_signing_key(settings) is None
    assert not (Path(settings.data_dir) / KEY_FILE_NAME).exists()
    monkeypatch.setenv("AMPLIMON_TRUSTED_KEYS", str(folder))
    own = signing_key_from(load_settings())  # now the deployment has a key
    assert [k.raw for k in trusted_keys(load_settings())] == [a.public.raw, own.public.raw]
    (folder / "bad.pem").write_text("-----BEGIN PUBLIC KEY-----\nxx\n-----END PUBLIC KEY-----\n")
    with pytest.raises(SigningKeyError, match="bad.pem: not a PEM public key"):
        trusted_keys(load_settings())


def test_keys_export(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AMPLIMON_SIGNER", "Electoral Commission")
    assert main(["keys", "export"]) == 0
    out, err = capsys.readouterr()
    (key,) = load_public_keys_text(out)
    assert err.startswith("public key of 'Electoral Commission': " + key.fingerprint)
    path = Path(os.environ["AMPLIMON_DATA_DIR"]) / KEY_FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert main(["keys", "export", "--out", str(tmp_path / "pub.pem")]) == 0
    assert [k.raw for k in load_public_keys(tmp_path / "pub.pem")] == [key.raw]
    assert "PRIVATE" not in (tmp_path / "pub.pem").read_text()
    capsys.readouterr()
    monkeypatch.setenv("AMPLIMON_SIGNING_KEY_FILE", str(tmp_path / "missing.pem"))
    assert main(["keys", "export"]) == 2
    assert capsys.readouterr().err == (
        f"amplimon: signing key file {tmp_path / 'missing.pem'} does not exist\n"
    )


def load_public_keys_text(text: str) -> list[PublicKey]:
    from monitor.core.signing import _public_from_pem

    return _public_from_pem(text.encode(), "stdout")
