"""Output schemas of the MCP tools.

None of them has a field that could hold a secret, except ``CredentialInfo.value``, filled
only under a service's ``full`` reveal policy (and, where the client can ask, after the user
said yes). ``ServiceInfo`` in particular has no value field at all: list_services cannot leak
what its schema cannot carry.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

CredentialState = Literal["valid", "invalid", "expired", "reauth_required", "locked", "unknown"]
RevealPolicy = Literal["never", "masked", "full"]
EXPIRES_AT = "When the credential expires (ISO 8601, UTC): a key's stored expiry, or an OAuth access token's."
EXPIRY = "The expiry in words, e.g. 'expires in 11 h 42 min' or 'expired 3 days ago'."
EXPIRED = "True once the expiry has passed."


class RateLimit(BaseModel):
    """The provider's rate-limit headers as last seen on a response for this service."""

    remaining: int | None = Field(None, description="Requests (or tokens) left in the current window.")
    limit: int | None = Field(None, description="Size of the window's allowance.")
    reset_at: str | None = Field(None, description="When the window resets (ISO 8601, UTC).")
    resets: str | None = Field(None, description="The reset in words, e.g. 'resets in 34 minutes'.")
    seconds_to_reset: float | None = Field(None, description="Seconds from now until the window resets.")
    header: str | None = Field(None, description="The response header the figures came from.")
    observed_at: str | None = Field(None, description="When the headers were seen (ISO 8601, UTC).")


class ServiceInfo(BaseModel):
    name: str = Field(description="The name to pass to the other tools.")
    connector: str = Field(description="Provider type (openai, github, stripe, generic, ...).")
    auth_method: str = Field(description="How the credential is injected (header template, basic, query).")
    hosts: list[str] = Field(description="Hosts the credential may be sent to; call_service accepts only these.")
    allowed_methods: list[str] = Field(description="HTTP methods call_service accepts for this service.")
    allowed_paths: list[str] = Field(description="URL path prefixes the credential may be used on.")
    local: bool = Field(description="Whether the service may be reached on loopback or private addresses.")
    reveal_policy: RevealPolicy = Field(description="What get_credentials may show: never, masked or full.")
    confirm_writes: bool = Field(description="Whether the user is asked before a mutating call goes out.")
    state: CredentialState = Field(description="What is known about the credential without calling the provider.")
    expires_at: str | None = Field(None, description=EXPIRES_AT)
    expiry: str | None = Field(None, description=EXPIRY)
    expired: bool = Field(False, description=EXPIRED)
    last_used_at: str | None = Field(None, description="Last time a request carried it (ISO 8601, UTC).")
    last_used: str | None = Field(None, description="The last use in words, e.g. '2 minutes ago'.")


class ServiceList(BaseModel):
    services: list[ServiceInfo] = Field(
        description="This page of the registered services (those whose name contains match), sorted by name."
    )
    total: int = Field(description="How many services match, over all pages.")
    next_cursor: str | None = Field(None, description="Pass it as cursor to get the next page; null on the last page.")


class CredentialInfo(BaseModel):
    service_name: str
    reveal_policy: Literal["masked", "full"]
    masked: str = Field(
        description="The last four characters of a credential of 24 characters or more; nothing (…****) of a shorter."
    )
    fingerprint: str = Field(
        description="Keyed HMAC-SHA256 of the value under the vault's key (hmac:…): tells keys apart, reveals nothing."
    )
    token_type: str = Field(description="How the credential is used: header, basic or query.")
    state: CredentialState
    expires_at: str | None = Field(None, description=EXPIRES_AT)
    expiry: str | None = Field(None, description=EXPIRY)
    expired: bool = Field(False, description=EXPIRED)
    value: str | None = Field(None, description="The credential itself; only under the 'full' reveal policy.")


class LastCheck(BaseModel):
    checked_at: str = Field(description="When the live check ran (ISO 8601, UTC).")
    state: CredentialState = Field(description="What the check concluded.")
    status: int | None = Field(None, description="HTTP status the provider answered, if it answered.")
    detail: str = Field("", description="The reason, in words.")


class CredentialStatus(BaseModel):
    service_name: str
    state: CredentialState
    expires_at: str | None = Field(None, description=EXPIRES_AT)
    seconds_to_expiry: float | None = Field(None, description="Seconds left before expiry (negative: expired).")
    expiry: str | None = Field(None, description=EXPIRY)
    expired: bool = Field(False, description=EXPIRED)
    detail: str = Field(description="What the state means and what to do about it.")
    last_check: LastCheck | None = Field(None, description="The latest live check, if one ran.")
    rate_limit: RateLimit | None = Field(None, description="Latest rate-limit figures seen for this service.")


class BinaryBody(BaseModel):
    """A summary of a response body that is not text: the model gets facts, not bytes."""

    content_type: str
    size: int = Field(description="Size in bytes of the whole body.")
    sha256: str = Field(description="Hex SHA-256 of the whole (redacted) body.")


class Redirect(BaseModel):
    location: str = Field(description="Where the server redirected to, as the proxy returned it (redacted).")
    followed: bool = Field(description="False: another origin, not followed; call it yourself if you trust it.")


def lean_optionals(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """Each optional field of ``model``'s ``schema`` as one schema that also allows null: a nested
    model written out in place, ``{"type": ["null", "integer"]}`` for ``int | None``, where pydantic
    writes ``anyOf`` of null and the type or a ``$ref``. It accepts exactly what they accept (the
    nested models' keywords check only objects, so null passes them), and each ``anyOf`` branch and
    ``$ref`` is a schema a client's validator enters per result, the ``$ref`` resolved each time:
    the Python SDK's client check of a call_service result, 95 -> 74 µs (its cached validator, in a
    loop). A nested model's description follows the field's."""
    for name, field in schema["properties"].items():
        options = field.get("anyOf")
        if options is None:
            continue
        nested = next((a for a in get_args(model.model_fields[name].annotation) if _is_model(a)), None)
        if nested is None:
            if all(option.keys() == {"type"} for option in options):  # else a type's own keywords: left as is
                del field["anyOf"]
                field["type"] = ["null", *(option["type"] for option in options if option != {"type": "null"})]
            continue
        del field["anyOf"]
        inline = nested.model_json_schema()
        lean_optionals(inline, nested)
        description = " ".join(d for d in (field.pop("description", None), inline.pop("description", None)) if d)
        field.update({**inline, "type": ["null", inline["type"]], "description": description})


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


class CallResult(BaseModel):
    model_config = ConfigDict(json_schema_extra=lean_optionals)

    status: int = Field(description="HTTP status of the final response.")
    url: str = Field(description="The URL that gave the final response (differs after a same-origin redirect).")
    headers: dict[str, str] = Field(
        description="Allowlisted response headers (content type, request id, rate limits, Retry-After, Location)."
    )
    body: Any = Field(description="Parsed JSON when the response is JSON, text otherwise, redacted; null if binary.")
    binary: BinaryBody | None = Field(None, description="Set instead of body when the response is not text.")
    body_truncated: bool = Field(False, description="True when body holds only the first body_limit bytes.")
    body_size: int = Field(description="Size in bytes of the whole (redacted) response body.")
    body_limit: int = Field(description="Most bytes of body returned to you; the rest is cut.")
    redirect: Redirect | None = Field(None, description="A redirect that was not followed, with its Location.")
    rate_limit: RateLimit | None = Field(None, description="Rate-limit figures from this response's headers.")
    redactions: int = Field(description="How many occurrences of the service's secret were scrubbed.")
    audit_id: str | None = Field(None, description="Id of the audit record of this request.")
    approved_by: str | None = Field(
        None,
        description="Who approved this request when it waited for a person (cli, the page, or the user when "
        "the MCP client asked), as the audit record says; null when it needed no approval.",
    )
    ignored_headers: list[str] = Field(
        default_factory=list, description="Request headers dropped because the proxy controls them."
    )
