"""What a service carries besides its definition, through ``export`` and ``import``: its policy
(write confirmation, probe, approvals for every agent and per agent), its budget, and for an
OAuth service its OAuth configuration (``[services.NAME.oauth]``; its tokens are secrets, which
travel only in an export made with ``--with-secrets``: without them it is not imported, and the
import says how to set it up again).

None of it is secret, so it travels in the export file beside the definition (``[services.NAME.policy]``,
``[services.NAME.budget]``). An import checks every table before anything is written, so a bad
file changes nothing; it then sets them through the vault's own repositories.

The file's ``[agents.NAME]`` tables carry each agent's routing choices (``deny_other_hosts``,
``uses``), never its proxy token: an import makes every agent a new token, and an agent that
already exists in the target vault is refused (like a service), so nothing is imported.
"""

from __future__ import annotations

from typing import Any

from clavis_mcp.vault import Secret, Service, Vault
from clavis_mcp.vault.agents import add_agent, list_agents, validate_agent_name
from clavis_mcp.vault.errors import AgentError, InvalidService
from clavis_mcp.vault.limits.budget import Budget, budget_of, format_period, parse_period, set_budget
from clavis_mcp.vault.oauth import state as oauth_store
from clavis_mcp.vault.oauth.flow import OAuthConfig, TokenGrant
from clavis_mcp.vault.policy import (
    ServicePolicy,
    check_mode,
    load_policy,
    parse_probe,
    probe_text,
    save_policy,
    set_approvals,
)

EXTRA_KEYS = ("policy", "budget", "oauth")
OAUTH_SECRETS = ("access_token", "refresh_token", "client_secret")  # fields of the sealed export


def extras_of(vault: Vault, name: str) -> dict[str, Any]:
    """The non-default policy and the budget of service ``name``, as export tables."""
    extras: dict[str, Any] = {}
    policy = load_policy(vault, name)
    table: dict[str, Any] = {}
    if policy.confirm_writes:
        table["confirm_writes"] = True
    if policy.probe is not None:
        table["probe"] = probe_text(policy.probe)
    if policy.approvals is not None:
        table["approvals"] = policy.approvals
    if policy.agent_approvals:
        table["agent_approvals"] = dict(policy.agent_approvals)
    if table:
        extras["policy"] = table
    budget = budget_of(vault, name)
    if budget is not None:
        extras["budget"] = {"max_requests": budget.max_requests, "per": format_period(budget.period)}
    record = oauth_store.load(vault, name) if oauth_store.is_oauth(vault.get_service(name)) else None
    if record is not None:
        extras["oauth"] = {"config": record.config.to_json()}
        if record.expires_at is not None:
            extras["oauth"]["expires_at"] = record.expires_at
    return extras


def oauth_secrets(vault: Vault, name: str) -> dict[str, str]:
    """An OAuth service's tokens and client secret, for a sealed export; {} for another service."""
    if not oauth_store.is_oauth(vault.get_service(name)):
        return {}
    found = {
        "access_token": oauth_store.access_token(vault, name),
        "refresh_token": oauth_store.refresh_token(vault, name),
        "client_secret": oauth_store.client_secret(vault, name),
    }
    return {f"oauth:{field}": secret.reveal() for field, secret in found.items() if secret is not None}


def import_oauth(vault: Vault, service: Service, table: dict[str, Any], secrets: dict[str, Secret]) -> None:
    """Register an exported OAuth service with its tokens (checked by :func:`check_extras` and
    :func:`require_oauth_tokens` before anything was written)."""
    raw = table["oauth"]
    config = OAuthConfig.from_json(str(raw["config"]))
    expires = raw.get("expires_at")
    grant = TokenGrant(
        secrets["oauth:access_token"],
        float(expires) if expires is not None else None,
        secrets.get("oauth:refresh_token"),
        None,
    )
    oauth_store.register(vault, service, config, secrets.get("oauth:client_secret"), grant)


def require_oauth_tokens(name: str, table: dict[str, Any], secrets: dict[str, Secret]) -> None:
    if "oauth" in table and "oauth:access_token" not in secrets:
        raise InvalidService(
            f"{name!r} is an OAuth service: its tokens are secrets and the file has none for it; export with "
            f"--with-secrets, or leave it out and set it up again with `clavis-mcp oauth add {name}`; "
            "nothing was imported"
        )


def check_extras(name: str, table: dict[str, Any]) -> tuple[ServicePolicy | None, dict[str, str], Budget | None]:
    """The policy (with its per-agent modes) and budget a service's table asks for; InvalidService
    naming the service if one of them is malformed."""
    try:
        policy, agents, budget = None, {}, None
        raw = table.get("policy")
        if raw is not None:
            if not isinstance(raw, dict) or set(raw) - {"confirm_writes", "probe", "approvals", "agent_approvals"}:
                raise InvalidService("policy takes confirm_writes, probe, approvals and agent_approvals")
            probe = raw.get("probe")
            approvals = raw.get("approvals")
            agents = {str(k): check_mode(str(v)) for k, v in dict(raw.get("agent_approvals", {})).items()}
            policy = ServicePolicy(
                confirm_writes=bool(raw.get("confirm_writes", False)),
                probe=parse_probe(str(probe)) if probe else None,
                approvals=check_mode(str(approvals)) if approvals is not None else None,
            )
        raw = table.get("oauth")
        if raw is not None:
            if not isinstance(raw, dict) or not isinstance(raw.get("config"), str):
                raise InvalidService("oauth needs config (the OAuth configuration as JSON)")
            OAuthConfig.from_json(raw["config"])
        raw = table.get("budget")
        if raw is not None:
            if not isinstance(raw, dict) or not isinstance(raw.get("max_requests"), int) or raw["max_requests"] < 1:
                raise InvalidService("budget needs max_requests (1 or more) and per (30s, 15m, 1h or 1d)")
            budget = Budget(raw["max_requests"], parse_period(str(raw.get("per", "1h"))))
        return policy, agents, budget
    except (InvalidService, ValueError, KeyError, TypeError) as exc:
        raise InvalidService(f"service {name!r}: {exc}") from None


def apply_extras(vault: Vault, name: str, table: dict[str, Any]) -> None:
    """Set the policy and budget ``table`` carries on the (just imported) service ``name``."""
    policy, agents, budget = check_extras(name, table)
    if policy is not None:
        save_policy(vault, name, policy)
        if policy.approvals is not None:
            set_approvals(vault, name, policy.approvals)
        for agent, mode in agents.items():
            set_approvals(vault, name, mode, agent)
    if budget is not None:
        set_budget(vault, name, budget)


def agents_table(vault: Vault) -> dict[str, Any]:
    """Every agent's name and routing choices as the export's ``[agents]`` table (never a token)."""
    return {a.name: {"deny_other_hosts": a.deny_other_hosts, "uses": list(a.uses)} for a in list_agents(vault)}


def check_agents(raw: object, services: set[str]) -> dict[str, tuple[bool, tuple[str, ...]]]:
    """The agents an import file asks for, each checked against ``services`` (those of the file
    and of the vault); InvalidService naming the agent if one is malformed."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidService("[agents] must hold one [agents.NAME] table per agent; nothing was imported")
    wanted: dict[str, tuple[bool, tuple[str, ...]]] = {}
    for name, table in raw.items():
        try:
            validate_agent_name(str(name))
            if not isinstance(table, dict) or set(table) - {"deny_other_hosts", "uses"}:
                raise InvalidService("an agent takes deny_other_hosts and uses (its token is never exported)")
            uses = table.get("uses", [])
            if not isinstance(uses, list) or not all(isinstance(u, str) for u in uses):
                raise InvalidService("uses must be a list of service names")
            unknown = sorted(set(uses) - services)
            if unknown:
                raise InvalidService(f"uses unknown service {unknown[0]!r}")
            wanted[str(name)] = (bool(table.get("deny_other_hosts", False)), tuple(uses))
        except (InvalidService, AgentError) as exc:
            raise InvalidService(f"agent {name!r}: {exc}; nothing was imported") from None
    return wanted


def refuse_existing_agents(vault: Vault, wanted: dict[str, tuple[bool, tuple[str, ...]]]) -> None:
    clash = sorted(set(wanted) & {a.name for a in list_agents(vault)})
    if clash:
        raise InvalidService(
            f"agent {clash[0]!r} already exists in this vault; revoke it (clavis-mcp agent revoke {clash[0]}) "
            "or remove its [agents] table from the file; nothing was imported"
        )


def import_agents(vault: Vault, wanted: dict[str, tuple[bool, tuple[str, ...]]]) -> list[str]:
    """Create each agent with its routing choices and a NEW token (read it with `env --agent`)."""
    for name, (deny, uses) in wanted.items():
        add_agent(vault, name, deny_other_hosts=deny, uses=uses)
    return list(wanted)
