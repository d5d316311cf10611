"""Every exception class of the product, in one place (the bottom layer, so every layer can import it).

    Exception
     ├── ClavisError                 base of every error raised on purpose
     │    ├── VaultError             the vault as a whole cannot be used
     │    │    ├── VaultNotFound     no vault at the expected place
     │    │    ├── VaultLocked       the key that opens the vault is not available
     │    │    │    └── KeyStoreUnavailable  the chosen key store does not work here
     │    │    ├── VaultCorrupted    a file or a ciphertext failed its integrity check
     │    │    ├── InsecurePermissions
     │    │    ├── StoreConflict     a compare-and-set lost: the record changed since it was read (vault/storage)
     │    │    └── VaultBusy         the vault's write lock stayed taken past the wait (vault/storage/sqlite.py)
     │    ├── ServiceError           one service is wrong or missing
     │    │    ├── UnknownService
     │    │    ├── DuplicateService
     │    │    ├── InvalidService    bad name, host rule, template or secret
     │    │    ├── CannotInject      this request has no place for the credential as the method puts it (400)
     │    │    ├── InvalidSecretRef  a secret reference is malformed, unknown or carries a credential (vault/refs)
     │    │    └── SecretRefUnresolved  a secret reference cannot be resolved now (503 at the proxy) (vault/refs)
     │    ├── AuditWriteError        the audit log cannot be written (requests fail closed)
     │    ├── AuditQueryError        a review filter or time expression is malformed
     │    ├── AuditIndexStale        the review index no longer matches the log (it is rebuilt)
     │    ├── AgentError             an agent name is invalid, taken or unknown
     │    ├── DialRefused            a connection that would carry a secret was not made
     │    ├── DecodeError            a body is not what its Content-Encoding says
     │    │    └── DecodedTooLarge   it decodes to more than its reader's bound
     │    ├── InvalidDecodeLimit     CLAVIS_MAX_DECODED_BYTES is not a positive number
     │    ├── OAuthError             an OAuth service cannot get a usable access token
     │    │    ├── ReauthRequired    the provider refused the grant: log in again
     │    │    ├── TokenEndpointError  the token endpoint was unreachable or answered no token
     │    │    ├── InvalidOAuthConfig  an OAuth configuration failed validation
     │    │    └── LoginFailed       the browser step gave no usable authorization code
     │    ├── TooManyEscapes         a response body holds too many escapes to scan (addons)
     │    ├── ProxyStartError        the proxy could not listen (also a RuntimeError)
     │    ├── UnreadableMessage      a peer's HTTP/1.1 breaks the grammar (proxy/http1_messages.py)
     │    ├── CallRefused            call_service refused a request before it left (mcp_front)
     │    ├── CallFailed             clavis could not complete a call (TLS, DNS, connect, timeout) (mcp_front)
     │    ├── LimitsError            a CLAVIS_* call limit is not a usable number
     │    ├── CredentialExpired      a credential's expiry has passed and it cannot be refreshed
     │    ├── ConfigError            the MCP client's configuration file cannot be read or written
     │    ├── ApprovalError          a held request cannot be decided: unknown, decided, timed out (vault/approvals.py)
     │    ├── TeamRequestFailed      the team server could not be reached or refused an admin request
     │    └── TeamError              the team server's engines, set-up or storage cannot be used
     │         ├── EngineStartError  OpenBao or PostgreSQL could not be started (team/engines.py)
     │         ├── ApiRefused        the team API refuses a request: HTTP status and detail (team/app.py)
     │         └── BaoRefused        OpenBao refused a call or could not be reached (team/bao.py)
     ├── GatewayError                a call could not be completed through the proxy (mcp_front)
     │    ├── ProxyRefusedConnection the embedded proxy refused the tunnel
     │    ├── UpstreamTimeout        the provider did not answer in time
     │    └── UpstreamError          the provider could not be reached or its answer read
     └── WrongKey                    a wrapped data key did not authenticate (internal signal of the store)

Where the boundaries map them, each in one place:

- MCP tools: any ClavisError becomes a ToolError with its message (mcp_front/server.py); a
  GatewayError becomes a CallRefused that says why the call failed (mcp_front/service_call.py).
- CLI: any ClavisError prints ``error: <message>`` and exits with status 1 (clavis_cli/main.py).
- Proxy: each addon chooses the HTTP status of its refusal where it refuses (e.g. AuditWriteError
  is a 503 or 502 in addons/audit_trail.py); there is no single table.

Private sentinels that never leave the module that raises them stay there: ``_ChainCut``
(vault/audit/log.py, a cut in the audit chain found under the append lock) and ``_Full``
(vault/redaction/decoding.py, stops zstandard's writer once the budget is passed), ``_Failed``
and ``_ClientGone`` (proxy/base_url_front.py: one exchange failed, with the front's own message
and status for the client; the client went away mid-exchange).

Messages say what went wrong and what to do, and never contain a secret value. This module
imports nothing: the context a message needs travels on the exception.
"""

from __future__ import annotations


class ClavisError(Exception):
    """Base of every error this product raises on purpose."""


class VaultError(ClavisError):
    """The vault cannot be opened or used."""


class VaultNotFound(VaultError):
    """No vault exists where one was expected."""


class VaultLocked(VaultError):
    """The key that opens the vault is missing or cannot be unlocked."""


class KeyStoreUnavailable(VaultLocked):
    """The requested key store (e.g. a real OS keychain) is not available on this machine."""


class VaultCorrupted(VaultError):
    """A vault file or a ciphertext failed its integrity check."""


class InsecurePermissions(VaultError):
    """A vault file or folder is readable by other users."""


class StoreConflict(VaultError):
    """A compare-and-set on the store lost: the record is not at the version the writer expected
    (another writer got there first), or a write names a service that does not exist."""


class VaultBusy(VaultError):
    """Another process held the vault's write lock for longer than a writer waits; nothing was written."""


class ServiceError(ClavisError):
    """A service definition is wrong or missing."""


class UnknownService(ServiceError):
    """No service has the requested name."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        listed = ", ".join(known) if known else "none registered yet"
        super().__init__(f"unknown service {name!r}; known services: {listed}")


class DuplicateService(ServiceError):
    """A service with this name (or an overlapping host rule) already exists."""


class InvalidService(ServiceError):
    """A service definition failed validation."""


class CannotInject(ServiceError):
    """The request cannot carry the credential the way the service's auth method puts it (a body
    key on a body that is not JSON or a form, a path that does not match the key's path template)."""


class InvalidSecretRef(ServiceError):
    """A secret reference (``op://...``, ``env://...``) is malformed, names no known backend, or
    carries a credential in its URL."""


class SecretRefUnresolved(ServiceError):
    """A secret reference could not be resolved now (backend down, item missing, not logged in):
    the request is refused rather than sent without its credential."""


class AuditWriteError(ClavisError):
    """The audit log cannot be written; the request it records must be refused."""


class AuditQueryError(ClavisError):
    """A review filter or time expression is malformed."""


class AuditIndexStale(ClavisError):
    """A record the index points at is no longer in the log as it was indexed."""


class AgentError(ClavisError):
    """An agent name is invalid, taken or unknown."""


class DialRefused(ClavisError):
    """A connection that would carry a secret was not made; the message says why."""


class DecodeError(ClavisError):
    """The body cannot be decoded as its ``Content-Encoding`` says; nothing of it should be used."""


def _describe_size(size: int) -> str:
    """``size`` bytes as a person reads it: MiB from one MiB up."""
    return f"{size / 1024 / 1024:g} MiB" if size >= 1024 * 1024 else f"{size} bytes"


class DecodedTooLarge(DecodeError):
    """The body decodes to more than the bound its reader set."""

    def __init__(self, encoding: str, limit: int) -> None:
        self.limit = limit
        super().__init__(f"the {encoding} body decodes to more than {_describe_size(limit)}")


class InvalidDecodeLimit(ClavisError):
    """The configured bound on decoded bodies is not usable."""


class OAuthError(ClavisError):
    """An OAuth service cannot get a usable access token."""


class ReauthRequired(OAuthError):
    """The provider refused the grant (revoked, expired, rotated away): a person must log in again."""

    def __init__(self, service: str, reason: str) -> None:
        self.service = service
        self.reason = reason
        super().__init__(
            f"the OAuth grant of {service!r} is no longer accepted ({reason}); "
            f"log in again with: clavis-mcp oauth login {service}"
        )


class TokenEndpointError(OAuthError):
    """The token endpoint could not be reached or gave an answer that is not a token."""


class InvalidOAuthConfig(OAuthError):
    """An OAuth configuration failed validation; nothing was stored."""


class LoginFailed(OAuthError):
    """The browser step of ``oauth login`` did not give a usable authorization code."""


class TooManyEscapes(ClavisError):
    """A body holds more escapes than the proxy decodes to scan one response."""

    def __init__(self, count: int, limit: int) -> None:
        self.count, self.limit = count, limit
        super().__init__(
            f"the upstream's body holds {count} bytes that may begin an escape (\\ % & NUL), more than the "
            f"{limit} clavis-mcp decodes to scan one response"
        )


class ProxyStartError(ClavisError, RuntimeError):
    """The proxy could not listen (port in use, bad configuration)."""


class UnreadableMessage(ClavisError):
    """What a peer sent breaks HTTP/1.1 as h11 reads it (the base-URL front's reader). The text is
    what the front says of an upstream's answer, never the peer's bytes; ``status`` is the answer
    h11 hinted for a client's request (400, 431, 501)."""

    def __init__(self, text: str, status: int) -> None:
        super().__init__(text)
        self.status = status


class CallRefused(ClavisError):
    """The request was refused before leaving; the message says what is allowed."""


class CallFailed(ClavisError):
    """clavis could not complete a call_service request (TLS, DNS, connect, timeout); not the provider's answer."""


class LimitsError(ClavisError):
    """A configured limit (environment variable) is not a usable number."""


class CredentialExpired(ClavisError):
    """The credential's expiry has passed and it cannot be refreshed here."""


class ConfigError(ClavisError):
    """The MCP client's configuration file cannot be read or written as it is."""


class TeamRequestFailed(ClavisError):
    """A request to the team server failed (unreachable, TLS, refused); the message says what to do."""

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class TeamError(ClavisError):
    """The team server's engines, set-up or storage cannot be used; the message says what to do."""


class EngineStartError(TeamError):
    """OpenBao or PostgreSQL could not be started."""


class ApiRefused(TeamError):
    """The team API refuses a request: ``status`` is its HTTP status, the message its JSON detail."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        self.status, self.detail, self.headers = status, detail, headers or {}
        super().__init__(detail)


class BaoRefused(TeamError):
    """OpenBao refused a call (``status`` is its HTTP status) or could not be reached (``status`` None)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class ApprovalError(ClavisError):
    """A held request cannot be decided: no such request, already decided, or its time ran out."""


class GatewayError(Exception):
    """A call could not be completed through the proxy; the message names no secret."""


class ProxyRefusedConnection(GatewayError):
    """The embedded proxy refused the tunnel (e.g. the host belongs to no service)."""


class UpstreamTimeout(GatewayError):
    """The provider did not answer in time."""


class UpstreamError(GatewayError):
    """The provider could not be reached, or its answer could not be read."""


class WrongKey(Exception):
    """A wrapped data key did not authenticate under the key-encryption key (internal signal of the store)."""
