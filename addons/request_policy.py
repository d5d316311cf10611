"""Method and path policy, for services that restrict what their credential may be used for.

A path is judged after the normalisation a server would apply (``%2e`` decoded, ``.`` and
``..`` segments resolved, repeated slashes merged), and the normalised path is what is sent:
judging one spelling and forwarding another is how path filters are bypassed. Spellings that
some server reads differently from us are refused outright rather than guessed at: separators
that are encoded or backslashes; path parameters (``..;/`` is ``..`` to a servlet container);
double encoding (``%252e``, ``.`` to a server that decodes twice); overlong UTF-8 (``%c0%ae``)
and look-alikes that Unicode normalisation turns into ``.``, ``/`` or ``\\``; control characters;
segments of dots and spaces that a server trims into ``..``.

A method policy is judged on every way a request can name its method: the method-override
headers and ``_method`` fields that frameworks honour (see :mod:`.method_override`), read from a
compressed body decompressed. Before any policy, and for every service whether it has one or not,
a request whose body servers would read differently from us is refused (400): two
``Content-Type`` or ``Content-Encoding`` fields, or a ``Content-Type`` listing two media types
(a form first and JSON second is a form to Node and a ``_method`` judged nowhere). The approval
that runs later reads the body the same way, so it too sees one media type and one coding.
"""

from __future__ import annotations

import re

from mitmproxy import http

from clavis_mcp.vault import Vault
from clavis_mcp.vault.method_overrides import ambiguous_body_headers
from clavis_mcp.vault.request_path import normalise_path

from .flowmeta import SERVICE, flow_snapshot, is_settled, refuse
from .method_override import requested_overrides

_METHOD_TOKEN = re.compile(r"[A-Z][A-Z-]{0,19}")  # shown in a refusal; anything else the agent sent is not


class RequestPolicy:
    def __init__(self, vault: Vault) -> None:
        self._vault = vault

    def request(self, flow: http.HTTPFlow) -> None:
        name = flow.metadata.get(SERVICE)
        if is_settled(flow) or name is None:
            return
        request = flow.request
        if (ambiguous := ambiguous_body_headers(request.headers.items(multi=True))) is not None:
            refuse(flow, 400, f"the request has {ambiguous}, which servers read differently; send one")
            return
        service = flow_snapshot(flow, self._vault).service(name)
        if service.methods and not self._method_allowed(flow, name, service.methods):
            return
        if not service.path_prefixes:
            return
        raw_path, sep, query = request.path.partition("?")
        try:
            path = normalise_path(raw_path)
        except ValueError as exc:
            refuse(flow, 400, f"path refused for service {name!r}: {exc}")
            return
        if service.prefix_for(path) is None:
            allowed = ", ".join(service.path_prefixes)
            refuse(flow, 403, f"service {name!r} allows only paths under {allowed}; {path} is not one of them")
            return
        request.path = path + sep + query

    @staticmethod
    def _method_allowed(flow: http.HTTPFlow, name: str, methods: tuple[str, ...]) -> bool:
        """Judge the request line and every override a framework would honour instead of it;
        refusing an override (rather than stripping it) tells the agent why its DELETE did not
        happen, where stripping would turn it silently into the POST that carried it."""
        allowed = ", ".join(methods)
        if flow.request.method.upper() not in methods:
            refuse(flow, 405, f"service {name!r} allows only the methods {allowed}")
            return False
        try:
            overrides = requested_overrides(flow.request)
        except ValueError as exc:
            refuse(flow, 415, f"service {name!r} limits its methods and {exc}")
            return False
        for where, method in overrides:
            if method not in methods:
                shown = method if _METHOD_TOKEN.fullmatch(method) else "another method"
                refuse(flow, 405, f"service {name!r} allows only the methods {allowed}; {where} asks for {shown}, "
                                  "which servers honour as the method; send an allowed method without it")  # fmt: skip
                return False
        return True
