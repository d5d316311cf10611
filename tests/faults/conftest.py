"""Faults as they happen: a vault home on a small file system (a tmpfs of its own, mounted as
root) that a test fills up, so writes meet a real ENOSPC rather than a patched one."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from demo.echo_upstream import write_ca

DISK_BYTES = 8 * 1024 * 1024


def fill(folder: Path) -> Path:
    """Write a filler file into ``folder`` until its file system is full; return it."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    block = b"\0" * 65536
    try:
        while True:
            try:
                os.write(fd, block)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                if len(block) == 1:
                    return filler
                block = block[: len(block) // 2]
    finally:
        os.close(fd)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A file system of ``DISK_BYTES`` of its own (tmpfs), unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES},mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"a small file system needs root to mount a tmpfs: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def home(disk: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, upstream_ca: trustme.CA) -> Path:
    """The vault home of every fixture built on ``home`` (vault, audit, proxy) is on the small disk."""
    home = disk / "home"
    monkeypatch.setenv("CLAVIS_HOME", str(home))
    monkeypatch.setenv("CLAVIS_UPSTREAM_CA", str(write_ca(upstream_ca, tmp_path / "upstream-ca.pem")))
    return home
