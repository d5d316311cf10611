"""The key in the request body: a named field of a JSON object or of a form.

The field is set in the body the upstream receives (any copy the agent sent is replaced, never
kept beside ours) and Content-Length follows. A body the proxy cannot rewrite faithfully (a
compressed one, a JSON array, a multipart form) is refused with a reason, never sent without
the key or with the key somewhere else.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self
from urllib.parse import parse_qsl, urlencode

from ..errors import CannotInject, InvalidService
from ..secret import Secret
from .base import CREDENTIAL, AuthMethod, OutgoingRequest, stored_extra_headers, validate_extra_headers

FIELD_NAME = re.compile(r"^[A-Za-z0-9_.~-]{1,64}$")
FORMATS = {"json": "application/json", "form": "application/x-www-form-urlencoded"}


@dataclass(frozen=True, slots=True)
class BodyAuth(AuthMethod):
    kind: ClassVar[str] = "body"
    field: str
    format: str = "json"
    extra_headers: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        return f"{self.format} body field {self.field}"

    def apply(self, request: OutgoingRequest, secrets: Mapping[str, Secret]) -> None:
        encoding = (request.header("Content-Encoding") or "identity").strip().lower()
        if encoding != "identity":
            raise CannotInject(f"the key goes in the body, which cannot be rewritten while {encoding}-encoded")
        body = request.body()
        if body is None:
            raise CannotInject("the key goes in the body, which is streamed; send it whole")
        content_type = (request.header("Content-Type") or "").split(";")[0].strip().lower()
        if body and content_type != FORMATS[self.format]:
            raise CannotInject(f"the key goes in a {self.format} body; send Content-Type: {FORMATS[self.format]}")
        value = secrets[CREDENTIAL].reveal()
        if self.format == "json":
            try:
                document = json.loads(body) if body else {}
            except (ValueError, UnicodeDecodeError):
                raise CannotInject("the key goes in a JSON body, and this body is not valid JSON") from None
            if not isinstance(document, dict):
                raise CannotInject("the key goes in a JSON object; this body is another kind of JSON value")
            document[self.field] = value
            new = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
        else:
            try:
                items = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body))
            except (ValueError, UnicodeDecodeError):
                raise CannotInject("the key goes in a form body, and this body is not a URL-encoded form") from None
            new = urlencode([*((k, v) for k, v in items if k != self.field), (self.field, value)]).encode()
        if not body:
            request.set_headers([("Content-Type", FORMATS[self.format])])
        request.set_body(new)
        if self.extra_headers:
            request.set_headers(self.extra_headers)

    def options(self) -> dict[str, str]:
        return {"auth": "body", "body_field": self.field, "body_format": self.format}

    def validate(self) -> Self:
        if not FIELD_NAME.fullmatch(self.field):
            raise InvalidService(f"body field name {self.field!r} must be 1-64 characters of A-Z, a-z, 0-9, _ . ~ -")
        if self.format not in FORMATS:
            raise InvalidService(f"body format must be json or form, not {self.format!r}")
        validate_extra_headers(dict(self.extra_headers))
        return self

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "field": self.field, "format": self.format,
                "extra_headers": [list(pair) for pair in self.extra_headers]}  # fmt: skip

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(field=str(data["field"]), format=str(data["format"]), extra_headers=stored_extra_headers(data))


def build_body(*, body_field: str | None = None, body_format: str | None = None, **_: object) -> BodyAuth:
    if not body_field:
        raise InvalidService("--auth body needs --body-field NAME (the JSON or form field that carries the key)")
    return BodyAuth(field=body_field, format=body_format or "json").validate()
