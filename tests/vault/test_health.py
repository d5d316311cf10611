"""`clavis-mcp doctor`'s vault checks: key store, permissions, database and every secret."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from clavis_mcp.vault import Vault, validate_secret
from clavis_mcp.vault.health import check_vault
from clavis_mcp.vault.keys.passphrase import ENV_VAR, PassphraseStore
from tests.conftest import make_service

SECRET = "sk-health-0123456789abcdefgh"


def by_name(checks: list) -> dict:
    return {c.name: c for c in checks}


def test_healthy_keyfile_vault_reports_the_key_store_and_its_trade_off(vault: Vault, home: Path) -> None:
    vault.add_service(make_service("svc", "api.example.com"), validate_secret(SECRET))
    checks = by_name(check_vault(home))
    assert all(c.ok for c in checks.values()), checks
    assert "key file" in checks["key store"].detail and "any process" in checks["key store"].detail
    assert "1 service(s), database ok" in checks["vault"].detail
    assert SECRET not in repr(checks)


def test_loose_permissions_are_reported_with_the_chmod_fix(vault: Vault, home: Path) -> None:
    (home / "vault.key").chmod(0o644)
    checks = by_name(check_vault(home))
    assert not checks["permissions"].ok and "vault.key" in checks["permissions"].detail
    assert checks["permissions"].fix == f"chmod -R go-rwx '{home}'"


def test_locked_passphrase_vault_still_reports_its_key_store(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "a long enough passphrase")
    Vault.create(home, PassphraseStore()).close()
    monkeypatch.delenv(ENV_VAR)
    checks = by_name(check_vault(home))
    assert checks["key store"].ok and "Argon2id" in checks["key store"].detail
    assert not checks["vault"].ok and ENV_VAR in checks["vault"].detail


def test_a_tampered_secret_is_reported_with_the_rotate_fix(vault: Vault, home: Path) -> None:
    vault.add_service(make_service("svc", "api.example.com"), validate_secret(SECRET))
    vault.close()
    with closing(sqlite3.connect(home / "vault.db")) as conn, conn:
        blob = bytearray(conn.execute("SELECT blob FROM secrets").fetchone()[0])
        blob[-1] ^= 1
        conn.execute("UPDATE secrets SET blob=?", (bytes(blob),))
    checks = by_name(check_vault(home))
    assert not checks["secret svc"].ok and checks["secret svc"].fix == "clavis-mcp rotate svc"


def test_no_vault_says_how_to_create_one(home: Path) -> None:
    assert check_vault(home)[0].fix == "clavis-mcp init"
