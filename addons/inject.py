"""Credential injection at egress: strip whatever the client sent, then set ours.

Every header that could carry a credential or steer the proxy is removed in any spelling
before the service's credential is set, so the agent cannot choose where the secret lands
nor smuggle a second credential next to it. ``Cookie`` is removed only for services whose
credential is a cookie: elsewhere it is the agent's own session state.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from typing import NamedTuple

from mitmproxy import http

from clavis_mcp.vault import Secret, Snapshot, Vault
from clavis_mcp.vault.auth import OutgoingRequest
from clavis_mcp.vault.auth.fields import method_secrets, secret_refs
from clavis_mcp.vault.errors import CannotInject, InvalidSecretRef, InvalidService, SecretRefUnresolved
from clavis_mcp.vault.proxy_headers import header_key

from .flowmeta import DECISION, INTERNAL_PREFIX, REASON, SERVICE, flow_snapshot, is_settled, refuse

ALWAYS_STRIPPED = (
    "authorization",
    "proxy-authorization",
    "proxy-connection",
    "forwarded",
    "via",
    "x-real-ip",
    "true-client-ip",
)
STRIPPED_PREFIXES = ("x-forwarded-", INTERNAL_PREFIX)
# What redaction can decode; anything else could hide a reflected secret from it.
DECODABLE_ENCODINGS = ("gzip", "deflate", "br", "zstd", "identity")


class StripPlan(NamedTuple):
    """What becomes of a request's header fields, by position: a pure function of their names."""

    kept: tuple[int, ...]  # the fields sent on as they came, in order
    names: tuple[str, ...]  # their names, decoded as mitmproxy decodes them
    accept_encoding: tuple[int, ...]  # the client's Accept-Encoding fields: ours, narrowed from them, replaces them
    te: tuple[int, ...]  # the client's TE fields: ours, narrowed to trailers, replaces them (or none is sent)
    credentials: str  # the client's own credential headers as the audit reason names them ("" for none)


@functools.lru_cache(maxsize=256)  # a client sends the same header names request after request
def strip_plan(raw_names: tuple[bytes, ...], credential_headers: tuple[str, ...]) -> StripPlan:
    """What a request with header fields so named keeps: no field stripped, and no copy (in any case)
    of a header we set, Accept-Encoding and TE, whose values ours are narrowed from. Keyed by the
    names as they came, so a request that repeats them is not decoded again."""
    names = [name.decode("utf-8", "surrogateescape") for name in raw_names]
    targets = {header_key(header) for header in credential_headers}
    own = {"authorization", *targets}
    kept: list[int] = []
    ours: dict[str, list[int]] = {"accept-encoding": [], "te": []}
    credentials: set[str] = set()
    for i, name in enumerate(names):
        key = header_key(name)
        if (replaced := ours.get(name.lower())) is not None:
            replaced.append(i)
        if key in ALWAYS_STRIPPED or key.startswith(STRIPPED_PREFIXES) or key in targets:
            if key in own:
                credentials.add(name)
        elif replaced is None:
            kept.append(i)
    return StripPlan(tuple(kept), tuple(names[i] for i in kept), tuple(ours["accept-encoding"]), tuple(ours["te"]),
                     ", ".join(sorted(credentials)))  # fmt: skip


def joined_value(fields: tuple[tuple[bytes, bytes], ...], positions: tuple[int, ...]) -> bytes | None:
    """The raw value of the fields at ``positions``, joined as ``headers.get`` joins a repeated
    header's (None if none)."""
    if not positions:
        return None
    if len(positions) == 1:
        return fields[positions[0]][1]
    return b", ".join([fields[i][1] for i in positions])


# These two are pure, and a client sends the same value every time: kept by the raw value, which
# is decoded (as mitmproxy decodes header values) only when it is new.
@functools.lru_cache(maxsize=256)
def decodable_accept_encoding(raw: bytes | None) -> str:
    """The client's ``Accept-Encoding`` narrowed to what the response redaction can decode."""
    if not raw:
        return "identity"
    value = raw.decode("utf-8", "surrogateescape")
    kept = [part.strip() for part in value.split(",") if part.split(";")[0].strip().lower() in DECODABLE_ENCODINGS]
    return ", ".join(kept) or "identity"


@functools.lru_cache(maxsize=256)
def trailers_only(raw: bytes | None) -> str | None:
    """The client's ``TE`` narrowed to ``trailers``: any transfer coding it offers (``gzip``)
    would let the upstream send a body the response redaction refuses to read."""
    if raw is None:
        return None
    value = raw.decode("utf-8", "surrogateescape")
    return "trailers" if any(part.split(";")[0].strip().lower() == "trailers" for part in value.split(",")) else None


SHOWN_PATH = "clavis.shown_path"  # the path as records show it, when the credential is in the path
# Per snapshot, by service: the secrets its method is handed when none of them is a reference (a
# reference is resolved for each request, through the references' short-lived cache), and the
# audit reason's words for its references ("" for none). Both are the snapshot's to give.
SECRETS = "inject:secrets"


class InjectCredential:
    def __init__(self, vault: Vault) -> None:
        self._vault = vault

    def _secrets(self, snapshot: Snapshot, name: str) -> tuple[Mapping[str, Secret], str]:
        """What :func:`method_secrets` gives (raising as it raises), and which references it read."""
        kept: dict[str, tuple[Mapping[str, Secret] | None, str]] = snapshot.derived(SECRETS, dict)
        entry = kept.get(name)
        if entry is None:
            refs = secret_refs(self._vault, snapshot, name)
            said = "; ".join(f"{field} from {ref}" for field, ref in refs.items())
            entry = kept[name] = (None if refs else method_secrets(self._vault, snapshot, name), said)
        secrets, said = entry
        return (method_secrets(self._vault, snapshot, name) if secrets is None else secrets), said

    def request(self, flow: http.HTTPFlow) -> None:
        name = flow.metadata.get(SERVICE)
        if is_settled(flow) or name is None:
            return
        snapshot = flow_snapshot(flow, self._vault)
        service = snapshot.service(name)
        request = flow.request
        if request.scheme != "https" and not service.allow_http:
            refuse(flow, 403, f"service {name!r} is HTTPS only; its credential is never sent over plain http://")
            return
        fields = request.headers.fields
        plan = strip_plan(tuple([name for name, _ in fields]), service.auth.credential_headers())
        if plan.credentials:  # names only, for the audit record: the agent brought its own credential
            flow.metadata[REASON] = "removed the client's own " + plan.credentials
        headers = [
            (name, fields[i][1].decode("utf-8", "surrogateescape"))
            for i, name in zip(plan.kept, plan.names, strict=True)
        ]
        headers.append(("Accept-Encoding", decodable_accept_encoding(joined_value(fields, plan.accept_encoding))))
        te = trailers_only(joined_value(fields, plan.te))
        if te is not None:
            headers.append(("TE", te))
        outgoing = outgoing_request(request, headers)  # the headers an auth method is handed
        try:
            secrets, said = self._secrets(snapshot, name)
            service.auth.apply(outgoing, secrets)
        except CannotInject as exc:
            refuse(flow, 400, f"service {name!r}: {exc}")
            return
        except InvalidService:
            refuse(flow, 500, f"the stored credential of {name!r} is malformed; re-add the service")
            return
        except (SecretRefUnresolved, InvalidSecretRef) as exc:  # never sent without its credential
            refuse(flow, 503, f"service {name!r}: {exc}")
            return
        if said:  # which reference, never its value
            flow.metadata[REASON] = f"{flow.metadata[REASON]}; {said}" if REASON in flow.metadata else said
        write_back(request, outgoing)
        if outgoing.shown_path is not None:  # the key is in the path: records show the template instead
            flow.metadata[SHOWN_PATH] = outgoing.shown_path + ("?" + outgoing.raw_query if outgoing.raw_query else "")
        flow.metadata[DECISION] = "injected"

    def response(self, flow: http.HTTPFlow) -> None:
        self._unshow_path(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._unshow_path(flow)

    @staticmethod
    def _unshow_path(flow: http.HTTPFlow) -> None:
        """Once the request has left, put back the path without the key for the stages that record
        it (the audit trail runs after this stage): a path key never reaches a log."""
        shown = flow.metadata.pop(SHOWN_PATH, None)
        if shown is not None:
            flow.request.path = shown


def outgoing_request(request: http.Request, headers: list[tuple[str, str]]) -> OutgoingRequest:
    """The view an auth method signs or fills in: the request as it will leave, with ``headers``."""
    path, _, raw_query = request.path.partition("?")
    return OutgoingRequest(
        method=request.method,
        scheme=request.scheme,
        host=request.host,
        port=request.port,
        path=path,
        query=lambda: list(request.query.items(multi=True)),
        headers=headers,
        body_sha256=lambda: None if request.raw_content is None else hashlib.sha256(request.raw_content).hexdigest(),
        raw_query=raw_query,
        body=lambda: request.raw_content,
    )


def write_back(request: http.Request, outgoing: OutgoingRequest) -> None:
    """Put what the method set on mitmproxy's request; an untouched query keeps its bytes."""
    if outgoing.shown_path is not None or outgoing.raw_query_changed:
        request.path = outgoing.path + ("?" + outgoing.raw_query if outgoing.raw_query else "")
    if outgoing.query_changed:
        request.query = outgoing.query
    if outgoing.body_changed:
        request.raw_content = outgoing.body()
    request.headers.fields = tuple(
        [
            (name.encode("utf-8", "surrogateescape"), value.encode("utf-8", "surrogateescape"))
            for name, value in outgoing.headers
        ]
    )
