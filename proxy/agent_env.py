"""What an agent's shell needs to send its HTTPS through the proxy, in that shell's syntax.

Both spellings of the proxy variables are set: curl reads only lower-case ``http_proxy``,
other tools prefer upper case. ``NO_PROXY`` keeps loopback traffic (local dev servers, the
MCP server) direct. Every runtime's trust setting points to one bundle of the system CAs
plus ours, so HTTPS that does not go through the proxy keeps working.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

Shell = Literal["bash", "fish", "powershell"]
NO_PROXY = "localhost,127.0.0.1,::1"
TRUST_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "GIT_SSL_CAINFO")


def agent_exports(proxy_url: str, bundle: Path) -> list[tuple[str, str]]:
    """``(name, value)`` pairs, in the order they are printed."""
    pairs = []
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY"):
        value = NO_PROXY if name == "NO_PROXY" else proxy_url
        pairs += [(name, value), (name.lower(), value)]
    pairs += [(name, str(bundle)) for name in TRUST_VARIABLES]
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
