"""Method and path policy, for services that restrict what their credential may be used for.

A path is judged after the normalisation a server would apply (``%2e`` decoded, ``.`` and
``..`` segments resolved, repeated slashes merged), and the normalised path is what is sent:
judging one spelling and forwarding another is how path filters are bypassed. Spellings a
server might read as a separator (``%2f``, ``\\``, ``%5c``) are refused outright.
"""

from __future__ import annotations

import re

from mitmproxy import http

from vault import Vault

from .flowmeta import SERVICE, flow_snapshot, is_settled, refuse

_AMBIGUOUS = re.compile(r"%2f|%5c|\\|%00|[\x00-\x20\x7f]", re.IGNORECASE)
_ENCODED_DOT = re.compile(r"%2e", re.IGNORECASE)


def normalise_path(path: str) -> str:
    """The path part (no query) a server would resolve; ValueError for ambiguous spellings."""
    if not path.startswith("/"):
        raise ValueError(f"path {path!r} must start with '/'")
    if _AMBIGUOUS.search(path):
        raise ValueError("the path contains an encoded or backslash separator or a control character")
    segments: list[str] = []
    parts = _ENCODED_DOT.sub(".", path).split("/")[1:]
    for index, segment in enumerate(parts):
        last = index == len(parts) - 1
        if segment == "..":
            if segments:
                segments.pop()
            if last:
                segments.append("")
        elif segment == ".":
            if last:
                segments.append("")
        elif segment or last:
            segments.append(segment)
    return "/" + "/".join(segments)


class RequestPolicy:
    def __init__(self, vault: Vault) -> None:
        self._vault = vault

    def request(self, flow: http.HTTPFlow) -> None:
        name = flow.metadata.get(SERVICE)
        if is_settled(flow) or name is None:
            return
        service = flow_snapshot(flow, self._vault).service(name)
        request = flow.request
        if service.methods and request.method.upper() not in service.methods:
            allowed = ", ".join(service.methods)
            refuse(flow, 405, f"service {name!r} allows only the methods {allowed}")
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
