"""A query parameter set to the secret (``?api_key=...``), replacing any the client sent."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from ..errors import InvalidService
from ..secret import Secret
from .base import (
    CREDENTIAL,
    PLACEHOLDER,
    AuthMethod,
    OutgoingRequest,
    stored_extra_headers,
    stored_form,
    validate_extra_headers,
)

QUERY_PARAM = re.compile(r"^[A-Za-z0-9._~-]{1,64}$")


@dataclass(frozen=True, slots=True)
class QueryAuth(AuthMethod):
    """Parameter ``name`` set to the secret; ``template`` is stored for the format's sake, always ``{secret}``."""

    kind: ClassVar[str] = "query"
    name: str
    template: str = PLACEHOLDER
    extra_headers: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        return f"query parameter {self.name}"

    def apply(self, request: OutgoingRequest, secrets: Mapping[str, Secret]) -> None:
        kept = [(k, v) for k, v in request.query if k != self.name]
        request.set_query([*kept, (self.name, secrets[CREDENTIAL].reveal())])
        if self.extra_headers:
            request.set_headers(self.extra_headers)

    def options(self) -> dict[str, str]:
        return {"auth": "query", "param": self.name}

    def validate(self) -> Self:
        if not QUERY_PARAM.fullmatch(self.name):
            raise InvalidService(f"invalid query parameter name {self.name!r}")
        validate_extra_headers(dict(self.extra_headers))
        return self

    def to_json(self) -> dict[str, Any]:
        return stored_form(self.kind, self.name, self.template, self.extra_headers)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        template = str(data.get("template", PLACEHOLDER))
        return cls(name=str(data["name"]), template=template, extra_headers=stored_extra_headers(data))


def build_query(*, param: str | None = None, **_: object) -> QueryAuth:
    if not param or not QUERY_PARAM.fullmatch(param):
        raise InvalidService(f"query auth needs a parameter name such as 'key' or 'api_key', not {param!r}")
    return QueryAuth(name=param)
