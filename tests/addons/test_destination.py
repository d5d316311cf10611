from __future__ import annotations

import time

import pytest

from clavis_mcp.addons.destination import decide, split_authority
from clavis_mcp.vault import Secret, Snapshot
from clavis_mcp.vault.service import Service, parse_header_template, parse_hosts


def service(name: str, *hosts: str, **kw: object) -> Service:
    auth = parse_header_template("Authorization: Bearer {secret}")
    return Service(name=name, auth=auth, hosts=parse_hosts(list(hosts)), created_at=time.time(), **kw)  # type: ignore[arg-type]


SNAPSHOT = Snapshot(
    services=(
        service("openai", "api.openai.com"),
        service("slack", "*.slack.com"),
        service("local", "127.0.0.1:8443", local=True),
        service("plain", "plain.example.com", allow_http=True),
    ),
    secrets={n: Secret(f"secret-of-{n}-000000") for n in ("openai", "slack", "local", "plain")},
)

# (id, method, scheme, host, port, host_header, sni, selected, expected service or status)
CASES = [
    ("owner-by-host", "GET", "https", "api.openai.com", 443, "api.openai.com", "api.openai.com", None, "openai"),
    ("selected-matches", "GET", "https", "api.openai.com", 443, None, None, "openai", "openai"),
    ("wildcard-subdomain", "GET", "https", "files.slack.com", 443, None, None, None, "slack"),
    ("host-header-differs-421", "GET", "https", "evil.test", 443, "api.openai.com", None, None, 421),
    ("connect-target-differs-421", "GET", "https", "api.openai.com", 443, "evil.test", None, None, 421),
    ("sni-differs-421", "GET", "https", "api.openai.com", 443, None, "evil.test", None, 421),
    ("host-header-port-differs-421", "GET", "https", "api.openai.com", 443, "api.openai.com:8443", None, None, 421),
    ("unknown-host-403", "GET", "https", "example.org", 443, None, None, None, 403),
    ("lookalike-prefix", "GET", "https", "evilapi.openai.com", 443, None, None, None, 403),
    ("lookalike-suffix", "GET", "https", "api.openai.com.evil.test", 443, None, None, None, 403),
    ("bare-domain-vs-wildcard", "GET", "https", "slack.com", 443, None, None, None, 403),
    ("other-port", "GET", "https", "api.openai.com", 8443, None, None, None, 403),
    ("plain-http-to-https-service", "GET", "http", "api.openai.com", 80, None, None, None, 403),
    ("plain-http-allowed", "GET", "http", "plain.example.com", 80, None, None, None, "plain"),
    ("selected-other-service-host", "GET", "https", "api.openai.com", 443, None, None, "slack", 403),
    ("selected-unknown", "GET", "https", "api.openai.com", 443, None, None, "nope", 403),
    ("trace-refused", "TRACE", "https", "api.openai.com", 443, None, None, None, 405),
    ("local-service-on-loopback", "GET", "https", "127.0.0.1", 8443, None, None, None, "local"),
    ("numeric-spelling", "GET", "https", "2130706433", 8443, None, None, None, 400),
    ("trailing-dot-host", "GET", "https", "api.openai.com.", 443, "api.openai.com", None, None, "openai"),
    ("upper-case-host", "GET", "https", "API.OPENAI.COM", 443, "Api.OpenAI.com:443", None, None, "openai"),
]


@pytest.mark.parametrize(
    ("method", "scheme", "host", "port", "host_header", "sni", "selected", "expected"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_destination_policy(
    method: str, scheme: str, host: str, port: int, host_header: str | None, sni: str | None,
    selected: str | None, expected: str | int,
) -> None:  # fmt: skip
    verdict = decide(
        SNAPSHOT, method=method, scheme=scheme, host=host, port=port,
        host_header=host_header, sni=sni, selected=selected,
    )  # fmt: skip
    if isinstance(expected, str):
        assert verdict.service is not None and verdict.service.name == expected, verdict.reason
    else:
        assert verdict.service is None and verdict.status == expected
        assert verdict.reason


def test_private_address_needs_a_local_service() -> None:
    snap = Snapshot(services=(service("lan", "10.0.0.5"),), secrets={"lan": Secret("x" * 20)})
    verdict = decide(
        snap, method="GET", scheme="https", host="10.0.0.5", port=443, host_header=None, sni=None, selected=None
    )
    assert verdict.status == 403 and "--local" in verdict.reason


@pytest.mark.parametrize(
    ("authority", "expected"),
    [("a.com", ("a.com", 443)), ("a.com:8443", ("a.com", 8443)), ("[::1]:9", ("::1", 9)), ("A.COM.", ("a.com", 443))],
)
def test_split_authority(authority: str, expected: tuple[str, int]) -> None:
    assert split_authority(authority, 443) == expected


@pytest.mark.parametrize("authority", ["a.com:0", "a.com:x", "a.com:70000", ""])
def test_split_authority_refuses(authority: str) -> None:
    with pytest.raises(ValueError):
        split_authority(authority, 443)


SHARED = Snapshot(
    services=(
        service("admin", "api.shared.example", path_prefixes=("/admin",)),
        service("v1", "api.shared.example", path_prefixes=("/v1",)),
    ),
    secrets={n: Secret(f"secret-of-{n}-000000") for n in ("admin", "v1")},
)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v1/models", "v1"),
        ("/admin/users?x=1", "admin"),
        ("/v1/../admin/users", "admin"),
        ("/v1/%2e%2e/admin", "admin"),
        ("//admin", "admin"),
        ("/other", 403),
        ("/v10", 403),
    ],
    ids=["v1", "admin-with-query", "dot-dot-judged-normalised", "encoded-dot-dot", "double-slash", "uncovered",
         "not-a-sibling-prefix"],
)  # fmt: skip
def test_services_sharing_a_host_are_chosen_by_normalised_path(path: str, expected: str | int) -> None:
    verdict = decide(
        SHARED, method="GET", scheme="https", host="api.shared.example", port=443, host_header=None, sni=None,
        selected=None, path=path,
    )  # fmt: skip
    if isinstance(expected, str):
        assert verdict.service is not None and verdict.service.name == expected, verdict.reason
    else:
        assert verdict.service is None and verdict.status == expected and "covers the path" in verdict.reason


@pytest.mark.parametrize(
    ("host", "port"),
    [("127.0.0.1", 8899), ("localhost", 8899), ("::1", 8899), ("0.0.0.0", 8899)],
    ids=["loopback-v4", "localhost", "loopback-v6", "unspecified"],
)
def test_the_proxy_own_port_is_refused(host: str, port: int) -> None:
    snap = Snapshot(services=(service("loop", f"{host}:8899" if ":" not in host else f"[{host}]:8899", local=True),),
                    secrets={"loop": Secret("x" * 20)})  # fmt: skip
    verdict = decide(
        snap, method="GET", scheme="https", host=host, port=port, host_header=None, sni=None, selected=None,
        proxy_ports=frozenset({8899}),
    )  # fmt: skip
    assert verdict.status == 403 and "own proxy port" in verdict.reason


def test_passthrough_hosts_pass_without_a_service() -> None:
    from clavis_mcp.vault import parse_host_rule

    verdict = decide(
        SNAPSHOT, method="GET", scheme="https", host="cdn.example.org", port=443, host_header=None, sni=None,
        selected=None, passthrough=(parse_host_rule("*.example.org"),),
    )  # fmt: skip
    assert verdict.passthrough and verdict.service is None
