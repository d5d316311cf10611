"""Review 7, L1: a request call_service's checks accept is one that can be sent, and is sent as judged.

a) A URL our parse accepted and httpx could not send (full-width letters, a soft hyphen, a query
   past httpx's bound) crashed the tool ("Error executing tool call_service", a traceback, no
   record); a host the two IDNA codecs map apart (``ß``) was judged as one host and sent as another.
b) Headers and params had no bound: past the base-URL front's head bound the front refused the
   request unread (431), and call_service showed that as the provider's answer.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from mcp import Client

from clavis_mcp.certs import LocalCA
from clavis_mcp.mcp_front import Gateway
from clavis_mcp.mcp_front.calls import MAX_HEADER_BYTES, MAX_TARGET_BYTES, check_target
from clavis_mcp.mcp_front.service_call import PreparedCall, perform_call
from clavis_mcp.proxy.base_url_front import HEAD_MAX
from clavis_mcp.vault import (
    AuditLog,
    Service,
    Vault,
    canonical_host,
    parse_header_template,
    parse_hosts,
    validate_secret,
)
from clavis_mcp.vault.errors import CallRefused
from tests.conftest import SECRET, make_service
from tests.mcp_front.scripted_upstream import ScriptedUpstream

pytestmark = pytest.mark.anyio

OUR_FIELDS = 2048  # the path's /s/<service>@<host:port> and the fields clavis-mcp adds, with room to spare


def records(audit: AuditLog) -> int:
    return len(list(audit.records()))


async def call(client: Client, url: str, **arguments: object) -> tuple[bool, str]:
    result = await client.call_tool("call_service", {"service_name": "api", "method": "GET", "url": url, **arguments})
    return bool(result.is_error), result.content[0].text  # type: ignore[union-attr]


# -- a) URLs httpx reads otherwise, or cannot send ----------------------------------------------------


@pytest.mark.parametrize(
    ("host", "says"),
    [
        ("ａｐｉ.example.com", "punycode"),  # full-width letters: NFKC maps them, IDNA 2008 refuses them
        ("api.exam\u00adple.com", "punycode"),  # a soft hyphen: IDNA 2003 drops it, 2008 refuses it
        ("straße.example.com", "read as another host"),  # 2003: strasse; 2008: xn--strae-oqa
    ],
    ids=["full-width", "soft-hyphen", "sharp-s"],
)
async def test_call_service_refuses_a_host_httpx_would_send_otherwise_or_not_at_all_before_anything_leaves(
    client: Client, vault: Vault, audit: AuditLog, scripted: ScriptedUpstream, host: str, says: str
) -> None:
    vault.add_service(make_service("named", "api.example.com", "strasse.example.com"), validate_secret(SECRET))
    before = records(audit)
    result = await client.call_tool(
        "call_service", {"service_name": "named", "method": "GET", "url": f"https://{host}/v1"}
    )
    text = result.content[0].text  # type: ignore[union-attr]
    assert result.is_error and "url" in text and says in text
    assert records(audit) == before and scripted.received == []  # the proxy never saw it


URLS = [
    "https://api.example.com/x", "https://api.example.com\\@evil.com/", "https://api.example.com%2f@evil.com/",
    "https://api.example。com/x", "https://API.EXAMPLE.COM./x", "https://api%2eexample.com/x",
    "https://api.example.com:443/x", "https://api.example.com:0443/x", "https://api.example.com:/x",
    "https://[::1%25eth0]/x", "https://api.example.com\\evil.com/", "https://api.example.com#@evil.com/",
    "https://api.example.com?@evil.com/", "https:api.example.com/x", "https:/api.example.com/x",
    "https:///api.example.com/x", "HTTPS://api.example.com/x", "https://api.example.com;evil.com/x",
    "https://xn--api-.example.com/", "https://api.exam\u00adple.com/x", "https://api.example.com\u3002evil.com/",
    "https://api.example.com:443\\@evil.com", "https://api.example.com:+443/x", "https://api.example.com:4_43/x",
    "https://api.ex%61mple.com/", "https://ａｐｉ.example.com/", "https://api.example.com/\\..\\x",
    "https://api.example.com/%2e%2e/x", "https://api.example.com/..%2f..%2fadmin", "https://api.example.com/x?y=1#frag",
    "https://api.example.com:443:80/", "https://api.example.com\t/", "https://straße.example.com/",
]  # fmt: skip
# Characters that IDNA codecs, NFKC and URL parsers treat differently, for random hosts.
PIECES = ["a", "p", "i", "s", "ß", "ｓ", "ａ", "\u00ad", "\u200d", "\u3002", "．", "ﬁ", "İ", "ı", "K", "\u212a", "-",
          ".", "%2e", "example", "com", "xn--", "@", ":", "\\", "0", "443", "[", "]", "Ⅸ", "ς", "σ"]  # fmt: skip


def random_urls(count: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [f"https://{''.join(rng.choices(PIECES, k=rng.randint(1, 9)))}.example.com/x" for _ in range(count)]


SERVICE = Service(
    name="api", auth=parse_header_template("Authorization: Bearer {secret}"),
    hosts=parse_hosts(["api.example.com", "strasse.example.com", "*.example.com"]), created_at=0.0,
)  # fmt: skip


def test_every_url_check_target_accepts_is_sent_by_httpx_to_the_host_and_port_it_judged() -> None:
    accepted = 0
    for url in URLS + random_urls(3000):
        try:
            target = check_target(SERVICE, "GET", url)
        except CallRefused:
            continue
        accepted += 1
        sent = httpx.URL(target.url)  # raises if httpx cannot send it
        port = sent.port or 443
        assert (canonical_host(sent.raw_host.decode("ascii")), port) == (target.host, target.port), url
    assert accepted > 100  # the differential judged something


# -- b) heads the front would refuse unread ----------------------------------------------------------


def test_the_models_headers_and_url_together_stay_below_the_fronts_head_bound() -> None:
    assert MAX_HEADER_BYTES + MAX_TARGET_BYTES + OUR_FIELDS < HEAD_MAX


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        ({"headers": {f"X-{i}": "v" * 8000 for i in range(3)}}, f"the limit is {MAX_HEADER_BYTES}"),
        ({"headers": {"X-A": "x" * 70000}}, "headers.X-A must be at most 8192 characters"),
        ({"headers": {f"X-{i}": "v" for i in range(65)}}, "headers must have at most 64 entries"),
        ({"params": {"a": "é" * 4000, "b": "é" * 4000}}, f"the limit is {MAX_TARGET_BYTES}"),
        ({"params": {"q": "é" * 12000}}, "params"),  # past httpx's own bound on a query
        ({"params": {"q": "x" * 70000}}, "params.q must be at most 16384 characters"),
    ],
    ids=["headers-in-all", "one-huge-header", "many-headers", "params-as-sent", "params-past-httpx", "one-huge-param"],
)
async def test_call_service_refuses_headers_and_params_past_their_bounds_before_anything_leaves(
    client: Client, audit: AuditLog, scripted: ScriptedUpstream, arguments: dict[str, object], says: str
) -> None:
    before = records(audit)
    is_error, text = await call(client, scripted.url("/echo"), **arguments)
    assert is_error and says in text, text[:300]
    assert records(audit) == before and scripted.received == []


async def test_call_service_accepts_headers_and_params_just_within_their_bounds(
    client: Client, scripted: ScriptedUpstream
) -> None:
    headers = {"X-A": "a" * 8000, "X-B": "b" * 8000, "X-C": "c" * (MAX_HEADER_BYTES - 2 * (8000 + 7) - 7)}
    params = {"q": "x" * 16000, "r": "y" * 16000}
    is_error, text = await call(client, scripted.url("/echo"), headers=headers, params=params)
    assert not is_error, text[:300]
    assert len(scripted.received) == 1 and scripted.received[0].path.endswith("y" * 16000)


@pytest.fixture
async def gateway(vault: Vault, audit: AuditLog, home: Path) -> AsyncIterator[Gateway]:
    gateway = Gateway(vault, audit, LocalCA(home / "certs"))
    yield gateway
    await gateway.aclose()


async def test_a_request_the_front_refuses_unread_is_reported_as_clavis_mcps_refusal_not_the_providers(
    gateway: Gateway, vault: Vault, scripted: ScriptedUpstream
) -> None:
    """Below call_service's checks (a request that passed them cannot be this large): the front's
    431 is the proxy's refusal, with its reason, never a provider's answer."""
    target = check_target(vault.get_service("api"), "GET", scripted.url("/echo"))
    huge = PreparedCall(vault.get_service("api"), "GET", target, {"X-Pad": "p" * 70_000}, [], None, {}, None)
    with pytest.raises(CallRefused, match="the clavis proxy refused the request: request refused: malformed"):
        await perform_call(gateway, huge)
    assert scripted.received == []
