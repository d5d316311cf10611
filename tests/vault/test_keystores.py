"""Key stores and rekey: the data key is wrapped by the chosen store and can move between them."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from clavis_mcp.vault import Vault, VaultCorrupted, VaultError, VaultLocked, validate_secret
from clavis_mcp.vault.keys.keyfile import KEY_FILE, KeyFileStore
from clavis_mcp.vault.keys.passphrase import ENV_VAR, PassphraseStore
from tests.conftest import make_service

SECRET = "sk-live-0123456789abcdefghijklmn"
PASS, OTHER = "correct horse battery staple", "Tr0ub4dor&3-but-longer"


def files_of(home: Path) -> bytes:
    return b"".join(p.read_bytes() for p in home.rglob("*") if p.is_file())


@pytest.fixture
def pass_vault(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(ENV_VAR, PASS)
    with Vault.create(home, PassphraseStore()) as vault:
        vault.add_service(make_service("svc", "api.example.com"), validate_secret(SECRET))
    return home


def test_passphrase_vault_opens_with_the_passphrase_and_stores_neither_it_nor_a_key_file(pass_vault: Path) -> None:
    with Vault.open(pass_vault) as vault:
        assert vault.secret("svc").reveal() == SECRET
        assert vault.key_store_info().kind == "passphrase"
    assert not (pass_vault / KEY_FILE).exists()
    assert PASS.encode() not in files_of(pass_vault) and SECRET.encode() not in files_of(pass_vault)


def test_wrong_passphrase_is_a_clear_error_and_unlocks_nothing(
    pass_vault: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_VAR, OTHER)
    with pytest.raises(VaultLocked, match="wrong passphrase") as caught:
        Vault.open(pass_vault)
    assert OTHER not in str(caught.value) and PASS not in str(caught.value)


def test_missing_passphrase_without_a_terminal_says_how_to_give_one(
    pass_vault: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_VAR)
    with pytest.raises(VaultLocked, match=ENV_VAR):
        Vault.open(pass_vault)


def test_passphrase_is_asked_for_when_the_variable_is_not_set(
    pass_vault: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_VAR)
    asked: list[str] = []

    def ask() -> str:
        asked.append("yes")
        return PASS

    with Vault.open(pass_vault, ask_passphrase=ask) as vault:
        assert vault.secret("svc").reveal() == SECRET
    assert asked == ["yes"]


def test_short_passphrase_is_refused_and_creates_nothing(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "short")
    with pytest.raises(VaultError, match="at least 8"):
        Vault.create(home, PassphraseStore())
    assert not (home / "vault.db").exists()


@pytest.mark.parametrize(
    ("field", "value"),
    [("memory_cost_kib", 1 << 30), ("iterations", 0), ("kdf", "md5"), ("salt", "c2FsdA==")],
    ids=["huge-memory", "zero-iterations", "unknown-kdf", "short-salt"],
)
def test_tampered_kdf_parameters_are_refused_before_deriving(pass_vault: Path, field: str, value: object) -> None:
    with closing(sqlite3.connect(pass_vault / "vault.db")) as conn, conn:
        params = json.loads(conn.execute("SELECT value FROM meta WHERE key='key_params'").fetchone()[0])
        params[field] = value
        conn.execute("UPDATE meta SET value=? WHERE key='key_params'", (json.dumps(params),))
    with pytest.raises(VaultCorrupted, match="passphrase parameters"):
        Vault.open(pass_vault)


def test_wrapped_key_moved_to_another_vault_does_not_open_it(home: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    Vault.create(home).close()
    Vault.create(other).close()
    with closing(sqlite3.connect(home / "vault.db")) as source:
        wrapped = source.execute("SELECT value FROM meta WHERE key='wrapped_key'").fetchone()[0]
    with closing(sqlite3.connect(other / "vault.db")) as target, target:
        target.execute("UPDATE meta SET value=? WHERE key='wrapped_key'", (wrapped,))
    (other / KEY_FILE).write_bytes((home / KEY_FILE).read_bytes())
    with pytest.raises(VaultCorrupted, match="key check"):
        Vault.open(other)


def test_missing_key_file_is_vault_locked_with_the_path(vault: Vault, home: Path) -> None:
    vault.close()
    (home / KEY_FILE).unlink()
    with pytest.raises(VaultLocked, match="vault.key is missing"):
        Vault.open(home)


def test_rekey_keyfile_to_passphrase_keeps_secrets_and_removes_the_key_file(
    vault: Vault, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault.add_service(make_service("svc", "api.example.com"), validate_secret(SECRET))
    monkeypatch.setenv(ENV_VAR, PASS)
    assert vault.rekey(PassphraseStore()).kind == "passphrase"
    assert vault.secret("svc").reveal() == SECRET
    vault.close()
    assert not any(p.suffix == ".key" for p in home.iterdir())
    with Vault.open(home) as reopened:
        assert reopened.secret("svc").reveal() == SECRET


def test_rekey_changes_the_passphrase_and_the_old_one_stops_working(
    pass_vault: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Vault.open(pass_vault) as vault:
        monkeypatch.setenv("CLAVIS_NEW_PASSPHRASE", OTHER)
        vault.rekey(PassphraseStore(env_var="CLAVIS_NEW_PASSPHRASE"))
    with pytest.raises(VaultLocked, match="wrong passphrase"):
        Vault.open(pass_vault)
    monkeypatch.setenv(ENV_VAR, OTHER)
    with Vault.open(pass_vault) as vault:
        assert vault.secret("svc").reveal() == SECRET


def test_rekey_passphrase_to_keyfile_writes_a_new_private_key_file(
    pass_vault: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Vault.open(pass_vault) as vault:
        vault.rekey(KeyFileStore())
    monkeypatch.delenv(ENV_VAR)
    with Vault.open(pass_vault) as vault:
        assert vault.secret("svc").reveal() == SECRET
    assert (pass_vault / KEY_FILE).stat().st_mode & 0o777 == 0o600


def test_failed_rekey_changes_nothing(vault: Vault, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    vault.add_service(make_service("svc", "api.example.com"), validate_secret(SECRET))
    monkeypatch.setenv(ENV_VAR, "short")
    with pytest.raises(VaultError, match="at least 8"):
        vault.rekey(PassphraseStore())
    vault.close()
    with Vault.open(home) as reopened:
        assert reopened.key_store_info().kind == "keyfile"
        assert reopened.secret("svc").reveal() == SECRET


def test_rekey_keyfile_to_keyfile_rotates_the_key_file(vault: Vault, home: Path) -> None:
    old_key = (home / KEY_FILE).read_bytes()
    vault.rekey(KeyFileStore())
    vault.close()
    assert not (home / KEY_FILE).exists()
    new_files = [p for p in home.iterdir() if p.suffix == ".key"]
    assert len(new_files) == 1 and new_files[0].read_bytes() != old_key
    Vault.open(home).close()
