"""The team API's routes: authentication, roles, and the one place errors become HTTP answers.

Every answer is JSON; every error is ``{"detail": "..."}`` with the status the ``clavis`` SDK
expects (401 bad key, 403 policy, 404 unknown service, 400 bad request, 429 with an integer
``Retry-After``, 503 credential unavailable). An unexpected exception is a 500 naming only its
type, so no secret can travel out in an exception's text.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from clavis_mcp.vault.auth.base import CREDENTIAL
from clavis_mcp.vault.errors import ApiRefused, AuditWriteError, BaoRefused, ClavisError, TeamError

from . import admin, calls, identity, refresh, stream
from .config import ReplicaConfig
from .egress import Answer
from .identity import TOKEN_TTL, login
from .keys import PREFIX as KEY_PREFIX
from .keys import Principal, refusal
from .replica import Replica

logger = logging.getLogger(__name__)
MAX_REQUEST_BODY = 10 * 1024 * 1024  # read in chunks and cut here: a caller cannot make a replica hold more
MAX_LOGIN_BODY = 4096  # anyone may post a login: an address and a password fit, a costly parse does not
Handler = Callable[[Request], Awaitable[Response]]


def replica_of(request: Request) -> Replica:
    replica: Replica = request.app.state.replica
    return replica


def principal_of(request: Request) -> Principal:
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    replica, credential = replica_of(request), credential.strip()
    bearer, claims, principal = scheme.lower() == "bearer", None, None
    if bearer and credential.startswith(KEY_PREFIX):
        principal = replica.principal(credential)
    elif bearer:  # a login token: its claims also word the refusal, with no second check
        replica.reconnect_if_broken()
        claims, principal = replica.tokens.check(credential)
    if principal is None:
        if bearer and credential:  # said only to a holder of the credential
            raise ApiRefused(401, identity.ENDED if claims is not None else refusal(replica.conn, credential))
        raise ApiRefused(401, "missing, invalid, expired or revoked key; send Authorization: Bearer <key or token>")
    return principal


def admin_of(request: Request) -> Principal:
    principal = principal_of(request)
    if not principal.admin:
        raise ApiRefused(403, "this needs an admin key or an admin's login")
    return principal


async def body_of(request: Request, limit: int = MAX_REQUEST_BODY) -> dict[str, Any]:
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            size = f"{limit // (1024 * 1024)} MiB" if limit >= 1024 * 1024 else f"{limit} bytes"
            raise ApiRefused(413, f"the request body is larger than {size}")
    try:
        body = json.loads(bytes(raw) or b"{}")
    except ValueError:
        raise ApiRefused(400, "the request body must be JSON") from None
    except RecursionError:
        raise ApiRefused(400, "the request body's JSON is nested too deeply") from None
    if not isinstance(body, dict):
        raise ApiRefused(400, "the request body must be a JSON object")
    return body


def _json(
    data: Any, status: int = 200, *, scrub: Callable[[str], str] | None = None, headers: dict[str, str] | None = None
) -> Response:
    text = json.dumps(data, ensure_ascii=False)
    if scrub is not None:
        text = scrub(text)
    return Response(text, status, headers=headers, media_type="application/json")


# -- SDK endpoints -------------------------------------------------------------------------------


async def call_route(request: Request) -> Response:
    principal, body = principal_of(request), await body_of(request)
    envelope, answer = await calls.call(replica_of(request), principal, request.path_params["svc"], body)
    return _json(envelope, scrub=answer.scrub, headers=_facts(answer))


async def proxy_route(request: Request) -> Response:
    principal, body = principal_of(request), await body_of(request)
    name = request.path_params["svc"]
    envelope, answer = await calls.proxy(replica_of(request), principal, name, body)
    headers = _facts(answer)
    left = calls.remaining(replica_of(request), name)
    if left is not None:
        headers["X-RateLimit-Remaining"] = str(left)
    return _json(envelope, scrub=answer.scrub, headers=headers)


def _facts(answer: Answer) -> dict[str, str]:
    facts = {"X-Clavis-Redactions": str(answer.redactions)}
    if answer.audit_id:
        facts["X-Clavis-Audit-Id"] = answer.audit_id
    return facts


async def token_route(request: Request) -> Response:
    answer, audit_id = calls.token(replica_of(request), principal_of(request), request.path_params["svc"])
    return _json(answer, headers={"X-Clavis-Audit-Id": audit_id})


async def check_route(request: Request) -> Response:
    return _json(calls.check(replica_of(request), principal_of(request), request.path_params["svc"]))


async def verify_route(request: Request) -> Response:
    result, answer = await calls.verify(replica_of(request), principal_of(request), request.path_params["svc"])
    return _json(result, headers=_facts(answer))


async def egress_route(request: Request) -> Response:
    return await stream.egress(replica_of(request), principal_of(request), request)


async def login_route(request: Request) -> Response:
    body = await body_of(request, MAX_LOGIN_BODY)
    email, password = body.get("email"), body.get("password")
    if not isinstance(email, str) or not isinstance(password, str):
        raise ApiRefused(400, "give 'email' and 'password'")
    replica = replica_of(request)
    replica.reconnect_if_broken()
    token = login(replica.conn, replica.tokens, email, password, request.client.host if request.client else "")
    return _json({"access_token": token, "token_type": "bearer", "expires_in": TOKEN_TTL})


async def refresh_route(request: Request) -> Response:
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise ApiRefused(401, "send the login token to refresh as Authorization: Bearer <token>")
    return _json(refresh.refresh(replica_of(request), credential.strip()))


async def logout_route(request: Request) -> Response:
    """Sign the caller out everywhere: every login token of theirs stops working, on every replica."""
    principal, replica = principal_of(request), replica_of(request)
    if not principal.name.startswith("user/"):
        raise ApiRefused(400, "an API key cannot log out; an admin revokes it (`clavis-mcp team key revoke NAME`)")
    email = principal.name.removeprefix("user/")
    _, revoked, demoted = identity.change_user(replica.conn, email)
    replica.audit.append(source=principal.name, action="logout", decision="done")
    admin.audit_revoked(replica, principal.name, revoked, f"made by {email}, who signed out")
    admin.audit_demoted(replica, principal.name, demoted, f"made with the logins of {email}, who signed out")
    return Response(status_code=204)


async def services_route(request: Request) -> Response:
    principal, replica = principal_of(request), replica_of(request)
    replica.mirror.sync()
    listed = [
        {
            "name": s.name,
            "connector": s.connector,
            "auth": s.auth.describe(),
            "hosts": [str(r) for r in s.hosts],
            # what /v1/tokens does: a method whose stored key is not what goes on the wire is never handed out
            "reveal": s.reveal if s.auth.revealed_field == CREDENTIAL else "never",
            "local": s.local,
            "allow_http": s.allow_http,
            "methods": list(s.methods),
            "path_prefixes": list(s.path_prefixes),
            "confirm_writes": bool(replica.mirror.definitions.get(s.name, {}).get("confirm_writes", False)),
            "expires_at": s.expires_at,
            "rotated_at": s.rotated_at,
        }
        for s in replica.mirror.vault.snapshot().services
        if principal.may_use(s.name)
    ]
    return _json({"services": listed})


async def health_route(request: Request) -> Response:
    replica = replica_of(request)
    replica.reconnect_if_broken()
    replica.conn.execute("SELECT 1")
    return _json({"ok": True, "replica": replica.audit.chain})  # which process answered: its audit chain


# -- admin -----------------------------------------------------------------------------------------


async def add_service_route(request: Request) -> Response:
    caller = admin_of(request)
    return _json(admin.add_service(replica_of(request), caller, await body_of(request)), 201)


async def rotate_route(request: Request) -> Response:
    caller = admin_of(request)
    body = await body_of(request)
    return _json(admin.rotate_secret(replica_of(request), caller, request.path_params["name"], body))


async def oauth_route(request: Request) -> Response:
    caller = admin_of(request)
    body = await body_of(request)
    return _json(admin.register_oauth(replica_of(request), caller, request.path_params["name"], body))


async def remove_service_route(request: Request) -> Response:
    admin.remove_service(replica_of(request), admin_of(request), request.path_params["name"])
    return Response(status_code=204)


async def add_user_route(request: Request) -> Response:
    caller = admin_of(request)
    return _json(admin.add_user(replica_of(request), caller, await body_of(request)), 201)


async def users_route(request: Request) -> Response:
    admin_of(request)
    return _json(admin.users(replica_of(request)))


async def remove_user_route(request: Request) -> Response:
    caller, args = admin_of(request), dict(request.query_params)
    return _json(admin.remove_user(replica_of(request), caller, request.path_params["email"], args))


async def change_user_route(request: Request) -> Response:
    caller = admin_of(request)
    body = await body_of(request)
    return _json(admin.change_user(replica_of(request), caller, request.path_params["email"], body))


async def add_key_route(request: Request) -> Response:
    maker = admin_of(request)
    return _json(admin.add_key(replica_of(request), maker, await body_of(request)), 201)


async def keys_route(request: Request) -> Response:
    admin_of(request)
    return _json(admin.keys(replica_of(request)))


async def revoke_route(request: Request) -> Response:
    admin.revoke(replica_of(request), admin_of(request), request.path_params["name"])
    return Response(status_code=204)


async def audit_route(request: Request) -> Response:
    admin_of(request)
    return _json(admin.audit_records(replica_of(request), dict(request.query_params)))


async def audit_verify_route(request: Request) -> Response:
    admin_of(request)
    return _json(admin.audit_verify(replica_of(request)))


ROUTES = [
    Route("/healthz", health_route, methods=["GET"]),
    Route("/v1/auth/login", login_route, methods=["POST"]),
    Route("/v1/auth/refresh", refresh_route, methods=["POST"]),
    Route("/v1/auth/logout", logout_route, methods=["POST"]),
    Route("/v1/services", services_route, methods=["GET"]),
    Route("/v1/tokens/{svc}", token_route, methods=["GET"]),
    Route("/v1/proxy/{svc}", proxy_route, methods=["POST"]),
    Route("/v1/call/{svc}", call_route, methods=["POST"]),
    Route("/v1/egress", egress_route, methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]),
    Route("/v1/credentials/{svc}/check", check_route, methods=["GET"]),
    Route("/v1/credentials/{svc}/verify", verify_route, methods=["POST"]),
    Route("/v1/admin/services", add_service_route, methods=["POST"]),
    Route("/v1/admin/services/{name}/secret", rotate_route, methods=["PUT"]),
    Route("/v1/admin/services/{name}/oauth", oauth_route, methods=["PUT"]),
    Route("/v1/admin/services/{name}", remove_service_route, methods=["DELETE"]),
    Route("/v1/admin/users", add_user_route, methods=["POST"]),
    Route("/v1/admin/users", users_route, methods=["GET"]),
    Route("/v1/admin/users/{email:path}", remove_user_route, methods=["DELETE"]),
    Route("/v1/admin/users/{email:path}", change_user_route, methods=["PATCH"]),
    Route("/v1/admin/keys", add_key_route, methods=["POST"]),
    Route("/v1/admin/keys", keys_route, methods=["GET"]),
    Route("/v1/admin/keys/{name}", revoke_route, methods=["DELETE"]),
    Route("/v1/audit", audit_route, methods=["GET"]),
    Route("/v1/audit/verify", audit_verify_route, methods=["GET"]),
]


async def _refused(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiRefused)
    return JSONResponse({"detail": exc.detail}, exc.status, headers=exc.headers or None)


async def _http(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)


async def _ours(_: Request, exc: Exception) -> Response:
    status = 503 if isinstance(exc, (BaoRefused, AuditWriteError, TeamError)) else 400
    return JSONResponse({"detail": str(exc)}, status)


async def _unexpected(_: Request, exc: Exception) -> Response:
    logger.error("team API: unexpected %s", type(exc).__name__)
    return JSONResponse({"detail": f"internal error ({type(exc).__name__}); the server log has no more"}, 500)


def build_app(config: ReplicaConfig) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        replica = Replica(config)
        await replica.start()
        app.state.replica = replica
        try:
            yield
        finally:
            await replica.stop()

    return Starlette(
        routes=ROUTES,
        lifespan=lifespan,
        exception_handlers={
            ApiRefused: _refused,
            HTTPException: _http,
            ClavisError: _ours,
            Exception: _unexpected,
        },
    )
