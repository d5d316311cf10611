"""What an agent's shell needs to send its HTTPS through the proxy, in that shell's syntax.

Both spellings of the proxy variables are set: curl reads only lower-case ``http_proxy``,
other tools prefer upper case. ``NO_PROXY`` keeps loopback traffic (local dev servers, the
MCP server) direct, unless a service lives on loopback (a ``--local`` service on 127.0.0.1):
then none is exempt, since that traffic must go through the proxy to get its credential. Every runtime's
trust setting points to one bundle of the system CAs plus ours, so HTTPS that does not go
through the proxy keeps working.

Node: its built-in ``fetch`` ignores ``HTTPS_PROXY`` before Node 24.5, so ``NODE_OPTIONS``
preloads ``node_preload.cjs`` (shipped in this package), and ``NODE_USE_ENV_PROXY=1`` asks
newer Node to do it natively.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Literal

from clavis_mcp.vault.hosts import HostRule

Shell = Literal["bash", "fish", "powershell"]
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
NO_PROXY = ",".join(LOOPBACK_NAMES)
TRUST_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "GIT_SSL_CAINFO",
                   "AWS_CA_BUNDLE")  # fmt: skip  # botocore ignores REQUESTS_CA_BUNDLE when AWS_CA_BUNDLE is set
NODE_PRELOAD = Path(__file__).with_name("node_preload.cjs")


def no_proxy(service_hosts: Iterable[HostRule] = ()) -> str:
    """The loopback names, or none at all if a service's host rule covers any of them.

    All go together: axios reads any loopback name in NO_PROXY as covering every loopback
    address (``localhost`` exempts ``127.0.0.1``), most tools ignore ports, and a name covers
    its subdomains, so keeping the others would still send a service's traffic around the proxy.
    """
    for rule in service_hosts:
        if any(rule.host == name or rule.host.endswith("." + name) for name in LOOPBACK_NAMES):
            return ""
    return NO_PROXY


def node_options(inherited: str | None) -> str:
    """``NODE_OPTIONS`` that preloads our fetch setup, keeping the options already in the environment."""
    quoted = '"' + str(NODE_PRELOAD).replace("\\", "\\\\").replace('"', '\\"') + '"'
    preload = f"--require {quoted}"
    if inherited and preload in inherited:
        return inherited
    return f"{preload} {inherited}" if inherited else preload


def agent_exports(
    proxy_url: str,
    bundle: Path,
    service_hosts: Iterable[HostRule] = (),
    environ: Mapping[str, str] | None = None,
) -> list[tuple[str, str]]:
    """``(name, value)`` pairs, in the order they are printed. ``environ`` is the environment the
    agent inherits (``NODE_OPTIONS`` already set there is kept)."""
    pairs = []
    exempt = no_proxy(service_hosts)
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY"):
        value = exempt if name == "NO_PROXY" else proxy_url
        pairs += [(name, value), (name.lower(), value)]
    pairs += [(name, str(bundle)) for name in TRUST_VARIABLES]
    pairs += [("NODE_OPTIONS", node_options((environ or {}).get("NODE_OPTIONS"))), ("NODE_USE_ENV_PROXY", "1")]
    return pairs


def _quote(value: str, shell: Shell) -> str:
    if shell == "powershell":
        return "'" + value.replace("'", "''") + "'"
    if shell == "fish":
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return "'" + value.replace("'", "'\\''") + "'"


def render(exports: list[tuple[str, str]], shell: Shell) -> str:
    lines = []
    for name, value in exports:
        quoted = _quote(value, shell)
        match shell:
            case "bash":
                lines.append(f"export {name}={quoted}")
            case "fish":
                lines.append(f"set -gx {name} {quoted}")
            case "powershell":
                lines.append(f"$env:{name} = {quoted}")
    return "\n".join(lines) + "\n"


def base_url_exports(
    proxy_url: str, agent_key: str, services: Iterable[tuple[str, str, str, str | None]]
) -> list[tuple[str, str]]:
    """Base-URL mode: ``(service, base_url_env, base_url_path, key_env)`` to each SDK's base-URL
    variable on the proxy (``http://127.0.0.1:PORT/s/<service><path>``) and its API-key variable
    holding the agent's key. The first service of a connector wins; no CA, no proxy variable."""
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for service, variable, path, key_variable in services:
        if variable in seen:
            continue
        seen.add(variable)
        pairs.append((variable, f"{proxy_url}/s/{service}{path}"))
        if key_variable:
            pairs.append((key_variable, agent_key))
    return pairs
