"""The approval policy in the vault: `clavis-mcp policy SERVICE --approvals MODE [--agent NAME]`
sets it, ``ServicePolicy`` reads it (per agent over per service over confirm writes), and
``save_policy`` keeps what it does not change."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from clavis_mcp.clavis_cli.main import main
from clavis_mcp.vault import Service, Vault
from clavis_mcp.vault.policy import ServicePolicy, load_policy, save_policy, set_approvals


def test_modes_resolve_per_agent_then_per_service_then_confirm_writes() -> None:
    assert not ServicePolicy().needs_approval("a", "POST")
    legacy = ServicePolicy(confirm_writes=True)
    assert legacy.needs_approval("a", "POST") and not legacy.needs_approval("a", "GET")
    mixed = ServicePolicy(confirm_writes=True, approvals="none", agent_approvals={"ci": "all"})
    assert not mixed.needs_approval("a", "DELETE")
    assert mixed.needs_approval("ci", "GET") and mixed.approval_mode("ci") == "all"


def test_the_cli_sets_and_shows_the_policy_and_confirm_writes_follows(vault: Vault, local_service: Service) -> None:
    run = CliRunner().invoke
    shown = run(main, ["policy", "echo"])
    assert shown.exit_code == 0 and "echo: approvals: none for every agent (from confirm writes)" in shown.output
    assert run(main, ["policy", "echo", "--approvals", "writes"]).exit_code == 0
    out = run(main, ["policy", "echo", "--approvals", "all", "--agent", "ci-bot"]).output
    assert "echo: approvals: writes for every agent\n" in out and "echo: approvals: all for agent ci-bot" in out
    policy = load_policy(vault, "echo")
    assert (policy.approvals, dict(policy.agent_approvals), policy.confirm_writes) == (
        "writes",
        {"ci-bot": "all"},
        True,
    )
    assert "confirm writes: yes; approvals: writes, agent ci-bot: all" in run(main, ["mcp-settings", "echo"]).output
    run(main, ["policy", "echo", "--approvals", "inherit", "--agent", "ci-bot"])
    run(main, ["policy", "echo", "--approvals", "none"])
    policy = load_policy(vault, "echo")
    assert (policy.approvals, dict(policy.agent_approvals), policy.confirm_writes) == ("none", {}, False)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["policy", "nope", "--approvals", "all"], "nope"),
        (["policy", "echo", "--approvals", "some"], "'some' is not one of"),
        (["policy", "echo", "--agent", "ci"], "--agent needs --approvals MODE"),
    ],
    ids=["unknown-service", "bad-mode", "agent-without-mode"],
)
def test_bad_input_is_one_clear_line(vault: Vault, local_service: Service, args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output


def test_save_policy_keeps_unknown_and_approval_fields_and_an_unknown_mode_fails_closed(
    vault: Vault, local_service: Service
) -> None:
    with vault.store.atomic() as batch:
        batch.put("policy", "echo", {"future": 1, "approvals:x": "sometimes"}, service="echo")
    assert load_policy(vault, "echo").approval_mode("x") == "all"  # a mode this version does not know: asked
    set_approvals(vault, "echo", "writes")
    save_policy(vault, "echo", ServicePolicy(confirm_writes=False))  # as `mcp-settings` does: approvals stay
    with vault.store.read() as batch:
        record = batch.get("policy", "echo")
    assert record is not None and record.fields["future"] == 1 and record.fields["approvals"] == "writes"
    assert record.fields["approvals:x"] == "sometimes"
    set_approvals(vault, "echo", None, agent="x")
    assert load_policy(vault, "echo").agent_approvals == {}


def test_mcp_settings_and_the_policy_agree_after_no_confirm_writes(vault: Vault, local_service: Service) -> None:
    """The proxy holds by the policy: after `--no-confirm-writes` a write from any agent goes out."""
    run = CliRunner().invoke
    assert run(main, ["policy", "echo", "--approvals", "writes"]).exit_code == 0
    assert run(main, ["mcp-settings", "echo", "--no-confirm-writes"]).exit_code == 0
    policy = load_policy(vault, "echo")
    assert (policy.approvals, policy.confirm_writes, policy.needs_approval("agent", "POST")) == (None, False, False)
    assert "echo: approvals: none for every agent" in run(main, ["policy", "echo"]).output
