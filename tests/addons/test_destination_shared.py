"""decide() for shared hosts and hosts no service owns (issue 16.12, 16.14), as a pure function."""

from __future__ import annotations

import time

import pytest

from clavis_mcp.addons.destination import Verdict, decide
from clavis_mcp.vault import HostRule, Secret, Snapshot, parse_host_rule
from clavis_mcp.vault.agents import Agent
from clavis_mcp.vault.service import Service, parse_header_template, parse_hosts


def service(name: str, *hosts: str, **kw: object) -> Service:
    auth = parse_header_template("Authorization: Bearer {secret}")
    return Service(name=name, auth=auth, hosts=parse_hosts(list(hosts)), created_at=time.time(), **kw)  # type: ignore[arg-type]


SNAPSHOT = Snapshot(
    services=(
        service("personal", "api.openai.com"),
        service("work", "api.openai.com"),
        service("gh", "api.github.com", path_prefixes=("/repos",)),
    ),
    secrets={n: Secret(f"secret-of-{n}-000000") for n in ("personal", "work", "gh")},
)
DEV, WORKER, STRICT = Agent("dev", 0.0), Agent("worker", 0.0, uses=("work",)), Agent("strict", 0.0, True)


def judge(
    host: str,
    path: str = "/v1",
    *,
    agent: Agent | None = DEV,
    selected: str | None = None,
    pass_other_hosts: bool = True,
    passthrough: tuple[HostRule, ...] = (),
    scheme: str = "https",
) -> Verdict:
    port = 443 if scheme == "https" else 80
    return decide(SNAPSHOT, method="GET", scheme=scheme, host=host, port=port, host_header=None, sni=None,
                  selected=selected, path=path, agent=agent, pass_other_hosts=pass_other_hosts,
                  passthrough=passthrough)  # fmt: skip


def test_a_shared_host_goes_to_the_agent_binding() -> None:
    verdict = judge("api.openai.com", agent=WORKER)
    assert verdict.service is not None and verdict.service.name == "work"


def test_a_shared_host_without_binding_names_the_choices_and_the_fix() -> None:
    verdict = judge("api.openai.com")
    assert (verdict.service, verdict.status, verdict.passthrough) == (None, 403, False)
    assert "('personal', 'work')" in verdict.reason and "clavis-mcp agent use dev SERVICE" in verdict.reason


@pytest.mark.parametrize(("agent", "named"), [(DEV, "personal"), (DEV, "work"), (WORKER, "work")])
def test_a_named_service_is_the_one_used(agent: Agent, named: str) -> None:
    verdict = judge("api.openai.com", agent=agent, selected=named)
    assert verdict.service is not None and verdict.service.name == named


def test_a_bound_agent_cannot_name_the_other_service() -> None:
    verdict = judge("api.openai.com", agent=WORKER, selected="personal")
    assert verdict.service is None and verdict.status == 403 and "bound to service 'work'" in verdict.reason


def test_other_hosts_pass_unless_the_agent_denies_them_or_the_proxy_does_not_pass_them() -> None:
    assert judge("pypi.org").passthrough
    assert judge("pypi.org", agent=STRICT).status == 403
    assert "--deny-other-hosts" in judge("pypi.org", agent=STRICT).reason
    assert judge("pypi.org", pass_other_hosts=False).status == 403


@pytest.mark.parametrize("host", ["127.0.0.1", "10.0.0.5", "169.254.169.254", "localhost", "::1"])
def test_private_addresses_never_pass_by_default(host: str) -> None:
    verdict = judge(host)
    assert not verdict.passthrough and verdict.status == 403 and "private or loopback" in verdict.reason


@pytest.mark.parametrize(
    ("host", "path", "scheme"),
    [("api.github.com", "/users", "https"), ("api.openai.com", "/v1", "http")],
    ids=["uncovered-path", "other-scheme"],
)
def test_a_host_some_service_owns_is_never_passed_through(host: str, path: str, scheme: str) -> None:
    rules = (parse_host_rule(host), parse_host_rule(f"{host}:80"))
    verdict = judge(host, path, scheme=scheme, passthrough=rules)
    assert not verdict.passthrough and verdict.status == 403
