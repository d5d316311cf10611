"""Opening the vault with its audit log and CA, and running the MCP server over stdio."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from certs import LocalCA
from vault import AuditLog, ClavisError, Vault, clavis_home
from vault.audit import AUDIT_FILE


@dataclass
class Runtime:
    vault: Vault
    audit: AuditLog
    ca: LocalCA


@contextmanager
def open_runtime() -> Iterator[Runtime]:
    home = clavis_home()
    vault = Vault.open(home)
    try:
        yield Runtime(vault, AuditLog(home / AUDIT_FILE), LocalCA(home / "certs"))
    finally:
        vault.close()


def quiet_logging() -> None:
    """stdout carries JSON-RPC only: warnings and errors go to stderr, chatty loggers are capped."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("clavis-mcp %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.WARNING)
    root = logging.getLogger()
    root.addHandler(handler)
    for name in ("mitmproxy", "httpx", "httpcore", "mcp"):
        logging.getLogger(name).setLevel(logging.WARNING)


def serve_stdio() -> None:
    from mcp_front import Gateway, build_server

    quiet_logging()
    try:
        with open_runtime() as runtime:
            gateway = Gateway(runtime.vault, runtime.audit, runtime.ca)
            build_server(gateway).run("stdio")
    except ClavisError as exc:
        print(f"clavis-mcp: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
