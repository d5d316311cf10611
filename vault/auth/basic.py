"""HTTP basic auth: ``Authorization: Basic base64(template)``, the template ``user:{secret}``,
``{secret}:`` (the key as user name, as Stripe does) or ``{username}:{secret}``, the user name a
secret field stored apart from the password (both are redacted; neither is shown)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from ..errors import InvalidService
from ..secret import Secret
from .base import CREDENTIAL, OutgoingRequest, validate_template
from .fields import fill, require, template_fields
from .header import HeaderAuth


@dataclass(frozen=True, slots=True)
class BasicAuth(HeaderAuth):
    """The base64 pair is a secret of its own: :meth:`redaction_values` returns the built header (each
    field's own spellings, base64 at every alignment included, cover the pair inside it)."""

    kind: ClassVar[str] = "basic"
    name: str = "Authorization"
    template: str = "{secret}:"

    def describe(self) -> str:
        return f"basic auth {self.template}"

    def secret_fields(self) -> tuple[str, ...]:
        return template_fields(self.template)

    def options(self) -> dict[str, str]:
        return {"auth": "basic", "template": self.template}

    def pair(self, secrets: Mapping[str, Secret]) -> str:
        require(secrets, self.secret_fields(), "basic auth")
        return fill(self.template, secrets)

    def header_value(self, secret: Secret) -> str:
        return self.built({CREDENTIAL: secret})

    def built(self, secrets: Mapping[str, Secret]) -> str:
        return "Basic " + base64.b64encode(self.pair(secrets).encode()).decode("ascii")

    def apply(self, request: OutgoingRequest, secrets: Mapping[str, Secret]) -> None:
        request.set_headers([(self.name, self.built(secrets)), *self.extra_headers])

    def redaction_values(self, secrets: Mapping[str, Secret]) -> list[str]:
        if any(field not in secrets for field in self.secret_fields()):
            return []
        return [self.built(secrets)]

    def validate(self) -> BasicAuth:
        HeaderAuth.validate(self)
        template_fields(self.template)
        if ":" not in self.template:
            raise InvalidService("a basic-auth template is 'user:{secret}', '{secret}:' or '{username}:{secret}'")
        return self


def build_basic(*, template: str | None = None, **_: object) -> BasicAuth:
    return BasicAuth(template=validate_template(template or "{secret}:")).validate()
