"""Each new way to put a key on a request, end to end through the real embedded proxy to a
loopback HTTPS upstream that records what it received and echoes it back (so the response
redaction is exercised too): HMAC signing, basic from two fields, two headers from two fields,
a key in a JSON and a form body, a key in the path (and the audit record of that path)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import replace
from pathlib import Path

import pytest

from clavis_mcp.proxy import EmbeddedProxy
from clavis_mcp.vault import AuditLog, Vault, validate_secret
from clavis_mcp.vault.auth import AuthMethod
from clavis_mcp.vault.auth.registry import build
from demo.echo_upstream import EchoUpstream
from tests.conftest import make_service, proxy_client
from tests.proxy.auth_upstream import headers_of

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

KEY = "k3y-for-shapes-Zx81Qw0PLm2vB7nC"
USER = "shape-user-5Tq9"
APP_ID = "app-id-secret-88Hj2Kd"
BOT = "987654:AAH-bot-token-shape-9fKx0"


def register(vault: Vault, upstream: EchoUpstream, method: AuthMethod, fields: dict[str, str]) -> None:
    service = replace(make_service("shape", f"127.0.0.1:{upstream.port}", local=True), auth=method)
    vault.add_service(service, validate_secret(fields.pop("credential")))
    for field, value in fields.items():
        vault.set_secret("shape", field, validate_secret(value))


def base(upstream: EchoUpstream) -> str:
    return f"https://127.0.0.1:{upstream.port}"


async def test_hmac_signature_verifies_over_what_the_upstream_received(
    vault: Vault, proxy: EmbeddedProxy, home: Path, upstream: EchoUpstream
) -> None:
    method = build("hmac", hmac_parts="timestamp,method,target,body_sha256", hmac_key_id="key-7",
                   hmac_key_id_header="X-Key-Id")  # fmt: skip
    register(vault, upstream, method, {"credential": KEY})
    async with proxy_client(proxy, home) as agent:
        response = await agent.post(f"{base(upstream)}/v1/orders?b=2&a=1", content=b'{"qty": 3}',
                                    headers={"X-Signature": "forged", "X-Timestamp": "1"})  # fmt: skip
    assert response.status_code == 200
    [received] = upstream.received
    headers = headers_of(received)
    text = "\n".join((headers["x-timestamp"], "POST", received.path, hashlib.sha256(received.body).hexdigest()))
    assert headers["x-signature"] == hmac.new(KEY.encode(), text.encode(), hashlib.sha256).hexdigest()
    assert headers["x-key-id"] == "key-7" and headers["x-timestamp"] != "1"
    assert [k.lower() for k, _ in received.headers].count("x-signature") == 1


async def test_basic_auth_from_two_fields_and_both_are_redacted_from_the_echo(
    vault: Vault, proxy: EmbeddedProxy, home: Path, upstream: EchoUpstream
) -> None:
    register(vault, upstream, build("basic", template="{username}:{secret}"), {"credential": KEY, "username": USER})
    async with proxy_client(proxy, home) as agent:
        response = await agent.get(f"{base(upstream)}/me", headers={"Authorization": "Basic Zm9yZ2Vk"})
    [received] = upstream.received
    pair = base64.b64encode(f"{USER}:{KEY}".encode()).decode()
    assert headers_of(received)["authorization"] == f"Basic {pair}"
    assert pair not in response.text and USER not in response.text and "[REDACTED:shape]" in response.text


async def test_two_headers_from_two_fields_replace_the_agents_own(
    vault: Vault, proxy: EmbeddedProxy, home: Path, upstream: EchoUpstream
) -> None:
    method = build("headers", headers=["X-Api-Key: {secret}", "X-App-Id: {app_id}"])
    register(vault, upstream, method, {"credential": KEY, "app_id": APP_ID})
    async with proxy_client(proxy, home) as agent:
        response = await agent.get(f"{base(upstream)}/v2/things", headers={"x_app_id": "agent's", "X-Api-Key": "a"})
    [received] = upstream.received
    credentials = [
        (k.lower(), v) for k, v in received.headers if k.lower().replace("_", "-") in ("x-api-key", "x-app-id")
    ]
    assert credentials == [("x-api-key", KEY), ("x-app-id", APP_ID)]
    assert APP_ID not in response.text and KEY not in response.text


@pytest.mark.parametrize(
    ("body_format", "content", "content_type", "read"),
    [
        ("json", b'{"query": "q", "api_key": "agent"}', "application/json", lambda b: json.loads(b)["api_key"]),
        ("form", b"query=q&api_key=agent", "application/x-www-form-urlencoded",
         lambda b: dict(p.split("=") for p in b.decode().split("&"))["api_key"]),
    ],
    ids=["json", "form"],
)  # fmt: skip
async def test_the_key_is_set_in_the_body_the_upstream_receives(
    body_format: str, content: bytes, content_type: str, read: object,
    vault: Vault, proxy: EmbeddedProxy, home: Path, upstream: EchoUpstream,
) -> None:  # fmt: skip
    register(vault, upstream, build("body", body_field="api_key", body_format=body_format), {"credential": KEY})
    async with proxy_client(proxy, home) as agent:
        response = await agent.post(f"{base(upstream)}/search", content=content,
                                    headers={"Content-Type": content_type})  # fmt: skip
    assert response.status_code == 200
    [received] = upstream.received
    assert read(received.body) == KEY  # type: ignore[operator]
    assert int(headers_of(received)["content-length"]) == len(received.body)
    assert b"query" in received.body and b"agent" not in received.body


async def test_a_body_that_cannot_carry_the_key_is_refused_before_it_leaves(
    vault: Vault, proxy: EmbeddedProxy, home: Path, upstream: EchoUpstream
) -> None:
    register(vault, upstream, build("body", body_field="api_key"), {"credential": KEY})
    async with proxy_client(proxy, home) as agent:
        response = await agent.post(
            f"{base(upstream)}/search", content=b"[1]", headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 400 and "JSON object" in response.text
    assert upstream.received == []


async def test_the_key_goes_in_the_path_and_the_audit_records_the_template(
    vault: Vault, audit: AuditLog, proxy: EmbeddedProxy, home: Path, upstream: EchoUpstream
) -> None:
    register(vault, upstream, build("path", path_template="/bot{secret}/"), {"credential": BOT})
    async with proxy_client(proxy, home) as agent:
        response = await agent.get(f"{base(upstream)}/botDUMMY/getMe?chat_id=42")
        refused = await agent.get(f"{base(upstream)}/other/getMe")
    [received] = upstream.received
    assert received.path == f"/bot{BOT}/getMe?chat_id=42"
    assert BOT not in response.text and "[REDACTED:shape]" in response.text  # the echoed path
    assert refused.status_code == 400
    records = [r for r in AuditLog.for_vault(vault).records() if r.get("service") == "shape"]
    assert [r["path"] for r in records] == ["/bot{secret}/getMe?chat_id=", "/other/getMe"]
