"""The world every benchmark runs in: a throwaway vault, a loopback HTTPS upstream, the proxies.

Nothing here leaves 127.0.0.1. The vault is made with the real CLI (``clavis-mcp init`` and
``add``), as a user would, so the benchmark follows the product rather than its internals.
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import trustme

from clavis_mcp.certs import LocalCA

SERVICE = "bench"
SECRET = "sk-bench-0f1e2d3c4b5a69788796a5b4c3d2e1f0"  # a made-up key, never a real one
PROXY_USER, PROXY_TOKEN = "bench", "bench-proxy-token-0123456789abcdef"
EXE = str(Path(sys.executable).parent / "clavis-mcp")
ROOT = Path(__file__).resolve().parent.parent  # the tree under test; children import from it too


class Child:
    """A helper process that prints its port on its first stdout line and stops when its stdin closes."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path = ROOT) -> None:
        self.process = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=cwd, text=True
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError(f"{' '.join(args)} did not start (printed {line!r}); see its stderr above")
        self.port = int(line)

    def stop(self) -> None:
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class World:
    root: Path
    home: Path
    upstream_ca_file: Path
    upstream: Child
    env: dict[str, str]

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.upstream.port}"

    def upstream_trust(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.upstream_ca_file))

    def proxy_trust(self) -> ssl.SSLContext:
        """What an agent trusts: the clavis CA (which is also what bare mitmproxy mints with)."""
        return ssl.create_default_context(cafile=str(LocalCA(self.home / "certs").cert_path))

    def child(self, *args: str) -> Child:
        return Child([sys.executable, "-m", *args], self.env)


def cli(env: dict[str, str], *args: str, stdin: str | None = None) -> None:
    done = subprocess.run([EXE, *args], input=stdin, capture_output=True, text=True, env=env, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"clavis-mcp {' '.join(args)} failed: {done.stderr.strip()}")


@contextmanager
def world() -> Iterator[World]:
    root = Path(tempfile.mkdtemp(prefix="clavis-bench-"))
    saved = dict(os.environ)
    upstream: Child | None = None
    try:
        ca = trustme.CA()
        ca_file = root / "upstream-ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        leaf = ca.issue_cert("127.0.0.1", "localhost")
        chain, key = root / "upstream-chain.pem", root / "upstream-key.pem"
        chain.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
        leaf.private_key_pem.write_to_path(str(key))
        home = root / "home"
        os.environ.update(CLAVIS_HOME=str(home), CLAVIS_UPSTREAM_CA=str(ca_file), PYTHONPATH=str(ROOT))
        env = dict(os.environ)
        upstream = Child([sys.executable, "-m", "bench.upstream", str(chain), str(key)], env)
        cli(env, "init")
        cli(env, "add", SERVICE, "--host", f"127.0.0.1:{upstream.port}", "--local", "--secret-stdin", stdin=SECRET)
        yield World(root, home, ca_file, upstream, env)
    finally:
        if upstream is not None:
            upstream.stop()
        os.environ.clear()
        os.environ.update(saved)
        shutil.rmtree(root, ignore_errors=True)
