"""A GitHub App installation: a short-lived RS256 JWT from the App's private key, exchanged for an
installation access token, which goes on each request as ``Authorization: Bearer``.

The private key is the service's ``credential`` (its PEM, base64-encoded so that it is one line);
the installation token is the secret field ``installation_token``, written to the vault on each
exchange so that responses are redacted of it like any stored secret. The JWT holds ``iat`` (60 s
back, for clock drift), ``exp`` (9 minutes on, under GitHub's 10) and ``iss`` (the App's id).

Exchanges are single-flight within a process: however many requests find the token due at once,
one exchange runs and the others wait for it and use its token. A token is due 5 minutes before
the ``expires_at`` GitHub gave; a process that starts with a stored token of unknown age
exchanges once before using it. Two processes sharing a vault may each exchange once; GitHub
accepts several live installation tokens, so neither invalidates the other.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Self

from ..dialing import Resolver, checked_address, upstream_context
from ..errors import ClavisError, DialRefused, InvalidService, TokenEndpointError
from ..secret import Secret
from .base import CONTROL, CREDENTIAL, AuthMethod, OutgoingRequest, stored_extra_headers, validate_extra_headers
from .fields import require

if TYPE_CHECKING:
    from ..store import Vault

TOKEN = "installation_token"
REFRESH_MARGIN = 300.0  # seconds before expires_at at which a token is exchanged again
JWT_BACKDATE, JWT_LIFETIME = 60, 540
API_URL = re.compile(r"^https://[A-Za-z0-9.-]+(:\d{1,5})?(/[A-Za-z0-9._~/-]*)?$")
NUMBER = re.compile(r"^[0-9]{1,20}$|^Iv[0-9A-Za-z.]{1,40}$")  # an App id, or its client id (Iv1.abc...)

# (vault, service) -> (token fingerprint, expires_at) as this process last exchanged or saw it.
_expiry: weakref.WeakKeyDictionary[Vault, dict[str, tuple[str, float]]] = weakref.WeakKeyDictionary()
_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = weakref.WeakKeyDictionary()


def now() -> float:
    return time.time()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def private_key_pem(secret: Secret) -> bytes:
    """The stored key as PEM: stored base64-encoded (one line), or as PEM with literal ``\\n``."""
    value = secret.reveal()
    if value.startswith("-----BEGIN"):
        return value.replace("\\n", "\n").encode()
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidService("the stored GitHub App private key is not base64 of a PEM file; add it again") from None


def app_jwt(app_id: str, key: Secret, moment: float) -> str:
    """``header.payload.signature``, RS256 over the App id and a 10-minute window."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    try:
        private = serialization.load_pem_private_key(private_key_pem(key), password=None)
    except (ValueError, TypeError):
        raise InvalidService("the stored GitHub App private key is not an unencrypted PEM key; add it again") from None
    if not isinstance(private, rsa.RSAPrivateKey):
        raise InvalidService("a GitHub App private key is an RSA key")
    issued = int(moment) - JWT_BACKDATE
    payload = {"iat": issued, "exp": issued + JWT_BACKDATE + JWT_LIFETIME, "iss": app_id}
    head = _b64url(json.dumps({"alg": "RS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = _b64url(json.dumps(payload, separators=(",", ":")).encode())
    signature = private.sign(f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{head}.{body}.{_b64url(signature)}"


@dataclass(frozen=True, slots=True)
class GitHubAppAuth(AuthMethod):
    kind: ClassVar[str] = "github-app"
    exchanges_tokens: ClassVar[bool] = True
    revealed_field: ClassVar[str | None] = TOKEN  # the private key can mint tokens for every installation
    revealed_as: ClassVar[str] = "a 1-hour installation token (never the App's private key)"
    app_id: str
    installation_id: str
    api_url: str = "https://api.github.com"
    extra_headers: tuple[tuple[str, str], ...] = ()

    @property
    def token_url(self) -> str:
        return f"{self.api_url.rstrip('/')}/app/installations/{self.installation_id}/access_tokens"

    def describe(self) -> str:
        return f"GitHub App {self.app_id}, installation {self.installation_id}: bearer installation token"

    def secret_fields(self) -> tuple[str, ...]:
        return (CREDENTIAL, TOKEN)

    def optional_fields(self) -> tuple[str, ...]:
        return (TOKEN,)  # exchanged on first use

    def apply(self, request: OutgoingRequest, secrets: Mapping[str, Secret]) -> None:
        require(secrets, (TOKEN,), "a GitHub App service (its installation token was not exchanged)")
        request.set_headers([("Authorization", f"Bearer {secrets[TOKEN].reveal()}"), *self.extra_headers])

    def redaction_values(self, secrets: Mapping[str, Secret]) -> list[str]:
        return [f"Bearer {secrets[TOKEN].reveal()}"] if TOKEN in secrets else []

    def credential_headers(self) -> tuple[str, ...]:
        return ("Authorization",)

    def options(self) -> dict[str, str]:
        return {"auth": "github-app", "app_id": self.app_id, "installation_id": self.installation_id,
                "api_url": self.api_url}  # fmt: skip

    def validate(self) -> Self:
        if not NUMBER.fullmatch(self.app_id) or not self.installation_id.isdigit() or len(self.installation_id) > 20:
            raise InvalidService("a GitHub App needs its numeric App id (or client id) and installation id")
        if not API_URL.fullmatch(self.api_url):
            raise InvalidService(
                f"GitHub API URL {self.api_url!r} must be https://host[/path], e.g. https://api.github.com"
            )
        validate_extra_headers(dict(self.extra_headers))
        return self

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "app_id": self.app_id, "installation_id": self.installation_id,
                "api_url": self.api_url, "extra_headers": [list(p) for p in self.extra_headers]}  # fmt: skip

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(app_id=str(data["app_id"]), installation_id=str(data["installation_id"]),
                   api_url=str(data["api_url"]), extra_headers=stored_extra_headers(data))  # fmt: skip

    async def refresh(
        self,
        vault: Vault,
        name: str,
        secrets: Mapping[str, Secret],
        *,
        local: bool,
        resolver: Resolver | None = None,
        on_exchange: Callable[[str | None], None] | None = None,
    ) -> bool:
        """Exchange for a new installation token if the current one is due; True if one was stored.

        ``on_exchange`` hears of each exchange this call made: None once the token is stored, or
        the reason it failed (never the token); the proxy audits it."""
        if not _due(vault, name, secrets.get(TOKEN)):
            return False
        async with _lock(name):
            current = _current_token(vault, name)
            if not _due(vault, name, current):
                return True  # another request of this process exchanged while we waited
            try:
                token, expires = await exchange(self, name, secrets[CREDENTIAL], local=local, resolver=resolver)
            except ClavisError as exc:
                if on_exchange is not None:
                    on_exchange(str(exc))
                raise
            vault.set_secret(name, TOKEN, token)
            _expiry.setdefault(vault, {})[name] = (vault.keyed(token).fingerprint, expires)
            if on_exchange is not None:
                on_exchange(None)
            return True


def _current_token(vault: Vault, name: str) -> Secret | None:
    from ..errors import UnknownService

    try:
        return vault.secret(name, TOKEN)
    except UnknownService:
        return None


def _due(vault: Vault, name: str, token: Secret | None) -> bool:
    if token is None:
        return True
    known = _expiry.get(vault, {}).get(name)
    return known is None or known[0] != vault.keyed(token).fingerprint or known[1] - REFRESH_MARGIN <= now()


def _lock(name: str) -> asyncio.Lock:
    per_loop = _locks.setdefault(asyncio.get_running_loop(), {})
    return per_loop.setdefault(name, asyncio.Lock())


async def exchange(
    method: GitHubAppAuth, name: str, key: Secret, *, local: bool, resolver: Resolver | None = None
) -> tuple[Secret, float]:
    """POST the App's JWT to the installation's token URL; the token and its expiry.

    Dialled as the OAuth token endpoint is: the name resolved here, a private address refused
    unless the service is local, the checked address dialled with the name kept for TLS.
    """
    import httpx

    url = httpx.URL(method.token_url)
    try:
        address = await checked_address(url.host, url.port or 443, local_allowed=local, resolver=resolver)
    except DialRefused as exc:
        raise TokenEndpointError(f"the GitHub token endpoint of {name!r} was not contacted: {exc}") from None
    headers = {"Authorization": f"Bearer {app_jwt(method.app_id, key, now())}", "Host": url.netloc.decode("ascii"),
               "Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}  # fmt: skip
    try:
        timeout = httpx.Timeout(8.0, connect=5.0)
        async with httpx.AsyncClient(
            verify=upstream_context(), timeout=timeout, follow_redirects=False, trust_env=False
        ) as client:
            response = await client.post(url.copy_with(host=address), headers=headers,
                                         extensions={"sni_hostname": url.host})  # fmt: skip
    except httpx.HTTPError as exc:
        raise TokenEndpointError(f"the GitHub token endpoint of {name!r} could not be reached "
                                 f"({type(exc).__name__}); try again later") from None  # fmt: skip
    return parse_token(name, response.status_code, response.content)


def parse_token(name: str, status: int, body: bytes) -> tuple[Secret, float]:
    try:
        data = json.loads(body)
        token, expires = str(data["token"]), datetime.fromisoformat(str(data["expires_at"])).timestamp()
    except (ValueError, KeyError, TypeError):
        data, token, expires = None, "", 0.0
    if status != 201 or not token or CONTROL.search(token):
        hint = " (check the App id, installation id and private key)" if status in (401, 403, 404) else ""
        raise TokenEndpointError(f"GitHub refused an installation token for {name!r}: HTTP {status}{hint}")
    return Secret(token), expires


def build_github_app(
    *, app_id: str | None = None, installation_id: str | None = None, api_url: str | None = None, **_: object
) -> GitHubAppAuth:
    if not app_id or not installation_id:
        raise InvalidService("--auth github-app needs --app-id and --installation-id")
    return GitHubAppAuth(app_id=str(app_id), installation_id=str(installation_id),
                         api_url=api_url or "https://api.github.com").validate()  # fmt: skip
