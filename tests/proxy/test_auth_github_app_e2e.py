"""A GitHub App end to end through the real proxy: the App's private key signs a JWT, the proxy
exchanges it at a loopback stand-in for GitHub's token endpoint (which verifies the RS256
signature with the App's public key) and puts the installation token on the agent's request;
one exchange however many requests find the token due; a new one before it expires."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
import trustme
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from clavis_mcp.proxy import EmbeddedProxy
from clavis_mcp.vault import Vault, validate_secret
from clavis_mcp.vault.auth import github_app
from clavis_mcp.vault.auth.github_app import GitHubAppAuth
from demo.echo_upstream import Received
from tests.conftest import make_service, proxy_client
from tests.proxy.auth_upstream import Answer, AuthUpstream, auth_upstream, headers_of

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

APP_ID, INSTALLATION = "123456", "42"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PEM = KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
STORED_KEY = base64.b64encode(PEM).decode()
JSON = [("Content-Type", "application/json")]


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class GitHub:
    """The token endpoint and one API route; ``lifetime`` is how long each token it issues lives."""

    def __init__(self) -> None:
        self.exchanges = 0
        self.tokens: list[str] = []
        self.lifetime = 3600.0
        self.refuse = False
        self.lock = threading.Lock()

    def jwt_problem(self, authorization: str) -> str | None:
        head, body, signature = authorization.removeprefix("Bearer ").split(".")
        try:
            KEY.public_key().verify(_unb64(signature), f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return "bad signature"
        claims = json.loads(_unb64(body))
        if json.loads(_unb64(head)) != {"alg": "RS256", "typ": "JWT"} or claims["iss"] != APP_ID:
            return "wrong header or issuer"
        if not claims["iat"] <= time.time() < claims["exp"] or claims["exp"] - claims["iat"] > 600:
            return "outside its window"
        return None

    def __call__(self, received: Received) -> Answer:
        headers = headers_of(received)
        if received.path == f"/app/installations/{INSTALLATION}/access_tokens" and received.method == "POST":
            if self.refuse or self.jwt_problem(headers.get("authorization", "")):
                return (
                    401,
                    [("Content-Type", "application/json")],
                    b'{"message": "A JSON web token could not be decoded"}',
                )
            time.sleep(0.2)  # a slow endpoint, so that concurrent requests pile up behind the one exchange
            with self.lock:
                self.exchanges += 1
                token = f"ghs_installationToken{self.exchanges:04d}xyzABC0123456789"
                self.tokens.append(token)
            expires = datetime.fromtimestamp(time.time() + self.lifetime, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            return (
                201,
                [("Content-Type", "application/json")],
                json.dumps({"token": token, "expires_at": expires}).encode(),
            )
        if headers.get("authorization") != f"Bearer {self.tokens[-1] if self.tokens else ''}":
            return 401, [("Content-Type", "application/json")], b'{"message": "Bad credentials"}'
        body = {"total_count": 0, "repositories": [], "echo": headers["authorization"]}
        return 200, [("Content-Type", "application/json")], json.dumps(body).encode()


@pytest.fixture
def github() -> GitHub:
    return GitHub()


@pytest.fixture
def upstream(upstream_ca: trustme.CA, github: GitHub) -> Iterator[AuthUpstream]:
    with auth_upstream(upstream_ca, ("127.0.0.1",), github) as server:
        yield server


@pytest.fixture
def app_vault(vault: Vault, upstream: AuthUpstream) -> Vault:
    method = GitHubAppAuth(APP_ID, INSTALLATION, api_url=f"https://127.0.0.1:{upstream.port}").validate()
    service = replace(make_service("gh-app", f"127.0.0.1:{upstream.port}", local=True), auth=method)
    vault.add_service(service, validate_secret(STORED_KEY))
    return vault


async def test_the_agent_request_carries_an_installation_token_exchanged_with_the_apps_jwt(
    app_vault: Vault, proxy: EmbeddedProxy, home: Path, upstream: AuthUpstream, github: GitHub
) -> None:
    async with proxy_client(proxy, home) as agent:
        response = await agent.get(f"https://127.0.0.1:{upstream.port}/installation/repositories",
                                   headers={"Authorization": "Bearer agent-dummy"})  # fmt: skip
    assert response.status_code == 200 and github.exchanges == 1
    assert github.tokens[0] not in response.text and "[REDACTED:gh-app]" in response.text
    assert app_vault.secret("gh-app", github_app.TOKEN).reveal() == github.tokens[0]
    assert all(STORED_KEY not in repr(r) and "agent-dummy" not in repr(r) for r in upstream.received)


async def test_many_requests_that_find_the_token_due_share_one_exchange(
    app_vault: Vault, proxy: EmbeddedProxy, home: Path, upstream: AuthUpstream, github: GitHub
) -> None:
    statuses: list[int] = []
    async with proxy_client(proxy, home) as agent:

        async def one() -> None:
            response = await agent.get(f"https://127.0.0.1:{upstream.port}/installation/repositories")
            statuses.append(response.status_code)

        async with anyio.create_task_group() as group:
            for _ in range(12):
                group.start_soon(one)
    assert statuses == [200] * 12 and github.exchanges == 1


async def test_a_token_near_its_expiry_is_exchanged_again_before_use(
    app_vault: Vault, proxy: EmbeddedProxy, home: Path, upstream: AuthUpstream, github: GitHub
) -> None:
    github.lifetime = github_app.REFRESH_MARGIN - 60  # every token it issues is already due
    async with proxy_client(proxy, home) as agent:
        first = await agent.get(f"https://127.0.0.1:{upstream.port}/installation/repositories")
        second = await agent.get(f"https://127.0.0.1:{upstream.port}/installation/repositories")
    assert (first.status_code, second.status_code) == (200, 200) and github.exchanges == 2
    assert headers_of(upstream.received[-1])["authorization"] == f"Bearer {github.tokens[1]}"


async def test_a_refused_exchange_refuses_the_request_with_what_to_check(
    app_vault: Vault, proxy: EmbeddedProxy, home: Path, upstream: AuthUpstream, github: GitHub
) -> None:
    github.refuse = True
    async with proxy_client(proxy, home) as agent:
        response = await agent.get(f"https://127.0.0.1:{upstream.port}/installation/repositories")
    assert response.status_code == 503 and "HTTP 401" in response.text and "private key" in response.text
    assert [r.path for r in upstream.received] == [f"/app/installations/{INSTALLATION}/access_tokens"]


def exchange_records(home: Path) -> list[dict[str, object]]:
    lines = (home / "audit.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("action") == "token-exchange"]


async def test_each_exchange_is_one_audit_record_naming_the_service_and_never_the_token(
    app_vault: Vault, proxy: EmbeddedProxy, home: Path, upstream: AuthUpstream, github: GitHub
) -> None:
    async with proxy_client(proxy, home) as agent:
        async with anyio.create_task_group() as group:  # twelve requests, one exchange, one record
            for _ in range(12):
                group.start_soon(agent.get, f"https://127.0.0.1:{upstream.port}/installation/repositories")
        github.lifetime = github_app.REFRESH_MARGIN - 60
        app_vault.set_secret("gh-app", github_app.TOKEN, validate_secret("ghs_staleTokenNotExchangedHere0123456789"))
        await agent.get(f"https://127.0.0.1:{upstream.port}/installation/repositories")  # a second exchange
    records = exchange_records(home)
    assert github.exchanges == 2 and len(records) == 2
    assert all(r["decision"] == "exchanged" and r["service"] == "gh-app" and "reason" not in r for r in records)
    everything = (home / "audit.jsonl").read_text()
    assert not any(secret in everything for secret in [*github.tokens, STORED_KEY, "ghs_"])


async def test_a_failed_exchange_is_one_audit_record_with_its_reason(
    app_vault: Vault, proxy: EmbeddedProxy, home: Path, upstream: AuthUpstream, github: GitHub
) -> None:
    github.refuse = True
    async with proxy_client(proxy, home) as agent:
        response = await agent.get(f"https://127.0.0.1:{upstream.port}/installation/repositories")
    assert response.status_code == 503
    [record] = exchange_records(home)
    assert record["decision"] == "failed" and record["service"] == "gh-app"
    assert "HTTP 401" in str(record["reason"]) and STORED_KEY not in str(record)
