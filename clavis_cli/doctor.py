"""`clavis-mcp doctor`: everything that must hold for Claude Desktop to use clavis-mcp, each with its fix.

The checks run in the order a user would fix things (client config, executable, vault, CA,
proxy, services), and a failure early on does not stop the later checks that can still run.
"""

from __future__ import annotations

import asyncio
import functools
import os
import platform
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path

from clavis_mcp.certs import LocalCA
from clavis_mcp.vault import AuditLog, ClavisError, Vault
from clavis_mcp.vault.errors import ConfigError
from clavis_mcp.vault.health import Check, check_vault
from clavis_mcp.vault.keys.passphrase import ENV_VAR as PASSPHRASE_ENV
from clavis_mcp.vault.store import read_key_store

from .client_config import INSTALL_DOC, SERVER_NAME, clavis_executable, fragile_reason, read_config
from .secret_refs import check_refs
from .team_doctor import team_checks, team_env

CA_WARNING_DAYS = 30
NEW_CA = "clavis-mcp certs show (creates a new CA; agents that trusted the old one must trust the new one)"


def run_checks(home: Path, config_path: Path, ask_passphrase: Callable[[], str]) -> list[Check]:
    ask_once = functools.cache(ask_passphrase)  # the vault is opened twice; ask the user once
    checks = [check_version(), *check_client_config(config_path, home), check_on_path()]
    if (team := team_env(config_path)) is not None:  # a team client has no local vault, CA or proxy to check
        return checks + team_checks(*team)
    vault_checks = check_vault(home, ask_passphrase=ask_once)
    checks += vault_checks
    checks.append(check_ca(LocalCA(home / "certs")))
    if all(c.ok for c in vault_checks if c.name in ("vault", "key store")):
        checks += check_runtime(home, ask_once)
    return checks


def check_version() -> Check:
    parts = [f"clavis-mcp {version('clavis-mcp')}", f"Python {platform.python_version()}"]
    parts += [f"{name} {version(name)}" for name in ("mcp", "mitmproxy")]
    return Check("version", True, ", ".join(parts))


def check_client_config(path: Path, home: Path) -> list[Check]:
    """The Claude Desktop config parses, holds our entry, and the entry runs this clavis-mcp on this vault."""
    install = f"clavis-mcp install claude-desktop --config '{path}'"
    if not path.exists():
        return [Check("claude desktop config", False, f"{path} does not exist", install)]
    try:
        config = read_config(path)
    except ConfigError as exc:
        return [Check("claude desktop config", False, str(exc), f"edit {path} so it is valid JSON")]
    entry = config.get("mcpServers", {}).get(SERVER_NAME)
    if not isinstance(entry, dict):
        return [Check("claude desktop config", False, f"{path} has no mcpServers.{SERVER_NAME} entry", install)]
    checks = [Check("claude desktop config", True, f"{path} is valid JSON with the {SERVER_NAME!r} entry")]
    command = Path(str(entry.get("command", "")))
    if not command.is_absolute() or not os.access(command, os.X_OK):
        checks.append(Check("configured executable", False, f"{command} is not an absolute path to a program",
                            install))  # fmt: skip
    elif (fragile := fragile_reason(command)) is not None:
        checks.append(Check("configured executable", False, f"{fragile}: moving or cleaning the checkout breaks "
                            "Claude Desktop", f"install clavis-mcp for real use ({INSTALL_DOC}), then with it: "
                            f"{install}"))  # fmt: skip
    else:
        try:
            same = _same_file(command, clavis_executable())
        except ConfigError:
            same = False
        detail = f"{command}" + ("" if same else " (not the clavis-mcp running this doctor)")
        checks.append(Check("configured executable", True, detail, "" if same else install))
    env = entry.get("env") or {}
    configured_home = env.get("CLAVIS_HOME")
    if configured_home and Path(configured_home) != home:
        checks.append(Check("configured vault", False, f"the entry uses CLAVIS_HOME={configured_home}, not {home}",
                            install))  # fmt: skip
    checks += check_unattended_unlock(home, env)
    return checks


def check_unattended_unlock(home: Path, env: dict[str, str]) -> list[Check]:
    """Claude Desktop starts the server with no terminal: a passphrase vault stays locked there."""
    try:
        kind = read_key_store(home).kind
    except ClavisError:
        return []  # the vault checks report it
    if kind != "passphrase" or PASSPHRASE_ENV in env:
        return []
    return [Check("unattended unlock", False, "the vault needs a passphrase, and Claude Desktop cannot type one: "
                  "every tool would answer 'locked'", "clavis-mcp rekey --key-store keychain")]  # fmt: skip


def check_on_path() -> Check:
    found = shutil.which("clavis-mcp")
    if found is None:  # Claude Desktop runs the absolute path, so this only matters in a shell
        return Check("executable on PATH", True, "not on PATH; fine for Claude Desktop, which runs the absolute path "
                     "(add its folder to PATH to run clavis-mcp from a shell)")  # fmt: skip
    try:
        running = clavis_executable()
    except ConfigError:
        return Check("executable on PATH", True, found)
    same = _same_file(Path(found), running)
    detail = found if same else f"{found} (another copy than the one running: {running})"
    return Check("executable on PATH", True, detail)


def check_ca(ca: LocalCA) -> Check:
    if not ca.exists():
        return Check("local CA", False, f"no CA in {ca.directory}", NEW_CA)
    expires = ca.certificate().not_valid_after_utc
    left = expires - datetime.now(UTC)
    if left <= timedelta(0):
        return Check("local CA", False, f"expired on {expires:%Y-%m-%d}", f"delete {ca.directory}; then {NEW_CA}")
    ok = left > timedelta(days=CA_WARNING_DAYS)
    return Check("local CA", ok, f"{ca.cert_path}, valid until {expires:%Y-%m-%d}, fingerprint {ca.fingerprint()}",
                 "" if ok else f"renew it soon: delete {ca.directory}; then {NEW_CA}")  # fmt: skip


def check_runtime(home: Path, ask_passphrase: Callable[[], str]) -> list[Check]:
    """Start the real proxy on a free port and stop it; report each service's credential state."""
    from clavis_mcp.mcp_front.credentials import credential_state, usage_by_service

    try:
        vault = Vault.open(home, ask_passphrase=ask_passphrase)
    except ClavisError as exc:
        return [Check("proxy", False, f"not checked: {exc}", "clavis-mcp doctor again once the vault opens")]
    try:
        audit = AuditLog.for_vault(vault)
        checks = [check_proxy(vault, audit, LocalCA(home / "certs"))]
        services = vault.list_services()
        usage = usage_by_service(audit, [s.name for s in services])
        for service in services:
            state, meaning = credential_state(vault, service, usage[service.name])
            ok = state in ("valid", "unknown")
            checks.append(Check(f"service {service.name}", ok, f"{state}: {meaning}", "" if ok else meaning))
        return checks + check_refs(vault)
    finally:
        vault.close()


def check_proxy(vault: Vault, audit: AuditLog, ca: LocalCA) -> Check:
    from clavis_mcp.proxy import EmbeddedProxy
    from clavis_mcp.vault.proxy_config import ProxyConfig

    async def start_and_stop() -> int:
        proxy = EmbeddedProxy(vault, audit, ca, ProxyConfig())  # no client: it only has to start
        try:
            return await proxy.start()
        finally:
            await proxy.stop()

    try:
        port = asyncio.run(start_and_stop())
    except Exception as exc:  # any failure to start is the finding itself
        return Check("proxy", False, f"the embedded proxy did not start: {exc}", "see the message; then doctor again")
    return Check("proxy", True, f"the embedded proxy started on 127.0.0.1:{port} and stopped")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:
        return False
