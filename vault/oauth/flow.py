"""OAuth2 as the vault speaks it: configuration, the token request, the token response.

The protocol decisions (what to send, how to read the answer, when a token is due for
refresh, how long to back off) are pure functions, table-tested, with no network here: the
one network call lives in :mod:`.token_endpoint`. Token responses are read here and go
straight into the vault: no agent ever sees one (docs/security-cases.md, case 24).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote_plus, urlencode, urlsplit

from ..errors import InvalidOAuthConfig, ReauthRequired, TokenEndpointError
from ..hosts import canonical_host, is_public_address
from ..secret import Secret
from ..service import Service

Grant = Literal["refresh_token", "client_credentials"]
ClientAuth = Literal["post", "basic"]
GRANTS: tuple[Grant, ...] = ("refresh_token", "client_credentials")
REFRESH_MARGIN = 60.0  # refresh this many seconds before the provider's expiry
# Answers that mean the grant itself is dead: only a new login fixes them.
_DEAD_GRANT = frozenset({"invalid_grant", "bad_refresh_token", "invalid_client", "unauthorized_client"})


@dataclass(frozen=True, slots=True)
class OAuthConfig:
    """Everything non-secret about a service's OAuth client. The client secret lives sealed."""

    token_url: str
    client_id: str
    grant: Grant
    scopes: tuple[str, ...] = ()
    authorize_url: str | None = None
    client_auth: ClientAuth = "post"
    authorize_params: tuple[tuple[str, str], ...] = ()  # e.g. Google's access_type=offline

    def to_json(self) -> str:
        return json.dumps(
            {
                "token_url": self.token_url,
                "client_id": self.client_id,
                "grant": self.grant,
                "scopes": list(self.scopes),
                "authorize_url": self.authorize_url,
                "client_auth": self.client_auth,
                "authorize_params": [list(p) for p in self.authorize_params],
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> OAuthConfig:
        data = json.loads(text)
        return cls(
            token_url=data["token_url"],
            client_id=data["client_id"],
            grant=data["grant"],
            scopes=tuple(data["scopes"]),
            authorize_url=data["authorize_url"],
            client_auth=data["client_auth"],
            authorize_params=tuple((k, v) for k, v in data["authorize_params"]),
        )


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """A token response, read: the values are Secrets from the moment they are parsed."""

    access_token: Secret
    expires_at: float | None
    refresh_token: Secret | None
    scope: str | None

    def __repr__(self) -> str:
        return f"TokenGrant(access={self.access_token!r}, expires_at={self.expires_at!r})"


def validate_config(config: OAuthConfig, service: Service) -> OAuthConfig:
    """Refuse endpoints a secret could leak to.

    The token URL is bound to the service: named by the user at registration, stored with
    the service, and the only place its client secret and refresh token are ever sent; no
    agent input can change it. It need not be one of the service's API hosts (GitHub's token
    endpoint is on github.com, its API on api.github.com), and adding it there would send the
    access token to it on every call. It must be https, and loopback or private only for a
    ``--local`` service.
    """
    if config.grant not in GRANTS:
        raise InvalidOAuthConfig(f"unknown grant {config.grant!r}; use one of {', '.join(GRANTS)}")
    if not config.client_id or any(c in config.client_id for c in "\r\n\0"):
        raise InvalidOAuthConfig("the client id is empty or contains a line break")
    for label, url in (("token", config.token_url), ("authorization", config.authorize_url)):
        if url is None:
            continue
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname or parts.username or parts.password or parts.fragment:
            raise InvalidOAuthConfig(f"the {label} URL must be an https:// URL without user info or fragment: {url}")
        host = canonical_host(parts.hostname)
        loopback_name = host == "localhost" or host.endswith(".localhost")
        if not service.local and (loopback_name or not is_public_address(host)):
            raise InvalidOAuthConfig(
                f"the {label} URL points at a private or loopback address ({host}); "
                "only a service added with --local may do that"
            )
    if config.grant == "refresh_token" and config.authorize_url is None:
        raise InvalidOAuthConfig("the refresh_token grant needs an authorization URL (--authorize-url) to log in")
    for name, value in config.authorize_params:
        if name in {"state", "code_challenge", "code_challenge_method", "redirect_uri", "client_id"}:
            raise InvalidOAuthConfig(f"the authorization parameter {name!r} is set by clavis-mcp itself")
        if any(c in name + value for c in "\r\n\0"):
            raise InvalidOAuthConfig("authorization parameters must not contain line breaks")
    return config


# -- the authorization-code flow (RFC 6749 4.1 with RFC 7636 PKCE) ---------------------------


@dataclass(frozen=True, slots=True)
class Pkce:
    verifier: str
    challenge: str

    @classmethod
    def new(cls) -> Pkce:
        verifier = secrets.token_urlsafe(48)
        digest = hashlib.sha256(verifier.encode("ascii")).digest()
        return cls(verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii"))

    def __repr__(self) -> str:
        return "Pkce(<hidden>)"


def authorization_url(config: OAuthConfig, redirect_uri: str, state: str, pkce: Pkce) -> str:
    if config.authorize_url is None:
        raise InvalidOAuthConfig("this service has no authorization URL; it uses the client_credentials grant")
    query = {
        "response_type": "code",
        "client_id": config.client_id,
        "redirect_uri": redirect_uri,
        "state": state,
        "code_challenge": pkce.challenge,
        "code_challenge_method": "S256",
    }
    if config.scopes:
        query["scope"] = " ".join(config.scopes)
    query.update(dict(config.authorize_params))
    separator = "&" if urlsplit(config.authorize_url).query else "?"
    return config.authorize_url + separator + urlencode(query)


# -- token requests and responses ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """A form to POST to the token endpoint. Holds secrets: never logged, never printed."""

    url: str
    form: dict[str, str]
    headers: dict[str, str]

    def __repr__(self) -> str:
        return f"TokenRequest({self.url!r}, grant_type={self.form.get('grant_type')!r})"


def token_request(config: OAuthConfig, client_secret: Secret | None, **grant: str) -> TokenRequest:
    """The form for one grant (``grant_type=...`` plus its fields), with the client authenticated."""
    form = dict(grant)
    if config.scopes and form.get("grant_type") == "client_credentials":
        form["scope"] = " ".join(config.scopes)
    headers = {"Accept": "application/json"}  # GitHub answers form-encoded without it
    if config.client_auth == "basic" and client_secret is not None:
        pair = f"{_form_escape(config.client_id)}:{_form_escape(client_secret.reveal())}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
    else:
        form["client_id"] = config.client_id
        if client_secret is not None:
            form["client_secret"] = client_secret.reveal()
    return TokenRequest(config.token_url, form, headers)


def parse_token_response(service: str, status: int, body: bytes, now: float) -> TokenGrant:
    """Read a token endpoint's answer; raise ReauthRequired for a dead grant, TokenEndpointError else.

    Error text quotes only the provider's ``error`` code, never the body: a body can hold tokens.
    """
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise TokenEndpointError(f"the token endpoint of {service!r} answered HTTP {status} without a JSON object")
    error = data.get("error")
    if isinstance(error, str) and error:
        code = error if error.replace("_", "").isalnum() else "unreadable error code"
        if code in _DEAD_GRANT:
            raise ReauthRequired(service, f"the provider answered {code}")
        raise TokenEndpointError(f"the token endpoint of {service!r} refused the request: {code} (HTTP {status})")
    if status != 200:
        raise TokenEndpointError(f"the token endpoint of {service!r} answered HTTP {status}; try again later")
    access = data.get("access_token")
    token_type = str(data.get("token_type", "bearer")).lower()
    if not isinstance(access, str) or not access or any(c in access for c in "\r\n\0 "):
        raise TokenEndpointError(f"the token endpoint of {service!r} sent no usable access_token")
    if token_type != "bearer":
        raise TokenEndpointError(f"the token endpoint of {service!r} sent a {token_type!r} token; only bearer works")
    expires_in = data.get("expires_in")
    expires_at = None
    if isinstance(expires_in, int | float | str) and str(expires_in).isdigit():
        expires_at = now + int(expires_in)
    refresh = data.get("refresh_token")
    return TokenGrant(
        access_token=Secret(access),
        expires_at=expires_at,
        refresh_token=Secret(refresh) if isinstance(refresh, str) and refresh else None,
        scope=data.get("scope") if isinstance(data.get("scope"), str) else None,
    )


def needs_refresh(expires_at: float | None, now: float, margin: float = REFRESH_MARGIN) -> bool:
    """Due ``margin`` seconds before expiry, so no request leaves with a token about to die in flight."""
    return expires_at is not None and expires_at - now <= margin


def backoff_delay(failures: int) -> float:
    """Seconds to leave a failing token endpoint alone: 2, 4, 8 ... capped at 5 minutes."""
    return float(min(2 ** max(failures, 1), 300))


def _form_escape(value: str) -> str:
    """RFC 6749 2.3.1: client id and secret are form-urlencoded before Basic encoding."""
    return quote_plus(value)
