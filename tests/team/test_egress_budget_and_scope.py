"""/v1/egress (the team client's HTTPS_PROXY path) takes from a service's team budget as /v1/call
does, and refuses a service outside the key's scope with the answer it gives a target no service
owns (review R8, M3 and L6)."""

from __future__ import annotations

import re

import httpx
import pytest

from clavis_mcp.team.bootstrap import Bootstrap
from demo.echo_upstream import EchoUpstream
from tests.team.conftest import TeamServer, add_echo, audit_rows, new_key

pytestmark = pytest.mark.e2e

USED_UP = re.compile(r"the team budget of 'echo' \(2 requests per 3600 s\) is used up; retry in \d+ s")


def _egress(http: httpx.Client, key: str, target: str) -> httpx.Response:
    return http.get("/v1/egress", headers={"Authorization": f"Bearer {key}", "X-Clavis-Target": target})


def test_the_egress_refuses_with_a_429_once_the_team_budget_is_used_up(
    server: TeamServer, upstream: EchoUpstream
) -> None:
    add_echo(server, upstream, budget={"max_requests": 2, "period_seconds": 3600})
    key = new_key(server, "agent", ["echo"])
    with httpx.Client(base_url=server.url, trust_env=False, timeout=30) as http:
        answers = [_egress(http, key, f"https://127.0.0.1:{upstream.port}/egress{i}") for i in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 429, 429], [a.text for a in answers]
    for refused in answers[2:]:
        assert USED_UP.fullmatch(refused.json()["detail"]), refused.text
        assert int(refused.headers["Retry-After"]) >= 1
    assert [r.path for r in upstream.received] == ["/egress0", "/egress1"]


def test_call_and_egress_take_from_one_budget(server: TeamServer, upstream: EchoUpstream) -> None:
    add_echo(server, upstream, budget={"max_requests": 2, "period_seconds": 3600})
    key = new_key(server, "agent", ["echo"])
    url = f"https://127.0.0.1:{upstream.port}"
    with httpx.Client(base_url=server.url, trust_env=False, timeout=30) as http:
        call = http.post(
            "/v1/call/echo", json={"method": "GET", "url": f"{url}/call"}, headers={"Authorization": f"Bearer {key}"}
        )
        egress = _egress(http, key, f"{url}/egress")
        refused = _egress(http, key, f"{url}/refused")
        also_refused = http.post(
            "/v1/call/echo", json={"method": "GET", "url": f"{url}/late"}, headers={"Authorization": f"Bearer {key}"}
        )
    assert (call.status_code, egress.status_code) == (200, 200), (call.text, egress.text)
    assert refused.status_code == also_refused.status_code == 429
    assert USED_UP.fullmatch(refused.json()["detail"]) and USED_UP.fullmatch(also_refused.json()["detail"])
    assert [r.path for r in upstream.received] == ["/call", "/egress"]


def test_a_target_of_a_service_outside_the_scope_is_answered_as_one_no_service_owns(
    server: TeamServer, team: Bootstrap, upstream: EchoUpstream
) -> None:
    add_echo(server, upstream, "pa", path_prefixes=("/a",))
    add_echo(server, upstream, "pb", secret="other-secret-0123456789abcdef", path_prefixes=("/b",))
    key = new_key(server, "only-pa", ["pa"])
    with httpx.Client(base_url=server.url, trust_env=False, timeout=30) as http:
        hidden = _egress(http, key, f"https://127.0.0.1:{upstream.port}/b/x")
        unowned = _egress(http, key, f"https://127.0.0.1:{upstream.port}/c/x")
        elsewhere = _egress(http, key, "https://example.org/b/x")
    assert hidden.status_code == unowned.status_code == elsewhere.status_code == 403
    assert hidden.content == unowned.content == elsewhere.content
    assert "pb" not in hidden.text and "ask an admin" in hidden.json()["detail"]
    assert {k: v for k, v in hidden.headers.items() if k != "date"} == {
        k: v for k, v in unowned.headers.items() if k != "date"
    }
    assert upstream.received == []
    assert any('"service":"pb"' in row and "outside the key's scope" in row for row in audit_rows(team))


def test_a_live_check_takes_from_the_budget_it_uses_the_credential_for(
    server: TeamServer, upstream: EchoUpstream
) -> None:
    add_echo(server, upstream, budget={"max_requests": 2, "period_seconds": 3600})
    key = new_key(server, "agent", ["echo"])
    with httpx.Client(base_url=server.url, trust_env=False, timeout=30) as http:
        checks = [
            http.post("/v1/credentials/echo/verify", headers={"Authorization": f"Bearer {key}"}) for _ in range(3)
        ]
        after = _egress(http, key, f"https://127.0.0.1:{upstream.port}/after")
    assert [c.status_code for c in checks] == [200, 200, 429], [c.text for c in checks]
    assert USED_UP.fullmatch(checks[2].json()["detail"]) and after.status_code == 429
    assert len(upstream.received) == 2  # the two probes; nothing once the budget was used up
