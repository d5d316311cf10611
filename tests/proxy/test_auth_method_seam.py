"""A new auth method is one module plus a registry entry: nothing else in the proxy changes.

The toy method below signs the finished request (method, path, query, the narrowed
``Accept-Encoding``, body hash) with an HMAC of the service's secret, the shape AWS SigV4 and
its kin need. Registered here and nowhere else, it is stored, reloaded and injected end to end
through the real embedded proxy, and the upstream can verify the signature over exactly the
request it received, which proves the method runs after every other stage changed the request.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, Self

import pytest

from clavis_mcp.proxy import EmbeddedProxy
from clavis_mcp.vault import Secret, Vault, validate_secret
from clavis_mcp.vault.auth import CREDENTIAL, AuthMethod, OutgoingRequest
from clavis_mcp.vault.auth.registry import METHODS, register
from demo.echo_upstream import EchoUpstream, Received
from tests.conftest import SECRET, make_service, proxy_client

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


def string_to_sign(method: str, path: str, query: str, accept_encoding: str, body_sha256: str) -> bytes:
    return "\n".join((method, path, query, accept_encoding, body_sha256)).encode()


@dataclass(frozen=True, slots=True)
class HmacSigned(AuthMethod):
    """``X-Signature: hex(HMAC-SHA256(secret, string_to_sign))``; the secret itself never travels."""

    kind: ClassVar[str] = "test-hmac"
    key_id: str
    extra_headers: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        return f"HMAC-SHA256 signature, key {self.key_id}"

    def apply(self, request: OutgoingRequest, secrets: Mapping[str, Secret]) -> None:
        headers = {name.lower(): value for name, value in request.headers}
        query = "&".join(f"{k}={v}" for k, v in sorted(request.query))
        text = string_to_sign(request.method, request.path, query, headers["accept-encoding"],
                              request.body_sha256() or "")  # fmt: skip
        digest = hmac.new(secrets[CREDENTIAL].reveal().encode(), text, hashlib.sha256).hexdigest()
        request.set_headers([("X-Key-Id", self.key_id), ("X-Signature", digest)])

    def credential_headers(self) -> tuple[str, ...]:
        return ("X-Key-Id", "X-Signature")

    def validate(self) -> Self:
        return self

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "key_id": self.key_id}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(key_id=str(data["key_id"]))


@pytest.fixture
def hmac_method() -> Iterator[type[HmacSigned]]:
    register(HmacSigned)
    yield HmacSigned
    del METHODS[HmacSigned.kind]


def verifies(received: Received, secret: str) -> bool:
    """What the upstream would check: the signature over the request exactly as it arrived."""
    headers = {name.lower(): value for name, value in received.headers}
    path, _, query = received.path.partition("?")
    canonical_query = "&".join(sorted(query.split("&"))) if query else ""
    text = string_to_sign(received.method, path, canonical_query, headers["accept-encoding"],
                          hashlib.sha256(received.body).hexdigest())  # fmt: skip
    return hmac.compare_digest(headers["x-signature"], hmac.new(secret.encode(), text, hashlib.sha256).hexdigest())


async def test_a_method_registered_alone_signs_the_finished_request_through_the_real_proxy(
    hmac_method: type[HmacSigned], vault: Vault, proxy: EmbeddedProxy, home: Path, upstream: EchoUpstream
) -> None:
    service = make_service("signed", f"127.0.0.1:{upstream.port}", local=True)
    vault.add_service(replace(service, auth=hmac_method(key_id="key-1")), validate_secret(SECRET))
    assert isinstance(vault.get_service("signed").auth, hmac_method)  # stored and read back by the registry
    async with proxy_client(proxy, home) as agent:
        response = await agent.post(
            f"https://127.0.0.1:{upstream.port}/v1/items?b=2&a=1",
            content=b'{"n": 1}',
            headers={"Accept-Encoding": "gzip, x-unknown", "X-Signature": "forged-by-the-agent"},
        )
    assert response.status_code == 200
    [received] = upstream.received
    headers = {name.lower(): value for name, value in received.headers}
    assert headers["accept-encoding"] == "gzip"  # narrowed by the proxy before the method signed
    assert [v for k, v in received.headers if k.lower() == "x-signature"] == [headers["x-signature"]]  # not forged
    assert headers["x-key-id"] == "key-1" and verifies(received, SECRET)
    assert not any(SECRET in value for _, value in received.headers) and SECRET not in received.path
