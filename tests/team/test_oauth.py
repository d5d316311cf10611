"""OAuth refresh in team mode: exactly one refresh per expiry across three workers (PostgreSQL
advisory lock, OpenBao KV v2 check-and-set), with rotating refresh tokens; no token reaches a
caller, a log or an audit row."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from clavis import ClavisClient, TokenError

from clavis_mcp.team.bootstrap import Bootstrap
from clavis_mcp.team.config import ReplicaConfig
from clavis_mcp.team.oauth import ensure_fresh
from clavis_mcp.team.replica import Replica
from clavis_mcp.team.storage import service_to_json
from tests.conftest import make_service
from tests.oauth_server import CLIENT_ID, CLIENT_SECRET, OAuthServer

from .conftest import TeamServer, assert_nothing_leaked, audit_rows, new_key, start_server, stop_server

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


@pytest.fixture
def provider(upstream_ca: trustme.CA) -> Iterator[OAuthServer]:
    with OAuthServer.start(upstream_ca) as server:
        yield server


@pytest.fixture
def replicas(tmp_path: Path, team: Bootstrap, upstream_ca: trustme.CA) -> Iterator[TeamServer]:
    srv = start_server(tmp_path, team, upstream_ca, workers=3)
    yield srv
    stop_server(srv.process)
    assert_nothing_leaked(srv, team)


def register(server: TeamServer, provider: OAuthServer) -> str:
    refresh = provider.state.issue_refresh_token()
    definition = service_to_json(make_service("acme", f"127.0.0.1:{provider.port}", local=True))
    with server.admin() as admin:
        added = admin.post("/v1/admin/services", json={"definition": definition, "secret": "pending-first-refresh"})
        assert added.status_code == 201, added.text
        grant = {"token_url": provider.token_url, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                 "refresh_token": refresh}  # fmt: skip
        answer = admin.put("/v1/admin/services/acme/oauth", json=grant)
        assert answer.status_code == 200, answer.text
    return refresh


async def test_one_refresh_per_expiry_across_workers(
    replicas: TeamServer, provider: OAuthServer, team: Bootstrap
) -> None:
    first_refresh = register(replicas, provider)
    provider.state.delay = 0.3  # a wide window for a second refresh to slip in, were there no lock
    client = ClavisClient(new_key(replicas, "agent", ["acme"]), base_url=replicas.url)
    answers = await asyncio.gather(*(client.proxy("acme", "GET", "/api/me") for _ in range(12)))
    assert [a.status_code for a in answers] == [200] * 12
    assert provider.state.hits["refresh_token"] == 1
    provider.state.expire_access_tokens()  # the provider forgets them; our expiry says they are fresh
    again = await client.proxy("acme", "GET", "/api/me")
    assert again.status_code == 401 and provider.state.hits["refresh_token"] == 1
    tokens = [*provider.state.access, *provider.state.refresh, first_refresh, CLIENT_SECRET]
    text = "\n".join([*(a.model_dump_json() for a in answers), replicas.log_text(), *audit_rows(team)])
    assert not any(t in text for t in tokens)


async def test_a_refused_refresh_is_a_503_token_error(replicas: TeamServer, provider: OAuthServer) -> None:
    register(replicas, provider)
    provider.state.revoke_refresh_tokens()
    client = ClavisClient(new_key(replicas, "agent", ["acme"]), base_url=replicas.url)
    with pytest.raises(TokenError) as failed:
        await client.proxy("acme", "GET", "/api/me")
    assert "refused the refresh" in str(failed.value)


def test_replicas_racing_on_an_expired_token_refresh_it_once(
    replicas: TeamServer, provider: OAuthServer, team: Bootstrap, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three replica processes' worth of state (connections, AppRole logins) race in threads: the
    HTTP workers of one host accept connections in batches, so the race is set up here directly."""
    register(replicas, provider)
    monkeypatch.setenv("CLAVIS_UPSTREAM_CA", replicas.env["CLAVIS_UPSTREAM_CA"])
    provider.state.delay = 0.3
    racers = [Replica(ReplicaConfig.from_env(team.env)) for _ in range(3)]
    barrier = threading.Barrier(len(racers))
    outcomes: list[object] = []

    def race(replica: Replica) -> None:
        barrier.wait()
        try:
            outcomes.append(ensure_fresh(replica.config, "acme", replica.mirror.home))
        except Exception as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=race, args=(r,)) for r in racers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for replica in racers:
        replica.mirror.close()
        replica.bao.close()
        replica.conn.close()
    assert sorted(map(repr, outcomes)) == ["False", "False", "True"]
    assert provider.state.hits["refresh_token"] == 1
