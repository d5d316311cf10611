"""The audit trail addon: unit hooks with mitmproxy's test flows, then a sweep through the real proxy."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme
from mitmproxy import http
from mitmproxy.test import taddons, tflow, tutils

from clavis_mcp.addons.audit_trail import AuditTrail
from clavis_mcp.addons.flowmeta import CLIENT, DECISION, DESTINATION, REASON, REDACTIONS, SERVICE, STARTED, refuse
from clavis_mcp.proxy import EmbeddedProxy
from clavis_mcp.vault import AuditLog, Vault, parse_hosts, validate_secret
from clavis_mcp.vault.audit.index import AuditIndex
from clavis_mcp.vault.proxy_headers import AUDIT_ID_HEADER, REDACTIONS_HEADER
from clavis_mcp.vault.redaction.redactor import forms_of
from clavis_mcp.vault.service import AuthSpec, Service
from demo.echo_upstream import EchoUpstream
from tests.conftest import OTHER_SECRET, PROXY_TOKEN, PROXY_USER, SECRET, make_service, proxy_client

pytestmark = pytest.mark.anyio


@pytest.fixture
def trail(audit: AuditLog) -> Iterator[AuditTrail]:
    addon = AuditTrail(audit)
    with taddons.context(addon):
        yield addon


def service_flow(**metadata: object) -> http.HTTPFlow:
    flow = tflow.tflow(req=tutils.treq(path=b"/v1/x?api_key=abc&b=2"), resp=True)
    flow.metadata.update(
        {CLIENT: "ci-bot", SERVICE: "svc", DESTINATION: ("https", "api.example.com", 443), DECISION: "injected"}
    )
    flow.metadata.update(metadata)
    return flow


def last_record(audit: AuditLog) -> dict[str, object]:
    return list(audit.records())[-1]


async def test_a_decided_request_is_recorded_with_its_facts_and_its_id_goes_back(
    trail: AuditTrail, audit: AuditLog
) -> None:
    flow = service_flow(**{REDACTIONS: 2, STARTED: time.monotonic()})
    trail.response(flow)
    record = last_record(audit)
    assert record["id"] == flow.response.headers[AUDIT_ID_HEADER]
    assert flow.response.headers[REDACTIONS_HEADER] == "2"
    assert {k: record[k] for k in ("source", "service", "method", "scheme", "host", "port", "path", "status")} == {
        "source": "ci-bot",
        "service": "svc",
        "method": "GET",
        "scheme": "https",
        "host": "api.example.com",
        "port": 443,
        "path": "/v1/x?api_key=&b=",
        "status": 200,
    }
    assert record["decision"] == "injected" and record["redactions"] == 2 and record["duration_ms"] >= 0


async def test_a_refusal_is_recorded_with_its_reason(trail: AuditTrail, audit: AuditLog) -> None:
    flow = tflow.tflow()
    flow.metadata[CLIENT] = "ci-bot"
    refuse(flow, 403, "no service is registered for https://address:22")
    trail.response(flow)
    record = last_record(audit)
    assert (record["decision"], record["status"]) == ("refused", 403)
    assert record["reason"] == "no service is registered for https://address:22"


CONNECTS = [
    ("refused tunnel", lambda f: refuse(f, 403, "no service"), "refused"),
    ("passthrough tunnel", lambda f: f.metadata.update({DECISION: "passed", REASON: "passthrough host"}), "passed"),
]


@pytest.mark.parametrize(("decide", "decision"), [c[1:] for c in CONNECTS], ids=[c[0] for c in CONNECTS])
async def test_a_tunnel_decided_at_connect_is_recorded(
    trail: AuditTrail, audit: AuditLog, decide: object, decision: str
) -> None:
    flow = tflow.tflow(req=tutils.treq(method=b"CONNECT", path=b"", host="example.org", port=443))
    decide(flow)  # type: ignore[operator]
    trail.http_connect(flow)
    record = last_record(audit)
    assert record["decision"] == decision and record["method"] == "CONNECT" and "path" not in record


async def test_an_intercepted_tunnel_is_left_to_its_requests(trail: AuditTrail, audit: AuditLog) -> None:
    trail.http_connect(tflow.tflow(req=tutils.treq(method=b"CONNECT", path=b"", host="example.org", port=443)))
    assert list(audit.records()) == []


async def test_an_upstream_error_is_recorded(trail: AuditTrail, audit: AuditLog) -> None:
    flow = service_flow()
    flow.response = None
    flow.error = tflow.terr("connection reset")
    trail.error(flow)
    assert (last_record(audit)["decision"], last_record(audit)["reason"]) == ("error", "reset: connection reset")


FAILED_AFTER_INJECTION = [
    ("tls", "Certificate verify failed: unable to get local issuer certificate", "tls: Certificate verify failed"),
    ("connect", "[Errno 111] Connect call failed ([bytes withheld]", "connect: [Errno 111]"),
    ("client-gave-up", "Client disconnected.", "client gave up: Client disconnected."),
    ("reset", "server closed connection", "reset: server closed connection"),
]


@pytest.mark.parametrize(("message", "reason"), [r[1:] for r in FAILED_AFTER_INJECTION],
                         ids=[r[0] for r in FAILED_AFTER_INJECTION])  # fmt: skip
async def test_a_failure_after_injection_is_recorded_as_an_error_not_as_injected(
    trail: AuditTrail, audit: AuditLog, message: str, reason: str
) -> None:
    flow = service_flow()
    flow.metadata[DECISION] = "injected"  # the credential went on before the upstream failed
    flow.response = None
    flow.error = tflow.terr(message)
    trail.error(flow)
    record = last_record(audit)
    assert record["decision"] == "error" and record["reason"].startswith(reason)


async def test_a_dns_failure_the_dial_guard_refused_is_an_error_but_a_private_address_stays_refused(
    trail: AuditTrail, audit: AuditLog
) -> None:
    for message, decision in [
        ("clavis-mcp refused to dial api.x.example: it does not resolve (OSError)", "error"),
        ("clavis-mcp refused to dial intranet.x: it resolves to the private or loopback address 10.0.0.1", "refused"),
    ]:
        flow = service_flow()
        flow.metadata[DECISION] = "refused"  # as the dial guard marks every dial it refused
        flow.response = None
        flow.error = tflow.terr(f"Connection killed: {message}")
        trail.error(flow)
        assert last_record(audit)["decision"] == decision
        assert last_record(audit)["reason"].endswith(message[message.index(":") + 2 :])


@pytest.fixture
def broken_trail(audit: AuditLog, home: Path) -> Iterator[AuditTrail]:
    audit.path.mkdir(parents=True)  # a folder where the log should be: every write fails
    addon = AuditTrail(audit)
    with taddons.context(addon):
        yield addon


OUTGOING = {
    "service request": {SERVICE: "svc"},
    "passthrough request": {DECISION: "passed"},
}


@pytest.mark.parametrize("metadata", OUTGOING.values(), ids=OUTGOING.keys())
def test_nothing_leaves_when_the_log_cannot_be_written(broken_trail: AuditTrail, metadata: dict[str, str]) -> None:
    flow = tflow.tflow()
    flow.metadata.update(metadata)
    broken_trail.request(flow)
    assert flow.response is not None and flow.response.status_code == 503
    assert "cannot write the audit log" in flow.response.text


async def test_a_response_that_cannot_be_recorded_is_withheld_with_the_reason(broken_trail: AuditTrail) -> None:
    flow = service_flow()
    flow.response = http.Response.make(200, SECRET)
    broken_trail.response(flow)
    assert flow.response.status_code == 502
    assert SECRET not in flow.response.text and "cannot write the audit log" in flow.response.text


async def test_a_passthrough_tunnel_that_cannot_be_recorded_is_refused(broken_trail: AuditTrail) -> None:
    flow = tflow.tflow(req=tutils.treq(method=b"CONNECT", path=b"", host="example.org", port=443))
    flow.metadata[DECISION] = "passed"
    broken_trail.http_connect(flow)
    assert flow.response is not None and flow.response.status_code == 503


def every_encoding(*secrets: str) -> dict[bytes, str]:
    forms: dict[bytes, str] = {}
    for secret in secrets:
        for form in forms_of(secret) | {base64.b64encode(f"user:{secret}".encode()), base64.b64encode(secret.encode())}:
            forms[form] = secret[:6]
    return forms


@pytest.fixture
def query_upstream(upstream_ca: trustme.CA) -> Iterator[EchoUpstream]:
    with EchoUpstream.start(upstream_ca) as server:
        yield server


async def test_sweep_no_secret_in_any_encoding_reaches_the_audit_files(
    proxy: EmbeddedProxy,
    home: Path,
    upstream: EchoUpstream,
    query_upstream: EchoUpstream,
    vault: Vault,
    audit: AuditLog,
) -> None:
    vault.add_service(make_service("echo", f"127.0.0.1:{upstream.port}", local=True), validate_secret(SECRET))
    by_query = Service(
        name="by-query",
        auth=AuthSpec("query", "api_key"),
        hosts=parse_hosts([f"127.0.0.1:{query_upstream.port}"]),
        local=True,
        created_at=time.time(),
    )
    vault.add_service(by_query, validate_secret(OTHER_SECRET))
    base = f"https://127.0.0.1:{upstream.port}"
    encoded = {
        "literal": SECRET,
        "base64": base64.b64encode(SECRET.encode()).decode(),
        "hex": SECRET.encode().hex(),
        "json": json.dumps(SECRET),
    }
    async with proxy_client(proxy, home) as client:
        await client.get(f"{base}/v1/models")
        await client.get(f"{base}/v1/x", params={"api_key": SECRET, "other": OTHER_SECRET, **encoded})
        await client.get(f"{base}/v1/x", headers={"Authorization": f"Bearer {OTHER_SECRET}", "X-Key": SECRET})
        await client.post(f"{base}/v1/echo", json={"secret": SECRET, "other": OTHER_SECRET})
        await client.get(f"http://127.0.0.1:{upstream.port}/plain?token={SECRET}")
        await client.get(f"https://127.0.0.1:{query_upstream.port}/q", params={"api_key": "agent-chosen", "b": "1"})
        with pytest.raises(httpx.ProxyError):
            await client.get(f"https://127.0.0.2:{upstream.port}/?k={SECRET}")
    async with proxy_client(proxy, home, auth=(PROXY_USER, OTHER_SECRET)) as client:
        with pytest.raises(httpx.ProxyError):
            await client.get(f"{base}/v1/models")
    assert f"api_key={OTHER_SECRET}" in query_upstream.received[0].path  # the query secret really went out
    records = list(audit.records())
    assert {r["decision"] for r in records} >= {"injected", "refused"}
    assert len(records) >= 7

    index = AuditIndex(audit.files)
    index.refresh()
    index.close()
    files = [p for p in home.iterdir() if p.name.startswith("audit.jsonl") and p.is_file()]
    assert any(p.name.endswith(".sqlite") for p in files)
    for path in files:
        content = path.read_bytes()
        leaked = {label for form, label in every_encoding(SECRET, OTHER_SECRET, PROXY_TOKEN).items() if form in content}
        assert not leaked, f"{path.name} holds an encoding of {leaked}"


async def test_concurrent_requests_through_the_proxy_leave_one_valid_chain(
    proxy: EmbeddedProxy, home: Path, upstream: EchoUpstream, local_service: Service, audit: AuditLog
) -> None:
    async with proxy_client(proxy, home) as client:
        responses = await asyncio.gather(*(client.get(f"https://127.0.0.1:{upstream.port}/v1/n{n}") for n in range(20)))
    assert all(r.status_code == 200 for r in responses)
    records = list(audit.records())
    assert sorted(r["id"] for r in records) == sorted(r.headers[AUDIT_ID_HEADER] for r in responses)
    report = audit.verify()
    assert report.ok and report.count == 20, report.summary()
