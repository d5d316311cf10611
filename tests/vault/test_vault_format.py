"""docs/vault-format.md is enough to read a vault: an independent reader built from the page alone.

Only sqlite3 and cryptography's primitives here, no vault code, so a change to the format that
the page does not describe fails this test.
"""

from __future__ import annotations

import base64
import json
import shutil
import sqlite3
import threading
from contextlib import closing
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from clavis_mcp.vault import Vault, validate_secret
from clavis_mcp.vault.agents import AgentTokens, agent_token
from clavis_mcp.vault.audit.log import AuditLog
from clavis_mcp.vault.errors import VaultCorrupted
from clavis_mcp.vault.keys.passphrase import ENV_VAR, PassphraseStore
from clavis_mcp.vault.limits import budget, ratelimits
from clavis_mcp.vault.oauth import state as oauth_state
from clavis_mcp.vault.policy import ServicePolicy, load_policy, parse_probe
from clavis_mcp.vault.storage.sqlite import SQLiteStore
from tests.conftest import make_service
from tests.vault.rawdb import query, raw

SECRET = "sk-format-0123456789abcdefghijkl"
PASSPHRASE = "a passphrase for the format test"


def read_secret_as_documented(home: Path, service: str, passphrase: str | None) -> str:
    with closing(sqlite3.connect(home / "vault.db")) as conn:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        blob = conn.execute("SELECT blob FROM secrets WHERE service=? AND field='credential'", (service,)).fetchone()[0]
    assert meta["schema_version"] == "3"
    params = json.loads(meta["key_params"])
    if meta["key_store"] == "keyfile":
        kek = base64.b64decode((home / params["file"]).read_bytes().strip())
    else:
        assert passphrase is not None and params["kdf"] == "argon2id"
        kek = Argon2id(
            salt=base64.b64decode(params["salt"]),
            length=32,
            iterations=params["iterations"],
            lanes=params["lanes"],
            memory_cost=params["memory_cost_kib"],
        ).derive(passphrase.encode())
    vault_id = meta["vault_id"]
    wrapped = bytes.fromhex(meta["wrapped_key"])
    assert len(wrapped) == 60
    wrap_aad = f"clavis-mcp/v1|{vault_id}||data-key:{meta['key_store']}".encode()
    data_key = AESGCM(kek).decrypt(wrapped[:12], wrapped[12:], wrap_aad)
    aad = f"clavis-mcp/v1|{vault_id}|{service}|credential".encode()
    return AESGCM(data_key).decrypt(blob[:12], blob[12:], aad).decode()


@pytest.mark.parametrize("store", ["keyfile", "passphrase"])
def test_an_independent_reader_following_the_document_decrypts_a_secret(
    home: Path, monkeypatch: pytest.MonkeyPatch, store: str
) -> None:
    monkeypatch.setenv(ENV_VAR, PASSPHRASE)
    with Vault.create(home, PassphraseStore() if store == "passphrase" else None) as vault:
        vault.add_service(make_service("svc", "api.example.com"), validate_secret(SECRET))
    assert read_secret_as_documented(home, "svc", PASSPHRASE if store == "passphrase" else None) == SECRET


def test_the_document_describes_every_meta_row(vault: Vault, home: Path) -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "vault-format.md").read_text()
    for (key,) in query(home, "SELECT key FROM meta"):
        assert f"| `{key}` |" in doc, key


def test_the_document_describes_every_table_and_record_kind(old_home: Path) -> None:
    """A vault with one of everything (the format-2 vault, migrated): each table and each kind of
    record and stream in it has its section in the page."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "vault-format.md").read_text()
    home = old_home
    Vault.open(home).close()
    for (table,) in query(home, "SELECT name FROM sqlite_master WHERE type = 'table'"):
        assert f"CREATE TABLE {table} (" in doc, table
    for (kind,) in query(home, "SELECT DISTINCT kind FROM records UNION SELECT DISTINCT stream FROM streams"):
        assert f"`{kind}`" in doc, kind


# -- format 2 (a table per repository), migrated on open ---------------------------------------

FORMAT2 = Path(__file__).parent / "data" / "format2"  # written by the format-2 code: see its README


@pytest.fixture
def old_home(home: Path) -> Path:
    shutil.copytree(FORMAT2, home, dirs_exist_ok=True)
    home.chmod(0o700)
    for path in home.iterdir():
        path.chmod(0o600)
    return home


def test_a_format_2_vault_opens_migrated_with_everything_it_held(old_home: Path) -> None:
    home = old_home
    assert query(home, "SELECT value FROM meta WHERE key = 'schema_version'") == [("2",)]
    with Vault.open(home) as vault:
        assert query(home, "SELECT value FROM meta WHERE key = 'schema_version'") == [("3",)]
        tables = {name for (name,) in query(home, "SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert tables == {"meta", "services", "secrets", "records", "streams"}
        assert vault.secret("plain").reveal() == "sk-format2-plain-0123456789abcdef"
        token = (home / "agent-token.txt").read_text()
        assert agent_token(vault, "ci") == token and AgentTokens(vault)() == {"ci": token}
        record = oauth_state.load(vault, "acme")
        assert record is not None and record.state == "active" and record.can_refresh()
        assert record.access_fp == vault.secret("acme").fingerprint
        for read, value in [
            (oauth_state.access_token, "at-format2-0123456789abcdef"),
            (oauth_state.refresh_token, "rt-format2-0123456789abcdef"),
            (oauth_state.client_secret, "cs-format2-0123456789abcdef"),
        ]:
            found = read(vault, "acme")
            assert found is not None and found.reveal() == value
        assert budget.budget_of(vault, "plain") == budget.Budget(5, 3600.0)
        assert ratelimits.latest(vault, "plain") == ({"retry-after": "30"}, 1700000000.0)
        assert load_policy(vault, "plain") == ServicePolicy(confirm_writes=True, probe=parse_probe("GET /v1/models"))
        log = AuditLog.for_vault(vault)
        assert log.verify().ok and log.verify().count == 3
        log.append(source="cli")
        report = log.verify()
        assert report.ok and report.count == 4, report.summary()
        log.close()
        vault.remove_service("acme")  # its OAuth record goes with it, as the old table's rows did
        assert oauth_state.load(vault, "acme") is None
        assert query(home, "SELECT count(*) FROM records WHERE service = 'acme'") == [(0,)]


def test_a_format_2_vault_is_migrated_once_and_opens_again(old_home: Path) -> None:
    Vault.open(old_home).close()
    before = query(old_home, "SELECT kind, key, fields, version FROM records ORDER BY kind, key")
    with Vault.open(old_home) as vault:
        assert agent_token(vault, "ci") == (old_home / "agent-token.txt").read_text()
    assert query(old_home, "SELECT kind, key, fields, version FROM records ORDER BY kind, key") == before


def test_two_processes_opening_a_format_2_vault_at_once_migrate_it_once(old_home: Path) -> None:
    opened: list[Vault | BaseException] = []

    def open_it() -> None:
        try:
            opened.append(Vault.open(old_home))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            opened.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(isinstance(v, Vault) for v in opened), opened
    for vault in opened:
        assert isinstance(vault, Vault) and agent_token(vault, "ci") == (old_home / "agent-token.txt").read_text()
        vault.close()
    assert query(old_home, "SELECT count(*) FROM records WHERE kind = 'agent'") == [(1,)]


def test_a_format_2_audit_key_from_before_the_mark_is_carried_as_the_legacy_record(old_home: Path) -> None:
    with raw(old_home) as conn:
        conn.execute("UPDATE audit_anchor SET key = x'01', head = x'02', anchor = NULL")
    store = SQLiteStore.open(old_home / "vault.db")
    try:
        with store.read() as batch:
            legacy = batch.get("audit", "legacy")
            assert legacy is not None and legacy.fields == {"key": b"\x01", "head": b"\x02"}
            assert batch.tail("audit-anchor") is None
    finally:
        store.close()


def test_a_format_2_vault_damaged_mid_migration_is_left_as_it_was(old_home: Path) -> None:
    with raw(old_home) as conn:
        conn.execute("INSERT INTO agents (name, token, created_at) VALUES ('bad', x'00', 1.0)")
        conn.execute("CREATE TABLE records (oops)")  # the migration's INSERT into records fails
    with pytest.raises(VaultCorrupted, match="unreadable"):
        Vault.open(old_home)
    assert query(old_home, "SELECT value FROM meta WHERE key = 'schema_version'") == [("2",)]
    assert query(old_home, "SELECT count(*) FROM agents") == [(2,)]
