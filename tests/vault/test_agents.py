from __future__ import annotations

from pathlib import Path

import pytest

from clavis_mcp.vault import Vault
from clavis_mcp.vault.agents import AgentTokens, add_agent, agent_token, list_agents, revoke_agent
from clavis_mcp.vault.errors import AgentError
from tests.vault.rawdb import edit_record, fields_of


def test_added_agent_token_is_listed_by_name_only_and_stored_sealed(vault: Vault) -> None:
    token = add_agent(vault, "ci-bot")
    assert [a.name for a in list_agents(vault)] == ["ci-bot"]
    assert agent_token(vault, "ci-bot") == token
    assert token.encode() not in (vault.home / "vault.db").read_bytes()


@pytest.fixture
def memory(tmp_path: Path) -> Vault:
    """A vault over the in-memory store, for the tests that need no second process."""
    return Vault.in_memory(tmp_path)


def test_revoked_agent_disappears_from_the_live_token_map(memory: Vault) -> None:
    tokens = AgentTokens(memory)
    token = add_agent(memory, "a1")
    assert tokens() == {"a1": token}
    revoke_agent(memory, "a1")
    assert tokens() == {}


def test_another_process_sees_a_revocation(vault: Vault) -> None:
    add_agent(vault, "a1")
    other = Vault.open(vault.home)
    try:
        tokens = AgentTokens(other)
        assert set(tokens()) == {"a1"}
        revoke_agent(vault, "a1")
        assert tokens() == {}
    finally:
        other.close()


def test_a_sealed_token_moved_to_another_agent_does_not_open(vault: Vault, home: Path) -> None:
    add_agent(vault, "a1")
    add_agent(vault, "a2")
    a1 = fields_of(home, "agent", "a1")
    assert a1 is not None
    edit_record(home, "agent", "a2", lambda fields: fields.update(token=a1["token"]))
    with pytest.raises(Exception, match="a2"):
        agent_token(vault, "a2")


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (lambda v: add_agent(v, "Bad Name"), "invalid agent name"),
        (lambda v: add_agent(v, "mcp"), "reserved"),
        (lambda v: revoke_agent(v, "ghost"), "unknown agent 'ghost'"),
        (lambda v: agent_token(v, "ghost"), "clavis-mcp agent add ghost"),
    ],
    ids=["bad-name", "reserved-name", "revoke-unknown", "token-of-unknown"],
)
def test_bad_agent_requests_say_what_to_do(memory: Vault, action: object, message: str) -> None:
    with pytest.raises(AgentError, match=message):
        action(memory)  # type: ignore[operator]


def test_duplicate_agent_is_refused_and_keeps_the_first_token(memory: Vault) -> None:
    token = add_agent(memory, "a1")
    with pytest.raises(AgentError, match="already exists"):
        add_agent(memory, "a1")
    assert agent_token(memory, "a1") == token


# -- routing choices (issue 16.12, 16.14) --------------------------------------------------------


def test_an_agent_keeps_its_routing_choices_and_lists_them(memory: Vault) -> None:
    from clavis_mcp.vault import validate_secret
    from tests.conftest import make_service

    memory.add_service(make_service("work", "api.example.com"), validate_secret("sk-work-0123456789abcdef"))
    add_agent(memory, "strict", deny_other_hosts=True, uses=("work",))
    add_agent(memory, "open")
    listed = {a.name: (a.deny_other_hosts, a.uses) for a in list_agents(memory)}
    assert listed == {"strict": (True, ("work",)), "open": (False, ())}


def test_use_replaces_the_binding_that_shares_a_host_and_keeps_the_others(memory: Vault) -> None:
    from clavis_mcp.vault import validate_secret
    from clavis_mcp.vault.agents import use_services
    from tests.conftest import make_service

    for name, host in [("work", "api.example.com"), ("personal", "api.example.com"), ("gh", "api.github.com")]:
        memory.add_service(make_service(name, host), validate_secret(f"sk-{name}-0123456789abcdef"))
    add_agent(memory, "dev", uses=("work", "gh"))
    assert use_services(memory, "dev", ("personal",)).uses == ("gh", "personal")
    assert use_services(memory, "dev", ()).uses == ()


def test_an_unknown_service_or_agent_is_refused_with_the_known_names(memory: Vault) -> None:
    from clavis_mcp.vault import validate_secret
    from clavis_mcp.vault.agents import use_services
    from tests.conftest import make_service

    memory.add_service(make_service("work", "api.example.com"), validate_secret("sk-work-0123456789abcdef"))
    with pytest.raises(AgentError, match="unknown service 'wrok' for --use; known services: work"):
        add_agent(memory, "dev", uses=("wrok",))
    assert list_agents(memory) == []
    with pytest.raises(AgentError, match="unknown agent 'ghost'"):
        use_services(memory, "ghost", ("work",))
