"""A snapshot keeps each destination's owners (the proxy asks on every request), bounded."""

from __future__ import annotations

from clavis_mcp.vault import Vault
from clavis_mcp.vault.service import validate_secret
from clavis_mcp.vault.store import OWNERS_KEPT
from tests.conftest import make_service


def test_kept_owners_are_the_computed_ones_and_a_vault_change_is_seen(vault: Vault) -> None:
    vault.add_service(make_service("one", "api.example.com", "*.example.org"), validate_secret("s3cret-one-value-xx"))
    snapshot = vault.snapshot()
    for host in ("api.example.com", "API.example.com.", "a.example.org", "other.test", "bad host"):
        first = snapshot.owners(host, 443, "https")
        assert first == snapshot.owners(host, 443, "https") == snapshot._owners_of(host, 443, "https")
    assert [s.name for s in snapshot.owners("api.example.com", 443, "https")] == ["one"]
    vault.remove_service("one")
    assert vault.snapshot().owners("api.example.com", 443, "https") == ()


def test_made_up_hosts_do_not_grow_the_cache_past_its_bound(vault: Vault) -> None:
    snapshot = vault.snapshot()
    for i in range(OWNERS_KEPT + 10):
        snapshot.owners(f"h{i}.example.net", 443, "https")
    assert len(snapshot._owners) <= OWNERS_KEPT
