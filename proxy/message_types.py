"""mitmproxy's type check of every HTTP message it builds, made without leaving garbage behind.

Outside ``python -O``, mitmproxy checks each field of every request and response it builds
(``MessageData.__post_init__``) with its options checker. That checker formats an error text for
every field, and for an optional field that holds None (a message's trailers, a streamed body, an
unfinished message's end time) it first tries the other type: it raises and catches a TypeError
whose traceback keeps the frame that keeps the error. Each is a reference cycle, about six a
proxied request, that only the garbage collector can free, and their frames are most of what a
young-generation collection walks: through the MITM path, 300 collections for 3,200 small
requests, against 95 with this check (``gc.callbacks`` in the proxy process, 2026-12-05).

:func:`install` puts in the same check (every field an instance of its declared type, an ``int``
taking the place of a ``float`` as before; the same TypeError text), with the types resolved once.
The base-URL front builds its messages without the check (its own parser gives them typed); this is
for the messages the engine itself builds. A field type this cannot resolve (a newer mitmproxy)
stops the start, so the check is never silently lost.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from mitmproxy import http

type Spec = tuple[tuple[str, tuple[type, ...], object], ...]  # (field, accepted types, declared type)
_SPECS: dict[type, Spec] = {}


def _accepted(declared: object) -> tuple[type, ...]:
    if typing.get_origin(declared) in (typing.Union, types.UnionType):
        return tuple(t for member in typing.get_args(declared) for t in _accepted(member))
    if declared is float:
        return (float, int)  # as mitmproxy's checker: an int is a fine float
    if isinstance(declared, type):
        return (declared,)
    raise RuntimeError(
        f"this mitmproxy version declares a message field as {declared!r}, which clavis-mcp cannot check"
    )


def _spec(kind: type) -> Spec:
    return tuple((f.name, _accepted(f.type), f.type) for f in dataclasses.fields(kind))


def _check(self: Any) -> None:
    for name, accepted, declared in _SPECS[type(self)]:
        value = getattr(self, name)
        if not isinstance(value, accepted):
            raise TypeError(f"Expected {declared} for {name}, but got {type(value)}.")


def install() -> None:
    """Replace the engine's check; idempotent. Nothing to replace under ``python -O`` (mitmproxy
    defines no check there)."""
    if not hasattr(http.MessageData, "__post_init__") or http.MessageData.__post_init__ is _check:
        return
    for kind in (http.RequestData, http.ResponseData):
        _SPECS[kind] = _spec(kind)
    http.MessageData.__post_init__ = _check  # type: ignore[method-assign]
