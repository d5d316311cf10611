"""Auth methods by the ``kind`` they are stored under, and the CLI's ``--auth`` choices.

A new method is one module beside this one and one entry in each table (plus its CLI options).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..errors import InvalidService
from .base import PLACEHOLDER, AuthMethod, validate_extra_headers
from .basic import BasicAuth, build_basic
from .body import BodyAuth, build_body
from .github_app import GitHubAppAuth, build_github_app
from .header import HeaderAuth, build_bearer, build_header
from .headers import HeadersAuth, build_headers
from .hmac_sign import HmacAuth, build_hmac
from .oauth2 import OAuth2Auth
from .path import PathAuth, build_path
from .query import QueryAuth, build_query
from .sigv4 import SigV4Auth, build_sigv4

METHODS: dict[str, type[AuthMethod]] = {
    cls.kind: cls
    for cls in (
        HeaderAuth,
        BasicAuth,
        QueryAuth,
        OAuth2Auth,
        SigV4Auth,
        HmacAuth,
        HeadersAuth,
        BodyAuth,
        PathAuth,
        GitHubAppAuth,
    )
}
# --auth NAME -> a builder taking the CLI's options (header, template, param); oauth2 has its own login.
BUILDERS: dict[str, Callable[..., AuthMethod]] = {
    "bearer": build_bearer,
    "header": build_header,
    "basic": build_basic,
    "query": build_query,
    "sigv4": build_sigv4,
    "hmac": build_hmac,
    "headers": build_headers,
    "body": build_body,
    "path": build_path,
    "github-app": build_github_app,
}
# The options those builders read beyond header/template/param: what a catalog entry, an export
# table and the CLI may give (each under this name).
OPTIONS = (
    "aws_region", "aws_service", "unsigned_payload", "hmac_header", "hmac_template", "hmac_parts", "hmac_separator",
    "hmac_timestamp_header", "hmac_timestamp_format", "hmac_encoding", "hmac_key_format", "hmac_key_id",
    "hmac_key_id_header", "body_field", "body_format", "path_template", "headers", "app_id", "installation_id",
    "api_url",
)  # fmt: skip


def register(cls: type[AuthMethod]) -> type[AuthMethod]:
    """Add a method under its ``kind`` (usable as a class decorator)."""
    METHODS[cls.kind] = cls
    return cls


def method_class(kind: str) -> type[AuthMethod]:
    try:
        return METHODS[kind]
    except KeyError:
        raise InvalidService(f"unknown auth method {kind!r}; known: {', '.join(sorted(METHODS))}") from None


def from_json(data: Mapping[str, Any]) -> AuthMethod:
    """The method a stored ``auth`` object describes (raises InvalidService for an unknown kind)."""
    return method_class(str(data["kind"])).from_json(data)


def from_fields(
    kind: str, name: str, template: str = PLACEHOLDER, extra_headers: tuple[tuple[str, str], ...] = ()
) -> AuthMethod:
    """A method from the stored format's four fields, unvalidated (``validated`` checks it on the way in)."""
    return from_json({"kind": kind, "name": name, "template": template, "extra_headers": extra_headers})


def build(
    choice: str,
    *,
    header: str | None = None,
    template: str | None = None,
    param: str | None = None,
    extra_headers: dict[str, str] | None = None,
    **options: Any,
) -> AuthMethod:
    """The one way the CLI, the connector catalog and imports turn an auth description into a method.

    ``options`` are the other methods' settings (``aws_region``, ``hmac_header``, ...), by the names
    the CLI, a catalog entry and an export table give them; a builder ignores what it does not use.
    """
    builder = BUILDERS.get(choice)
    if builder is None:
        raise InvalidService(f"unknown auth method {choice!r}; choose one of: {', '.join(BUILDERS)}")
    method = builder(header=header, template=template, param=param, **options)
    return method.with_extra_headers(validate_extra_headers(extra_headers or {}))
