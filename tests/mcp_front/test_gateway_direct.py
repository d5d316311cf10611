"""The gateway hands its base-URL requests to the front in process as their parts: the target path
and header fields must be exactly what httpx's client built from the whole URL before (its
``build_request``), for every field set and URL a call can give."""

from __future__ import annotations

import random
from pathlib import Path
from typing import cast

import httpx
import pytest

from clavis_mcp.certs import LocalCA
from clavis_mcp.mcp_front.gateway import AGENT_HEADER, DEFAULT_HEADERS, Gateway, built_fields
from clavis_mcp.vault import AuditLog, Vault

ORIGIN = "http://127.0.0.1:8899"
NAMES = ["accept", "Accept", "ACCEPT-ENCODING", "User-Agent", "x-clavis-agent", "X-Clavis-Service", "Host",
         "content-length", "Content-Type", "Transfer-Encoding", "Connection", "X-Custom", "Cookie"]  # fmt: skip
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
BODIES = [None, b"", b"x", b'{"a": 1}', "caf\u00e9".encode()]


def test_fields_are_those_httpx_builds_for_20000_random_header_sets() -> None:
    client = httpx.AsyncClient(headers={**DEFAULT_HEADERS, AGENT_HEADER: "agent-key"}, trust_env=False)
    defaults = ((b"Host", httpx.URL(ORIGIN).netloc), *client.headers.raw)
    rng = random.Random(18)
    for _ in range(20_000):
        fields = [(rng.choice(NAMES), rng.choice(["", "v", "a b", "*/*", "12"])) for _ in range(rng.randrange(6))]
        method, body = rng.choice(METHODS), rng.choice(BODIES)
        built = client.build_request(method, f"{ORIGIN}/s/api@h:443/", headers=fields, content=body)
        assert built_fields(defaults, method, fields, body or b"") == tuple(built.headers.raw), (method, fields, body)


@pytest.mark.parametrize(
    "url",
    [
        "https://api.example.com",
        "https://api.example.com/v1/models?limit=2&after=x",
        "https://API.Example.com:8443/a/./b/../c",
        "https://api.example.com/%2e%2e/admin;x=1//y",
        "https://api.example.com/caf\u00e9/\u00fc?q=\u00e9 &r=a%20b#frag",
        'https://api.example.com/a b/"<>{}|\\^`?x=[1]&y=@:/',
        "https://b\u00fccher.example/x",
        "https://[::1]:8443/v1",
        "https://127.0.0.1:4443/v1/../../x",
        "https://api.example.com/?",
        "https://api.example.com/..",
    ],
)
def test_the_path_handed_over_is_the_one_httpx_parses_from_the_whole_url(
    vault: Vault, audit: AuditLog, home: Path, url: str
) -> None:
    gateway = Gateway(vault, audit, LocalCA(home / "certs"))
    gateway._origin = ORIGIN
    clients = cast(tuple[httpx.AsyncClient, httpx.AsyncClient], (object(), object()))
    for target in (httpx.URL(url), httpx.URL(url).copy_merge_params({"k": "v w", "\u00e9": "/?&"})):
        _, path = gateway._addressed(clients, "svc.1_a-b", target)
        host = target.raw_host.decode()
        authority = f"[{host}]:{target.port or 443}" if ":" in host else f"{host}:{target.port or 443}"
        whole = f"{ORIGIN}/s/svc.1_a-b@{authority}{target.raw_path.decode()}"
        assert path == httpx.URL(whole).raw_path


def test_a_service_name_httpx_would_rewrite_goes_as_a_whole_url(vault: Vault, audit: AuditLog, home: Path) -> None:
    """(No such name passes the vault's checks; if one did, httpx's parser still decides its path.)"""
    gateway = Gateway(vault, audit, LocalCA(home / "certs"))
    gateway._origin = ORIGIN
    clients = cast(tuple[httpx.AsyncClient, httpx.AsyncClient], (object(), object()))
    _, addressed = gateway._addressed(clients, "../x", httpx.URL("https://api.example.com/v1"))
    assert addressed == f"{ORIGIN}/s/../x@api.example.com:443/v1"
