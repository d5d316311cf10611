"""An OAuth token's stored fingerprint is its own vault's, whatever vault the process opened last.

A Secret made outside a vault (the token a provider has just sent) is fingerprinted with the key
of the vault the process opened last. The OAuth row stored that fingerprint as ``access_fp`` and
compared it with the vault-keyed fingerprint of the injected credential: after a process had
opened another vault, every request rewrote the credential, and a process keyed right (the
standalone proxy, which opens only this vault) never refreshed after a 401. Against a real
OAuth2 server on loopback HTTPS.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import trustme

from clavis_mcp.vault import Secret, Vault
from clavis_mcp.vault.oauth import state as oauth_store
from clavis_mcp.vault.oauth.flow import OAuthConfig, TokenGrant
from clavis_mcp.vault.oauth.refresh import ensure_fresh, refresh_after_rejection
from tests.conftest import make_service
from tests.oauth_server import CLIENT_ID, CLIENT_SECRET, OAuthServer
from tests.vault.rawdb import edit_record, query

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


@pytest.fixture
def server(upstream_ca: trustme.CA) -> Iterator[OAuthServer]:
    with OAuthServer.start(upstream_ca) as s:
        yield s


def register(vault: Vault, server: OAuthServer, expires_at: float | None) -> None:
    service = make_service("acme", f"127.0.0.1:{server.port}", local=True)
    config = OAuthConfig(server.token_url, CLIENT_ID, "refresh_token", (), server.authorize_url)
    grant = TokenGrant(
        Secret("at-initial-0123456789abcdef"), expires_at, Secret(server.state.issue_refresh_token()), None
    )
    oauth_store.register(vault, service, config, Secret(CLIENT_SECRET), grant)


@contextmanager
def another_vault_opened(tmp_path: Path) -> Iterator[None]:
    """The process opens a second vault (a test suite, a CLI working on two homes, a migration);
    closing it does not undo that: Secrets made later are still keyed with its key."""
    other = Vault.create(tmp_path / "another-home")
    try:
        yield
    finally:
        other.close()


async def refreshed_after_another_vault_opened(vault: Vault, server: OAuthServer, tmp_path: Path) -> None:
    """A due token refreshed by a process (the MCP server, say) that has opened another vault since."""
    register(vault, server, expires_at=0.0)
    with another_vault_opened(tmp_path):
        await ensure_fresh(vault, "acme")
    assert server.state.hits == {"refresh_token": 1}


def services_version(vault: Vault) -> str:
    return str(query(vault.home, "SELECT value FROM meta WHERE key = 'services_version'")[0][0])


async def test_a_token_refreshed_after_another_vault_opened_is_stored_with_its_own_vaults_fingerprint(
    vault: Vault, server: OAuthServer, tmp_path: Path
) -> None:
    await refreshed_after_another_vault_opened(vault, server, tmp_path)
    record = oauth_store.load(vault, "acme")
    assert record is not None and record.access_fp == vault.snapshot().secrets["acme"].fingerprint


async def test_the_credential_is_not_rewritten_on_every_request_after_another_vault_opened(
    vault: Vault, server: OAuthServer, tmp_path: Path
) -> None:
    await refreshed_after_another_vault_opened(vault, server, tmp_path)
    version = services_version(vault)
    for _ in range(3):
        await ensure_fresh(vault, "acme")  # what the proxy asks before each request
    assert services_version(vault) == version  # no write: every snapshot of every process stays


async def test_a_401_is_refreshed_by_a_process_that_opened_only_this_vault(
    vault: Vault, server: OAuthServer, home: Path, tmp_path: Path
) -> None:
    await refreshed_after_another_vault_opened(vault, server, tmp_path)
    with Vault.open(home) as proxy_process:  # a standalone proxy: this vault is the only one it knows
        token = await ensure_fresh(proxy_process, "acme")
        assert token is not None
        again = await refresh_after_rejection(proxy_process, "acme", token.fingerprint)  # the provider said 401
    assert server.state.hits == {"refresh_token": 2}
    assert again is not None and again != token


async def test_a_fingerprint_keyed_by_another_vault_is_rekeyed_when_the_vault_is_next_opened(
    vault: Vault, server: OAuthServer, home: Path, tmp_path: Path
) -> None:
    """Rows written before this fix: the one-time migration that keyed ``sha256:`` fingerprints
    also replaces one keyed with the wrong vault's key."""
    register(vault, server, expires_at=time.time() + 3600)
    with another_vault_opened(tmp_path):
        wrong = Secret(vault.snapshot().secrets["acme"].reveal()).fingerprint  # keyed with the other vault's key
    edit_record(home, "oauth", "acme", lambda fields: fields.update(access_fp=wrong))
    with Vault.open(home) as reopened:
        record = oauth_store.load(reopened, "acme")
        assert record is not None and record.access_fp == reopened.snapshot().secrets["acme"].fingerprint


async def test_the_token_a_refresh_returns_carries_its_own_vaults_fingerprint(
    vault: Vault, server: OAuthServer, tmp_path: Path
) -> None:
    """The proxy notes the returned token's fingerprint on the flow; a 401 on that very request
    refreshes only if it matches the stored one."""
    register(vault, server, expires_at=0.0)
    with another_vault_opened(tmp_path):
        fresh = await ensure_fresh(vault, "acme")
    record = oauth_store.load(vault, "acme")
    assert fresh is not None and record is not None and fresh.fingerprint == record.access_fp
