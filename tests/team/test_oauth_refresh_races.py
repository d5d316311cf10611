"""An OAuth refresh that an admin's change overtook writes nothing of the service's: the change is
made in process between the refresh's reads and its writes (while the real token endpoint
answers), on real OpenBao and PostgreSQL, and the next request refreshes again."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from clavis_mcp.team import oauth
from clavis_mcp.team.bootstrap import Bootstrap
from clavis_mcp.team.config import ReplicaConfig
from clavis_mcp.team.replica import Replica
from clavis_mcp.vault import Secret
from clavis_mcp.vault.errors import ApiRefused
from demo.echo_upstream import write_ca
from tests.conftest import make_service
from tests.oauth_server import CLIENT_ID, CLIENT_SECRET, OAuthServer

pytestmark = pytest.mark.e2e

ROTATED = "rotated-secret-0123456789"


@pytest.fixture
def provider(upstream_ca: trustme.CA) -> Iterator[OAuthServer]:
    with OAuthServer.start(upstream_ca) as server:
        yield server


@pytest.fixture
def replica(
    team: Bootstrap, upstream_ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Replica]:
    monkeypatch.setenv("CLAVIS_UPSTREAM_CA", str(write_ca(upstream_ca, tmp_path / "upstream-ca.pem")))
    replica = Replica(ReplicaConfig.from_env(team.env))
    yield replica
    replica.mirror.close()
    replica.bao.close()
    replica.conn.close()


def add_oauth_service(replica: Replica, provider: OAuthServer, secret: str = "pending-first-refresh") -> str:
    """An OAuth service as an admin makes one: the service, then its grant; returns the refresh token."""
    replica.store.add(make_service("acme", f"127.0.0.1:{provider.port}", local=True), Secret(secret))
    refresh = provider.state.issue_refresh_token()
    grant = {"token_url": provider.token_url, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
             "refresh_token": refresh}  # fmt: skip
    oauth.register(replica, "acme", grant)
    return refresh


def refresh_with(replica: Replica, monkeypatch: pytest.MonkeyPatch, meanwhile: Callable[[], None]) -> None:
    """One refresh whose token endpoint has answered (for real) when ``meanwhile`` runs, before the
    refresh writes anything: the window a change on another replica can fall into."""
    real = oauth._refresh

    def answered_then_changed(*args: Any) -> dict[str, Any]:
        answer = real(*args)
        meanwhile()
        return answer

    monkeypatch.setattr(oauth, "_refresh", answered_then_changed)
    try:
        oauth.ensure_fresh(replica.config, "acme", replica.mirror.home)
    finally:
        monkeypatch.setattr(oauth, "_refresh", real)


def credential(replica: Replica) -> str:
    """What the mirror would inject: the KV version the service's row records."""
    row = replica.conn.execute("SELECT secret_version FROM services WHERE name = 'acme'").fetchone()
    assert row is not None
    found = replica.store.secret("acme", int(row[0]))
    assert found is not None
    return found.reveal()


def grant_refresh_token(replica: Replica) -> str:
    found = replica.bao.kv_read(replica.names.kv, "oauth/acme")
    assert found is not None
    return found[0]["refresh_token"]


def expiry(replica: Replica) -> float:
    row = replica.conn.execute("SELECT expires_at FROM oauth WHERE service = 'acme'").fetchone()
    assert row is not None
    return float(row[0])


def test_a_refresh_overtaken_by_a_rotation_leaves_the_rotated_credential_and_the_next_refreshes_again(
    replica: Replica, provider: OAuthServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_oauth_service(replica, provider)
    with pytest.raises(ApiRefused) as lost:
        refresh_with(replica, monkeypatch, lambda: replica.store.rotate("acme", Secret(ROTATED)))
    assert lost.value.status == 503 and "try again" in str(lost.value)
    assert credential(replica) == ROTATED
    assert expiry(replica) == 0  # still due
    assert grant_refresh_token(replica) in provider.state.refresh  # the same grant's rotated token is kept

    assert oauth.ensure_fresh(replica.config, "acme", replica.mirror.home) is True
    assert credential(replica) in provider.state.access
    assert provider.state.hits["refresh_token"] == 2


def test_a_refresh_overtaken_by_a_remove_and_add_of_the_name_leaves_the_new_service_alone(
    replica: Replica, provider: OAuthServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The new service starts again at KV version 1 and its grant too: versions alone would let
    the old service's tokens through."""
    add_oauth_service(replica, provider)
    new_refresh: list[str] = []

    def replaced() -> None:
        replica.store.remove("acme")
        new_refresh.append(add_oauth_service(replica, provider, ROTATED))

    with pytest.raises(ApiRefused) as lost:
        refresh_with(replica, monkeypatch, replaced)
    assert lost.value.status == 503
    assert credential(replica) == ROTATED
    assert grant_refresh_token(replica) == new_refresh[0]
    assert expiry(replica) == 0

    assert oauth.ensure_fresh(replica.config, "acme", replica.mirror.home) is True
    assert credential(replica) in provider.state.access
