"""Issue 20.1: with the audit log's disk full, no request leaves unrecorded: the room for its
record is reserved before it goes, and a request that cannot get that room is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clavis_mcp.proxy import EmbeddedProxy
from clavis_mcp.vault import AuditLog, AuditWriteError, Service
from demo.echo_upstream import EchoUpstream
from tests.conftest import proxy_client
from tests.faults.conftest import fill


def injected_records(home: Path) -> int:
    lines = (home / "audit.jsonl").read_bytes().splitlines()
    return sum(1 for line in lines if json.loads(line).get("decision") == "injected")


@pytest.mark.anyio
@pytest.mark.e2e
async def test_a_full_disk_refuses_requests_before_they_reach_the_upstream(
    proxy: EmbeddedProxy, home: Path, local_service: Service, upstream: EchoUpstream
) -> None:
    url = f"https://127.0.0.1:{upstream.port}/v1/x"
    async with proxy_client(proxy, home) as client:
        assert (await client.get(url)).status_code == 200
        fill(home)
        statuses = [(await client.post(url, content=b"payload")).status_code for _ in range(30)]
    assert 503 in statuses, statuses
    assert 502 not in statuses, "a response was withheld after the request had left unrecorded"
    assert len(upstream.received) == injected_records(home), "a request reached the upstream without its record"


def test_every_request_that_passed_the_check_finds_room_for_its_record(audit: AuditLog, home: Path) -> None:
    audit.check_writable()
    audit.append(source="mcp", decision="injected")
    fill(home)
    written, refusal = 1, None
    for _ in range(200):  # the live file's last block fills up, then the reserve gives its room
        try:
            audit.check_writable()
        except AuditWriteError as exc:
            refusal = str(exc)
            break
        audit.append(source="mcp", decision="injected")  # never refused once the check passed
        written += 1
    assert refusal is not None and "No space left on device" in refusal and "check disk space" in refusal
    assert written > 2
    (home / "filler").unlink()
    audit.check_writable()
    audit.append(source="mcp", decision="injected")
    report = audit.verify()
    assert report.ok and report.count == written + 1, report.summary()
