"""``clavis-mcp team dev``: a complete throwaway team stack, like ``bao server -dev``.

OpenBao in dev mode, a throwaway PostgreSQL cluster, the schema and an admin (bootstrap), and
the API server with several workers on one socket, in a child process of its own session so
that its workers stop with it. Stdout carries exactly two lines, ``CLAVIS_API_URL=...`` and an
admin ``CLAVIS_API_KEY=...`` (so ``eval "$(clavis-mcp team dev)"``-style scripts and tests read
them); everything else goes to stderr. SIGINT or SIGTERM stops the server, both engines, and
removes every file the stack created. ``CLAVIS_UPSTREAM_CA`` passes on to the server, whose
egress trusts it like the local proxy does.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any

from clavis_mcp.vault import Secret
from clavis_mcp.vault.errors import EngineStartError

from .bootstrap import bootstrap
from .engines import start_openbao, start_postgres

ADMIN_EMAIL = "admin@clavis.dev"
READY = re.compile(r"clavis team server listening on (http://\S+)")
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
UPSTREAM_CA_ENV = "CLAVIS_UPSTREAM_CA"
# The server runs as `team serve` would, without loading the CLI (team sits below clavis_cli).
_SERVE = "import sys; from clavis_mcp.team.serve import serve; serve(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))"


@dataclass
class DevStack:
    url: str
    admin_key: Secret
    admin_email: str
    admin_password: Secret
    server: subprocess.Popen[bytes]
    workdir: Path

    def __repr__(self) -> str:
        return f"DevStack(url={self.url!r}, server_pid={self.server.pid})"


@contextmanager
def dev_stack(*, host: str = "127.0.0.1", port: int = 0, workers: int = 3) -> Iterator[DevStack]:
    """The running stack; on leaving, everything it started is stopped and everything it wrote removed."""
    _check_upstream_ca()
    with ExitStack() as cleanup:
        # Each start and the registration of its clean-up happen with SIGINT/SIGTERM held back,
        # so a signal never lands between a process being started and its stop being registered.
        with _held_signals():
            workdir = Path(tempfile.mkdtemp(prefix="clavis-team-dev-"))
            cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        with _held_signals():
            bao = cleanup.enter_context(start_openbao(workdir))
        with _held_signals():
            postgres = cleanup.enter_context(start_postgres(workdir))
        password = Secret(secrets.token_urlsafe(18))
        boot = bootstrap(
            bao.addr, bao.root_token, postgres.dsn, admin_email=ADMIN_EMAIL, admin_password=password.reveal()
        )
        env = {**os.environ, **boot.env}
        with _held_signals():
            server, pumps = _spawn_server(env, host, port, workers)
            cleanup.callback(_close_stderr, server, pumps)  # after the server has stopped (last first)
            cleanup.callback(stop_server, server)
        url = _wait_ready(server, pumps)
        yield DevStack(url, Secret(boot.admin_key), ADMIN_EMAIL, password, server, workdir)


def _spawn_server(
    env: dict[str, str], host: str, port: int, workers: int
) -> tuple[subprocess.Popen[bytes], list[threading.Thread]]:
    server = subprocess.Popen(
        [sys.executable, "-c", _SERVE, host, str(port), str(workers)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=sys.stderr.fileno() if _has_fileno(sys.stderr) else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: Ctrl-C reaches us, we stop it and its workers
    )
    return server, []


def _has_fileno(stream: IO[str]) -> bool:
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    return True


def _check_upstream_ca() -> None:
    path = os.environ.get(UPSTREAM_CA_ENV)
    if path and not (Path(path).is_file() and b"-----BEGIN CERTIFICATE-----" in Path(path).read_bytes()):
        raise EngineStartError(f"{UPSTREAM_CA_ENV}={path} does not name a readable PEM certificate file")


def _close_stderr(server: subprocess.Popen[bytes], pumps: list[threading.Thread]) -> None:
    for pump in pumps:
        pump.join(STOP_TIMEOUT)  # the pipe is at its end once the server's group is gone
    if server.stderr is not None:
        server.stderr.close()


def _wait_ready(server: subprocess.Popen[bytes], pumps: list[threading.Thread]) -> str:
    """Read the server's stderr (echoed to ours) until it says where it listens; then keep echoing."""
    assert server.stderr is not None
    found: list[str] = []
    tail: deque[str] = deque(maxlen=5)
    ready = threading.Event()

    def pump(stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace")
            sys.stderr.write(line)
            if not ready.is_set():
                tail.append(line.strip())
                match = READY.search(line)
                if match:
                    found.append(match[1])
                    ready.set()
        ready.set()

    pumps.append(threading.Thread(target=pump, args=(server.stderr,), daemon=True))
    pumps[-1].start()
    ready.wait(READY_TIMEOUT)
    if not found:
        stop_server(server)
        last = " | ".join(tail) or "no output"
        raise EngineStartError(f"the team API server did not start ({last})")
    return found[0]


def stop_server(server: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's process group (the supervisor and its workers, which clean up after
    themselves), until the whole group is gone; SIGKILL for what is left after STOP_TIMEOUT."""
    _signal_group(server.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while _signal_group(server.pid, 0) and time.monotonic() < deadline:
        if server.poll() is None:
            try:
                server.wait(0.1)
            except subprocess.TimeoutExpired:
                pass
        else:
            time.sleep(0.1)  # the supervisor is gone, a worker is still finishing
    _signal_group(server.pid, signal.SIGKILL)
    server.wait()


def _signal_group(group: int, sig: int) -> bool:
    """Whether any process of the group was there to receive ``sig``."""
    try:
        os.killpg(group, sig)
    except ProcessLookupError:
        return False
    return True


def run_dev(*, host: str = "127.0.0.1", port: int = 0, workers: int = 3) -> int:
    """Run the stack until SIGINT or SIGTERM; 0 after a clean stop, 1 if the server died."""
    _check_upstream_ca()
    _holding.pending = False
    previous = _on_signals(_interrupt)
    started = False
    try:
        with dev_stack(host=host, port=port, workers=workers) as stack:
            started = True
            sys.stdout.write(f"CLAVIS_API_URL={stack.url}\nCLAVIS_API_KEY={stack.admin_key.reveal()}\n")
            sys.stdout.flush()
            print(
                f"clavis team dev: {workers} API worker(s) at {stack.url} on a throwaway OpenBao and PostgreSQL; "
                f"admin login {stack.admin_email} / {stack.admin_password.reveal()}\n"
                "clavis team dev: Ctrl-C (or SIGTERM) stops it and removes everything it created",
                file=sys.stderr,
                flush=True,
            )
            while stack.server.poll() is None:
                time.sleep(0.2)
            _on_signals(signal.SIG_IGN)
            print(f"clavis team dev: the API server exited ({stack.server.returncode}); stopping", file=sys.stderr)
            return 1
    except KeyboardInterrupt:
        return 0
    finally:
        _on_signals(signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        _on_signals(previous)
        if started:
            print("clavis team dev: stopped; everything it created is removed", file=sys.stderr, flush=True)


@dataclass
class _Holding:
    depth: int = 0
    pending: bool = False


_holding = _Holding()


@contextmanager
def _held_signals() -> Iterator[None]:
    """Hold back the stop that run_dev's handler would raise until the block is done (then raise it)."""
    _holding.depth += 1
    try:
        yield
    finally:
        _holding.depth -= 1
    if _holding.pending and not _holding.depth:
        _holding.pending = False
        _stop()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    if _holding.depth:
        _holding.pending = True
        return
    _stop()


def _stop() -> None:
    _on_signals(signal.SIG_IGN)  # from the first signal on, the clean-up runs undisturbed
    raise KeyboardInterrupt


_Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _on_signals(handler: _Handler | dict[int, _Handler]) -> dict[int, _Handler]:
    """Set the handler of SIGINT and SIGTERM (one for both, or one each); the previous ones."""
    previous: dict[int, _Handler] = {sig: signal.getsignal(sig) for sig in _STOP_SIGNALS}
    for sig in _STOP_SIGNALS:
        chosen = handler.get(sig) if isinstance(handler, dict) else handler
        signal.signal(sig, signal.SIG_DFL if chosen is None else chosen)
    return previous
