"""call_service runs without the SDK's resolution of its question where the raw arguments show it
would not be asked (``confirm.write_unasked``), and through it wherever it might be: the user is
asked exactly as before, on both protocol paths."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from mcp.server.mcpserver.tools import base

from clavis_mcp.mcp_front import Gateway
from clavis_mcp.mcp_front.settings import ServiceSettings, save_settings
from clavis_mcp.vault import Vault
from clavis_mcp.vault.policy import set_approvals
from tests.mcp_front.scripted_upstream import ScriptedUpstream
from tests.mcp_front.test_server import answering, call, connect, gateway, mode, text_of

__all__ = ["connect", "gateway", "mode"]  # fixtures, shared with test_server
pytestmark = pytest.mark.anyio


@pytest.fixture
def resolutions(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tools whose questions went through the SDK's resolution."""
    resolved: list[str] = []
    original = base.resolve_arguments

    async def counted(params: Any, plans: Any, arguments: Any, context: Any) -> Any:
        resolved.append(str(arguments.get("method")))
        return await original(params, plans, arguments, context)

    monkeypatch.setattr(base, "resolve_arguments", counted)
    return resolved


@pytest.mark.parametrize(
    ("policy", "method", "eliciting", "asked"),
    [
        ("none", "POST", True, False),
        ("writes", "GET", True, False),
        ("writes", "post", True, True),
        ("writes", "DELETE", False, False),
        ("all", "GET", True, True),
    ],
    ids=["no-policy", "safe-method", "write", "client-cannot-ask", "every-request"],
)
async def test_the_sdk_resolves_the_question_only_where_it_may_be_asked(
    connect: Callable[..., Any],
    vault: Vault,
    scripted: ScriptedUpstream,
    resolutions: list[str],
    policy: str,
    method: str,
    eliciting: bool,
    asked: bool,
) -> None:
    set_approvals(vault, "api", policy)
    callback, questions = answering("accept")
    async with connect(callback if eliciting else None) as client:
        result = await call(client, "/echo", scripted, method=method)
    assert not result.is_error, text_of(result)
    assert len(questions) == asked
    assert bool(resolutions) == asked and set(resolutions) <= {method}  # 2026-07-28: one round per answer
    assert len(scripted.received) == 1


async def test_a_question_declined_after_the_policy_changed_still_stops_the_call(
    connect: Callable[..., Any], vault: Vault, scripted: ScriptedUpstream, gateway: Gateway
) -> None:
    callback, questions = answering("decline")
    async with connect(callback) as client:
        assert not (await call(client, "/echo", scripted, method="PUT", data="x")).is_error
        save_settings(vault, "api", ServiceSettings(confirm_writes=True))
        refused = await call(client, "/echo", scripted, method="PUT", data="x")
    assert refused.is_error and "declined" in text_of(refused) and len(questions) == 1
    assert len(scripted.received) == 1


async def test_arguments_of_the_wrong_type_get_the_same_sentence_either_way(
    connect: Callable[..., Any], scripted: ScriptedUpstream
) -> None:
    async with connect() as client:
        result = await client.call_tool("call_service", {"service_name": "api", "method": 5, "url": scripted.url("/")})
    assert result.is_error and text_of(result).startswith("Invalid arguments to call_service: method must be a string")
