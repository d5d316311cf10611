"""The engine's message type check, made without garbage (proxy/message_types.py)."""

from __future__ import annotations

import dataclasses
import gc
from pathlib import Path

import pytest
from mitmproxy import http
from mitmproxy.utils import typecheck

from clavis_mcp.certs import LocalCA
from clavis_mcp.proxy import EmbeddedProxy
from clavis_mcp.proxy.message_types import _check, install
from clavis_mcp.vault import AuditLog, Vault
from clavis_mcp.vault.proxy_config import ProxyConfig

CANDIDATES = [None, b"", b"GET", "", "host", 0, 443, 1.5, True, http.Headers(), [], (b"a", b"b")]
FIELDS = [(kind, field) for kind in (http.RequestData, http.ResponseData) for field in dataclasses.fields(kind)]


def _request(**changed: object) -> http.Request:
    fields: dict[str, object] = dict(
        host="api.example", port=443, method=b"GET", scheme=b"https", authority=b"", path=b"/v1",
        http_version=b"HTTP/1.1", headers=http.Headers(), content=None, trailers=None,
        timestamp_start=1.0, timestamp_end=None,
    )  # fmt: skip
    fields.update(changed)
    return http.Request(**fields)  # type: ignore[arg-type]


def _response(**changed: object) -> http.Response:
    fields: dict[str, object] = dict(
        http_version=b"HTTP/1.1", status_code=200, reason=b"OK", headers=http.Headers(), content=None,
        trailers=None, timestamp_start=1.0, timestamp_end=None,
    )  # fmt: skip
    fields.update(changed)
    return http.Response(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(("kind", "field"), FIELDS, ids=[f"{k.__name__}.{f.name}" for k, f in FIELDS])
def test_accepts_and_refuses_exactly_what_the_engine_check_does(kind: type, field: dataclasses.Field[object]) -> None:
    install()
    valid = _request().data if kind is http.RequestData else _response().data
    for value in CANDIDATES:
        data = kind.__new__(kind)
        vars(data).update({**vars(valid), field.name: value})
        try:
            typecheck.check_option_type(field.name, value, field.type)
        except TypeError as engine:
            with pytest.raises(TypeError) as ours:
                _check(data)
            assert str(ours.value) == str(engine), value
        else:
            _check(data)


def test_a_wrong_type_is_still_refused_when_a_message_is_built() -> None:
    install()
    with pytest.raises(TypeError, match="for port"):
        _request(port="443")
    with pytest.raises(TypeError, match="for status_code"):
        _response(status_code="200")
    assert _request(timestamp_end=2).timestamp_end == 2  # an int is a fine float, as before


def test_building_messages_leaves_no_reference_cycles() -> None:
    """The engine's check left a TypeError, its traceback and frames in a cycle for every optional
    field holding None: garbage only the collector frees. (What other tests' threads leave is
    not counted: only the check's own errors.)"""
    install()
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for _ in range(50):
            _request()
            _response()
        gc.collect()
        left = [o for o in gc.garbage if isinstance(o, TypeError) and str(o).startswith("Expected ")]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert left == []


@pytest.mark.anyio
async def test_the_embedded_proxy_installs_it(
    monkeypatch: pytest.MonkeyPatch, vault: Vault, audit: AuditLog, home: Path
) -> None:
    monkeypatch.setattr(http.MessageData, "__post_init__", lambda self: None)
    proxy = EmbeddedProxy(vault, audit, LocalCA(home / "certs"), ProxyConfig(tokens=dict))
    await proxy.start()
    try:
        assert http.MessageData.__post_init__ is _check  # type: ignore[attr-defined]
    finally:
        await proxy.stop()
