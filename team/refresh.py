"""Refreshing a login: a valid, unexpired login JWT buys a new one for the same person.

`clavis-mcp login` keeps a 24-hour JWT and no password, so the client trades it for a new one
before it expires (``POST /v1/auth/refresh``). The person must still exist and the token's session
epoch must still be theirs (team/identity.py: a removal, a sign-out, a new role or password ends
every login), and the new token carries the role read from their row. A refresh cannot stretch a
login forever: every token carries ``sess_start``, the time of the password login it descends
from (a token without it counts from its ``iat``), and no token is issued past ``sess_start`` +
:data:`SESSION_MAX`; after that only the password logs in again. API keys are not refreshed:
they have their own expiry, set by an admin.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from clavis_mcp.vault.errors import ApiRefused

from .bao import Bao
from .identity import ENDED, TOKEN_TTL, session_of, token_epoch
from .keys import PREFIX as KEY_PREFIX
from .replica import Replica

SESSION_MAX = 30 * 86400  # a login session lasts at most this long from the password login


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def issue(
    bao: Bao,
    transit: str,
    issuer: str,
    email: str,
    role: str,
    sess_start: int,
    now: float | None = None,
    epoch: int = 0,
) -> tuple[str, int]:
    """A login JWT for ``email`` signed by transit key ``jwt`` (as identity.Tokens signs), within the session cap."""
    now = time.time() if now is None else now
    exp = min(int(now) + TOKEN_TTL, sess_start + SESSION_MAX)
    claims = {
        "iss": issuer, "sub": email, "role": role, "iat": int(now), "exp": exp,
        "sess_start": sess_start, "epoch": epoch,
    }  # fmt: skip
    body = _b64(json.dumps(claims).encode())
    for _ in range(2):  # the kid is known once transit has signed: sign again if it rotated in between
        version = max(bao.public_keys(transit, "jwt"))
        signing_input = f"{_b64(json.dumps({'alg': 'EdDSA', 'typ': 'JWT', 'kid': f'jwt:v{version}'}).encode())}.{body}"
        signed_by, signature = bao.sign(transit, "jwt", signing_input.encode())
        if signed_by == version:
            break
    return f"{signing_input}.{_b64(signature)}", exp - int(now)


def refresh(replica: Replica, token: str, now: float | None = None) -> dict[str, Any]:
    """The answer of ``POST /v1/auth/refresh`` for the bearer ``token``; ApiRefused saying why not."""
    now = time.time() if now is None else now
    if token.startswith(KEY_PREFIX):
        raise ApiRefused(400, "an API key cannot be refreshed: it lasts until the expiry an admin gave it")
    claims = replica.tokens.claims(token, now)
    if claims is None:
        raise ApiRefused(401, "the login token is invalid or expired; log in again with `clavis-mcp login`")
    email = str(claims["sub"])
    started = claims.get("sess_start", claims.get("iat"))
    if not isinstance(started, int) or started + SESSION_MAX <= now:
        raise ApiRefused(401, "this login is older than 30 days; log in again with your password (`clavis-mcp login`)")
    replica.reconnect_if_broken()
    session = session_of(replica.conn, email)
    if session is None:
        replica.audit.append(source=f"user/{email}", action="login-refresh", decision="refused", reason="no such user")
        raise ApiRefused(401, "this user no longer exists on the team server; ask a team admin")
    role, epoch = session
    if token_epoch(claims) != epoch:
        replica.audit.append(source=f"user/{email}", action="login-refresh", decision="refused", reason="login ended")
        raise ApiRefused(401, ENDED)
    issuer = f"clavis-team:{replica.names.prefix}"
    fresh, expires_in = issue(replica.bao, replica.names.transit, issuer, email, role, started, now, epoch)
    replica.audit.append(source=f"user/{email}", action="login-refresh", decision="done")
    return {
        "access_token": fresh,
        "token_type": "bearer",
        "expires_in": expires_in,
        "session_expires_at": started + SESSION_MAX,
    }
