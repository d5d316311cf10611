"""Asking mitmproxy's ``Headers`` for a field it lacks, without raising and catching a KeyError.

``Headers.get`` and ``in`` come from ``collections.abc.Mapping``, which tries ``headers[name]``
and catches the KeyError a missing field raises. The engine asks for missing fields about a
dozen times a proxied request (``Content-Length`` or ``Transfer-Encoding`` while framing each
message, ``Connection`` when one ends, ``Upgrade`` and ``HTTP2-Settings`` in its h2c check),
each an exception raised and caught (``sys.monitoring`` in the proxy process, 2026-12-05).

:func:`install` gives ``Headers`` the same two answers from ``get_all``, which ``headers[name]``
itself asks: the folded value or the default, present or not. It installs only while ``Headers``
still takes ``__getitem__`` from mitmproxy's multidict, so that the two cannot disagree.
"""

from __future__ import annotations

from typing import Any

from mitmproxy import http
from mitmproxy.coretypes import multidict


def _get(self: http.Headers, key: Any, default: Any = None) -> Any:
    values = self.get_all(key)
    return self._reduce_values(values) if values else default


def _contains(self: http.Headers, key: object) -> bool:
    return bool(self.get_all(key))  # type: ignore[arg-type]  # any key, as Mapping.__contains__ takes


def install() -> None:
    """Replace the two lookups; idempotent. Raises RuntimeError if ``Headers`` reads its fields
    another way (a newer mitmproxy), rather than answer differently from ``headers[name]``."""
    if http.Headers.__getitem__ is not multidict._MultiDict.__getitem__:
        raise RuntimeError("this mitmproxy version reads header fields in a way clavis-mcp does not know")
    http.Headers.get = _get  # type: ignore[assignment,method-assign]
    http.Headers.__contains__ = _contains  # type: ignore[assignment,method-assign]
