"""Keychain scenarios run inside `dbus-run-session` with a real gnome-keyring (see test_keychain.py).

Not collected by pytest (no test_ prefix): each scenario runs in a child process whose HOME
and session bus are throwaway, and prints one JSON object with what it observed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import keyring
import secretstorage

from clavis_mcp.vault import Service, Vault, VaultLocked, validate_secret
from clavis_mcp.vault.keys.keychain import SERVICE, KeychainStore, real_keychain
from clavis_mcp.vault.keys.keyfile import KeyFileStore
from clavis_mcp.vault.service import build_auth, parse_hosts

SECRET = "sk-keychain-0123456789abcdefghijklmnop"


def key_params(vault: Vault) -> dict[str, str]:
    with vault.store.read() as batch:
        return dict(json.loads(batch.meta()["key_params"]))


def _add(vault: Vault) -> None:
    service = Service("svc", build_auth("bearer"), parse_hosts(["api.example.com"]), created_at=1.0)
    vault.add_service(service, validate_secret(SECRET))


def round_trip(home: Path) -> dict[str, object]:
    with Vault.create(home, KeychainStore()) as vault:
        _add(vault)
        params = key_params(vault)
    with Vault.open(home) as vault:
        revealed = vault.secret("svc").reveal() == SECRET
        info = vault.key_store_info()
    files = b"".join(p.read_bytes() for p in home.rglob("*") if p.is_file())
    stored = keyring.get_password(SERVICE, params["account"])
    return {
        "backend": type(real_keychain()).__module__,
        "revealed": revealed,
        "kind": info.kind,
        "in_keychain": stored is not None,
        "kek_in_files": stored is not None and stored.encode() in files,
        "keyfile_exists": any(p.suffix == ".key" for p in home.iterdir()),
    }


def locked(home: Path) -> dict[str, object]:
    with Vault.create(home, KeychainStore()) as vault:
        _add(vault)
    connection = secretstorage.dbus_init()
    secretstorage.get_default_collection(connection).lock()
    try:
        Vault.open(home).close()
    except VaultLocked as exc:
        return {"error": type(exc).__name__, "message": str(exc)}
    return {"error": None}


def deleted_entry(home: Path) -> dict[str, object]:
    with Vault.create(home, KeychainStore()) as vault:
        params = key_params(vault)
    keyring.delete_password(SERVICE, params["account"])
    try:
        Vault.open(home).close()
    except VaultLocked as exc:
        return {"error": type(exc).__name__, "message": str(exc)}
    return {"error": None}


def rekey_to_keyfile(home: Path) -> dict[str, object]:
    with Vault.create(home, KeychainStore()) as vault:
        _add(vault)
        params = key_params(vault)
        vault.rekey(KeyFileStore())
    with Vault.open(home) as vault:
        revealed = vault.secret("svc").reveal() == SECRET
        kind = vault.key_store_info().kind
    return {"revealed": revealed, "kind": kind, "old_entry_left": keyring.get_password(SERVICE, params["account"])}


if __name__ == "__main__":
    scenario, home = sys.argv[1], Path(sys.argv[2])
    print(json.dumps(globals()[scenario](home)))
