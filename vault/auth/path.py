"""The key in the URL path, for APIs that want it there (``/bot{secret}/getMe`` of bot APIs).

The template is a path prefix with ``{secret}`` as one whole segment or the end of one
(``/bot{secret}/``, ``/v1/{secret}/``). Whatever the agent put where the key goes (a
placeholder, a dummy token, nothing) is replaced. A path that does not begin with the template's
text is refused: the key is never put elsewhere. Records show the path with ``{secret}`` in
place of the key (the audit log reads the path after the request has left, and the proxy gives
it the shown form).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self
from urllib.parse import quote

from ..errors import CannotInject, InvalidService
from ..secret import Secret
from .base import (
    CONTROL,
    CREDENTIAL,
    PLACEHOLDER,
    AuthMethod,
    OutgoingRequest,
    stored_extra_headers,
    validate_extra_headers,
)

SEGMENT_SAFE = "!$&'()*+,;=:@-._~"  # RFC 3986 pchar without percent-encoding
PLAIN_PATH = re.compile(r"^/[A-Za-z0-9!$&'()*+,;=:@._~/-]*$")


@dataclass(frozen=True, slots=True)
class PathAuth(AuthMethod):
    kind: ClassVar[str] = "path"
    template: str
    extra_headers: tuple[tuple[str, str], ...] = ()

    @property
    def prefix(self) -> str:
        return self.template.partition(PLACEHOLDER)[0]

    @property
    def suffix(self) -> str:
        return self.template.partition(PLACEHOLDER)[2]

    def describe(self) -> str:
        return f"key in the path {self.template}"

    def apply(self, request: OutgoingRequest, secrets: Mapping[str, Secret]) -> None:
        path = request.path
        if not path.startswith(self.prefix):
            raise CannotInject(f"the key goes in the path as {self.template}...; this path does not start with "
                               f"{self.prefix}")  # fmt: skip
        end = path.find("/", len(self.prefix))
        rest = path[end:] if end >= 0 else ""
        if not rest.startswith(self.suffix):
            raise CannotInject(f"the key goes in the path as {self.template}...; this path does not continue so")
        key = quote(secrets[CREDENTIAL].reveal(), safe=SEGMENT_SAFE)
        request.set_path(self.prefix + key + rest, shown=self.prefix + PLACEHOLDER + rest)
        if self.extra_headers:
            request.set_headers(self.extra_headers)

    def options(self) -> dict[str, str]:
        return {"auth": "path", "path_template": self.template}

    def validate(self) -> Self:
        if self.template.count(PLACEHOLDER) != 1 or CONTROL.search(self.template):
            raise InvalidService("a path template holds {secret} once, e.g. /bot{secret}/")
        if not PLAIN_PATH.fullmatch(self.prefix + self.suffix) or "//" in self.template:
            raise InvalidService(
                f"path template {self.template!r} must be a plain absolute path such as /bot{{secret}}/"
            )
        if self.suffix not in ("", "/") and not self.suffix.startswith("/"):
            raise InvalidService("in a path template, {secret} ends a segment: /bot{secret}/ or /key/{secret}/")
        validate_extra_headers(dict(self.extra_headers))
        return self

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "template": self.template,
                "extra_headers": [list(pair) for pair in self.extra_headers]}  # fmt: skip

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(template=str(data["template"]), extra_headers=stored_extra_headers(data))


def build_path(*, path_template: str | None = None, **_: object) -> PathAuth:
    if not path_template:
        raise InvalidService("--auth path needs --path-template, e.g. '/bot{secret}/'")
    return PathAuth(template=path_template).validate()
