"""`make team-demo`: team mode end to end, on loopback, with nothing but this repository.

`clavis-mcp team dev` (OpenBao, PostgreSQL, 3 API workers), a local HTTPS API standing in for a
provider, one service registered with `clavis-mcp team add`, a scoped key for an agent, and the
unmodified `clavis` SDK from PyPI driving it. It shows what the upstream received (the
credential), what the caller received (the credential redacted), calls going on while a worker
is killed, a revoked key turning into 401, and the audit verified; it exits non-zero if any of
that does not hold.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trustme
from clavis import ClavisClient
from clavis.exceptions import AuthenticationError

from . import proc_tree
from .echo_upstream import EchoUpstream, write_ca

SERVICE = "demo-api"
SECRET = "sk-team-demo-4b1e9d27c03a4f5e8a6b7c8d9e0f1a2b"
CALLS_AROUND_THE_KILL = 12
MIRRORS = (Path("/dev/shm"), "clavis-replica-")  # where team/mirror.py keeps a worker's copy


def clavis_command() -> str:
    here = Path(sys.executable).parent / "clavis-mcp"
    return str(here) if here.exists() else (shutil.which("clavis-mcp") or "clavis-mcp")


def run_cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [clavis_command(), *args], env=env, input=stdin, capture_output=True, text=True, check=False, timeout=60
    )
    if result.returncode != 0:
        raise SystemExit(f"clavis-mcp {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def start_dev(env: dict[str, str], errlog: Path) -> tuple[subprocess.Popen[str], str, str]:
    with errlog.open("w") as err:
        dev = subprocess.Popen(
            [clavis_command(), "team", "dev"], env=env, stdout=subprocess.PIPE, stderr=err, text=True
        )
    assert dev.stdout is not None
    values = dict(dev.stdout.readline().rstrip("\n").partition("=")[::2] for _ in range(2))
    if "CLAVIS_API_URL" not in values or "CLAVIS_API_KEY" not in values:
        dev.wait(30)
        raise SystemExit(f"clavis-mcp team dev did not start:\n{errlog.read_text()[-3000:]}")
    return dev, values["CLAVIS_API_URL"], values["CLAVIS_API_KEY"]


async def drive(url: str, agent_key: str, target: str, dev_pid: int) -> dict[str, object]:
    """The agent's side: the SDK only, with its scoped key."""
    client = ClavisClient(api_key=agent_key, base_url=url)
    called = await client.call(SERVICE, "GET", target, params={"limit": 2})
    proxied = await client.proxy(SERVICE, "GET", "/v1/models")
    checked = await client.check_credentials(SERVICE)
    print("SDK check_credentials ->", json.dumps(checked))

    workers = proc_tree.workers(dev_pid)
    results: list[bool] = []
    victim = workers[0].pid if workers else None
    leftover: set[Path] = set()
    for i in range(CALLS_AROUND_THE_KILL):
        if i == CALLS_AROUND_THE_KILL // 2 and victim is not None:
            leftover = proc_tree.open_dirs(victim, *MIRRORS)
            os.kill(victim, signal.SIGKILL)
            print(f"killed worker pid {victim} ({len(workers)} were running) after {i} calls; "
                  f"its mirror: {', '.join(map(str, leftover)) or 'none found'}")  # fmt: skip
        try:
            answer = await client.call(SERVICE, "GET", target)
            results.append(answer["status_code"] == 200)
        except Exception as exc:  # shown, and counted as a failed call
            print(f"  call {i + 1} failed: {type(exc).__name__}: {exc}")
            results.append(False)
    print(f"calls around the kill: {sum(results)}/{len(results)} answered 200")
    deadline = time.monotonic() + 10
    while len(proc_tree.workers(dev_pid)) < len(workers) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    replaced = len(proc_tree.workers(dev_pid)) == len(workers)
    print(f"workers running now: {len(proc_tree.workers(dev_pid))} (uvicorn's supervisor replaces a dead one)")
    deadline = time.monotonic() + 30  # the replacement removes it when it starts its own mirror
    while any(folder.exists() for folder in leftover) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    swept = bool(leftover) and not any(folder.exists() for folder in leftover)
    print(f"the killed worker's mirror: {'removed' if swept else 'still there'}")
    return {"called": called, "proxied": proxied.model_dump(), "around_kill": results, "victim": victim,
            "replaced": replaced, "swept": swept}  # fmt: skip


async def until_refused(url: str, agent_key: str, target: str) -> float | None:
    """Seconds from the revocation until the key is refused with 401 (None: not within 5 s)."""
    client = ClavisClient(api_key=agent_key, base_url=url)
    start = time.monotonic()
    while time.monotonic() - start < 5.0:
        try:
            await client.call(SERVICE, "GET", target)
        except AuthenticationError as exc:
            print(f"SDK call with the revoked key -> AuthenticationError (HTTP {exc.status_code})")
            return time.monotonic() - start
        await asyncio.sleep(0.05)
    return None


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="clavis-team-demo-"))
    ca = trustme.CA()
    env = {
        **os.environ,
        "CLAVIS_HOME": str(work / "home"),  # client mode must leave this absent
        "CLAVIS_UPSTREAM_CA": str(write_ca(ca, work / "upstream-ca.pem")),
    }
    for name in ("CLAVIS_API_URL", "CLAVIS_API_KEY"):
        env.pop(name, None)
    errlog = work / "team-dev-stderr.log"
    dev, url, admin_key = start_dev(env, errlog)
    print(f"clavis-mcp team dev -> CLAVIS_API_URL={url} (3 workers, OpenBao and PostgreSQL throwaway)")
    admin = {**env, "CLAVIS_API_URL": url, "CLAVIS_API_KEY": admin_key}
    try:
        with EchoUpstream.start(ca) as upstream:
            print(f"local API standing in for a provider: https://127.0.0.1:{upstream.port}")
            print(
                run_cli(
                    admin, "team", "add", SERVICE, "--host", f"127.0.0.1:{upstream.port}", "--local",
                    "--header", "Authorization: Bearer {secret}", "--secret-stdin", stdin=SECRET,
                ).rstrip()
            )  # fmt: skip
            created = run_cli(admin, "team", "key", "create", "demo-agent", "--services", SERVICE, "--expires", "1d")
            agent_key = created.strip().partition("=")[2]
            print(f"team key create demo-agent --services {SERVICE} -> CLAVIS_API_KEY={agent_key[:8]}… (shown once)")
            target = f"https://127.0.0.1:{upstream.port}/v1/models"
            seen = asyncio.run(drive(url, agent_key, target, dev.pid))
            received = dict(upstream.received[0].headers) if upstream.received else {}
            print(run_cli(admin, "team", "key", "revoke", "demo-agent").rstrip())
            refused_after = asyncio.run(until_refused(url, agent_key, target))
        audit = run_cli(admin, "team", "audit", "--service", SERVICE, "-n", "5")
        verified = run_cli(admin, "team", "audit", "verify").strip()
    finally:
        dev.send_signal(signal.SIGINT)
        stopped = dev.wait(60)
        assert dev.stdout is not None
        dev.stdout.close()

    called: dict[str, object] = seen["called"]  # type: ignore[assignment]
    caller_view = json.dumps(called) + json.dumps(seen["proxied"])
    upstream_auth = received.get("Authorization", "<none>")
    print("\nupstream received   Authorization:", upstream_auth.replace(SECRET, SECRET[:10] + "…"))
    body = called.get("body")
    echoed = body.get("headers", {}) if isinstance(body, dict) else {}
    print("caller received     Authorization:", echoed.get("Authorization", f"<not echoed: {str(body)[:80]}>"))
    print("caller received     status:", called.get("status_code"))
    print("audit (newest last):\n" + "\n".join("  " + line for line in audit.strip().splitlines()))
    print("team audit verify  ", verified)
    everything = caller_view + audit + verified + errlog.read_text()

    checks = {
        "upstream got the injected credential": upstream_auth == f"Bearer {SECRET}",
        "caller saw [REDACTED:demo-api], never the secret": f"[REDACTED:{SERVICE}]" in caller_view,
        "calls kept answering while a worker was killed": seen["victim"] is not None and all(seen["around_kill"]),  # type: ignore[arg-type]
        "the killed worker was replaced": seen["replaced"] is True,
        "its private mirror did not outlive it": seen["swept"] is True,
        "a revoked key is refused with 401": refused_after is not None,
        "team audit verify passes": verified.startswith("OK"),
        "no secret in the SDK results, audit output or server log": SECRET not in everything,
        "client mode wrote no local vault": not (work / "home").exists(),
        "team dev stopped cleanly on SIGINT": stopped == 0,
    }
    if refused_after is not None:
        print(f"revocation seen after {refused_after * 1000:.0f} ms")
    print()
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    shutil.rmtree(work, ignore_errors=True)
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
