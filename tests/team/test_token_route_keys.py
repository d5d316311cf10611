"""The team server's /v1/tokens/{svc} (the SDK's get_token) never hands out a key that is not what
goes on the wire: a GitHub App's private key (it mints installation tokens) or a signing key,
whatever the reveal policy says. A real team server, OpenBao and PostgreSQL, the unmodified SDK."""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

import pytest
from clavis import ClavisClient, ClavisError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from clavis_mcp.team.bootstrap import Bootstrap
from clavis_mcp.team.storage import service_to_json
from clavis_mcp.vault.auth.base import AuthMethod
from clavis_mcp.vault.auth.github_app import GitHubAppAuth
from clavis_mcp.vault.auth.hmac_sign import HmacAuth
from demo.echo_upstream import EchoUpstream
from tests.conftest import make_service

from .conftest import TeamServer, audit_rows, new_key

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

PEM = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
)
APP_KEY = base64.b64encode(PEM).decode()
HMAC_KEY = "hmacSigningKey-5f0c1e7a9b2d4c6e8f1a3b5c7d9e0f12"


def add(server: TeamServer, upstream: EchoUpstream, auth: AuthMethod, secret: str) -> None:
    service = replace(make_service("keyed", f"127.0.0.1:{upstream.port}", local=True, reveal="full"), auth=auth)
    definition: dict[str, Any] = service_to_json(service)
    with server.admin() as admin:
        answer = admin.post("/v1/admin/services", json={"definition": definition, "secret": secret})
        assert answer.status_code == 201, answer.text


@pytest.mark.parametrize(
    ("auth", "secret"),
    [
        (GitHubAppAuth("12345", "678", api_url="https://api.github.com"), APP_KEY),
        (HmacAuth(key_id="k1", key_id_header="X-Key-Id"), HMAC_KEY),
    ],
    ids=["github-app-private-key", "hmac-signing-key"],
)
async def test_get_token_never_hands_out_a_key_that_is_not_sent_as_stored(
    server: TeamServer, upstream: EchoUpstream, team: Bootstrap, auth: AuthMethod, secret: str
) -> None:
    add(server, upstream, auth.validate(), secret)
    client = ClavisClient(new_key(server, "agent", ["keyed"]), base_url=server.url)
    with pytest.raises(ClavisError) as refused:
        await client.get_token("keyed")
    assert refused.value.status_code == 403 and "/v1/call/keyed" in str(refused.value)
    assert "never handed out" in str(refused.value)
    assert secret not in str(refused.value) and secret[-12:] not in str(refused.value)
    reveals = [r for r in audit_rows(team) if '"action":"reveal"' in r]
    assert len(reveals) == 1 and '"decision":"refused"' in reveals[0]


def test_the_services_list_shows_such_a_service_as_never_revealed(server: TeamServer, upstream: EchoUpstream) -> None:
    """What /v1/tokens will do, so a client does not ask its user about a reveal that is refused."""
    add(server, upstream, HmacAuth(key_id="k1", key_id_header="X-Key-Id").validate(), HMAC_KEY)
    with server.admin() as admin:
        (row,) = [s for s in admin.get("/v1/services").json()["services"] if s["name"] == "keyed"]
    assert row["reveal"] == "never"
