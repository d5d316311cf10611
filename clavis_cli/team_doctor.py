"""`clavis-mcp doctor` for a team client: the path from this machine to the team server, checked in the
order a user fixes it (address, TLS, key and its expiry, scope, each service's state).

The team configuration is recognised where Claude Desktop would give it: ``CLAVIS_API_URL`` in
this environment, or in the 'clavis' entry of its config (the original product's
``CLAVIS_API_URL`` + ``CLAVIS_API_KEY``). Each check goes through the same client the MCP
server uses, so doctor says what the tools would say.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

from clavis_mcp.mcp_front.team_client import TeamClient, login_command, transport_message
from clavis_mcp.mcp_front.times import iso, relative
from clavis_mcp.team.admin_client import CA_ENV, KEY_ENV, URL_ENV, trust
from clavis_mcp.vault.errors import ClavisError, ConfigError
from clavis_mcp.vault.health import Check

from .client_config import SERVER_NAME, read_config


def team_env(config_path: Path) -> tuple[dict[str, str], str] | None:
    """The environment the MCP server would run with as a team client, and where it was found."""
    if os.environ.get(URL_ENV, "").strip():
        return dict(os.environ), "this environment"
    try:
        entry = read_config(config_path).get("mcpServers", {}).get(SERVER_NAME)
    except (ConfigError, OSError):
        return None
    env = entry.get("env") if isinstance(entry, dict) else None
    if not isinstance(env, dict) or not str(env.get(URL_ENV, "")).strip():
        return None
    return {**{k: v for k, v in os.environ.items() if k == CA_ENV}, **{str(k): str(v) for k, v in env.items()}}, (
        f"the {SERVER_NAME!r} entry of {config_path}"
    )


def team_checks(env: Mapping[str, str], where: str) -> list[Check]:
    try:
        client = TeamClient.from_env(env)
    except ClavisError as exc:
        return [Check("team server", False, str(exc), f"fix {URL_ENV} in {where}")]
    return asyncio.run(_checks(client, env, where))


async def _checks(client: TeamClient, env: Mapping[str, str], where: str) -> list[Check]:
    pasted = bool(env.get(KEY_ENV, "").strip())
    checks = [Check("team mode", True, f"{URL_ENV}={client.url} in {where}: clavis-mcp is a client of that team "
                    "server and keeps no credential locally" + (f" ({KEY_ENV} set: the original configuration)"
                                                                if pasted else ""))]  # fmt: skip
    try:
        reachable = await _reachable(client.url)
        checks.append(reachable)
        if not reachable.ok:
            return checks
        checks.append(_key_check(client, pasted))
        services = await client.services()
        names = [str(s.get("name")) for s in services]
        scope = f"this key may use {len(names)} service(s): {', '.join(names) or 'none'}"
        checks.append(Check("team scope", True, scope, "" if names else "ask a team admin for a key scoped to them"))
        for name in names:
            state = await client.check(name)
            ok = state.get("status") == "valid"
            checks.append(Check(f"team service {name}", ok, str(state.get("status")), "" if ok else
                                str(state.get("error") or "ask a team admin to rotate it")))  # fmt: skip
    except ClavisError as exc:
        checks.append(Check("team key", False, str(exc), "see the message"))
    finally:
        await client.aclose()
    return checks


async def _reachable(url: str) -> Check:
    verify = trust() if url.startswith("https:") else True
    try:
        async with httpx.AsyncClient(verify=verify, trust_env=False, timeout=10.0) as http:
            answer = await http.get(f"{url}/healthz")
    except httpx.TransportError as exc:
        return Check("team server", False, transport_message(url, exc), f"check {URL_ENV} and {CA_ENV}")
    tls = ", TLS trusted" if url.startswith("https:") else " (plain http on loopback)"
    if answer.status_code != 200:
        return Check("team server", False, f"{url}/healthz answered {answer.status_code}", "see the server's log")
    return Check("team server", True, f"{url} answers{tls}")


def _key_check(client: TeamClient, pasted: bool) -> Check:
    now = time.time()
    try:
        key = client.key(now)
    except ClavisError as exc:
        return Check("team key", False, str(exc), login_command(client.url))
    if key.expires_at is None:
        return Check(
            "team key", True, f"an API key from {KEY_ENV} (no expiry on this side; the server says if it has one)"
        )
    left = f"expires {relative(key.expires_at, now)} ({iso(key.expires_at)})"
    if key.source == "login":
        return Check("team key", True, f"your login (kept by clavis-mcp login), {left}")
    fix = f"it lasts 24 h; run `{login_command(client.url)}` once and the login replaces it when it expires"
    return Check("team key", True, f"a login token pasted in {KEY_ENV}, {left}", fix)
