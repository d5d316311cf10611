"""A ProxyConfig holds no secret: it can be printed whole, as the docstring promises."""

from __future__ import annotations

import dataclasses

import pytest

from clavis_mcp.vault import Vault, parse_host_rule
from clavis_mcp.vault.agents import AgentTokens, add_agent
from clavis_mcp.vault.proxy_config import ProxyConfig


def test_a_config_prints_without_the_client_tokens_it_admits(vault: Vault) -> None:
    token = add_agent(vault, "builder")
    tokens = AgentTokens(vault)
    assert tokens() == {"builder": token}  # the callable has read (and cached) the token
    config = ProxyConfig(tokens=tokens, passthrough=(parse_host_rule("*.example.org"),))
    assert token not in repr(config) and token not in str(config)


def test_a_config_cannot_be_changed_once_handed_down() -> None:
    config = ProxyConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.max_decoded = 1  # type: ignore[misc]
    assert config.tokens() == {}  # the default admits no client
