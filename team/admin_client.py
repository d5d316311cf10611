"""The admin verbs' HTTP client for a team server (``CLAVIS_API_URL`` + ``CLAVIS_API_KEY``).

One small synchronous client, so each ``clavis-mcp team ...`` verb is one call and one line of
output. Every failure becomes one :class:`TeamRequestFailed` whose message says what went wrong
and what to do (server unreachable, TLS, 401, 403, 404, 409, 429, ...). The key is a
:class:`Secret`: the client's repr, its errors and its logs never show it. The server's
``detail`` is shown cut short and without control characters: it is text from the network.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import ssl
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import certifi
import httpx

from clavis_mcp.vault import Secret, Service
from clavis_mcp.vault.errors import TeamRequestFailed
from clavis_mcp.vault.service import service_definition as stored_form

URL_ENV = "CLAVIS_API_URL"
KEY_ENV = "CLAVIS_API_KEY"
CA_ENV = "CLAVIS_UPSTREAM_CA"
TIMEOUT_SECONDS = 30.0
DETAIL_LIMIT = 300
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def check_url(url: str) -> str:
    """An http(s) base URL; plain http only to loopback, where the key does not cross a network."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TeamRequestFailed(f"{URL_ENV}={url!r} is not a URL such as https://clavis.example.com")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise TeamRequestFailed(
            f"{URL_ENV} uses plain http:// to {parts.hostname}: the key would cross the network in clear; "
            "use the server's https:// address"
        )
    return url.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def trust() -> ssl.SSLContext:
    """System and certifi CAs, plus CLAVIS_UPSTREAM_CA (a private CA in front of the server)."""
    context = ssl.create_default_context(cafile=certifi.where())
    context.load_default_certs()
    extra = os.environ.get(CA_ENV)
    if extra:
        try:
            context.load_verify_locations(cafile=extra)
        except (OSError, ssl.SSLError) as exc:
            raise TeamRequestFailed(f"{CA_ENV}={extra} is not a readable PEM CA file ({exc})") from None
    return context


def path_segment(value: str) -> str:
    """A name as one URL path segment: a '/' or '..' in it cannot reach another endpoint."""
    return quote(value, safe="")


class AdminClient:
    """``AdminClient.from_env()``; one method per endpoint, each returning the decoded JSON."""

    def __init__(self, url: str, key: Secret, *, timeout: float = TIMEOUT_SECONDS) -> None:
        self.url = check_url(url)
        self._key = key
        verify: ssl.SSLContext | bool = trust() if self.url.startswith("https:") else True
        self._http = httpx.Client(base_url=self.url, verify=verify, timeout=timeout, trust_env=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AdminClient:
        env = os.environ if env is None else env
        url, key = env.get(URL_ENV, "").strip(), env.get(KEY_ENV, "").strip()
        if not url:
            raise TeamRequestFailed(
                f"{URL_ENV} is not set: point it at the team server (e.g. the line `clavis-mcp team dev` prints)"
            )
        if not key:
            raise TeamRequestFailed(f"{KEY_ENV} is not set: use an admin key (`clavis-mcp team dev` prints one)")
        return cls(url, Secret(key))

    def __repr__(self) -> str:
        return f"AdminClient(url={self.url!r}, key=[secure])"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # The endpoints (the team server's contract).
    def health(self) -> Any:
        return self.request("GET", "/healthz")

    def services(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/v1/services").get("services", []))

    def add_service(self, definition: dict[str, Any], secret: Secret) -> Any:
        return self.request("POST", "/v1/admin/services", {"definition": definition, "secret": secret.reveal()})

    def rotate(self, name: str, secret: Secret) -> Any:
        return self.request("PUT", f"/v1/admin/services/{path_segment(name)}/secret", {"secret": secret.reveal()})

    def remove(self, name: str) -> Any:
        return self.request("DELETE", f"/v1/admin/services/{path_segment(name)}")

    def add_user(self, email: str, password: Secret, role: str) -> Any:
        body = {"email": email, "password": password.reveal(), "role": role}
        return self.request("POST", "/v1/admin/users", body)

    def users(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/v1/admin/users").get("users", []))

    def remove_user(self, email: str, *, keep_keys: bool = False) -> dict[str, Any]:
        """Remove the user; the server revokes the API keys they made unless ``keep_keys``, and names them."""
        params = {"keep_keys": "true"} if keep_keys else None
        return dict(self.request("DELETE", f"/v1/admin/users/{path_segment(email)}", params=params))

    def change_user(
        self, email: str, *, role: str | None = None, password: Secret | None = None, sign_out: bool = False
    ) -> dict[str, Any]:
        """A new role and/or password, or only a sign-out; the server ends every login of the user."""
        body: dict[str, Any] = {"sign_out": True} if sign_out else {}
        if role is not None:
            body["role"] = role
        if password is not None:
            body["password"] = password.reveal()
        return dict(self.request("PATCH", f"/v1/admin/users/{path_segment(email)}", body))

    def create_key(self, name: str, services: list[str], expires_in: int | None, role: str) -> dict[str, Any]:
        body = {"name": name, "services": services, "expires_in_seconds": expires_in, "role": role}
        return dict(self.request("POST", "/v1/admin/keys", body))

    def keys(self) -> Any:
        return self.request("GET", "/v1/admin/keys")

    def revoke_key(self, name: str) -> Any:
        return self.request("DELETE", f"/v1/admin/keys/{path_segment(name)}")

    def audit(self, filters: Mapping[str, object]) -> list[dict[str, Any]]:
        params = {k: str(v) for k, v in filters.items() if v is not None}
        return list(self.request("GET", "/v1/audit", params=params).get("records", []))

    def audit_verify(self) -> dict[str, Any]:
        return dict(self.request("GET", "/v1/audit/verify"))

    def request(self, method: str, path: str, body: object = None, *, params: Mapping[str, str] | None = None) -> Any:
        """One request; the answer's JSON, ``{}`` for an empty success, or a TeamRequestFailed."""
        headers = {"Authorization": f"Bearer {self._key.reveal()}", "Accept": "application/json"}
        try:
            response = self._http.request(
                method, path, json=body if body is not None else None, params=params, headers=headers
            )
        except httpx.TimeoutException:
            raise TeamRequestFailed(
                f"the team server at {self.url} did not answer within {self._http.timeout.read} s; "
                "check that it is running and reachable"
            ) from None
        except httpx.TransportError as exc:
            raise TeamRequestFailed(_transport_message(self.url, exc)) from None
        if response.status_code >= 400:
            raise TeamRequestFailed(_status_message(response), response.status_code)
        if not response.content:
            return {}
        try:
            return response.json()
        except ValueError:
            raise TeamRequestFailed(
                f"the team server answered {method} {path} with something that is not JSON; "
                f"is {URL_ENV}={self.url} a clavis team server?"
            ) from None


def _transport_message(url: str, exc: BaseException) -> str:
    tls = find_tls_error(exc)
    if tls is not None:
        reason = getattr(tls, "verify_message", None) or getattr(tls, "reason", None) or type(tls).__name__
        return (
            f"TLS with the team server at {url} failed ({clean(str(reason))}): if it uses a private CA, "
            f"set {CA_ENV} to that CA's PEM file"
        )
    return (
        f"cannot reach the team server at {url} ({clean(str(exc)) or type(exc).__name__}); check {URL_ENV} "
        "and that the server (clavis-mcp team serve, or team dev) is running"
    )


def find_tls_error(exc: BaseException | None) -> ssl.SSLError | None:
    """The TLS error under an httpx transport error (its cause chain), if there is one."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, ssl.SSLError):
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


_HINTS = {
    401: "the server refused CLAVIS_API_KEY (unknown, expired or revoked); ask an admin for a new key",
    403: "this key is not allowed to do that; admin verbs need an admin key",
    404: "not found",
    409: "conflict: it already exists or was changed meanwhile",
}


def _status_message(response: httpx.Response) -> str:
    status = response.status_code
    detail = response_detail(response)
    if status == 429:
        retry = response.headers.get("Retry-After", "").strip()
        wait = f"retry in {retry} s" if retry.isdigit() else "retry later"
        return f"the team server is limiting requests (429): {detail or 'too many requests'}; {wait}"
    hint = _HINTS.get(status)
    if hint:
        return f"{hint} ({status}{': ' + detail if detail else ''})"
    if status >= 500:
        return f"the team server failed ({status}{': ' + detail if detail else ''}); see its log"
    return f"the team server refused the request ({status}{': ' + detail if detail else ''})"


def response_detail(response: httpx.Response) -> str:
    """The server's ``detail`` (or body) as one short printable line."""
    try:
        data = response.json()
    except ValueError:
        return clean(response.text)
    detail = data.get("detail", "") if isinstance(data, dict) else data
    return clean(detail if isinstance(detail, str) else json.dumps(detail))


def clean(text: str) -> str:
    """Server text made one short printable line."""
    text = _CONTROL.sub(" ", text).strip()
    return text if len(text) <= DETAIL_LIMIT else text[: DETAIL_LIMIT - 1] + "…"


def service_definition(service: Service) -> dict[str, Any]:
    """A service as the local vault serialises it, with its name: what the server stores."""
    return {"name": service.name, **stored_form(service)}
