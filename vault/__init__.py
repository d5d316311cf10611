"""Domain core: services, encrypted secrets, audit log. Imports neither mitmproxy nor MCP."""

from __future__ import annotations

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
