"""Secrets in an export file, only when asked (``export --with-secrets``), sealed with a passphrase.

The values are one JSON document encrypted with AES-256-GCM under a key derived from the
passphrase with scrypt (a fresh salt and nonce per export; the parameters travel with it, bounded
on import so a hostile file cannot ask for unbounded memory). Since format 2 the rest of the file
(every service's definition, its policy, budget, OAuth config and ``secret_refs``) is the GCM
associated data, as canonical JSON: a host, ``reveal`` or reference edited without the passphrase
fails the tag check like a wrong passphrase, and nothing is imported. Format 1 files (no
``format`` key, fixed associated data) still open, with a warning that their definitions are not
bound. The passphrase comes from
``CLAVIS_EXPORT_PASSPHRASE`` or a hidden prompt, never from the command line.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import json
import os
import sys
from typing import Any

import click
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from clavis_mcp.vault import InvalidService, Secret, Service, validate_secret

from .runtime import Runtime
from .secret_refs import IN_VAULT, where
from .service_extras import oauth_secrets

ENV_VAR = "CLAVIS_EXPORT_PASSPHRASE"
_AAD_V1 = b"clavis-mcp export secrets v1"
FORMAT = 2
_N, _R, _P = 2**17, 8, 1
_MAX_N = 2**20
_MAXMEM = 1024 * 1024 * 1024 + 256 * 1024 * 1024  # 128 * r * n bytes for the largest n accepted


def export_passphrase(*, twice: bool) -> str:
    """From ``CLAVIS_EXPORT_PASSPHRASE``, else asked on a terminal (twice for an export)."""
    given = os.environ.get(ENV_VAR)
    if given:
        return given
    if not sys.stdin.isatty():
        raise click.UsageError(f"the exported secrets need a passphrase: set {ENV_VAR} or run in a terminal")
    first = getpass.getpass("export passphrase: ")
    if twice and first != getpass.getpass("repeat the passphrase: "):
        raise click.UsageError("the two passphrases differ; nothing was written")
    if not first:
        raise click.UsageError("an empty passphrase would not protect the secrets; nothing was written")
    return first


def export_sealed(runtime: Runtime, services: list[Service], cleartext: dict[str, Any]) -> dict[str, Any]:
    """Every secret stored in the vault (not those kept by reference), sealed with a passphrase
    and bound to ``cleartext`` (the file's other tables); each service whose secrets leave this
    way is audited as a reveal."""
    passphrase = export_passphrase(twice=True)
    values: dict[str, dict[str, str]] = {}
    for service in services:
        stored = [field for field, at in where(runtime.vault, service).items() if at == IN_VAULT]
        found = {field: runtime.vault.secret(service.name, field).reveal() for field in stored}
        found.update(oauth_secrets(runtime.vault, service.name))
        if found:
            values[service.name] = found
            runtime.audit.append(source="cli", service=service.name, action="export", decision="revealed",
                                 reason="secrets exported, encrypted with a passphrase")  # fmt: skip
    return seal_secrets(values, passphrase, cleartext)


def bound_data(cleartext: dict[str, Any]) -> bytes:
    """The associated data of a format 2 export: its tables other than ``[secrets]`` as canonical
    JSON (sorted keys, no spaces) after a format tag, so any edit of a definition changes it."""
    rest = {key: value for key, value in cleartext.items() if key != "secrets"}
    body = json.dumps(rest, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return f"clavis-mcp export v{FORMAT}\n".encode() + body.encode()


def seal_secrets(values: dict[str, dict[str, str]], passphrase: str, cleartext: dict[str, Any]) -> dict[str, Any]:
    """``values`` (service -> field -> secret) as the export file's ``[secrets]`` table, bound to
    ``cleartext``, the file's other tables exactly as they are written."""
    salt, nonce = os.urandom(16), os.urandom(12)
    aad = bound_data(cleartext)
    data = AESGCM(_key(passphrase, salt, _N, _R, _P)).encrypt(nonce, json.dumps(values).encode(), aad)
    return {"format": FORMAT, "cipher": "AES-256-GCM", "kdf": "scrypt", "n": _N, "r": _R, "p": _P,
            "salt": _b64(salt), "nonce": _b64(nonce), "data": _b64(data)}  # fmt: skip


def secrets_format(table: object) -> int:
    """1 for an export made before the definitions were bound (no ``format`` key), else 2;
    InvalidService for any other value."""
    given = table.get("format", 1) if isinstance(table, dict) else 1
    if given not in (1, FORMAT) or isinstance(given, bool):
        raise InvalidService(f"the file's [secrets] table has an unknown format {given!r}; nothing was imported")
    return int(given)


def open_secrets(table: object, passphrase: str, cleartext: dict[str, Any]) -> dict[str, dict[str, Secret]]:
    """The secrets of a ``[secrets]`` table, checked against ``cleartext`` (the whole parsed file)
    for format 2; InvalidService if it is malformed, does not open, or the definitions changed."""
    version = secrets_format(table)
    try:
        if not isinstance(table, dict) or table.get("cipher") != "AES-256-GCM" or table.get("kdf") != "scrypt":
            raise ValueError("not a [secrets] table of clavis-mcp export")
        n, r, p = int(table["n"]), int(table["r"]), int(table["p"])
        if not (2 <= n <= _MAX_N and n & (n - 1) == 0 and 1 <= r <= 8 and 1 <= p <= 4):
            raise ValueError("its scrypt parameters are out of range")
        salt, nonce, data = (base64.b64decode(str(table[k]), validate=True) for k in ("salt", "nonce", "data"))
        aad = bound_data(cleartext) if version == FORMAT else _AAD_V1
        plain = AESGCM(_key(passphrase, salt, n, r, p)).decrypt(nonce, data, aad)
        values = {
            str(name): {str(field): str(value) for field, value in dict(fields).items()}
            for name, fields in dict(json.loads(plain)).items()
        }
    except InvalidTag:
        raise InvalidService(
            "the exported secrets do not open with this passphrase: a wrong passphrase, or the file was "
            f"altered after export (a service's hosts, reveal, secret_refs...; {ENV_VAR}); nothing was imported"
        ) from None
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidService(f"the file's [secrets] table is damaged ({exc}); nothing was imported") from None
    return {
        str(name): {str(f): validate_secret(str(v)) for f, v in dict(fields).items()} for name, fields in values.items()
    }


def _key(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(passphrase.encode(), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=32)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()
