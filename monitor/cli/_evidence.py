"""``amplimon verify``, ``amplimon pack`` and ``amplimon keys export``: evidence packs without a
browser (:mod:`monitor.app.packverify`, :mod:`monitor.core.signing`, :mod:`dashboard.pack`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from monitor.app.packverify import Trusted
from streams.settings import env_name, load_settings

__all__ = ["register"]


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"amplimon: {' '.join(message.split())}", err=True)
    return typer.Exit(code)


def _trusted(pubkeys: list[str] | None) -> list[Trusted]:
    """Keys (or ``SHA256:`` fingerprints) given with ``--pubkey``, else the deployment's."""
    from monitor.core.signing import SigningKeyError, load_public_keys, trusted_keys

    try:
        if not pubkeys:
            return list(trusted_keys(load_settings()))
        out: list[Trusted] = []
        for k in pubkeys:
            if k.startswith("SHA256:") and not Path(k).exists():
                out.append(k)
            else:
                out.extend(load_public_keys(k))
        return out
    except SigningKeyError as err:
        raise _fail(str(err)) from None


def cmd_verify(
    pack: Annotated[Path, typer.Argument(help="evidence pack (.zip)", metavar="PACK.zip")],
    pubkey: Annotated[
        list[str] | None,
        typer.Option(
            "--pubkey",
            metavar="KEY",
            help="the commission's public key (PEM file, or its "
            "SHA256:… fingerprint); repeatable. Default: the keys in $AMPLIMON_TRUSTED_KEYS and "
            "this deployment's own key",
        ),
    ] = None,
    expect: Annotated[
        str | None,
        typer.Option(
            "--expect",
            metavar="SHA256",
            help="the manifest SHA-256 recorded when the pack was exported",
        ),
    ] = None,
) -> None:
    """Check an evidence pack: its signature, signer and every file's SHA-256.

    Exit 0: valid, signed by a trusted key. 1: tampered, unsigned or signed by an untrusted
    key. 2: not an evidence pack (or over the reading bounds), or a bad argument.
    """
    from monitor.app.packverify import verify_pack

    if not pack.is_file():
        raise _fail(f"{pack}: no such file")
    result = verify_pack(pack, expect, trusted=_trusted(pubkey))
    if result.status == "invalid":
        raise _fail(f"{pack.name}: not a valid evidence pack: {result.reason}", code=2)
    if not result.ok:
        raise _fail(f"{pack.name}: tampered: {result.reason}", code=1)
    typer.echo(f"{pack.name}: {result.reason}")


def cmd_keys_export(
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", metavar="FILE", help="write the public key here (default: stdout)"
        ),
    ] = None,
) -> None:
    """Print this deployment's public signing key (PEM) and its fingerprint.

    The key is read from $AMPLIMON_SIGNING_KEY, $AMPLIMON_SIGNING_KEY_FILE or
    <data_dir>/signing.key (created there, mode 0600, if absent). Publish the PEM and the
    fingerprint so that officers can check packs with `amplimon verify PACK.zip --pubkey`.
    """
    from monitor.core.signing import SigningKeyError, signing_key_from

    try:
        key = signing_key_from(load_settings())
    except SigningKeyError as err:
        raise _fail(str(err)) from None
    pem = key.public.pem()
    if out is None:
        typer.echo(pem, nl=False)
    else:
        try:
            out.write_text(pem, encoding="ascii")
        except OSError as err:
            raise _fail(f"{out}: cannot write ({err.strerror or err})") from None
    typer.echo(
        f"public key of {key.signer!r}: {key.public.fingerprint} (private key in {key.source})",
        err=True,
    )


def cmd_pack(
    db: Annotated[
        Path,
        typer.Option(
            "--db",
            help="DuckDB store, or the sink's snapshot directory",
            envvar=env_name("db"),
            show_envvar=True,
        ),
    ],
    finding: Annotated[str, typer.Option("--finding", metavar="ID", help="finding id")],
    out: Annotated[Path, typer.Option("--out", "-o", metavar="P.zip", help="pack to write")],
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="configuration YAML (included in the pack)",
            envvar=env_name("config"),
            show_envvar=True,
        ),
    ] = None,
    state: Annotated[
        Path | None,
        typer.Option(
            "--state",
            help="the dashboard's state file, for the triage history (default "
            "<db>.dashboard.sqlite, if it exists)",
        ),
    ] = None,
    by: Annotated[
        str, typer.Option("--by", help="who makes the pack (recorded in it)")
    ] = "amplimon pack",
) -> None:
    """Write the signed evidence pack of one finding: the same pack the dashboard makes."""
    from dashboard import pack as packs
    from dashboard import triage
    from dashboard.data import open_source
    from dashboard.settings import default_state_path
    from dashboard.state import StateError, StateStore
    from monitor.core.config import load_config
    from monitor.core.signing import SigningKeyError, signing_key_from

    if not db.exists():
        raise _fail(f"{db}: no such database or snapshot directory")
    if out.suffix.lower() != ".zip":
        raise _fail(f"{out}: an evidence pack is a .zip file")
    cfg = load_config(config) if config is not None else None
    text = config.read_text(encoding="utf-8") if config is not None else ""
    try:
        key = signing_key_from(load_settings())
    except SigningKeyError as err:
        raise _fail(str(err)) from None
    snap = open_source(db).load()
    if snap.read_at is None:
        raise _fail(f"{db}: cannot read the findings ({snap.note or 'no data'})")
    state_path = state or default_state_path(db)
    store: StateStore | None = None
    if state is not None or state_path.exists():
        try:
            store = StateStore(state_path)
        except StateError as err:
            raise _fail(str(err)) from None
    view = triage.with_triage(snap.findings, store.latest_statuses() if store else {})
    rows = view[view["finding_id"] == finding]
    if rows.empty:
        raise _fail(f"{db}: no finding {finding!r}")
    row = rows.iloc[0].to_dict()
    built = packs.build_pack(
        row,
        snap.amplification,
        cfg,
        key=key,
        config_text=text,
        runs=snap.runs,
        history=store.history(finding) if store else (),
        created_by=by,
    )
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(built.data)
        os.replace(tmp, out)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise _fail(f"{out}: cannot write ({err.strerror or err})") from None
    if store is not None:
        store.record_export(finding, by, built.manifest_sha256, len(built.data))
    typer.echo(
        f"wrote {out}: {len(built.files)} files, {len(built.data):,} bytes, signed by "
        f"{key.signer!r} (key {key.public.fingerprint}); manifest SHA-256 "
        f"{built.manifest_sha256}",
        err=True,
    )


def register(app: typer.Typer) -> None:
    app.command("verify")(cmd_verify)
    app.command("pack")(cmd_pack)
    keys = typer.Typer(
        name="keys", help="The deployment's evidence-signing key.", no_args_is_help=True
    )
    keys.command("export")(cmd_keys_export)
    app.add_typer(keys)
