"""A request the pipeline's method and path policy refuses spends none of the team budget
(re-review finding N6): it never reaches the provider, so it must not use up the budget of the
requests that would. The refusal itself is the pipeline's, as before."""

from __future__ import annotations

import httpx
import pytest

from demo.echo_upstream import EchoUpstream
from tests.team.conftest import TeamServer, add_echo, new_key

pytestmark = pytest.mark.e2e

BUDGET = {"max_requests": 2, "period_seconds": 3600}


def test_the_reviewers_n7_sequence_policy_refused_egress_posts_leave_the_budget_whole(
    server: TeamServer, upstream: EchoUpstream
) -> None:
    add_echo(server, upstream, budget=BUDGET, methods=("GET",), path_prefixes=("/q",))
    key = new_key(server, "agent", ["echo"])
    url = f"https://127.0.0.1:{upstream.port}"
    with httpx.Client(
        base_url=server.url, trust_env=False, timeout=30, headers={"Authorization": f"Bearer {key}"}
    ) as c:
        refused = [c.post("/v1/egress", headers={"X-Clavis-Target": f"{url}/q/x"}, content=b"x") for _ in range(2)]
        allowed = c.post("/v1/call/echo", json={"method": "GET", "url": f"{url}/q/ok"})
    assert [r.status_code for r in refused] == [405, 405], [r.text for r in refused]
    assert allowed.status_code == 200, allowed.text
    assert [r.path for r in upstream.received] == ["/q/ok"]


def test_policy_refused_calls_probes_and_overrides_leave_the_budget_whole_but_allowed_ones_spend_it(
    server: TeamServer, upstream: EchoUpstream
) -> None:
    add_echo(server, upstream, budget=BUDGET, methods=("GET",), path_prefixes=("/q",))
    key = new_key(server, "agent", ["echo"])
    url = f"https://127.0.0.1:{upstream.port}"
    with httpx.Client(
        base_url=server.url, trust_env=False, timeout=30, headers={"Authorization": f"Bearer {key}"}
    ) as c:
        refused = [
            c.post("/v1/call/echo", json={"method": "POST", "url": f"{url}/q/write"}),  # method
            c.post("/v1/call/echo", json={"method": "GET", "url": f"{url}/admin"}),  # path
            c.post("/v1/call/echo", json={"method": "GET", "url": f"{url}/q/%2e%2e/admin"}),  # path, once resolved
            c.post("/v1/call/echo", json={"method": "GET", "url": f"{url}/q/x", "params": {"_method": "DELETE"}}),
            c.post("/v1/proxy/echo", json={"method": "GET", "path": "/q/x", "headers": {"X-HTTP-Method": "PUT"}}),
            c.get("/v1/egress", headers={"X-Clavis-Target": f"{url}/q/x", "X-HTTP-Method-Override": "DELETE"}),
            c.post("/v1/credentials/echo/verify"),  # the generic probe, GET /, is off the allowed paths
        ]
        allowed = [c.post("/v1/call/echo", json={"method": "GET", "url": f"{url}/q/{i}"}) for i in range(3)]
    assert all(r.status_code in (403, 405) for r in refused), [(r.status_code, r.text) for r in refused]
    assert [r.status_code for r in allowed] == [200, 200, 429], [r.text for r in allowed]
    assert "the team budget of 'echo'" in allowed[2].json()["detail"]
    assert [r.path for r in upstream.received] == ["/q/0", "/q/1"]
