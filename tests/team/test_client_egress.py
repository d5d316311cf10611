"""The team server's streaming egress (/v1/egress), which `clavis-mcp proxy` on a team client uses:
the real server injects, redacts and audits; the caller's scope is checked first."""

from __future__ import annotations

import httpx
import pytest

from clavis_mcp.team.bootstrap import Bootstrap
from demo.echo_upstream import EchoUpstream
from tests.conftest import SECRET
from tests.team.conftest import TeamServer, add_echo, audit_rows, new_key

pytestmark = pytest.mark.e2e


def test_the_egress_injects_redacts_and_audits_a_streamed_request(
    server: TeamServer, team: Bootstrap, upstream: EchoUpstream
) -> None:
    add_echo(server, upstream)
    key = new_key(server, "agent", ["echo"])
    target = f"https://127.0.0.1:{upstream.port}/v1/streamed?q=1"
    sent = {"Authorization": f"Bearer {key}", "X-Clavis-Target": target, "Content-Type": "application/json"}
    with httpx.Client(base_url=server.url, trust_env=False, timeout=30) as http:
        with http.stream("POST", "/v1/egress", content=b'{"prompt": "hi"}', headers=sent) as answer:
            body = answer.read()
            headers = answer.headers
    assert answer.status_code == 200, body
    assert SECRET not in body.decode() and b"REDACTED" in body
    assert [v for r in upstream.received for k, v in r.headers if k == "Authorization"] == [f"Bearer {SECRET}"]
    assert upstream.received[0].body == b'{"prompt": "hi"}' and upstream.received[0].path == "/v1/streamed?q=1"
    audit_id = headers["x-clavis-audit-id"]
    assert any(audit_id in row for row in audit_rows(team))


def test_the_egress_refuses_outside_the_scope_and_hosts_no_service_owns(
    server: TeamServer, upstream: EchoUpstream
) -> None:
    add_echo(server, upstream)
    key = new_key(server, "other", ["payroll"])
    with httpx.Client(base_url=server.url, trust_env=False, timeout=30) as http:
        scoped = http.get("/v1/egress", headers={"Authorization": f"Bearer {key}",
                                                 "X-Clavis-Target": f"https://127.0.0.1:{upstream.port}/"})  # fmt: skip
        unowned = http.get("/v1/egress", headers={"Authorization": f"Bearer {key}",
                                                  "X-Clavis-Target": "https://example.org/"})  # fmt: skip
    assert scoped.status_code == unowned.status_code == 403
    assert scoped.json() == unowned.json() and "echo" not in scoped.text  # the scope hides the owner (R8 L6)
    assert upstream.received == []
