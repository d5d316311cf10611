from __future__ import annotations

import sqlite3
import stat
from contextlib import closing
from pathlib import Path

import pytest

from tests.conftest import make_service
from vault import (
    DuplicateService,
    InsecurePermissions,
    InvalidService,
    UnknownService,
    Vault,
    VaultCorrupted,
    VaultError,
    VaultNotFound,
    validate_secret,
)
from vault.keyfile import KEY_FILE

A, B = "sk-aaaaaaaaaaaaaaaaaaaaaaaa", "sk-bbbbbbbbbbbbbbbbbbbbbbbb"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_create_makes_private_files(vault: Vault, home: Path) -> None:
    assert mode(home) == 0o700
    for path in home.iterdir():
        if path.is_file():
            assert mode(path) == 0o600, path


def test_secret_round_trips_and_is_encrypted_at_rest(vault: Vault, home: Path) -> None:
    vault.add_service(make_service("svc", "api.example.com"), validate_secret(A))
    assert vault.secret("svc").reveal() == A
    vault.close()
    raw = b"".join(p.read_bytes() for p in home.iterdir() if p.is_file())
    assert A.encode() not in raw
    with closing(Vault.open(home)) as reopened:
        assert reopened.secret("svc").reveal() == A


def test_list_and_remove(vault: Vault) -> None:
    vault.add_service(make_service("b", "b.example.com"), validate_secret(B))
    vault.add_service(make_service("a", "a.example.com"), validate_secret(A))
    assert [s.name for s in vault.list_services()] == ["a", "b"]
    vault.remove_service("a")
    assert [s.name for s in vault.list_services()] == ["b"]
    with pytest.raises(UnknownService, match="known services: b"):
        vault.secret("a")


def test_duplicate_name_is_refused(vault: Vault) -> None:
    vault.add_service(make_service("a", "a.example.com"), validate_secret(A))
    with pytest.raises(DuplicateService):
        vault.add_service(make_service("a", "other.example.com"), validate_secret(B))


def test_overlapping_hosts_are_refused_with_the_other_name(vault: Vault) -> None:
    vault.add_service(make_service("wild", "*.example.com"), validate_secret(A))
    with pytest.raises(DuplicateService, match="'wild'"):
        vault.add_service(make_service("api", "api.example.com"), validate_secret(B))
    assert [s.name for s in vault.list_services()] == ["wild"]


def test_swapped_ciphertexts_are_detected(vault: Vault, home: Path) -> None:
    vault.add_service(make_service("a", "a.example.com"), validate_secret(A))
    vault.add_service(make_service("b", "b.example.com"), validate_secret(B))
    vault.close()
    conn = sqlite3.connect(home / "vault.db")
    blob_a = conn.execute("SELECT blob FROM secrets WHERE service='a'").fetchone()[0]
    conn.execute("UPDATE secrets SET blob=? WHERE service='b'", (blob_a,))
    conn.commit()
    conn.close()
    with closing(Vault.open(home)) as reopened:
        with pytest.raises(VaultCorrupted, match="integrity") as caught:
            reopened.secret("b")
        assert A not in str(caught.value) and B not in str(caught.value)
        assert reopened.secret("a").reveal() == A


def test_flipped_ciphertext_bit_is_detected(vault: Vault, home: Path) -> None:
    vault.add_service(make_service("a", "a.example.com"), validate_secret(A))
    vault.close()
    conn = sqlite3.connect(home / "vault.db")
    blob = bytearray(conn.execute("SELECT blob FROM secrets").fetchone()[0])
    blob[-1] ^= 1
    conn.execute("UPDATE secrets SET blob=?", (bytes(blob),))
    conn.commit()
    conn.close()
    with closing(Vault.open(home)) as reopened, pytest.raises(VaultCorrupted):
        reopened.secret("a")


def test_wrong_key_is_a_clear_error(vault: Vault, home: Path) -> None:
    vault.close()
    (home / KEY_FILE).write_bytes(b"QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=\n")
    with pytest.raises(VaultCorrupted, match="key check"):
        Vault.open(home)


def test_missing_vault_says_how_to_create_one(home: Path) -> None:
    with pytest.raises(VaultNotFound, match="clavis-mcp init"):
        Vault.open(home)


def test_second_init_refuses(vault: Vault, home: Path) -> None:
    with pytest.raises(VaultError, match="already exists"):
        Vault.create(home)


@pytest.mark.parametrize("target", ["vault.db", KEY_FILE, "."], ids=["db", "keyfile", "folder"])
def test_readable_by_others_is_refused_with_the_fix(vault: Vault, home: Path, target: str) -> None:
    vault.close()
    path = home / target
    path.chmod(0o755 if path.is_dir() else 0o644)
    with pytest.raises(InsecurePermissions, match="chmod"):
        Vault.open(home)


def test_snapshot_sees_changes_made_by_another_connection(vault: Vault, home: Path) -> None:
    assert vault.snapshot().services == ()
    with closing(Vault.open(home)) as other:
        other.add_service(make_service("a", "a.example.com"), validate_secret(A))
    snapshot = vault.snapshot()
    assert [s.name for s in snapshot.services] == ["a"]
    assert snapshot.secrets["a"].reveal() == A


@pytest.mark.parametrize(
    "value", ["", "sk-abc\r\nX-Evil: 1", "sk\x00abc", " sk-padded", "sk-tab\tabc"],
    ids=["empty", "crlf", "nul", "leading-space", "tab"],
)  # fmt: skip
def test_secrets_that_would_split_a_header_are_refused(value: str) -> None:
    with pytest.raises(InvalidService) as caught:
        validate_secret(value)
    assert not value.strip() or value.strip() not in str(caught.value)


def test_garbage_vault_file_is_reported_not_crashed_on(vault: Vault, home: Path) -> None:
    vault.close()
    (home / "vault.db").write_bytes(b"this is not a database" * 100)
    for extra in ("vault.db-wal", "vault.db-shm"):
        (home / extra).unlink(missing_ok=True)
    with pytest.raises(VaultCorrupted, match="backup"):
        Vault.open(home)
