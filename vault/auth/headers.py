"""Several headers, each a template naming a secret field: ``X-Api-Key: {secret}`` with
``X-App-Id: {app_id}``, for APIs that want two credentials on every request."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from ..errors import InvalidService
from ..secret import Secret
from .base import AuthMethod, OutgoingRequest, stored_extra_headers, validate_extra_headers, validate_header_name
from .fields import fill, require, template_fields


@dataclass(frozen=True, slots=True)
class HeadersAuth(AuthMethod):
    """``headers`` are (name, template) pairs; every field a template names is a stored secret."""

    kind: ClassVar[str] = "headers"
    headers: tuple[tuple[str, str], ...]
    extra_headers: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        return "headers " + ", ".join(f"{name}: {template}" for name, template in self.headers)

    def secret_fields(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(f for _, template in self.headers for f in template_fields(template)))

    def apply(self, request: OutgoingRequest, secrets: Mapping[str, Secret]) -> None:
        require(secrets, self.secret_fields(), "this service's headers")
        request.set_headers([*((name, fill(template, secrets)) for name, template in self.headers),
                             *self.extra_headers])  # fmt: skip

    def redaction_values(self, secrets: Mapping[str, Secret]) -> list[str]:
        if any(field not in secrets for field in self.secret_fields()):
            return []
        return [fill(template, secrets) for _, template in self.headers]

    def credential_headers(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.headers)

    def options(self) -> dict[str, Any]:
        return {"auth": "headers", "headers": [f"{name}: {template}" for name, template in self.headers]}

    def validate(self) -> Self:
        if not self.headers:
            raise InvalidService("--auth headers needs at least one --header 'Name: template with {field}'")
        names = [name.lower() for name, _ in self.headers]
        if len(set(names)) != len(names):
            raise InvalidService("each credential header may be given once")
        for name, template in self.headers:
            validate_header_name(name)
            template_fields(template)
        validate_extra_headers(dict(self.extra_headers))
        return self

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "headers": [list(pair) for pair in self.headers],
                "extra_headers": [list(pair) for pair in self.extra_headers]}  # fmt: skip

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        headers = tuple((str(name), str(template)) for name, template in data["headers"])
        return cls(headers=headers, extra_headers=stored_extra_headers(data))


def build_headers(
    *, headers: list[str] | tuple[str, ...] | None = None, header: str | None = None, **_: object
) -> HeadersAuth:
    """``--auth headers --header 'X-Api-Key: {secret}' --header 'X-App-Id: {app_id}'`` (``headers``)."""
    given = list(headers or ()) or ([header] if header else [])
    pairs = []
    for text in given:
        name, sep, template = text.partition(":")
        if not sep:
            raise InvalidService(f"header {text!r} must look like 'X-App-Id: {{app_id}}'")
        pairs.append((name.strip(), template.strip()))
    return HeadersAuth(headers=tuple(pairs)).validate()
