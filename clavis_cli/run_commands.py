"""`clavis-mcp run -- COMMAND ARGS...`: one command behind the proxy, with nothing left in the shell.

If a clavis-mcp proxy already listens on ``--port`` the command uses it with the agent's own
token, as `clavis-mcp env` would set up. The token goes only to a listener this user owns (the
kernel's socket table names its owner: another local user squatting the port and replaying our
challenge gets nothing) that answers a bare probe with clavis-mcp's challenge (audited as a
``challenge``). Where the owner cannot be read (no ``/proc/net``), the listener is not trusted.
Otherwise a proxy is started in this process, on a port the system chooses, for this command
alone: its only credential is a random token made for this run, valid until the command exits
(so nothing the command leaves behind can use it later). That proxy stops when the command
exits, and `run` exits with the command's status. While the command runs, Ctrl-C reaches it
directly (same terminal process group) and is ignored here, so the proxy outlives the command's
own clean-up; SIGTERM is passed on to it.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import socket
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import click

from clavis_mcp.vault.errors import ConfigError

from .proxy_commands import DEFAULT_AGENT, ensure_agent_token, exports_for
from .runtime import Runtime, open_runtime

DEFAULT_PORT = 8899
CLAVIS_CHALLENGE = b'proxy-authenticate: basic realm="clavis-mcp"'
PROBE_TIMEOUT = 5.0


SOCKET_TABLES = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))
_LISTEN = "0A"


def listening_owners(port: int, tables: tuple[Path, ...] = SOCKET_TABLES) -> set[int] | None:
    """The uids of the sockets listening on ``port`` (any address), from the kernel's socket
    tables; None where those tables cannot be read (not Linux)."""
    owners: set[int] = set()
    readable = False
    for table in tables:
        try:
            rows = table.read_text().splitlines()[1:]
        except OSError:
            continue
        readable = True
        for row in rows:
            fields = row.split()
            if len(fields) > 7 and fields[3] == _LISTEN and int(fields[1].rpartition(":")[2], 16) == port:
                owners.add(int(fields[7]))
    return owners if readable else None


def owned_by_me(port: int) -> bool:
    """Whether every socket listening on ``port`` belongs to this user (and there is one)."""
    owners = listening_owners(port)
    return bool(owners) and owners == {os.getuid()}


def listener_on(port: int) -> str | None:
    """``"clavis"`` if a clavis-mcp proxy of this user answers on 127.0.0.1:``port``, ``"other"``
    for another program (or one we cannot prove is ours), None if nothing listens. The probe
    carries no credential."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=PROBE_TIMEOUT) as probe:
            probe.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 16384:
                chunk = probe.recv(4096)
                if not chunk:
                    break
                head += chunk
    except ConnectionRefusedError:
        return None
    except OSError:
        return "other"
    lines = head.split(b"\r\n\r\n", 1)[0].lower().split(b"\r\n")
    challenged = lines[0].startswith(b"http/1.1 407") and CLAVIS_CHALLENGE in lines[1:]
    return "clavis" if challenged and owned_by_me(port) else "other"


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--agent", metavar="NAME", help=f"The agent the audit log names (default: {DEFAULT_AGENT!r}).")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(1, 65535),
              help="Use the proxy already listening here; if none is, start one for this command only.")  # fmt: skip
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(agent: str | None, port: int, command: tuple[str, ...]) -> None:
    """Run COMMAND with its HTTP(S) going through the proxy: clavis-mcp run -- curl https://api.openai.com/..."""
    program = shutil.which(command[0])
    if program is None:
        raise ConfigError(f"command not found: {command[0]}")
    with open_runtime() as runtime:
        found = listener_on(port)
        if found == "other":
            click.echo(
                f"clavis-mcp run: 127.0.0.1:{port} is not a clavis-mcp proxy of this user; starting one", err=True
            )
        if found == "clavis":
            name, token = ensure_agent_token(runtime, agent)
            env = child_env(runtime, f"http://{name}:{token}@127.0.0.1:{port}")
            click.echo(f"clavis-mcp run: through the proxy on 127.0.0.1:{port} as agent {name!r}", err=True)
            status = asyncio.run(_run_child([program, *command[1:]], env))
        else:
            status = asyncio.run(_run_with_own_proxy(runtime, agent, [program, *command[1:]]))
    sys.exit(status)


def child_env(runtime: Runtime, proxy_url: str) -> dict[str, str]:
    return {**os.environ, **dict(exports_for(runtime, proxy_url))}


async def _run_with_own_proxy(runtime: Runtime, agent: str | None, argv: list[str]) -> int:
    from clavis_mcp.proxy import EmbeddedProxy
    from clavis_mcp.vault.agents import AgentTokens, agent_token
    from clavis_mcp.vault.approvals import approval_hold
    from clavis_mcp.vault.proxy_config import ProxyConfig

    from .serve import quiet_logging

    name = agent or DEFAULT_AGENT
    if agent is not None:
        agent_token(runtime.vault, agent)  # an unknown or revoked agent is refused here, with its fix
    token = secrets.token_urlsafe(32)
    tokens = _run_tokens(name, token, AgentTokens(runtime.vault) if agent is not None else None)
    quiet_logging()
    config = ProxyConfig(tokens=tokens, pass_other_hosts=True, approvals=approval_hold(runtime.vault.home))
    proxy = EmbeddedProxy(runtime.vault, runtime.audit, runtime.ca, config)
    bound = await proxy.start()
    try:
        click.echo(f"clavis-mcp run: proxy on 127.0.0.1:{bound} for this command, as agent {name!r}", err=True)
        return await _run_child(argv, child_env(runtime, f"http://{name}:{token}@127.0.0.1:{bound}"))
    finally:
        await proxy.stop()


def _run_tokens(
    name: str, token: str, vault_agents: Callable[[], Mapping[str, str]] | None
) -> Callable[[], Mapping[str, str]]:
    """The one credential of this run; a named agent revoked meanwhile loses it at its next request."""

    def tokens() -> Mapping[str, str]:
        if vault_agents is not None and name not in vault_agents():
            return {}
        return {name: token}

    return tokens


async def _run_child(argv: list[str], env: dict[str, str]) -> int:
    loop = asyncio.get_running_loop()
    process = await asyncio.create_subprocess_exec(*argv, env=env)
    handled = []
    for signum, action in ((signal.SIGINT, lambda: None), (signal.SIGTERM, process.terminate)):
        try:
            loop.add_signal_handler(signum, action)
            handled.append(signum)
        except (NotImplementedError, RuntimeError):  # Windows, or not the main thread
            pass
    try:
        code = await process.wait()
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)
    return 128 - code if code < 0 else code  # killed by signal N: the shell's 128+N


COMMANDS: list[click.Command] = [run]
