"""Verify an evidence pack: bounded reading, every hash, the signature, and who is trusted.

A pack (built by :mod:`dashboard.pack`) is a ZIP with one top folder holding
``manifest.json`` (the SHA-256 and size of every other file, the finding id, when and by whom
it was made, and the signer's key fingerprint), ``signature.json`` (the Ed25519 signature of
the exact bytes of ``manifest.json``, with the signer's public key) and the listed files.

:func:`verify_pack` answers with a :class:`VerifyResult` whose ``status`` is

* ``valid`` — every listed file is present and matches its hash, nothing unlisted is there,
  the signature verifies, and its key is one of ``trusted`` (exit 0 in ``amplimon verify``);
* ``tampered`` — the archive is a well-formed pack but something in it does not hold: a hash
  differs, a file is missing or extra, the signature is wrong, the pack is unsigned, or it is
  signed by a key nobody trusts (exit 1).  A forger who rewrites ``finding.json`` and
  recomputes the manifest must also sign it; with a key of their own, the signature verifies
  but the key is not trusted;
* ``invalid`` — not an evidence pack at all: not a ZIP, unsafe or duplicate paths, no or an
  unreadable manifest, or over the reading bounds (exit 2).

**Bounds** (:class:`Limits`), checked before anything is decompressed, from the archive's
own directory, and again while reading (an entry that inflates past its declared size is
refused): the archive's size on disk, the number of entries, each entry's and the total
uncompressed size, and each entry's compression ratio.  A zip bomb is refused in
milliseconds with memory bounded by the read chunk (1 MiB).  ``reason`` is always one line.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Final, Literal

from monitor.core.signing import ALGORITHM, PublicKey, SigningKeyError

__all__ = [
    "FORMAT",
    "FORMAT_V1",
    "LIMITS",
    "Limits",
    "Status",
    "Trusted",
    "VerifyResult",
    "verify_pack",
]

FORMAT: Final = "amplimon-evidence-pack/2"  # signed
FORMAT_V1: Final = "amplimon-evidence-pack/1"  # unsigned (before signatures)
UNLISTED: Final = ("manifest.json", "signature.json")
_CHUNK: Final = 1 << 20

Status = Literal["valid", "tampered", "invalid"]
Trusted = PublicKey | str  # a key, or its fingerprint "SHA256:…"


@dataclass(frozen=True, slots=True)
class Limits:
    """Reading bounds; a real pack is a few MB with ~30 entries, far below every one."""

    archive_bytes: int = 256 << 20  # on disk
    entries: int = 1000
    file_bytes: int = 64 << 20  # one entry, uncompressed
    total_bytes: int = 256 << 20  # all entries, uncompressed
    ratio: float = 200.0  # uncompressed ÷ compressed, for entries over ratio_from bytes
    ratio_from: int = 1 << 20


LIMITS: Final = Limits()


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    status: Status
    reason: str
    finding_id: str = ""
    manifest_sha256: str = ""
    files: tuple[str, ...] = field(default=())
    signer: str = ""
    key_fingerprint: str = ""
    signed_at: str = ""

    @property
    def exit_code(self) -> int:
        return {"valid": 0, "tampered": 1, "invalid": 2}[self.status]


class _Refused(Exception):
    def __init__(self, status: Status, reason: str, **facts: Any) -> None:
        super().__init__(reason)
        self.status, self.reason, self.facts = status, reason, facts


def _invalid(reason: str) -> _Refused:
    return _Refused("invalid", reason)


def _tampered(reason: str, **facts: Any) -> _Refused:
    return _Refused("tampered", reason, **facts)


def _mib(n: float) -> str:
    return f"{n / (1 << 20):,.0f} MiB"


def _check_directory(zf: zipfile.ZipFile, limits: Limits) -> list[zipfile.ZipInfo]:
    infos = zf.infolist()
    if len(infos) > limits.entries:
        raise _invalid(f"too many entries ({len(infos):,}; a pack has at most {limits.entries:,})")
    total = 0
    for info in infos:
        if info.file_size > limits.file_bytes:
            raise _invalid(
                f"{info.filename}: {_mib(info.file_size)} uncompressed, over the "
                f"{_mib(limits.file_bytes)} a pack file may have"
            )
        if info.file_size > limits.ratio_from and (
            info.file_size > limits.ratio * max(info.compress_size, 1)
        ):
            raise _invalid(
                f"{info.filename}: compression ratio "
                f"{info.file_size / max(info.compress_size, 1):,.0f}:1 (a zip bomb?)"
            )
        total += info.file_size
        if total > limits.total_bytes:
            raise _invalid(f"over {_mib(limits.total_bytes)} uncompressed in all")
    return [i for i in infos if not i.is_dir()]


def _layout(infos: list[zipfile.ZipInfo]) -> dict[str, zipfile.ZipInfo]:
    names = [i.filename for i in infos]
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise _invalid(f"{n}: duplicate entry")
        seen.add(n)
    roots = {PurePosixPath(n).parts[0] for n in names if n}
    for n in names:
        parts = PurePosixPath(n).parts
        if (
            n.startswith("/")
            or "\\" in n
            or ".." in parts
            or len(parts) < 2
            or len(roots) != 1
            or any(ord(c) < 32 for c in n)
        ):
            raise _invalid(f"{n!r}: unexpected path in the archive")
    root = roots.pop() if roots else ""
    return {i.filename[len(root) + 1 :]: i for i in infos}


def _read(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limits: Limits, sink: Any = None) -> bytes:
    """The entry's bytes (or, with ``sink``, fed to it chunk by chunk), never more than its
    declared size nor the per-file bound."""
    cap = min(info.file_size, limits.file_bytes)
    out = io.BytesIO()
    write = sink.update if sink is not None else out.write
    n = 0
    try:
        with zf.open(info) as fh:
            while chunk := fh.read(_CHUNK):
                n += len(chunk)
                if n > cap:
                    raise _invalid(f"{info.filename}: inflates past its declared size")
                write(chunk)
    except (
        zipfile.BadZipFile,
        OSError,
        EOFError,
        ValueError,
        NotImplementedError,
        RuntimeError,
    ) as err:
        raise _tampered(
            f"{info.filename}: corrupt entry in the archive ({' '.join(str(err).split())[:80]})"
        ) from None
    return out.getvalue()


def _manifest(raw: bytes) -> dict[str, Any]:
    try:
        manifest = json.loads(raw)
        files = manifest["files"]
        if not isinstance(files, list):
            raise TypeError
        for f in files:
            if not (isinstance(f["path"], str) and isinstance(f["sha256"], str)):
                raise TypeError
    except (ValueError, KeyError, TypeError):
        raise _invalid("manifest.json is not a valid manifest") from None
    if not isinstance(manifest, dict):
        raise _invalid("manifest.json is not a valid manifest")
    if manifest.get("format") not in (FORMAT, FORMAT_V1):
        raise _invalid(f"manifest.json: unknown format {str(manifest.get('format'))[:60]!r}")
    return manifest


def _signature(
    raw: bytes | None, manifest: dict[str, Any], raw_manifest: bytes, trusted: Sequence[Trusted]
) -> tuple[str, str, str]:
    """(signer, fingerprint, signed_at) of a good signature by a trusted key; else refused."""
    if manifest["format"] == FORMAT_V1 or raw is None:
        raise _tampered(
            "not signed: anyone could have written this pack (packs are signed "
            "since amplimon-evidence-pack/2)"
        )
    try:
        sig = json.loads(raw)
        if sig.get("algorithm") != ALGORITHM:
            raise _tampered(
                f"signature.json: unsupported algorithm {str(sig.get('algorithm'))[:30]!r}"
            )
        key = PublicKey.from_base64(str(sig["public_key"]), "signature.json")
        signature = base64.b64decode(str(sig["signature"]), validate=True)
    except (ValueError, KeyError, TypeError, AttributeError, SigningKeyError):
        raise _tampered("signature.json is not a valid signature record") from None
    raw_signer = manifest.get("signer")
    signer_info: dict[str, Any] = raw_signer if isinstance(raw_signer, dict) else {}
    signer = " ".join(str(signer_info.get("name", "")).split())[:200]
    signed_at = str(manifest.get("created_at", ""))[:40]
    facts = {"signer": signer, "key_fingerprint": key.fingerprint, "signed_at": signed_at}
    if not key.verify(signature, raw_manifest):
        raise _tampered(
            "signature does not match manifest.json (the manifest was changed after signing)",
            **facts,
        )
    if signer_info.get("key_fingerprint") != key.fingerprint:
        raise _tampered("manifest.json names another signing key than the signature's", **facts)
    if not any(t == key.fingerprint if isinstance(t, str) else t.raw == key.raw for t in trusted):
        hint = (
            "no trusted key is configured here"
            if not trusted
            else "trusted here: "
            + ", ".join(t if isinstance(t, str) else t.fingerprint for t in trusted)
        )
        raise _tampered(
            f"signed by an untrusted key {key.fingerprint} ({hint}); compare it "
            "with the key the commission publishes and pass that key with "
            "--pubkey",
            **facts,
        )
    return signer, key.fingerprint, signed_at


def verify_pack(
    source: str | Path | bytes,
    expect_manifest_sha256: str | None = None,
    *,
    trusted: Sequence[Trusted] = (),
    limits: Limits = LIMITS,
) -> VerifyResult:
    """Check a pack against ``trusted`` keys (public keys, or their ``SHA256:…``
    fingerprints; see module docstring).  Never raises."""
    try:
        return _verify(source, expect_manifest_sha256, trusted, limits)
    except _Refused as refused:
        return VerifyResult(False, refused.status, refused.reason, **refused.facts)


def _verify(
    source: str | Path | bytes, expect: str | None, trusted: Sequence[Trusted], limits: Limits
) -> VerifyResult:
    stream: io.BytesIO | str | Path
    if isinstance(source, bytes):
        size, stream = len(source), io.BytesIO(source)
    else:
        try:
            size = os.stat(source).st_size
        except OSError as err:
            raise _invalid(f"cannot read the pack ({err.strerror or err})") from None
        stream = source
    if size > limits.archive_bytes:
        raise _invalid(
            f"{_mib(size)} on disk, over the {_mib(limits.archive_bytes)} a pack may have"
        )
    try:
        zf = zipfile.ZipFile(stream)
    except (zipfile.BadZipFile, EOFError, ValueError, OSError, NotImplementedError):
        raise _invalid("not a ZIP archive") from None
    with zf:
        inner = _layout(_check_directory(zf, limits))
        if "manifest.json" not in inner:
            raise _invalid("manifest.json is missing")
        raw_manifest = _read(zf, inner["manifest.json"], limits)
        manifest = _manifest(raw_manifest)
        digest = hashlib.sha256(raw_manifest).hexdigest()
        if expect and digest != expect.strip().lower():
            raise _tampered(
                f"manifest.json: SHA-256 {digest[:16]}… differs from the expected "
                f"{expect.strip()[:16]}…"
            )
        listed: dict[str, dict[str, Any]] = {}
        for f in manifest["files"]:
            if f["path"] in listed or f["path"] in UNLISTED:
                raise _invalid(f"manifest.json lists {f['path'][:80]!r} twice or itself")
            listed[f["path"]] = f
        extra = sorted(set(inner) - set(listed) - set(UNLISTED))
        if extra:
            raise _tampered(f"{extra[0]}: not listed in the manifest")
        for path, entry in sorted(listed.items()):
            if path not in inner:
                raise _tampered(f"{path}: listed in the manifest but missing")
            h = hashlib.sha256()
            _read(zf, inner[path], limits, sink=h)
            if h.hexdigest() != entry["sha256"]:
                raise _tampered(f"{path}: SHA-256 does not match the manifest (file changed)")
        fid = str(manifest.get("finding_id", ""))
        if "finding.json" in listed:
            try:
                record = json.loads(_read(zf, inner["finding.json"], limits))
            except ValueError:
                raise _tampered("finding.json is not valid JSON") from None
            if not isinstance(record, dict) or record.get("finding_id") != fid:
                raise _tampered("finding.json: finding id differs from the manifest")
        raw_sig = _read(zf, inner["signature.json"], limits) if "signature.json" in inner else None
        signer, fp, signed_at = _signature(raw_sig, manifest, raw_manifest, trusted)
    who = f"{signer} " if signer else ""
    return VerifyResult(
        True,
        "valid",
        f"valid: {len(listed)} files for finding {fid}, signed by {who}"
        f"(key {fp}) at {signed_at}; manifest SHA-256 {digest}",
        fid,
        digest,
        tuple(sorted(listed)),
        signer,
        fp,
        signed_at,
    )
