"""Token refresh against a real OAuth2 server on loopback HTTPS: every path of the lifecycle."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
import trustme

from clavis_mcp.vault import Secret, UnknownService, Vault, VaultCorrupted, validate_secret
from clavis_mcp.vault.errors import ReauthRequired, TokenEndpointError
from clavis_mcp.vault.oauth import state as oauth_store
from clavis_mcp.vault.oauth.flow import OAuthConfig, TokenGrant, token_request
from clavis_mcp.vault.oauth.refresh import ensure_fresh, refresh_after_rejection
from clavis_mcp.vault.oauth.token_endpoint import obtain_grant
from tests.conftest import SECRET, make_service
from tests.oauth_server import CLIENT_ID, CLIENT_SECRET, OAuthServer
from tests.vault.rawdb import edit_record

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def server(upstream_ca: trustme.CA) -> Iterator[OAuthServer]:
    with OAuthServer.start(upstream_ca) as s:
        yield s


def register(vault: Vault, server: OAuthServer, *, expires_at: float | None, name: str = "acme") -> Secret:
    """A refresh-token service whose login already happened: returns its current access token."""
    service = make_service(name, f"127.0.0.1:{server.port}", local=True)
    config = OAuthConfig(server.token_url, CLIENT_ID, "refresh_token", ("read",), server.authorize_url)
    first = Secret("at-initial-0123456789abcdef")
    grant = TokenGrant(first, expires_at, Secret(server.state.issue_refresh_token()), None)
    oauth_store.register(vault, service, config, Secret(CLIENT_SECRET), grant)
    return first


async def api_status(server: OAuthServer, token: Secret, ca: trustme.CA) -> int:
    trust = ssl.create_default_context()
    ca.configure_trust(trust)
    async with httpx.AsyncClient(verify=trust, trust_env=False) as client:
        response = await client.get(server.base + "/api/me", headers={"Authorization": f"Bearer {token.reveal()}"})
    return response.status_code


async def test_a_valid_token_is_used_without_calling_the_token_endpoint(vault: Vault, server: OAuthServer) -> None:
    first = register(vault, server, expires_at=time.time() + 3600)
    assert await ensure_fresh(vault, "acme") == first
    assert sum(server.state.hits.values()) == 0


async def test_a_due_token_is_refreshed_and_becomes_the_injected_credential(
    vault: Vault, server: OAuthServer, upstream_ca: trustme.CA
) -> None:
    first = register(vault, server, expires_at=time.time() + 30)  # inside the 60 s margin
    fresh = await ensure_fresh(vault, "acme")
    assert fresh is not None and fresh != first
    assert vault.snapshot().secrets["acme"] == fresh  # what the proxy injects
    assert server.state.hits == {"refresh_token": 1}
    assert await api_status(server, fresh, upstream_ca) == 200
    record = oauth_store.load(vault, "acme")
    assert record is not None and record.expires_at == pytest.approx(time.time() + 3600, abs=5)


async def test_a_rotated_refresh_token_is_persisted_with_its_access_token(vault: Vault, server: OAuthServer) -> None:
    register(vault, server, expires_at=0.0)
    old_refresh = oauth_store.refresh_token(vault, "acme")
    fresh = await ensure_fresh(vault, "acme")
    new_refresh = oauth_store.refresh_token(vault, "acme")
    assert new_refresh is not None and new_refresh != old_refresh
    assert server.state.refresh == {new_refresh.reveal()}  # the server killed the old one
    assert fresh is not None
    again = await refresh_after_rejection(vault, "acme", fresh.fingerprint)  # a second refresh needs the rotated token
    assert again is not None and again != fresh
    assert server.state.hits == {"refresh_token": 2}


async def test_many_concurrent_requests_in_one_process_refresh_once(vault: Vault, server: OAuthServer) -> None:
    register(vault, server, expires_at=0.0)
    server.state.delay = 0.2
    tokens = await asyncio.gather(*(ensure_fresh(vault, "acme") for _ in range(50)))
    assert server.state.hits == {"refresh_token": 1}
    assert len({t.fingerprint for t in tokens if t is not None}) == 1


async def test_several_processes_with_concurrent_requests_refresh_exactly_once(
    vault: Vault, server: OAuthServer, home: Path, tmp_path: Path
) -> None:
    """SECURITY-CASES 33: processes start together on an expired token; one refresh, all succeed."""
    register(vault, server, expires_at=0.0)
    server.state.delay = 0.3  # the refresh is in flight while every other process asks
    go = tmp_path / "go"
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.vault.oauth_race_worker",
                str(home),
                "acme",
                server.base + "/api/me",
                str(go),
                "10",
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=os.environ.copy(),
        )  # fmt: skip
        for _ in range(4)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
        go.touch()
        outputs = [worker.communicate(timeout=60) for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    results = [json.loads(out) for out, err in outputs]
    assert all(worker.returncode == 0 for worker in workers), [err for _, err in outputs]
    assert server.state.hits == {"refresh_token": 1}, results
    assert all(r["statuses"] == [200] * 10 for r in results)
    assert len({token for r in results for token in r["tokens"]}) == 1


async def test_a_401_refreshes_once_and_the_next_use_gets_the_new_token(
    vault: Vault, server: OAuthServer, upstream_ca: trustme.CA
) -> None:
    register(vault, server, expires_at=0.0)
    token = await ensure_fresh(vault, "acme")
    assert token is not None
    server.state.expire_access_tokens()  # the provider revoked it early
    assert await api_status(server, token, upstream_ca) == 401
    replaced = await asyncio.gather(*(refresh_after_rejection(vault, "acme", token.fingerprint) for _ in range(10)))
    assert server.state.hits == {"refresh_token": 2}
    new = vault.snapshot().secrets["acme"]
    assert {t.fingerprint for t in replaced if t is not None} == {new.fingerprint}
    assert await api_status(server, new, upstream_ca) == 200


async def test_a_revoked_refresh_token_requires_reauth_without_a_retry_storm(vault: Vault, server: OAuthServer) -> None:
    """SECURITY-CASES 34: invalid_grant once, then everybody is told to log in; nobody retries."""
    register(vault, server, expires_at=0.0)
    server.state.revoke_refresh_tokens()
    outcomes = await asyncio.gather(*(ensure_fresh(vault, "acme") for _ in range(20)), return_exceptions=True)
    assert all(isinstance(o, ReauthRequired) for o in outcomes)
    assert "clavis-mcp oauth login acme" in str(outcomes[0])
    for _ in range(5):
        with pytest.raises(ReauthRequired):
            await ensure_fresh(vault, "acme")
    assert server.state.hits == {"refresh_token": 1}
    record = oauth_store.load(vault, "acme")
    assert record is not None and record.state == "reauth_required" and "invalid_grant" in record.reason


async def test_a_dead_grant_stops_even_a_token_that_has_not_expired(vault: Vault, server: OAuthServer) -> None:
    first = register(vault, server, expires_at=time.time() + 3600)
    server.state.revoke_refresh_tokens()
    with pytest.raises(ReauthRequired):
        await refresh_after_rejection(vault, "acme", first.fingerprint)
    with pytest.raises(ReauthRequired):
        await ensure_fresh(vault, "acme")  # no stale token is handed out


async def test_a_down_endpoint_leaves_the_current_token_in_use_while_it_is_valid(
    vault: Vault, server: OAuthServer
) -> None:
    first = register(vault, server, expires_at=time.time() + 30)
    server.state.down = True
    assert await ensure_fresh(vault, "acme") == first
    assert await ensure_fresh(vault, "acme") == first  # backing off: no second attempt yet
    assert server.state.hits == {"refresh_token": 1}
    record = oauth_store.load(vault, "acme")
    assert record is not None and record.failures == 1 and "HTTP 503" in record.reason


async def test_a_down_endpoint_with_an_expired_token_is_a_clear_error(vault: Vault, server: OAuthServer) -> None:
    register(vault, server, expires_at=0.0)
    server.state.down = True
    with pytest.raises(TokenEndpointError, match="temporarily_unavailable.*expired meanwhile") as caught:
        await ensure_fresh(vault, "acme")
    with pytest.raises(TokenEndpointError, match="next attempt in"):
        await ensure_fresh(vault, "acme")
    assert server.state.hits == {"refresh_token": 1}
    assert CLIENT_SECRET not in str(caught.value)


async def test_an_unreachable_endpoint_says_so(vault: Vault, server: OAuthServer) -> None:
    register(vault, server, expires_at=0.0)
    server.stop()
    with pytest.raises(TokenEndpointError, match="could not be reached"):
        await ensure_fresh(vault, "acme")


async def test_a_client_credentials_service_gets_a_new_token_when_due(vault: Vault, server: OAuthServer) -> None:
    service = make_service("machine", f"127.0.0.1:{server.port}", local=True)
    config = OAuthConfig(server.token_url, CLIENT_ID, "client_credentials", client_auth="basic")
    server.state.expires_in = 30  # every token is born due
    request = token_request(config, Secret(CLIENT_SECRET), grant_type="client_credentials")
    grant = await obtain_grant("machine", request, local=True)
    oauth_store.register(vault, service, config, Secret(CLIENT_SECRET), grant)
    fresh = await ensure_fresh(vault, "machine")
    assert fresh is not None and fresh != grant.access_token
    assert server.state.hits == {"client_credentials": 2}


async def test_a_service_without_oauth_is_left_alone(vault: Vault) -> None:
    vault.add_service(make_service("plain", "api.x.test"), validate_secret(SECRET))
    assert await ensure_fresh(vault, "plain") is None
    assert await refresh_after_rejection(vault, "plain", Secret(SECRET).fingerprint) is None


async def test_tokens_are_sealed_and_bound_to_their_service_and_field(
    vault: Vault, server: OAuthServer, home: Path
) -> None:
    register(vault, server, expires_at=0.0)
    fresh = await ensure_fresh(vault, "acme")
    refresh = oauth_store.refresh_token(vault, "acme")
    assert fresh is not None and refresh is not None
    raw = (home / "vault.db").read_bytes() + (home / "vault.db-wal").read_bytes()
    for value in (fresh.reveal(), refresh.reveal(), CLIENT_SECRET):
        assert value.encode() not in raw
    # an attacker with write access swaps two ciphertexts
    edit_record(home, "oauth", "acme", lambda fields: fields.update(client_secret=fields["refresh_token"]))
    with pytest.raises(VaultCorrupted, match="client secret of 'acme' failed its integrity check"):
        oauth_store.client_secret(vault, "acme")


async def test_removing_the_service_removes_its_oauth_tokens(vault: Vault, server: OAuthServer) -> None:
    register(vault, server, expires_at=0.0)
    vault.remove_service("acme")
    assert oauth_store.load(vault, "acme") is None
    with pytest.raises(UnknownService):
        oauth_store.refresh_token(vault, "acme")


async def test_no_token_reaches_a_log_or_an_error(
    vault: Vault, server: OAuthServer, caplog: pytest.LogCaptureFixture
) -> None:
    """SECURITY-CASES 24: token responses are consumed by the vault; none is logged or raised."""
    caplog.set_level(logging.DEBUG)
    register(vault, server, expires_at=0.0)
    await ensure_fresh(vault, "acme")
    server.state.revoke_refresh_tokens()
    server.state.expire_access_tokens()
    errors = []
    for _ in range(2):
        try:
            await refresh_after_rejection(vault, "acme", vault.snapshot().secrets["acme"].fingerprint)
        except ReauthRequired as exc:
            errors.append(repr(exc) + str(exc))
    seen = caplog.text + "".join(errors) + repr(oauth_store.load(vault, "acme"))
    for body in server.state.token_bodies:
        for value in json.loads(body).values():
            if isinstance(value, str) and len(value) > 10:
                assert value not in seen
    assert CLIENT_SECRET not in seen


async def test_a_refresher_whose_lease_ran_out_does_not_kill_the_newer_grant(
    vault: Vault, server: OAuthServer, home: Path
) -> None:
    """A slow refresher loses the rotation race to a second process; its invalid_grant must not
    put the service in reauth_required, and it ends up with the winner's token."""
    register(vault, server, expires_at=0.0)
    server.state.delays = [1.0]  # the first refresh request is slow, the second is not
    other = Vault.open(home)  # a second process's connection
    try:
        slow = asyncio.create_task(ensure_fresh(vault, "acme"))
        with anyio.fail_after(10):
            while server.state.hits["refresh_token"] < 1:
                await asyncio.sleep(0.01)
        # its lease runs out while the request is in flight
        edit_record(home, "oauth", "acme", lambda fields: fields.update(lease_until=0))
        winner = await ensure_fresh(other, "acme")
        loser = await slow
    finally:
        other.close()
    assert winner is not None and loser == winner
    record = oauth_store.load(vault, "acme")
    assert record is not None and record.state == "active"
    assert server.state.hits == {"refresh_token": 2}


async def test_an_unkeyed_fingerprint_left_by_an_older_version_is_replaced_by_the_keyed_one(
    home: Path, server: OAuthServer
) -> None:
    """An unkeyed sha256 fingerprint is an offline oracle for the token, and never matches the
    injected credential's keyed one (every request would rewrite the credential)."""
    vault = Vault.create(home)
    first = register(vault, server, expires_at=time.time() + 3600)
    edit_record(home, "oauth", "acme", lambda fields: fields.update(access_fp="sha256:0123456789ab"))
    vault.close()
    reopened = Vault.open(home)
    try:
        record = oauth_store.load(reopened, "acme")
        assert record is not None and record.access_fp == first.fingerprint and record.access_fp.startswith("hmac:")
        assert await ensure_fresh(reopened, "acme") == first
        assert sum(server.state.hits.values()) == 0
    finally:
        reopened.close()
