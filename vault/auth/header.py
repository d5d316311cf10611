"""A header set to a template with the secret in it: ``x-api-key: {secret}``, ``Authorization: Bearer {secret}``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from ..errors import InvalidService
from ..secret import Secret
from .base import (
    CREDENTIAL,
    HEADER_NAME,
    PLACEHOLDER,
    AuthMethod,
    OutgoingRequest,
    stored_extra_headers,
    stored_form,
    validate_extra_headers,
    validate_header_name,
    validate_template,
)


@dataclass(frozen=True, slots=True)
class HeaderAuth(AuthMethod):
    """Header ``name`` set to ``template`` with ``{secret}`` replaced.

    ``extra_headers`` are fixed, non-secret headers the provider requires next to the credential
    (``anthropic-version: 2023-06-01``); they are set with it, after it.
    """

    kind: ClassVar[str] = "header"
    name: str
    template: str = PLACEHOLDER
    extra_headers: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        return f"header {self.name}: {self.template}"

    @property
    def header_name(self) -> str:
        return self.name

    def header_value(self, secret: Secret) -> str:
        return self.template.replace(PLACEHOLDER, secret.reveal())

    def apply(self, request: OutgoingRequest, secrets: Mapping[str, Secret]) -> None:
        request.set_headers([(self.header_name, self.header_value(secrets[CREDENTIAL])), *self.extra_headers])

    def redaction_values(self, secrets: Mapping[str, Secret]) -> list[str]:
        return [self.header_value(secrets[CREDENTIAL])]

    def credential_headers(self) -> tuple[str, ...]:
        return (self.header_name,)

    def options(self) -> dict[str, str]:
        return {"auth": "header", "header": self.name, "template": self.template}

    def validate(self) -> Self:
        validate_template(self.template)
        validate_header_name(self.name)
        validate_extra_headers(dict(self.extra_headers))
        return self

    def to_json(self) -> dict[str, Any]:
        return stored_form(self.kind, self.name, self.template, self.extra_headers)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(name=str(data["name"]), template=str(data["template"]), extra_headers=stored_extra_headers(data))


def parse_header_template(text: str) -> HeaderAuth:
    """Parse ``'Name: value with {secret}'`` into a header method, or raise InvalidService."""
    name, sep, template = text.partition(":")
    name, template = name.strip(), template.strip()
    if not sep or not HEADER_NAME.fullmatch(name):
        raise InvalidService(f"header template {text!r} must look like 'Authorization: Bearer {{secret}}'")
    validate_template(template)
    return HeaderAuth(name=name, template=template)


def build_header(*, header: str | None = None, template: str | None = None, **_: object) -> HeaderAuth:
    """``--auth header``: any header, the secret as its value unless a template says otherwise."""
    return parse_header_template(f"{header or 'Authorization'}: {template or PLACEHOLDER}")


def build_bearer(*, template: str | None = None, **_: object) -> HeaderAuth:
    """``--auth bearer``: ``Authorization: Bearer {secret}`` (a header method under another name)."""
    return HeaderAuth(name="Authorization", template=validate_template(template or "Bearer {secret}"))
