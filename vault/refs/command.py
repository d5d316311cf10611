"""Running a password manager's own command-line program (``op``, ``bw``, ``bws``, ``pass``).

The program runs with the proxy's environment (its session token, ``PASSWORD_STORE_DIR``), no
standard input (a program that would prompt fails instead of hanging the request), and a time
bound. Only the first line of its error output reaches a message: it names the problem, and
these programs do not print the value on failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from ..errors import SecretRefUnresolved
from .base import SecretRef

TIMEOUT = 20.0
MESSAGE_CHARS = 200


def run(ref: SecretRef, argv: list[str], hint: str) -> str:
    """The standard output of ``argv``; SecretRefUnresolved naming the program and ``hint``."""
    program = shutil.which(argv[0])
    if program is None:
        raise SecretRefUnresolved(f"secret reference {ref} needs the {argv[0]!r} program, which is not on the "
                                  f"proxy's PATH; {hint}")  # fmt: skip
    try:
        done = subprocess.run(
            [program, *argv[1:]], capture_output=True, stdin=subprocess.DEVNULL, timeout=TIMEOUT,
            env=dict(os.environ), check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise SecretRefUnresolved(f"{argv[0]} did not answer within {TIMEOUT:.0f} s (secret reference {ref}); "
                                  f"{hint}") from None  # fmt: skip
    if done.returncode != 0:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        said = lines[0][:MESSAGE_CHARS] if lines else "no message"
        raise SecretRefUnresolved(f"{argv[0]} failed for secret reference {ref} (exit {done.returncode}: {said}); "
                                  f"{hint}")  # fmt: skip
    try:
        return done.stdout.decode("utf-8")
    except UnicodeDecodeError:
        raise SecretRefUnresolved(f"{argv[0]} printed something that is not UTF-8 for {ref}") from None
