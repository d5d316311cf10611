"""Domain core: services, encrypted secrets, audit log. Imports neither mitmproxy nor MCP.

The public names are loaded on first use (PEP 562): ``from clavis_mcp.vault.errors import ...``
then costs only that module, not the whole vault (the store pulls in every auth method and its
dependencies), which keeps it off the MCP server's start-up where it is not needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .audit.log import AuditLog
    from .errors import (
        AuditWriteError,
        ClavisError,
        DuplicateService,
        InsecurePermissions,
        InvalidService,
        KeyStoreUnavailable,
        ServiceError,
        UnknownService,
        VaultCorrupted,
        VaultError,
        VaultLocked,
        VaultNotFound,
    )
    from .hosts import HostRule, canonical_host, is_public_address, parse_host_rule
    from .paths import clavis_home
    from .secret import Secret
    from .service import AuthSpec, Service, parse_header_template, parse_hosts, validate_name, validate_secret
    from .store import Snapshot, Vault

_HOMES = {
    ".audit.log": ("AuditLog",),
    ".errors": ("AuditWriteError", "ClavisError", "DuplicateService", "InsecurePermissions", "InvalidService",
                "KeyStoreUnavailable", "ServiceError", "UnknownService", "VaultCorrupted", "VaultError", "VaultLocked",
                "VaultNotFound"),
    ".hosts": ("HostRule", "canonical_host", "is_public_address", "parse_host_rule"),
    ".paths": ("clavis_home",),
    ".secret": ("Secret",),
    ".service": ("AuthSpec", "Service", "parse_header_template", "parse_hosts", "validate_name", "validate_secret"),
    ".store": ("Snapshot", "Vault"),
}  # fmt: skip
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # the next lookup is an ordinary one
    return value


__all__ = [
    "AuditLog",
    "AuditWriteError",
    "AuthSpec",
    "ClavisError",
    "DuplicateService",
    "HostRule",
    "InsecurePermissions",
    "InvalidService",
    "KeyStoreUnavailable",
    "Secret",
    "Service",
    "ServiceError",
    "Snapshot",
    "UnknownService",
    "Vault",
    "VaultCorrupted",
    "VaultError",
    "VaultLocked",
    "VaultNotFound",
    "canonical_host",
    "clavis_home",
    "is_public_address",
    "parse_header_template",
    "parse_host_rule",
    "parse_hosts",
    "validate_name",
    "validate_secret",
]
