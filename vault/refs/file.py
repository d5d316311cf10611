"""``file:///path``: a file holding the bare secret (a mounted container secret, a CI file).

Trusts the file's owner and the directory it is in: like the vault's own files, a file other
users may read or write is refused (``chmod 600``), so does a symbolic link, which could be
pointed elsewhere between the check and the read.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..errors import InvalidSecretRef, SecretRefUnresolved
from ..secret import Secret
from .base import SecretRef, checked

MAX_BYTES = 64 * 1024


def path_of(ref: SecretRef) -> Path:
    text = ref.rest.removeprefix("localhost")
    if not text.startswith("/") or "#" in text or "?" in text:
        raise InvalidSecretRef(f"file://{ref.rest} must be an absolute path: file:///run/secrets/openai")
    return Path(text)


def validate(ref: SecretRef) -> None:
    path_of(ref)


def resolve(ref: SecretRef) -> Secret:
    path = path_of(ref)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise SecretRefUnresolved(
            f"cannot open {path} (secret reference {ref}): {exc.strerror}; "
            "check that the file exists, is not a link, and the proxy may read it"
        ) from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise SecretRefUnresolved(f"{path} is not a regular file (secret reference {ref})")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077 and info.st_uid == os.getuid():
            raise SecretRefUnresolved(f"{path} is accessible by other users (mode {mode:o}); "
                                      f"fix it with: chmod 600 '{path}'")  # fmt: skip
        if mode & 0o022:
            raise SecretRefUnresolved(f"{path} may be written by other users (mode {mode:o}); "
                                      f"fix it with: chmod go-w '{path}'")  # fmt: skip
        data = handle.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise SecretRefUnresolved(f"{path} is larger than {MAX_BYTES} bytes: it does not hold one secret")
    try:
        return checked(ref, data.decode("utf-8"))
    except UnicodeDecodeError:
        raise SecretRefUnresolved(f"{path} is not UTF-8 text (secret reference {ref})") from None
