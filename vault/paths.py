"""Where the vault lives, and keeping its files private to their owner.

Everything is created 0600 inside a 0700 folder, written atomically (temporary file,
fsync, rename) so a crash leaves the old or the new file, never half of one.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import platformdirs

from .errors import InsecurePermissions

APP_NAME = "clavis-mcp"


def clavis_home() -> Path:
    """``$CLAVIS_HOME`` if set, else the platform's per-user data folder."""
    configured = os.environ.get("CLAVIS_HOME")
    if configured:
        return Path(configured).expanduser().absolute()
    return platformdirs.user_data_path(APP_NAME, appauthor=False)


def make_private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def write_private_file(path: Path, data: bytes) -> None:
    """Atomically replace ``path`` with ``data``, mode 0600."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_private(path: Path) -> None:
    """Refuse a file or folder that group or others can read, with the command that fixes it."""
    if os.name != "posix" or not path.exists():
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        wanted = "700" if path.is_dir() else "600"
        raise InsecurePermissions(
            f"{path} is accessible by other users (mode {mode:o}); fix it with: chmod {wanted} '{path}'"
        )
