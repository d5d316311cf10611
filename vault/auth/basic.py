"""HTTP basic auth: ``Authorization: Basic base64(template)``, the template ``user:{secret}`` or
``{secret}:`` (the key as user name, as Stripe does)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import ClassVar

from ..errors import InvalidService
from ..secret import Secret
from .base import PLACEHOLDER, validate_template
from .header import HeaderAuth


@dataclass(frozen=True, slots=True)
class BasicAuth(HeaderAuth):
    """The base64 pair is a secret of its own: :meth:`redaction_values` returns the built header."""

    kind: ClassVar[str] = "basic"
    name: str = "Authorization"
    template: str = "{secret}:"

    def describe(self) -> str:
        return f"basic auth {self.template}"

    def options(self) -> dict[str, str]:
        return {"auth": "basic", "template": self.template}

    def header_value(self, secret: Secret) -> str:
        pair = self.template.replace(PLACEHOLDER, secret.reveal()).encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")


def build_basic(*, template: str | None = None, **_: object) -> BasicAuth:
    auth = BasicAuth(template=validate_template(template or "{secret}:"))
    if ":" not in auth.template:
        raise InvalidService("a basic-auth template is 'user:{secret}' or '{secret}:' (the key as user name)")
    return auth
