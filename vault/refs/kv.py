"""``bao://MOUNT/PATH#FIELD`` (OpenBao) and ``vault://MOUNT/PATH#FIELD`` (HashiCorp Vault): one field
of a KV version 2 secret, read with ``hvac``.

Trusts the server at ``BAO_ADDR`` / ``VAULT_ADDR`` and the token the proxy's environment gives it
(``BAO_TOKEN`` / ``VAULT_TOKEN``; ``BAO_CACERT`` / ``VAULT_CACERT`` for a private CA). The
reference names where the secret is, never how to log in.
"""

from __future__ import annotations

import os

from ..errors import InvalidSecretRef, SecretRefUnresolved
from ..secret import Secret
from .base import SecretRef, checked

TIMEOUT = 10.0


def parts(ref: SecretRef) -> tuple[str, str, str]:
    mount, _, path = ref.location.strip("/").partition("/")
    if not mount or not path or not ref.fragment or "?" in ref.rest:
        raise InvalidSecretRef(f"{ref} must be {ref.scheme}://MOUNT/PATH#FIELD, e.g. {ref.scheme}://secret/openai#key")
    return mount, path, ref.fragment


def validate(ref: SecretRef) -> None:
    parts(ref)


def _setting(ref: SecretRef, name: str) -> str | None:
    first, second = ("BAO_", "VAULT_") if ref.scheme == "bao" else ("VAULT_", "BAO_")
    return os.environ.get(first + name) or os.environ.get(second + name)


def resolve(ref: SecretRef) -> Secret:
    try:
        import hvac  # type: ignore[import-untyped]
        import hvac.exceptions  # type: ignore[import-untyped]
        import requests
    except ImportError:
        raise SecretRefUnresolved(f"{ref} needs hvac: pip install 'clavis-mcp[refs]'") from None

    mount, path, field = parts(ref)
    addr, token = _setting(ref, "ADDR"), _setting(ref, "TOKEN")
    prefix = "BAO" if ref.scheme == "bao" else "VAULT"
    if not addr or not token:
        raise SecretRefUnresolved(f"secret reference {ref} needs {prefix}_ADDR and {prefix}_TOKEN in the proxy's "
                                  "environment")  # fmt: skip
    client = hvac.Client(url=addr, token=token, timeout=TIMEOUT, verify=_setting(ref, "CACERT") or True,
                         namespace=_setting(ref, "NAMESPACE"))  # fmt: skip
    try:
        answer = client.secrets.kv.v2.read_secret_version(path=path, mount_point=mount, raise_on_deleted_version=True)
    except hvac.exceptions.InvalidPath:
        raise SecretRefUnresolved(f"{addr} has no KV v2 secret {path!r} in mount {mount!r} ({ref})") from None
    except hvac.exceptions.Forbidden:
        raise SecretRefUnresolved(
            f"{addr} refused to read {ref}: the token lacks read on {mount}/data/{path}"
        ) from None
    except (hvac.exceptions.VaultError, requests.RequestException) as exc:
        raise SecretRefUnresolved(f"{addr} could not be read for {ref} ({type(exc).__name__}); "
                                  f"check {prefix}_ADDR and that the server is unsealed") from None  # fmt: skip
    data = answer.get("data", {}).get("data") or {}
    value = data.get(field)
    if not isinstance(value, str):
        raise SecretRefUnresolved(f"the secret at {mount}/{path} has no text field {field!r} ({ref}); "
                                  f"it has: {', '.join(sorted(data)) or 'no fields'}")  # fmt: skip
    return checked(ref, value)
