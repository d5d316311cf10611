"""Secret references (``op://...`` kept behind a marker in a secret field) are a local-vault
feature: the team server keeps secrets in OpenBao and its calls read them directly, unresolved.

So a reference is refused at the door (a 400 from the admin endpoints) and, should one reach the
shared stores another way, the mirror refuses to load it (fail closed) rather than inject it.
"""

from __future__ import annotations

from typing import Any

from clavis_mcp.vault.refs.base import MARKER

REFUSED = (
    "team mode keeps secrets in OpenBao and does not resolve secret references (op://, bao://, ...); "
    "references are a local-vault feature: store the credential's value itself"
)


def carries_ref(value: Any) -> bool:
    """True if a definition or secret holds the reference marker or a ``secret_refs`` table."""
    if isinstance(value, str):
        return MARKER in value
    if isinstance(value, dict):
        return "secret_refs" in value or any(carries_ref(k) or carries_ref(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(carries_ref(item) for item in value)
    return False
