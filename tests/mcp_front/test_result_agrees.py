"""What call_service reports of a response is what the audit log recorded of it: the same id, the
same redaction count, and the log's byte count is what the client was sent. Checked where they
used to part: a body large enough for the proxy to stream, and a server-sent event stream, both
sent before their record existed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mcp import Client

from clavis_mcp.vault import AuditLog
from tests.conftest import SECRET
from tests.mcp_front.scripted_upstream import ScriptedUpstream

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]
THREE_MB = 3 * 1000 * 1000


async def call(client: Client, url: str) -> dict[str, Any]:
    result = await client.call_tool("call_service", {"service_name": "api", "method": "GET", "url": url})
    assert not result.is_error, result.content
    assert SECRET not in json.dumps(result.model_dump())
    return result.structured_content


def record_of(audit: AuditLog, audit_id: str | None) -> dict[str, Any]:
    assert audit_id is not None, "the result names no audit record"
    return next(r for r in audit.records() if r["id"] == audit_id)


async def test_streamed_3_mb_body_reports_the_audit_id_redactions_and_bytes_the_log_holds(
    client: Client, scripted: ScriptedUpstream, audit: AuditLog
) -> None:
    out = await call(client, scripted.url(f"/reflect-big/{THREE_MB}"))
    record = record_of(audit, out["audit_id"])
    assert out["redactions"] == record["redactions"] == 1
    assert record["bytes"] == out["body_size"] > THREE_MB - 100
    assert record["decision"] == "injected"


async def test_event_stream_reports_the_audit_id_redactions_and_bytes_the_log_holds(
    client: Client, scripted: ScriptedUpstream, audit: AuditLog
) -> None:
    out = await call(client, scripted.url("/sse"))
    record = record_of(audit, out["audit_id"])
    assert out["redactions"] == record["redactions"] == 3
    assert record["bytes"] == out["body_size"] > 0
    assert out["body"].count("[REDACTED:api]") == 3
