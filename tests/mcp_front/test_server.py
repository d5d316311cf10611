"""The MCP server through real in-memory MCP client sessions, with the real embedded proxy.

Every test runs on both protocol paths: ``legacy`` (initialize handshake, 2025-11-25) and the
default 2026-07-28 path, because elicitation and errors travel differently on each.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import trustme
from mcp import Client
from mcp_types import ElicitResult

from clavis_mcp.certs import LocalCA
from clavis_mcp.mcp_front import Gateway, build_server
from clavis_mcp.mcp_front.calls import CallLimits
from clavis_mcp.mcp_front.settings import ServiceSettings, parse_probe, save_settings
from clavis_mcp.vault import AuditLog, Service, Vault, validate_secret
from clavis_mcp.vault.proxy_config import ProxyConfig
from demo.echo_upstream import EchoUpstream
from tests.conftest import SECRET, make_service
from tests.mcp_front.scripted_upstream import PNG, ScriptedUpstream
from tests.proxy.routing import LoopbackRoutes

pytestmark = pytest.mark.anyio
LIMITS = CallLimits(max_response_body=1024)
Elicitation = Callable[[Any, Any], Awaitable[ElicitResult]]


@pytest.fixture(params=["legacy", "auto"], ids=["handshake", "2026-07-28"])
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def gateway(vault: Vault, audit: AuditLog, home: Path) -> Gateway:
    return Gateway(vault, audit, LocalCA(home / "certs"), limits=LIMITS)


@pytest.fixture
def connect(gateway: Gateway, mode: str) -> Callable[..., Any]:
    @asynccontextmanager
    async def open_client(elicitation: Elicitation | None = None) -> AsyncIterator[Client]:
        async with Client(build_server(gateway), mode=mode, elicitation_callback=elicitation) as session:
            yield session

    return open_client


@pytest.fixture
async def client(connect: Callable[..., Any]) -> AsyncIterator[Client]:
    async with connect() as session:
        yield session


def answering(action: str, approve: bool = True) -> tuple[Elicitation, list[str]]:
    """An elicitation callback that answers ``action`` and remembers the questions it was asked."""
    asked: list[str] = []

    async def callback(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action=action, content={"approve": approve} if action == "accept" else None)

    return callback, asked


def iso_now(when: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if when is None else when, UTC).isoformat(timespec="seconds")[:19] + "Z"


def audit_records(gateway: Gateway) -> list[dict[str, Any]]:
    return list(gateway.audit.records())


def text_of(result: Any) -> str:
    return result.content[0].text


async def call(client: Client, path_or_url: str, scripted: ScriptedUpstream, **args: Any) -> Any:
    url = path_or_url if "://" in path_or_url else scripted.url(path_or_url)
    return await client.call_tool("call_service", {"service_name": "api", "method": "GET", "url": url, **args})


# -- the tool list ---------------------------------------------------------------------------------


async def test_tools_are_listed_in_a_stable_order_with_titles_annotations_and_schemas(client: Client) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    assert list(tools) == ["list_services", "get_credentials", "check_credential_status", "call_service"]
    for tool in tools.values():
        assert tool.title and tool.description and tool.output_schema is not None, tool.name
        assert tool.annotations is not None and tool.annotations.title == tool.title
    hints = {name: (t.annotations.read_only_hint, t.annotations.open_world_hint) for name, t in tools.items()}
    assert hints == {
        "list_services": (True, False),
        "get_credentials": (False, False),
        "check_credential_status": (True, True),
        "call_service": (False, True),
    }
    assert tools["call_service"].annotations.destructive_hint is True
    name_schema = tools["call_service"].input_schema["properties"]["service_name"]
    assert name_schema["pattern"] and name_schema["maxLength"] == 64 and name_schema["description"]
    assert set(tools["call_service"].input_schema["required"]) == {"service_name", "method", "url"}
    assert "confirmation" not in json.dumps(tools["call_service"].input_schema)


async def test_list_services_schema_has_no_field_that_could_hold_a_value(client: Client) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    fields = tools["list_services"].output_schema["$defs"]["ServiceInfo"]["properties"]
    assert not {"value", "secret", "token", "credential", "masked"} & set(fields)


async def test_instructions_prefer_call_service_over_get_credentials(client: Client) -> None:
    assert client.instructions and "prefer call_service over get_credentials" in " ".join(client.instructions.split())


# -- list_services ---------------------------------------------------------------------------------


async def test_list_services_shows_methods_expiry_and_last_use_but_never_a_value(
    client: Client, vault: Vault, scripted: ScriptedUpstream
) -> None:
    vault.add_service(
        make_service("ro", "api.ro.test", methods=("GET",), expires_at=time.time() + 3600), validate_secret(SECRET)
    )
    before = (await client.call_tool("list_services", {})).structured_content["services"]
    assert [s["name"] for s in before] == ["api", "ro"]
    assert before[0]["last_used_at"] is None and before[0]["state"] == "unknown"
    assert before[1]["allowed_methods"] == ["GET"] and before[1]["expires_at"] > iso_now()
    assert before[1]["expiry"] in ("expires in 1 h", "expires in 59 minutes") and not before[1]["expired"]
    assert before[0]["allowed_methods"] == ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    started = time.time()
    assert not (await call(client, "/echo", scripted)).is_error
    after = await client.call_tool("list_services", {})
    assert after.structured_content["services"][0]["last_used_at"] >= iso_now(started - 1)
    assert after.structured_content["services"][0]["last_used"].endswith(" s ago")
    assert json.loads(text_of(after)) == after.structured_content  # the text form, for older clients
    assert SECRET not in json.dumps(after.model_dump())


# -- get_credentials -------------------------------------------------------------------------------


async def test_get_credentials_is_masked_by_default_and_audited(client: Client, vault: Vault, gateway: Gateway) -> None:
    vault.add_service(make_service("masked", "api.masked.test"), validate_secret(SECRET))
    result = await client.call_tool("get_credentials", {"service_name": "masked"})
    out = result.structured_content
    assert out["reveal_policy"] == "masked" and out["value"] is None
    assert out["masked"] == "…" + SECRET[-4:] and out["fingerprint"].startswith("hmac:")
    assert out["token_type"] == "header"
    assert SECRET not in json.dumps(result.model_dump())
    record = audit_records(gateway)[-1]
    assert {k: record.get(k) for k in ("source", "service", "action", "decision")} == {
        "source": "mcp", "service": "masked", "action": "reveal", "decision": "masked",
    }  # fmt: skip


async def test_get_credentials_never_policy_points_to_call_service(
    client: Client, vault: Vault, gateway: Gateway
) -> None:
    vault.add_service(make_service("hidden", "api.hidden.test", reveal="never"), validate_secret(SECRET))
    result = await client.call_tool("get_credentials", {"service_name": "hidden"})
    assert result.is_error and "use call_service" in text_of(result)
    assert audit_records(gateway)[-1]["decision"] == "refused"


@pytest.mark.reveals_secret
async def test_full_reveal_without_elicitation_support_follows_the_policy_and_is_audited(
    client: Client, gateway: Gateway, vault: Vault
) -> None:
    vault.add_service(make_service("open", "api.open.test", reveal="full"), validate_secret(SECRET))
    result = await client.call_tool("get_credentials", {"service_name": "open"})
    assert result.structured_content["value"] == SECRET
    assert audit_records(gateway)[-1]["action"] == "reveal" and audit_records(gateway)[-1]["decision"] == "revealed"
    assert SECRET not in json.dumps(audit_records(gateway))


@pytest.mark.reveals_secret
async def test_full_reveal_asks_the_user_first_and_the_question_holds_no_secret(
    connect: Callable[..., Any], vault: Vault
) -> None:
    vault.add_service(make_service("open", "api.open.test", reveal="full"), validate_secret(SECRET))
    callback, asked = answering("accept")
    async with connect(callback) as client:
        result = await client.call_tool("get_credentials", {"service_name": "open"})
    assert result.structured_content["value"] == SECRET
    assert len(asked) == 1 and "'open'" in asked[0] and SECRET not in asked[0]


@pytest.mark.parametrize(("action", "approve"), [("decline", True), ("cancel", True), ("accept", False)],
                         ids=["declined", "cancelled", "answered-no"])  # fmt: skip
async def test_full_reveal_refused_by_the_user_returns_no_value(
    connect: Callable[..., Any], vault: Vault, gateway: Gateway, action: str, approve: bool
) -> None:
    vault.add_service(make_service("open", "api.open.test", reveal="full"), validate_secret(SECRET))
    callback, asked = answering(action, approve)
    async with connect(callback) as client:
        result = await client.call_tool("get_credentials", {"service_name": "open"})
    assert asked and result.is_error and "declined" in text_of(result)
    assert SECRET not in json.dumps(result.model_dump())
    assert audit_records(gateway)[-1]["decision"] == "refused"


async def test_masked_reveal_never_asks_the_user(connect: Callable[..., Any], vault: Vault) -> None:
    vault.add_service(make_service("masked", "api.masked.test"), validate_secret(SECRET))
    callback, asked = answering("accept")
    async with connect(callback) as client:
        result = await client.call_tool("get_credentials", {"service_name": "masked"})
    assert not result.is_error and result.structured_content["value"] is None and asked == []


async def test_expired_credential_is_not_revealed(client: Client, vault: Vault) -> None:
    vault.add_service(make_service("old", "api.old.test", reveal="full", expires_at=1.0), validate_secret(SECRET))
    result = await client.call_tool("get_credentials", {"service_name": "old"})
    assert result.is_error and "expired" in text_of(result) and "rotate" in text_of(result)


# -- check_credential_status -----------------------------------------------------------------------


async def test_check_credential_status_reports_expiry(client: Client, vault: Vault) -> None:
    vault.add_service(make_service("old", "api.old.test", expires_at=1.0), validate_secret(SECRET))
    out = (await client.call_tool("check_credential_status", {"service_name": "old"})).structured_content
    assert out["state"] == "expired" and "rotate" in out["detail"] and out["seconds_to_expiry"] < 0
    assert out["expired"] is True and out["expires_at"] == "1970-01-01T00:00:01Z"
    assert out["expiry"].startswith("expired ") and out["expiry"].endswith(" days ago")


async def test_live_check_without_a_probe_says_how_to_set_one(client: Client, scripted: ScriptedUpstream) -> None:
    result = await client.call_tool("check_credential_status", {"service_name": "api", "live": True})
    assert result.is_error and "--probe" in text_of(result)
    assert scripted.received == []


PROBES = [("ok", "/status/200", "valid"), ("rejected", "/status/401", "invalid"), ("broken", "/status/500", "unknown")]


@pytest.mark.parametrize(("path", "state"), [p[1:] for p in PROBES], ids=[p[0] for p in PROBES])
async def test_live_check_sends_the_probe_through_the_proxy_and_records_the_outcome(
    client: Client, vault: Vault, scripted: ScriptedUpstream, path: str, state: str
) -> None:
    save_settings(vault, "api", ServiceSettings(probe=parse_probe(f"GET {path}")))
    out = (await client.call_tool("check_credential_status", {"service_name": "api", "live": True})).structured_content
    assert out["state"] == state
    assert out["last_check"]["state"] == state and out["last_check"]["status"] == int(path[-3:])
    assert [dict(r.headers)["Authorization"] for r in scripted.received] == [f"Bearer {SECRET}"]
    later = (await client.call_tool("check_credential_status", {"service_name": "api"})).structured_content
    assert later["state"] == state and later["last_check"] == out["last_check"]
    listed = (await client.call_tool("list_services", {})).structured_content["services"]
    assert listed[0]["state"] == state


async def test_live_check_uses_the_connector_probe_from_the_catalog(
    vault: Vault, audit: AuditLog, home: Path, upstream_ca: trustme.CA, mode: str
) -> None:
    server = ScriptedUpstream.start(upstream_ca, hostnames=("api.openai.com",))
    routes = LoopbackRoutes({"api.openai.com": server.port})
    config = ProxyConfig(extra_addons=(routes,), resolver=routes.resolve)
    gateway = Gateway(vault, audit, LocalCA(home / "certs"), config=config)
    vault.add_service(make_service("openai", "api.openai.com", connector="openai"), validate_secret(SECRET))
    try:
        async with Client(build_server(gateway), mode=mode) as client:
            result = await client.call_tool("check_credential_status", {"service_name": "openai", "live": True})
    finally:
        server.stop()
    assert result.structured_content["state"] == "valid", result.content
    [seen] = server.received
    assert (seen.method, seen.path, dict(seen.headers)["Host"]) == ("GET", "/v1/models", "api.openai.com")
    assert dict(seen.headers)["Authorization"] == f"Bearer {SECRET}"


async def test_path_outside_the_service_policy_is_refused_by_the_proxy_and_reported(
    client: Client, vault: Vault, upstream_ca: trustme.CA
) -> None:
    server = ScriptedUpstream.start(upstream_ca)
    try:
        vault.add_service(make_service("v1only", f"127.0.0.1:{server.port}", local=True, path_prefixes=("/v1",)),
                          validate_secret(SECRET))  # fmt: skip
        result = await client.call_tool(
            "call_service", {"service_name": "v1only", "method": "GET", "url": server.url("/v1/../admin")}
        )
        assert result.is_error and "refused" in text_of(result)
        assert server.received == []
    finally:
        server.stop()


async def test_status_carries_the_rate_limit_the_proxy_recorded(client: Client, scripted: ScriptedUpstream) -> None:
    assert not (await call(client, "/headers", scripted)).is_error
    out = (await client.call_tool("check_credential_status", {"service_name": "api"})).structured_content
    limit = out["rate_limit"]
    assert (limit["remaining"], limit["limit"], limit["header"]) == (41, 60, "x-ratelimit-remaining")
    assert 0 < limit["seconds_to_reset"] <= 31 and limit["observed_at"] <= iso_now()
    assert limit["reset_at"] > limit["observed_at"] and limit["resets"].startswith("resets in ")


# -- call_service ----------------------------------------------------------------------------------


async def test_call_service_injects_and_the_model_sees_it_redacted(
    client: Client, local_service: Service, upstream: EchoUpstream, gateway: Gateway
) -> None:
    result = await client.call_tool(
        "call_service",
        {"service_name": "echo", "method": "GET", "url": f"https://127.0.0.1:{upstream.port}/v1/models",
         "headers": {"Authorization": "Bearer agent-supplied", "Accept": "application/json"}},
    )  # fmt: skip
    assert not result.is_error, result.content
    out = result.structured_content
    assert out["status"] == 200
    assert out["body"]["headers"]["Authorization"] == "[REDACTED:echo]"
    assert out["redactions"] == 1
    assert out["ignored_headers"] == ["Authorization"]
    assert [v for r in upstream.received for k, v in r.headers if k == "Authorization"] == [f"Bearer {SECRET}"]
    assert SECRET not in json.dumps(result.model_dump())
    assert audit_records(gateway)[-1]["id"] == out["audit_id"] and audit_records(gateway)[-1]["source"] == "mcp"


async def test_large_body_is_cut_at_the_limit_with_a_flag_and_the_full_size(
    client: Client, scripted: ScriptedUpstream
) -> None:
    out = (await call(client, "/big/5000", scripted)).structured_content
    assert out["body_truncated"] is True and out["body_size"] == 5000 and out["body_limit"] == 1024
    assert out["body"] == "a" * 1024


async def test_body_is_sent_once_and_the_text_part_is_a_short_summary(
    client: Client, scripted: ScriptedUpstream
) -> None:
    result = await call(client, "/big/5000", scripted)
    text = text_of(result)
    assert "a" * 100 not in text and len(text) < 400
    assert "HTTP 200" in text and "cut to 1024 bytes" in text and result.structured_content["audit_id"] in text
    assert len(json.dumps(result.model_dump(mode="json"))) < 1024 + 1500  # was twice the body and more


async def test_binary_body_is_summarised_by_type_size_and_digest(client: Client, scripted: ScriptedUpstream) -> None:
    import hashlib

    out = (await call(client, "/binary", scripted)).structured_content
    assert out["body"] is None
    assert out["binary"] == {"content_type": "image/png", "size": len(PNG), "sha256": hashlib.sha256(PNG).hexdigest()}


async def test_same_origin_redirect_is_followed_with_the_credential(client: Client, scripted: ScriptedUpstream) -> None:
    out = (await call(client, "/redirect/same", scripted)).structured_content
    assert out["status"] == 200 and out["redirect"] is None and out["url"].endswith("/echo?after=redirect")
    assert [r.path for r in scripted.received] == ["/redirect/same", "/echo?after=redirect"]


async def test_cross_origin_redirect_is_reported_not_followed(client: Client, scripted: ScriptedUpstream) -> None:
    out = (await call(client, "/redirect/away", scripted)).structured_content
    assert out["status"] == 302
    assert out["redirect"] == {"location": "https://evil.test/collect?x=1", "followed": False}
    assert out["headers"]["location"] == "https://evil.test/collect?x=1"
    assert len(scripted.received) == 1


async def test_location_reflecting_the_credential_is_redacted(client: Client, scripted: ScriptedUpstream) -> None:
    result = await call(client, "/reflect-location", scripted)
    assert "[REDACTED:api]" in result.structured_content["redirect"]["location"]
    assert SECRET not in json.dumps(result.model_dump())


async def test_response_headers_are_an_allowlist_with_a_rate_limit_snapshot(
    client: Client, scripted: ScriptedUpstream
) -> None:
    out = (await call(client, "/headers", scripted)).structured_content
    assert "set-cookie" not in out["headers"] and "server" not in out["headers"]
    assert "x-internal-debug" not in out["headers"]
    assert out["headers"]["x-request-id"] == "req-1"
    assert out["rate_limit"]["remaining"] == 41 and out["rate_limit"]["limit"] == 60


async def test_slow_upstream_hits_the_timeout_with_a_clear_message(
    vault: Vault, audit: AuditLog, home: Path, scripted: ScriptedUpstream, mode: str
) -> None:
    gateway = Gateway(vault, audit, LocalCA(home / "certs"), limits=CallLimits(timeout=0.5))
    async with Client(build_server(gateway), mode=mode) as client:
        await client.call_tool("list_services", {})
        result = await call(client, "/slow", scripted)  # the upstream answers after 2 s
    assert result.is_error and "did not answer within 0.5 s" in text_of(result)
    assert "CLAVIS_CALL_TIMEOUT" in text_of(result)


async def test_oversized_request_body_is_refused_before_any_traffic(client: Client, scripted: ScriptedUpstream) -> None:
    result = await call(client, "/echo", scripted, method="POST", data="x" * (2 * 1024 * 1024))
    assert result.is_error and "the limit is 1048576" in text_of(result)
    assert scripted.received == []


async def test_json_body_reaches_the_upstream(client: Client, scripted: ScriptedUpstream) -> None:
    out = (await call(client, "/echo", scripted, method="POST", json={"q": "é"})).structured_content
    assert json.loads(scripted.received[0].body) == {"q": "é"}
    assert out["body"]["headers"]["Content-Type"] == "application/json"


async def test_method_outside_the_service_policy_is_refused_before_any_traffic(
    client: Client, vault: Vault, upstream_ca: trustme.CA
) -> None:
    server = ScriptedUpstream.start(upstream_ca)
    try:
        vault.add_service(make_service("ro", f"127.0.0.1:{server.port}", local=True, methods=("GET",)),
                          validate_secret(SECRET))  # fmt: skip
        result = await client.call_tool(
            "call_service", {"service_name": "ro", "method": "DELETE", "url": server.url("/x")}
        )
        assert result.is_error and "method policy allows: GET" in text_of(result)
        assert server.received == []
    finally:
        server.stop()


async def test_write_asks_the_user_with_method_url_and_body_preview(
    connect: Callable[..., Any], vault: Vault, scripted: ScriptedUpstream
) -> None:
    save_settings(vault, "api", ServiceSettings(confirm_writes=True))
    callback, asked = answering("accept")
    async with connect(callback) as client:
        result = await call(client, "/echo", scripted, method="POST", json={"amount": 100}, params={"a": "b"})
        read = await call(client, "/echo", scripted)
    assert not result.is_error and not read.is_error
    assert len(asked) == 1
    assert f"POST {scripted.url('/echo')}?a=b" in asked[0] and '{"amount":100}' in asked[0]
    assert len(scripted.received) == 2


async def test_write_declined_by_the_user_is_not_sent(
    connect: Callable[..., Any], vault: Vault, scripted: ScriptedUpstream, gateway: Gateway
) -> None:
    save_settings(vault, "api", ServiceSettings(confirm_writes=True))
    callback, _ = answering("decline")
    async with connect(callback) as client:
        result = await call(client, "/echo", scripted, method="DELETE")
    assert result.is_error and "declined" in text_of(result) and "not sent" in text_of(result)
    assert scripted.received == []
    assert audit_records(gateway)[-1]["decision"] == "refused"


async def test_write_without_elicitation_support_follows_the_policy(
    client: Client, vault: Vault, scripted: ScriptedUpstream
) -> None:
    save_settings(vault, "api", ServiceSettings(confirm_writes=True))
    assert not (await call(client, "/echo", scripted, method="PUT", data="x")).is_error
    assert len(scripted.received) == 1


async def test_invalid_write_is_refused_without_asking(
    connect: Callable[..., Any], vault: Vault, scripted: ScriptedUpstream
) -> None:
    save_settings(vault, "api", ServiceSettings(confirm_writes=True))
    callback, asked = answering("accept")
    async with connect(callback) as client:
        result = await call(client, "https://evil.test/x", scripted, method="POST")
    assert result.is_error and "not a host of service 'api'" in text_of(result) and asked == []


async def test_unknown_service_lists_the_known_ones(client: Client, local_service: Service) -> None:
    result = await client.call_tool("call_service", {"service_name": "nope", "method": "GET", "url": "https://x.test/"})
    assert result.is_error and "known services: echo" in text_of(result)


async def test_method_is_accepted_in_any_case(client: Client, scripted: ScriptedUpstream) -> None:
    result = await call(client, "/echo", scripted, method="get")
    assert not result.is_error, text_of(result)
    assert scripted.received[0].method == "GET"


BAD_ARGUMENTS = [
    ("short-url", {"url": "x"}, "url must be at least 8 characters long"),
    ("missing-url", {"url": None}, "url is required"),
    ("service-name-shape", {"service_name": "Not A Name"}, "service_name must be a service name as list_services"),
    ("headers-not-an-object", {"headers": "Accept: x"}, "headers must be a JSON object"),
    ("unknown-method", {"method": "FETCH"}, "use one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
]


@pytest.mark.parametrize(("change", "sentence"), [r[1:] for r in BAD_ARGUMENTS], ids=[r[0] for r in BAD_ARGUMENTS])
async def test_bad_arguments_are_one_sentence_with_what_is_allowed(
    client: Client, scripted: ScriptedUpstream, change: dict[str, Any], sentence: str
) -> None:
    arguments = {"service_name": "api", "method": "GET", "url": scripted.url("/echo"), **change}
    result = await client.call_tool("call_service", {k: v for k, v in arguments.items() if v is not None})
    text = text_of(result)
    assert result.is_error and sentence in text, text
    assert "pydantic" not in text and "\n" not in text and "input_value" not in text
    assert scripted.received == []


async def test_credential_past_its_expiry_is_not_injected_by_call_service_as_get_credentials_refuses_it(
    client: Client, vault: Vault, upstream_ca: trustme.CA, gateway: Gateway
) -> None:
    server = ScriptedUpstream.start(upstream_ca)
    try:
        vault.add_service(make_service("old", f"127.0.0.1:{server.port}", local=True, expires_at=1.0),
                          validate_secret(SECRET))  # fmt: skip
        revealed = await client.call_tool("get_credentials", {"service_name": "old"})
        called = await call(client, server.url("/echo"), server, service_name="old")
    finally:
        server.stop()
    assert revealed.is_error and called.is_error
    assert "expired" in text_of(called) and "clavis-mcp rotate old" in text_of(called)
    assert server.received == []
    assert audit_records(gateway)[-1]["decision"] == "refused"
