"""``bw://ITEM[#field]`` (Bitwarden password manager, ``bw get``) and ``bws://SECRET-ID``
(Bitwarden Secrets Manager, ``bws secret get``), through their own CLIs.

``bw`` trusts the unlocked session in ``BW_SESSION`` of the proxy's environment; ``bws`` its
machine account's ``BWS_ACCESS_TOKEN``. Neither token is ever part of the reference.
"""

from __future__ import annotations

import json
import re

from ..errors import InvalidSecretRef, SecretRefUnresolved
from ..secret import Secret
from .base import SecretRef, checked
from .command import run

BW_FIELDS = ("password", "username", "notes", "totp")
UUID = re.compile(r"^[0-9a-fA-F-]{36}$")


def validate(ref: SecretRef) -> None:
    if ref.scheme == "bws" and not UUID.fullmatch(ref.location.strip("/")):
        raise InvalidSecretRef(f"{ref} must be bws://SECRET-ID (the secret's UUID)")
    if ref.scheme == "bw" and "/" in ref.location.strip("/"):
        raise InvalidSecretRef(f"{ref} must be bw://ITEM or bw://ITEM#FIELD (ITEM: an id or an exact name)")


def resolve(ref: SecretRef) -> Secret:
    validate(ref)
    item = ref.location.strip("/")
    if ref.scheme == "bws":
        output = run(ref, ["bws", "secret", "get", item, "--output", "json"],
                     "check BWS_ACCESS_TOKEN in the proxy's environment and the machine account's access")  # fmt: skip
        return checked(ref, _json_field(ref, output, "value"))
    field = ref.fragment or "password"
    hint = "unlock with `bw unlock` and give the proxy BW_SESSION; check the item's id or name"
    if field in BW_FIELDS:
        return checked(ref, run(ref, ["bw", "get", field, item], hint))
    item_json = json.loads(run(ref, ["bw", "get", "item", item], hint) or "{}")
    for custom in item_json.get("fields") or []:
        if isinstance(custom, dict) and custom.get("name") == field and isinstance(custom.get("value"), str):
            return checked(ref, custom["value"])
    raise SecretRefUnresolved(f"Bitwarden item of {ref} has no field {field!r}; use one of {', '.join(BW_FIELDS)} "
                              "or a custom field's name")  # fmt: skip


def _json_field(ref: SecretRef, output: str, key: str) -> str:
    try:
        value = json.loads(output)[key]
    except (ValueError, KeyError, TypeError):
        raise SecretRefUnresolved(f"bws printed no secret value for {ref}") from None
    if not isinstance(value, str):
        raise SecretRefUnresolved(f"bws printed no secret value for {ref}")
    return value
