"""The vault and every repository over the in-memory store: nothing above vault/storage depends
on SQLite, and pure unit tests need no file."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from clavis_mcp.vault import DuplicateService, Secret, UnknownService, Vault, VaultCorrupted, validate_secret
from clavis_mcp.vault.agents import AgentTokens, add_agent, agent_token, revoke_agent
from clavis_mcp.vault.audit.anchor import VaultAnchor
from clavis_mcp.vault.audit.log import AuditLog
from clavis_mcp.vault.limits import budget, ratelimits
from clavis_mcp.vault.oauth import state as oauth_state
from clavis_mcp.vault.oauth.flow import OAuthConfig, TokenGrant
from clavis_mcp.vault.policy import ServicePolicy, load_policy, parse_probe, policies_as_of, save_policy
from clavis_mcp.vault.storage.memory import MemoryStore
from tests.conftest import make_service

A, B = "sk-memory-aaaaaaaaaaaaaaaaaaaa", "sk-memory-bbbbbbbbbbbbbbbbbbbb"


@pytest.fixture
def memory(tmp_path: Path) -> Vault:
    return Vault.in_memory(tmp_path)


def test_a_memory_vault_writes_no_file(memory: Vault, tmp_path: Path) -> None:
    memory.add_service(make_service("a", "a.example.com"), validate_secret(A))
    add_agent(memory, "ci")
    assert isinstance(memory.store, MemoryStore) and list(tmp_path.iterdir()) == []


def test_services_secrets_and_snapshots(memory: Vault) -> None:
    memory.add_service(make_service("a", "a.example.com"), validate_secret(A))
    with pytest.raises(DuplicateService):
        memory.add_service(make_service("a", "b.example.com"), validate_secret(B))
    first = memory.snapshot()
    assert first.secrets["a"].reveal() == A and memory.snapshot() is first
    memory.rotate_secret("a", validate_secret(B))
    assert memory.snapshot() is not first and memory.snapshot().secrets["a"].reveal() == B
    assert memory.secret("a").fingerprint == memory.snapshot().secrets["a"].fingerprint
    memory.remove_service("a")
    with pytest.raises(UnknownService):
        memory.secret("a")


def test_a_sealed_value_moved_to_another_place_does_not_open(memory: Vault) -> None:
    memory.add_service(make_service("a", "a.example.com"), validate_secret(A))
    memory.add_service(make_service("b", "b.example.com"), validate_secret(B))
    with memory.store.atomic() as batch:
        blob = batch.secret("a", "credential")
        assert blob is not None
        batch.put_secret("b", "credential", blob)
    with pytest.raises(VaultCorrupted, match="integrity"):
        memory.secret("b")


def test_agents(memory: Vault) -> None:
    tokens = AgentTokens(memory)
    token = add_agent(memory, "ci")
    assert agent_token(memory, "ci") == token and tokens() == {"ci": token}
    revoke_agent(memory, "ci")
    assert tokens() == {}


def test_oauth_state_and_its_lease(memory: Vault) -> None:
    config = OAuthConfig("https://auth.example.test/token", "client-id", "refresh_token")
    grant = TokenGrant(Secret("at-memory-0123456789abcdef"), time.time() - 1, Secret("rt-memory-0123456789"), None)
    oauth_state.register(memory, make_service("acme", "api.acme.test"), config, None, grant)
    now = time.time()
    assert oauth_state.claim(memory, "acme", "me", now) == "claimed"
    assert oauth_state.claim(memory, "acme", "them", now) == "wait"
    oauth_state.release(memory, "acme", "me")
    assert oauth_state.claim(memory, "acme", "them", now) == "claimed"
    refreshed = TokenGrant(Secret("at-memory-fedcba9876543210"), now + 3600, None, None)
    oauth_state.save_refreshed(memory, "acme", refreshed)
    record = oauth_state.load(memory, "acme")
    assert record is not None and record.refreshes == 1 and record.lease_owner is None and record.has_refresh_token
    memory.remove_service("acme")
    assert oauth_state.load(memory, "acme") is None


def test_budgets_policy_and_rate_limits(memory: Vault) -> None:
    memory.add_service(make_service("a", "a.example.com"), validate_secret(A))
    budget.set_budget(memory, "a", budget.Budget(3, 60.0))
    assert budget.budgets_as_of(memory, memory.snapshot()) == {"a": budget.Budget(3, 60.0)}
    counter = budget.UsageCounter(memory.home, memory.store)
    verdicts = [counter.take("a", budget.Budget(3, 60.0), 1000.0).allowed for _ in range(4)]
    assert verdicts == [True, True, True, False]
    policy = ServicePolicy(confirm_writes=True, probe=parse_probe("GET /v1/me"))
    save_policy(memory, "a", policy)
    assert load_policy(memory, "a") == policy and policies_as_of(memory, memory.snapshot()) == {"a": policy}
    ratelimits.record(memory, "a", {"retry-after": "5"}, 10.0)
    assert ratelimits.latest(memory, "a") == ({"retry-after": "5"}, 10.0)
    memory.remove_service("a")
    assert budget.budget_of(memory, "a") is None and load_policy(memory, "a") == ServicePolicy()


def test_a_policy_keeps_fields_a_later_version_added(memory: Vault) -> None:
    memory.add_service(make_service("a", "a.example.com"), validate_secret(A))
    with memory.store.atomic() as batch:
        batch.put("policy", "a", {"approvals": "writes", "approvals:ci": "all"}, service="a")
    save_policy(memory, "a", ServicePolicy(confirm_writes=True))
    with memory.store.read() as batch:
        found = batch.get("policy", "a")
    assert found is not None and found.fields["approvals:ci"] == "all" and found.fields["confirm_writes"] is True


def test_the_audit_log_is_anchored_in_a_memory_vault(memory: Vault) -> None:
    log = AuditLog.for_vault(memory)
    for _ in range(3):
        log.append(source="cli")
    log.close()
    report = log.verify()
    assert report.ok and report.count == 3, report.summary()
    mark = VaultAnchor(memory, log.files.lock_path).mark()
    assert mark is not None and mark.seq == 3  # raised at close to the last record
