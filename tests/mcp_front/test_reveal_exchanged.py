"""get_credentials on methods whose stored key is not what goes on the wire, through a real MCP
session: a GitHub App reveals (and masks) the installation token the proxy would inject, exchanged
at a loopback stand-in for GitHub's token endpoint, never the App's private key; a signing key
(AWS SigV4, HMAC) has no token to show, so a full reveal is refused."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from mcp import Client
from mcp.types import ElicitResult

from clavis_mcp.certs import LocalCA
from clavis_mcp.mcp_front import Gateway, build_server
from clavis_mcp.vault import AuditLog, Secret, Vault, validate_secret
from clavis_mcp.vault.auth.base import AuthMethod
from clavis_mcp.vault.auth.github_app import GitHubAppAuth
from clavis_mcp.vault.auth.hmac_sign import HmacAuth
from clavis_mcp.vault.auth.sigv4 import ACCESS_KEY_ID, SigV4Auth
from demo.echo_upstream import Received
from tests.conftest import SECRET, make_service
from tests.proxy.auth_upstream import Answer, AuthUpstream, auth_upstream

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

APP_ID, INSTALLATION = "12345", "678"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PEM = KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
)
STORED_KEY = base64.b64encode(PEM).decode()  # as the reviewer stored it (t12.py)
PEM_BODY = PEM.decode().splitlines()[5]  # a line from the middle of the key


class TokenEndpoint:
    """GitHub's installation-token endpoint: each exchange gives a new token, valid for an hour."""

    def __init__(self) -> None:
        self.tokens: list[str] = []

    def __call__(self, received: Received) -> Answer:
        if received.method != "POST" or received.path != f"/app/installations/{INSTALLATION}/access_tokens":
            return 404, [], b""
        token = f"ghs_installationToken{len(self.tokens):04d}xyzABC0123456789"
        self.tokens.append(token)
        expires = datetime.fromtimestamp(datetime.now(UTC).timestamp() + 3600, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return 201, [("Content-Type", "application/json")], json.dumps({"token": token, "expires_at": expires}).encode()


@pytest.fixture
def github() -> TokenEndpoint:
    return TokenEndpoint()


@pytest.fixture
def upstream(upstream_ca: trustme.CA, github: TokenEndpoint) -> Iterator[AuthUpstream]:
    with auth_upstream(upstream_ca, ("127.0.0.1",), github) as server:
        yield server


def add_app(vault: Vault, upstream: AuthUpstream, reveal: str) -> None:
    method = GitHubAppAuth(APP_ID, INSTALLATION, api_url=f"https://127.0.0.1:{upstream.port}").validate()
    service = replace(make_service("ghapp", f"127.0.0.1:{upstream.port}", local=True, reveal=reveal), auth=method)
    vault.add_service(service, validate_secret(STORED_KEY))


def text_of(result: object) -> str:
    return " ".join(getattr(c, "text", "") for c in getattr(result, "content", []))


def holds_the_key(result: object) -> bool:
    """The key in any field, structured or text, as stored, as PEM, or base64 of either."""
    structured = getattr(result, "structured_content", None) or {}
    strings = [text_of(result), str(result), *(str(v) for v in structured.values())]
    for text in list(strings):
        try:
            strings.append(base64.b64decode(text, validate=True).decode("latin1"))
        except ValueError:
            continue
    return any(PEM_BODY in text or STORED_KEY[40:80] in text for text in strings)


@pytest.mark.reveals_secret
async def test_a_full_reveal_of_a_github_app_gives_the_installation_token_never_the_private_key(
    client: Client, vault: Vault, upstream: AuthUpstream, github: TokenEndpoint
) -> None:
    add_app(vault, upstream, "full")
    result = await client.call_tool("get_credentials", {"service_name": "ghapp"})
    assert not result.is_error, text_of(result)
    assert github.tokens and result.structured_content["value"] == github.tokens[-1]
    assert not holds_the_key(result)


async def test_a_masked_github_app_shows_the_tokens_last_characters_not_the_pems(
    client: Client, vault: Vault, upstream: AuthUpstream, github: TokenEndpoint
) -> None:
    add_app(vault, upstream, "masked")
    result = await client.call_tool("get_credentials", {"service_name": "ghapp"})
    assert not result.is_error, text_of(result)
    (token,) = github.tokens
    shown = result.structured_content
    assert shown["masked"] == Secret(token).masked() != Secret(STORED_KEY).masked()
    assert shown["fingerprint"] == Secret(token).fingerprint and shown.get("value") is None
    assert not holds_the_key(result) and token not in str(result)


@pytest.mark.reveals_secret
async def test_a_current_installation_token_is_revealed_without_another_exchange_and_each_exchange_is_audited(
    client: Client, vault: Vault, upstream: AuthUpstream, github: TokenEndpoint, home: Path
) -> None:
    add_app(vault, upstream, "full")
    first = await client.call_tool("get_credentials", {"service_name": "ghapp"})
    second = await client.call_tool("get_credentials", {"service_name": "ghapp"})
    assert first.structured_content["value"] == second.structured_content["value"] == github.tokens[0]
    assert len(github.tokens) == 1
    records = [json.loads(line) for line in (home / "audit.jsonl").read_text().splitlines()]
    exchanges = [r for r in records if r.get("action") == "token-exchange"]
    assert [(r["source"], r["decision"]) for r in exchanges] == [("mcp", "exchanged")]
    assert [r["decision"] for r in records if r.get("action") == "reveal"] == ["revealed", "revealed"]
    assert not any(secret in json.dumps(records) for secret in (github.tokens[0], STORED_KEY, PEM_BODY))


SIGNING_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.mark.parametrize(
    "method",
    [SigV4Auth(region="us-east-1", service="s3"), HmacAuth(key_id="k1", key_id_header="X-Key-Id")],
    ids=["sigv4-secret-access-key", "hmac-key"],
)
async def test_a_full_reveal_of_a_signing_key_is_refused_saying_why(
    client: Client, vault: Vault, home: Path, method: AuthMethod
) -> None:
    service = replace(make_service("signed", "s3.amazonaws.com", reveal="full"), auth=method.validate())
    vault.add_service(service, validate_secret(SIGNING_KEY))
    if isinstance(method, SigV4Auth):
        vault.set_secret("signed", ACCESS_KEY_ID, validate_secret("AKIAIOSFODNN7EXAMPLE"))
    result = await client.call_tool("get_credentials", {"service_name": "signed"})
    assert result.is_error and "signs each request" in text_of(result) and "call_service" in text_of(result)
    assert SIGNING_KEY not in str(result) and SIGNING_KEY[-12:] not in str(result)
    records = [json.loads(line) for line in (home / "audit.jsonl").read_text().splitlines()]
    assert [r["decision"] for r in records if r.get("action") == "reveal"] == ["refused"]


@pytest.mark.reveals_secret
async def test_a_key_sent_as_stored_is_still_revealed_in_full(client: Client, vault: Vault) -> None:
    vault.add_service(make_service("plain", "api.plain.test", reveal="full"), validate_secret(SECRET))
    result = await client.call_tool("get_credentials", {"service_name": "plain"})
    assert not result.is_error and result.structured_content["value"] == SECRET


def asking() -> tuple[Any, list[str]]:
    """An elicitation callback that approves and remembers the questions it was asked."""
    asked: list[str] = []

    async def callback(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="accept", content={"approve": True})

    return callback, asked


@pytest.mark.reveals_secret
async def test_the_reveal_question_of_a_github_app_names_the_installation_token_not_the_full_credential(
    vault: Vault, audit: AuditLog, home: Path, upstream: AuthUpstream, github: TokenEndpoint
) -> None:
    add_app(vault, upstream, "full")
    callback, asked = asking()
    gateway = Gateway(vault, audit, LocalCA(home / "certs"))
    async with Client(build_server(gateway), elicitation_callback=callback) as session:
        result = await session.call_tool("get_credentials", {"service_name": "ghapp"})
    await gateway.aclose()
    assert not result.is_error and result.structured_content["value"] == github.tokens[-1]
    assert len(asked) == 1 and "installation token" in asked[0] and "private key" in asked[0]
    assert "full credential" not in asked[0]


async def test_a_signing_key_is_refused_without_asking_the_user_first(
    vault: Vault, audit: AuditLog, home: Path
) -> None:
    service = replace(make_service("signed", "api.signed.test", reveal="full"), auth=HmacAuth(key_id="k1").validate())
    vault.add_service(service, validate_secret(SIGNING_KEY))
    callback, asked = asking()
    gateway = Gateway(vault, audit, LocalCA(home / "certs"))
    async with Client(build_server(gateway), elicitation_callback=callback) as session:
        result = await session.call_tool("get_credentials", {"service_name": "signed"})
    await gateway.aclose()
    assert result.is_error and "signs each request" in text_of(result)
    assert asked == []  # a question whose yes cannot be honoured is not asked
