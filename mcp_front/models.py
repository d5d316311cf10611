"""Output schemas of the MCP tools. None of them has a field that could hold a secret,
except ``CredentialInfo.value``, filled only under a service's ``full`` reveal policy."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

CredentialState = Literal["valid", "invalid", "expired", "reauth_required", "locked", "unknown"]


class ServiceInfo(BaseModel):
    name: str
    connector: str
    auth_method: str = Field(description="How the credential is injected (header template, basic, query).")
    hosts: list[str] = Field(description="Hosts the credential may be sent to; call_service accepts only these.")
    local: bool = Field(description="Whether the service may be reached on loopback or private addresses.")
    reveal_policy: Literal["never", "masked", "full"]
    state: CredentialState
    expires_at: float | None = Field(None, description="Expiry as a Unix time, if the credential has one.")


class ServiceList(BaseModel):
    services: list[ServiceInfo]


class CredentialInfo(BaseModel):
    service_name: str
    reveal_policy: Literal["masked", "full"]
    masked: str = Field(description="Prefix and last four characters, enough to recognise the key.")
    fingerprint: str
    token_type: str
    expires_at: float | None = None
    value: str | None = Field(None, description="The credential itself; only under the 'full' reveal policy.")


class CredentialStatus(BaseModel):
    service_name: str
    state: CredentialState
    expires_at: float | None = None
    detail: str


class CallResult(BaseModel):
    status: int
    headers: dict[str, str] = Field(description="Selected response headers (content type, request id, rate limits).")
    body: Any = Field(description="Parsed JSON when the response is JSON, text otherwise, redacted.")
    body_truncated: bool = False
    body_size: int = Field(description="Size in bytes of the whole (redacted) response body.")
    redactions: int = Field(description="How many occurrences of the service's secret were scrubbed.")
    audit_id: str | None = None
    ignored_headers: list[str] = Field(
        default_factory=list, description="Request headers dropped because the proxy controls them."
    )
