"""MITM mode (HTTPS_PROXY, a CONNECT tunnel) to a service whose host is an IPv6 literal.

httpx (httpcore 1.0) writes the tunnel's target without brackets, ``CONNECT ::1:PORT``, and
mitmproxy refused that request line outright (400, before any stage and with no audit record),
so every Python agent, and the MCP server's own forward client, was refused. The proxy's
first-bytes reader (``proxy/peek.py``) now hands the engine ``CONNECT [::1]:PORT``, and from
there the destination check, the dial guard, injection, redaction and the audit judge that one
address as they judge an IPv4 one. The refusals below hold that nothing else got through: a
different IPv6 literal, a loopback address without ``--local``, a loopback address nobody owns
on a proxy that passes other hosts, a zone id, a bare ``Host`` inside the tunnel.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from clavis_mcp.proxy import EmbeddedProxy
from clavis_mcp.proxy.peek import bracketed_connect
from clavis_mcp.vault import AuditLog, Vault, validate_secret
from clavis_mcp.vault.proxy_config import ProxyConfig
from tests.conftest import PROXY_TOKEN, PROXY_USER, SECRET, make_service, proxy_client, running_proxy
from tests.proxy.conftest import RawClient
from tests.proxy.upstreams import V6Upstream

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


def add_v6_service(vault: Vault, port: int, *, local: bool = True) -> None:
    vault.add_service(make_service("v6", f"[::1]:{port}", local=local), validate_secret(SECRET))


def only_record(audit: AuditLog) -> dict[str, object]:
    records = list(audit.records())
    assert len(records) == 1, records
    return records[0]


async def test_an_httpx_agent_reaches_an_ipv6_service_through_connect(
    vault: Vault, proxy: EmbeddedProxy, audit: AuditLog, home: Path, v6: V6Upstream
) -> None:
    add_v6_service(vault, v6.port)
    async with proxy_client(proxy, home) as client:
        response = await client.get(f"https://[::1]:{v6.port}/x", headers={"Authorization": "Bearer agent-guess"})
    assert response.status_code == 200, response.text
    assert v6.seen == [(f"[::1]:{v6.port}", f"Bearer {SECRET}")]  # injected, the agent's own value replaced
    assert response.json() == {"authorization": "[REDACTED:v6]"}  # the whole header form, scheme included
    record = only_record(audit)
    assert (record["decision"], record["service"], record["host"], record["port"]) == ("injected", "v6", "::1", v6.port)
    assert record["redactions"] == 1


async def test_the_long_spelling_of_the_address_is_the_same_destination(
    vault: Vault, proxy: EmbeddedProxy, audit: AuditLog, home: Path, v6: V6Upstream
) -> None:
    add_v6_service(vault, v6.port)
    async with proxy_client(proxy, home) as client:
        response = await client.get(f"https://[0:0:0:0:0:0:0:1]:{v6.port}/x")
    assert response.status_code == 200, response.text
    assert [auth for _, auth in v6.seen] == [f"Bearer {SECRET}"]
    assert only_record(audit)["host"] == "::1"


@pytest.mark.parametrize("other", ["::2", "::ffff:127.0.0.1", "::1:0"])
async def test_another_ipv6_literal_is_refused_at_the_tunnel(
    vault: Vault, proxy: EmbeddedProxy, audit: AuditLog, home: Path, v6: V6Upstream, other: str
) -> None:
    """The tunnel's address, not a prefix or a look-alike of the service's, is what is judged;
    ``::ffff:127.0.0.1`` reaches this very machine, and ``::1:0`` starts with the service's text."""
    add_v6_service(vault, v6.port)
    async with proxy_client(proxy, home) as client:
        with pytest.raises(httpx.ProxyError, match="403"):
            await client.get(f"https://[{other}]:{v6.port}/x")
    assert v6.seen == []
    record = only_record(audit)
    assert record["decision"] == "refused" and record.get("service") is None
    assert f"no service is registered for https://{record['host']}:{v6.port}" in str(record["reason"])
    assert record["host"] != "::1"


async def test_an_ipv6_loopback_service_not_added_with_local_is_refused(
    vault: Vault, proxy: EmbeddedProxy, audit: AuditLog, home: Path, v6: V6Upstream
) -> None:
    """As for 127.0.0.1: a loopback address is only for services added with ``--local``."""
    add_v6_service(vault, v6.port, local=False)
    async with proxy_client(proxy, home) as client:
        response = await client.get(f"https://[::1]:{v6.port}/x")
    assert response.status_code == 403
    assert "private or loopback address; only services added with --local" in response.text
    assert v6.seen == []
    record = only_record(audit)
    assert (record["decision"], record["host"]) == ("refused", "::1")


@pytest.fixture
async def passing_proxy(vault: Vault, audit: AuditLog, home: Path) -> AsyncIterator[EmbeddedProxy]:
    """The standalone proxy's setting: hosts no service owns are tunnelled untouched."""
    config = ProxyConfig(tokens=lambda: {PROXY_USER: PROXY_TOKEN}, pass_other_hosts=True)
    async with running_proxy(vault, audit, home, config) as p:
        yield p


async def test_an_ipv6_loopback_no_service_owns_is_not_passed_through(
    passing_proxy: EmbeddedProxy, audit: AuditLog, home: Path, v6: V6Upstream
) -> None:
    async with proxy_client(passing_proxy, home) as client:
        with pytest.raises(httpx.ProxyError, match="403"):
            await client.get(f"https://[::1]:{v6.port}/x")
    assert v6.seen == []
    record = only_record(audit)
    assert (record["decision"], record["host"]) == ("refused", "::1")
    assert "private or loopback address, which clavis-mcp does not pass through" in str(record["reason"])


async def test_a_bare_host_header_inside_the_tunnel_is_not_the_service(
    vault: Vault, proxy: EmbeddedProxy, audit: AuditLog, home: Path, v6: V6Upstream
) -> None:
    """The bare CONNECT opens the tunnel; a bare ``Host: ::1:PORT`` inside it reads as another
    address (or none) and is refused before any credential, never matched to ``[::1]:PORT``."""
    add_v6_service(vault, v6.port)
    async with RawClient.connected(proxy) as raw:
        assert (await raw.tunnel(f"::1:{v6.port}", home, sni=None)).status == 200
        response = await raw.send(f"GET /x HTTP/1.1\r\nHost: ::1:{v6.port}\r\n\r\n".encode())
    assert response.status in (400, 421)
    assert v6.seen == []
    assert only_record(audit)["decision"] == "refused"


@pytest.mark.parametrize("target", ["[::1%25lo]:{port}", "[::1%lo]:{port}", "::1%lo:{port}"])
async def test_a_zone_id_spelling_is_not_the_service(
    vault: Vault, proxy: EmbeddedProxy, audit: AuditLog, home: Path, v6: V6Upstream, target: str
) -> None:
    """A zone id is not dropped to find a service: bracketed, it names no service (403); bare,
    it is left as it came and the engine refuses the request line (400)."""
    add_v6_service(vault, v6.port)
    async with RawClient.connected(proxy) as raw:
        response = await raw.tunnel(target.format(port=v6.port), home, sni=None)
    assert response.status == (403 if target.startswith("[") else 400)
    assert v6.seen == []
    assert all(record.get("service") is None for record in audit.records())


@pytest.mark.parametrize(
    ("first", "handed_on"),
    [
        (b"CONNECT ::1:8443 HTTP/1.1\r\nHost: x\r\n\r\n", b"CONNECT [::1]:8443 HTTP/1.1\r\nHost: x\r\n\r\n"),
        (b"CONNECT 2001:db8::1:443 HTTP/1.1\r\n", b"CONNECT [2001:db8::1]:443 HTTP/1.1\r\n"),
        (b"CONNECT [::1]:8443 HTTP/1.1\r\n", None),  # already bracketed
        (b"CONNECT 127.0.0.1:8443 HTTP/1.1\r\n", None),
        (b"CONNECT fe80::1%eth0:443 HTTP/1.1\r\n", None),  # a zone id is not repaired
        (b"CONNECT ::1 HTTP/1.1\r\n", None),  # no port: '::' is no address
        (b"CONNECT ::1:x HTTP/1.1\r\n", None),
        (b"CONNECT ::g:443 HTTP/1.1\r\n", None),
        (b"CONNECT ::1:443 HTTP/1.1", None),  # the line has not ended
        (b"CONNECT  ::1:443 HTTP/1.1\r\n", None),  # not the three parts a request line has
        (b"GET http://::1:443/ HTTP/1.1\r\n", None),
        (b"\x16\x03\x01\x02\x00\x01", None),
    ],
)
def test_only_a_bare_ipv6_connect_target_is_bracketed(first: bytes, handed_on: bytes | None) -> None:
    assert bracketed_connect(first) == (first if handed_on is None else handed_on)
