"""OAuth 2.0 (authorization code or client credentials): the access token as a bearer header.

The access token is the service's ``credential``; the refresh token and client secret are
secret fields too, so a response that echoes either is redacted. Getting and refreshing tokens
is :mod:`vault.oauth_refresh`'s; this method only puts the current token on the request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from ..errors import InvalidService
from .base import CREDENTIAL, stored_extra_headers
from .header import HeaderAuth

# vault/oauth/flow.py's GRANTS (it imports the service layer, so it cannot be imported here; a test keeps
# the two equal): ``refresh_token`` after an authorization-code login, or ``client_credentials``.
GRANTS = ("refresh_token", "client_credentials")


@dataclass(frozen=True, slots=True)
class OAuth2Auth(HeaderAuth):
    kind: ClassVar[str] = "oauth2"
    name: str = "Authorization"
    template: str = "Bearer {secret}"
    grant: str = "refresh_token"

    def describe(self) -> str:
        return f"oauth2 ({self.grant}): bearer access token, refreshed automatically"

    def secret_fields(self) -> tuple[str, ...]:
        return (CREDENTIAL, "refresh_token", "client_secret")

    def validate(self) -> Self:
        if self.grant not in GRANTS:
            raise InvalidService(f"OAuth grant must be one of {', '.join(GRANTS)}, not {self.grant!r}")
        return HeaderAuth.validate(self)

    def to_json(self) -> dict[str, Any]:
        return {**HeaderAuth.to_json(self), "grant": self.grant}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            name=str(data["name"]),
            template=str(data["template"]),
            extra_headers=stored_extra_headers(data),
            grant=str(data["grant"]),
        )
