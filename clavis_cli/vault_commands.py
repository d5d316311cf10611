"""Vault verbs: init, rekey and the connector catalog; the service verbs (add, list, show,
rotate, edit, remove, export, import) live in :mod:`clavis_cli.service_commands`.

Passphrases come from ``CLAVIS_PASSPHRASE`` (``CLAVIS_NEW_PASSPHRASE`` for a rekey) or a hidden
prompt on a terminal, never from argv; without a terminal nothing is prompted.
"""

from __future__ import annotations

import getpass
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from clavis_mcp.vault import Vault, VaultError, VaultLocked, clavis_home
from clavis_mcp.vault.audit.log import AUDIT_FILE, VAULT_FILE
from clavis_mcp.vault.connectors import load_catalog
from clavis_mcp.vault.keys.keychain import KeychainStore
from clavis_mcp.vault.keys.keyfile import WARNING as KEYFILE_WARNING
from clavis_mcp.vault.keys.keyfile import KeyFileStore
from clavis_mcp.vault.keys.keystore import KEY_STORES, KeyStore, key_store
from clavis_mcp.vault.keys.passphrase import ENV_VAR as PASSPHRASE_ENV
from clavis_mcp.vault.keys.passphrase import PassphraseStore

from . import service_commands
from .runtime import open_runtime

NEW_PASSPHRASE_ENV = "CLAVIS_NEW_PASSPHRASE"


def new_passphrase() -> str:
    """Ask twice on the terminal; an empty answer means none was given (the store then refuses)."""
    if not sys.stdin.isatty():
        return ""
    first = getpass.getpass("new vault passphrase: ")
    if first != getpass.getpass("repeat the passphrase: "):
        raise click.UsageError("the two passphrases differ; nothing was changed")
    return first


def orphaned_audit_files(home: Path) -> list[Path]:
    """The audit log files in ``home`` (live, rotated, lock, reserve, index), oldest name first."""
    if not home.is_dir():
        return []
    return sorted(path for path in home.iterdir() if path.name == AUDIT_FILE or path.name.startswith(AUDIT_FILE + "."))


def archive(home: Path, files: list[Path]) -> Path:
    folder = home / f"audit-archive-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    folder.mkdir(mode=0o700)
    for path in files:
        path.rename(folder / path.name)
    return folder


def _store_for(kind: str, env_var: str) -> KeyStore:
    if kind == "passphrase":
        return PassphraseStore(new_passphrase, env_var=env_var)
    return key_store(kind)


@click.command()
@click.option(
    "--key-store",
    "kind",
    type=click.Choice(KEY_STORES),
    help="Where the key that unlocks the vault lives. Default: the OS keychain if one works, else a key file.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--archive-old-audit",
    is_flag=True,
    help="The folder holds the audit trail of a vault that is gone: move it aside into a dated folder and start anew.",
)
def init(kind: str | None, as_json: bool, archive_old_audit: bool) -> None:
    """Create a vault (in $CLAVIS_HOME or the platform data folder) and its local CA."""
    from clavis_mcp.certs import LocalCA

    home = clavis_home()
    if home.exists() and not home.is_dir():
        raise VaultError(f"CLAVIS_HOME {home} is a file, not a folder; point CLAVIS_HOME at a folder, or move the file")
    orphaned = [] if (home / VAULT_FILE).exists() else orphaned_audit_files(home)
    if orphaned and not archive_old_audit:
        raise VaultError(
            f"{home} holds the audit trail of an earlier vault ({orphaned[0].name}) but no {VAULT_FILE}: a new vault "
            "would start a second chain beside it. Restore the vault from a backup, or run "
            "`clavis-mcp init --archive-old-audit` to move the old trail into a dated folder and start anew"
        )
    if orphaned:
        archived = archive(home, orphaned)
        click.echo(f"moved the earlier audit trail to {archived}", err=True)
    if kind is None:
        try:
            vault = Vault.create(home, KeychainStore())
        except VaultLocked as exc:
            click.echo(f"warning: {exc}", err=True)
            click.echo(f"warning: falling back to a key file: {KEYFILE_WARNING}", err=True)
            vault = Vault.create(home, KeyFileStore())
    else:
        vault = Vault.create(home, _store_for(kind, PASSPHRASE_ENV))
    with vault:
        info = vault.key_store_info()
    ca = LocalCA(home / "certs").ensure()
    service_commands.emit(
        as_json,
        {
            "home": str(home),
            "key_store": info.kind,
            "key_store_detail": info.description,
            "ca_cert": str(ca.cert_path),
            "ca_fingerprint": ca.fingerprint(),
        },
        [
            f"created vault {home}",
            f"key store: {info.description}",
            f"local CA: {ca.cert_path}",
            f"CA fingerprint (SHA-256): {ca.fingerprint()}",
        ],
    )


@click.command()
@click.option(
    "--key-store",
    "kind",
    type=click.Choice(KEY_STORES),
    help="The new key store. Default: the current one with a new key (or a new passphrase).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def rekey(kind: str | None, as_json: bool) -> None:
    """Move the vault to another key store, or change its passphrase, without re-entering secrets.

    The data key is re-wrapped in one transaction; the old key file or keychain entry is removed
    after the switch. A new passphrase is read from CLAVIS_NEW_PASSPHRASE or asked twice.
    """
    with open_runtime() as runtime:
        before = runtime.vault.key_store_info()
        after = runtime.vault.rekey(_store_for(kind or before.kind, NEW_PASSPHRASE_ENV))
        runtime.audit.append(
            source="cli", action="rekey", decision="rekeyed", reason=f"key store {before.kind} -> {after.kind}"
        )
    if after.kind == "keyfile":
        click.echo(f"warning: {KEYFILE_WARNING}", err=True)
    service_commands.emit(
        as_json,
        {"key_store": after.kind, "key_store_detail": after.description, "previous": before.kind},
        [f"rekeyed: key store {before.kind} -> {after.kind}", f"key store: {after.description}"],
    )


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def connectors(as_json: bool) -> None:
    """List the connector catalog (built-in plus connectors.toml in the vault home)."""
    catalog = load_catalog(clavis_home())
    rows: list[dict[str, Any]] = [  # JSON objects
        {
            "name": c.name,
            "title": c.title,
            "hosts": [str(h) for h in c.hosts],
            "auth": c.auth.describe(),
            "extra_headers": dict(c.auth.extra_headers),
            "probe": f"{c.probe.method} {c.probe.path}" if c.probe else None,
            "rate_limit_headers": list(c.rate_limit_headers),
            "docs": c.docs,
            "source": c.source,
        }
        for c in catalog.values()
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        click.echo(f"{row['name']:<12} {', '.join(row['hosts']) or '(hosts from --host)':<40} {row['auth']}")


COMMANDS = [init, rekey, connectors, *service_commands.COMMANDS]
