"""``env://VAR``: a variable of the proxy's own environment (a container's, a CI job's).

Trusts whoever set up the proxy's environment; the value lives as long as the process does.
"""

from __future__ import annotations

import os
import re

from ..errors import InvalidSecretRef, SecretRefUnresolved
from ..secret import Secret
from .base import SecretRef, checked

VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def validate(ref: SecretRef) -> None:
    if not VARIABLE.fullmatch(ref.rest):
        raise InvalidSecretRef(f"env://{ref.rest} must name one environment variable, e.g. env://OPENAI_API_KEY")


def resolve(ref: SecretRef) -> Secret:
    validate(ref)
    value = os.environ.get(ref.rest)
    if value is None:
        raise SecretRefUnresolved(f"environment variable {ref.rest} is not set in the proxy's environment "
                                  f"(secret reference {ref}); set it where the proxy is started")  # fmt: skip
    return checked(ref, value)
