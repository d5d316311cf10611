"""A real `clavis-mcp proxy` subprocess on a port the system chose.

The proxy starts with ``--port 0`` and the test reads the bound port from its ready line, the
first line it prints. Picking a free port first and passing it in races: another process can
take the port between the check and the bind.
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TextIO

import trustme

from demo.echo_upstream import write_ca
from tests.conftest import SECRET

EXE = str(Path(sys.executable).parent / "clavis-mcp")
READY = re.compile(r"clavis-mcp proxy listening on http://127\.0\.0\.1:(\d+) ")
START_TIMEOUT = 30.0


@dataclass
class ProxyProcess:
    process: subprocess.Popen[str]
    lines: queue.Queue[str | None]
    ready: str
    port: int

    def drain(self) -> str:
        """What the process printed (standard output and error) after its ready line, up to its exit."""
        text = []
        while (line := self.lines.get(timeout=20)) is not None:
            text.append(line)
        return "".join(text)


class Cli(Protocol):
    def __call__(self, *args: str, stdin: str | None = None) -> str: ...


def vault_home(tmp_path: Path, upstream_ca: trustme.CA, upstream_port: int) -> tuple[dict[str, str], Cli]:
    """A fresh vault (key file) in ``tmp_path`` with one service, ``echo``, on the loopback upstream
    (secret ``SECRET``): the environment a `clavis-mcp` process of the test runs in (no proxy
    variables of the test's own), and the CLI run in it (its standard output; it must succeed)."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env |= {
        "CLAVIS_HOME": str(tmp_path / "home"),
        "CLAVIS_UPSTREAM_CA": str(write_ca(upstream_ca, tmp_path / "ca.pem")),
    }

    def cli(*args: str, stdin: str | None = None) -> str:
        done = subprocess.run([EXE, *args], env=env, input=stdin, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    cli("init", "--key-store", "keyfile")
    cli("add", "echo", "--host", f"127.0.0.1:{upstream_port}", "--local", "--secret-stdin", stdin=SECRET)
    return env, cli


def bound_port(line: str) -> int | None:
    """The port a ready line names, or None for any other line."""
    match = READY.match(line)
    return int(match.group(1)) if match else None


def start_proxy(env: dict[str, str], *args: str) -> ProxyProcess:
    """Start `clavis-mcp proxy --port 0 ARGS...` and return once it listens."""
    process = subprocess.Popen(
        [EXE, "proxy", "--port", "0", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_reader, args=(process.stdout, lines), daemon=True).start()
    seen = []
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            if process.poll() is not None:
                break
            continue
        if line is None:
            break
        if (port := bound_port(line)) is not None:
            return ProxyProcess(process, lines, line, port)
        seen.append(line)
    process.kill()
    process.wait()
    raise AssertionError("clavis-mcp proxy did not start: " + "".join(seen))


def _reader(stream: TextIO, lines: queue.Queue[str | None]) -> None:
    with stream:  # closed here at EOF, when the process has exited
        for line in stream:
            lines.put(line)
    lines.put(None)
