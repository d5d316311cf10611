"""DestinationCheck keeps decide()'s verdicts per vault snapshot: a kept verdict never answers a
request that differs in anything decide() reads, and a vault change judges anew."""

from __future__ import annotations

from mitmproxy import http
from mitmproxy.test import taddons, tflow, tutils

from clavis_mcp.addons.destination import DestinationCheck
from clavis_mcp.addons.flowmeta import CLIENT, DECISION, SERVICE
from clavis_mcp.vault import Vault, validate_secret
from clavis_mcp.vault.agents import add_agent, use_services
from tests.conftest import SECRET, make_service


def flow_to(host: str, host_header: str, path: bytes = b"/v1", select: str | None = None) -> http.HTTPFlow:
    headers = [(b"Host", host_header.encode())] + ([(b"X-Clavis-Service", select.encode())] if select else [])
    flow = tflow.tflow(req=tutils.treq(host=host, port=443, scheme=b"https", path=path, headers=headers))
    flow.client_conn.tls, flow.client_conn.sni = True, host
    return flow


def judged(check: DestinationCheck, flow: http.HTTPFlow) -> int | str:
    check.requestheaders(flow)
    return flow.response.status_code if flow.response is not None else flow.metadata[SERVICE]


def test_a_kept_verdict_does_not_answer_a_request_with_another_host_header(vault: Vault) -> None:
    vault.add_service(make_service("api", "api.example.com"), validate_secret(SECRET))
    check = DestinationCheck(vault)
    with taddons.context(check):
        assert judged(check, flow_to("api.example.com", "api.example.com")) == "api"
        assert judged(check, flow_to("api.example.com", "evil.test")) == 421
        assert judged(check, flow_to("api.example.com", "api.example.com")) == "api"


def test_a_kept_verdict_does_not_answer_a_request_that_names_another_service(vault: Vault) -> None:
    vault.add_service(make_service("api", "api.example.com"), validate_secret(SECRET))
    vault.add_service(make_service("other", "other.example.com"), validate_secret(SECRET))
    check = DestinationCheck(vault)
    with taddons.context(check):
        assert judged(check, flow_to("api.example.com", "api.example.com", select="api")) == "api"
        assert judged(check, flow_to("api.example.com", "api.example.com", select="other")) == 403


def test_a_kept_verdict_does_not_answer_a_request_whose_query_holds_a_fragment(vault: Vault) -> None:
    vault.add_service(make_service("api", "api.example.com"), validate_secret(SECRET))
    check = DestinationCheck(vault)
    with taddons.context(check):
        assert judged(check, flow_to("api.example.com", "api.example.com", b"/v1/x?a=1")) == "api"
        assert judged(check, flow_to("api.example.com", "api.example.com", b"/v1/x?a=1#/admin")) == 400


def test_requests_differing_only_in_the_query_are_judged_alike(vault: Vault) -> None:
    vault.add_service(make_service("api", "api.example.com", path_prefixes=("/v1",)), validate_secret(SECRET))
    check = DestinationCheck(vault)
    with taddons.context(check):
        assert judged(check, flow_to("api.example.com", "api.example.com", b"/v1/x?a=1")) == "api"
        assert judged(check, flow_to("api.example.com", "api.example.com", b"/v1/x?a=2")) == "api"
        assert judged(check, flow_to("api.example.com", "api.example.com", b"/admin?a=1")) == 403


def test_a_removed_service_is_refused_on_the_next_request(vault: Vault) -> None:
    vault.add_service(make_service("api", "api.example.com"), validate_secret(SECRET))
    check = DestinationCheck(vault)
    with taddons.context(check):
        assert judged(check, flow_to("api.example.com", "api.example.com")) == "api"
        vault.remove_service("api")
        refused = flow_to("api.example.com", "api.example.com")
        assert judged(check, refused) == 403 and refused.metadata[DECISION] == "refused"


def test_checks_with_other_settings_on_one_vault_do_not_share_verdicts(vault: Vault) -> None:
    vault.add_service(make_service("api", "api.example.com"), validate_secret(SECRET))
    passing, refusing = DestinationCheck(vault, pass_other_hosts=True), DestinationCheck(vault)
    with taddons.context(passing):
        passed = flow_to("cdn.example.org", "cdn.example.org")
        passing.requestheaders(passed)
        refused = flow_to("cdn.example.org", "cdn.example.org")
        refusing.requestheaders(refused)
    assert passed.response is None and passed.metadata[DECISION] == "passed"
    assert refused.response is not None and refused.response.status_code == 403


def from_client(flow: http.HTTPFlow, client: str) -> http.HTTPFlow:
    flow.metadata[CLIENT] = client
    return flow


def test_a_kept_verdict_does_not_answer_another_agent(vault: Vault) -> None:
    vault.add_service(make_service("personal", "api.example.com"), validate_secret(SECRET))
    vault.add_service(make_service("work", "api.example.com"), validate_secret(SECRET))
    add_agent(vault, "dev", uses=("personal",))
    add_agent(vault, "ci", uses=("work",))
    check = DestinationCheck(vault)
    with taddons.context(check):
        assert judged(check, from_client(flow_to("api.example.com", "api.example.com"), "dev")) == "personal"
        assert judged(check, from_client(flow_to("api.example.com", "api.example.com"), "ci")) == "work"
        assert judged(check, from_client(flow_to("api.example.com", "api.example.com"), "other")) == 403
        assert judged(check, from_client(flow_to("api.example.com", "api.example.com"), "dev")) == "personal"


def test_an_agent_bound_to_another_service_is_judged_anew(vault: Vault) -> None:
    vault.add_service(make_service("personal", "api.example.com"), validate_secret(SECRET))
    vault.add_service(make_service("work", "api.example.com"), validate_secret(SECRET))
    add_agent(vault, "dev", uses=("personal",))
    check = DestinationCheck(vault)
    with taddons.context(check):
        assert judged(check, from_client(flow_to("api.example.com", "api.example.com"), "dev")) == "personal"
        use_services(vault, "dev", ("work",))
        assert judged(check, from_client(flow_to("api.example.com", "api.example.com"), "dev")) == "work"
