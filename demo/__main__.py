"""`make demo`: the main job end to end, on loopback, with nothing but this repository.

A throwaway vault, a local HTTPS API standing in for a real provider, one registered
service, and the real MCP server started over stdio and driven by a real MCP client. It
shows what the upstream received (the credential), what the model received (the credential
redacted), and the audit record; it exits non-zero if any of that does not hold.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import trustme
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from .echo_upstream import EchoUpstream, write_ca

SERVICE = "demo-api"
SECRET = "sk-demo-7f3a9c2e51b84d06a1e2c3b4d5e6f708"


def clavis_command() -> str:
    here = Path(sys.executable).parent / "clavis-mcp"
    return str(here) if here.exists() else (shutil.which("clavis-mcp") or "clavis-mcp")


def run_cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [clavis_command(), *args], env=env, input=stdin, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"clavis-mcp {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


async def drive_mcp(env: dict[str, str], url: str, errlog: Path) -> dict[str, object]:
    params = StdioServerParameters(command=clavis_command(), args=[], env=env)
    with errlog.open("w") as err:
        async with Client(stdio_client(params, errlog=err)) as client:
            services = await client.call_tool("list_services", {})
            print("list_services ->", json.dumps(services.structured_content))
            result = await client.call_tool("call_service", {"service_name": SERVICE, "method": "GET", "url": url})
            if result.is_error:
                raise SystemExit(f"call_service failed: {result.content}")
            assert result.structured_content is not None
            return result.structured_content


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="clavis-demo-"))
    ca = trustme.CA()
    env = {
        **os.environ,
        "CLAVIS_HOME": str(work / "home"),
        "CLAVIS_UPSTREAM_CA": str(write_ca(ca, work / "upstream-ca.pem")),
    }
    with EchoUpstream.start(ca) as upstream:
        print(f"local API standing in for a provider: https://127.0.0.1:{upstream.port}")
        print(run_cli(env, "init").rstrip())
        print(
            run_cli(
                env, "add", SERVICE, "--host", f"127.0.0.1:{upstream.port}", "--local",
                "--header", "Authorization: Bearer {secret}", "--secret-stdin", stdin=SECRET,
            ).rstrip()
        )  # fmt: skip
        url = f"https://127.0.0.1:{upstream.port}/v1/models?limit=2"
        result = asyncio.run(drive_mcp(env, url, work / "server-stderr.log"))

    received = dict(upstream.received[-1].headers) if upstream.received else {}
    audit_lines = (work / "home" / "audit.jsonl").read_text().splitlines()
    verified = run_cli(env, "audit", "verify").strip()
    audit = json.loads(audit_lines[-1])
    model_view = json.dumps(result)
    everything = model_view + "\n".join(audit_lines) + (work / "server-stderr.log").read_text()

    print(
        "\nupstream received   Authorization:",
        received.get("Authorization", "<none>").replace(SECRET, SECRET[:7] + "…"),
    )
    print("model received      Authorization:", result["body"]["headers"].get("Authorization"))  # type: ignore[index]
    print("model received      redactions:", result["redactions"], " audit id:", result["audit_id"])
    print("audit record       ", json.dumps(audit))
    print("audit verify       ", verified)

    checks = {
        "upstream got the injected credential": received.get("Authorization") == f"Bearer {SECRET}",
        "model saw [REDACTED:demo-api]": f"[REDACTED:{SERVICE}]" in model_view,
        "no secret in model output, audit log or server stderr": SECRET not in everything,
        "audit record matches the call": audit.get("id") == result["audit_id"] and audit.get("service") == SERVICE,
        "audit chain verifies (clavis-mcp audit verify)": verified.startswith("OK"),
    }
    print()
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    shutil.rmtree(work, ignore_errors=True)
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
