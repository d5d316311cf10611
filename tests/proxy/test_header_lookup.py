"""Header lookups without exceptions (proxy/header_lookup.py) answer as mitmproxy's own do."""

from __future__ import annotations

import sys
from collections.abc import Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mitmproxy import http

from clavis_mcp.proxy.header_lookup import _contains, _get, install

NAMES = ["Host", "host", "HOST", "Content-Length", "content-length", "Connection", "X-Empty", "ü", "Upgrade"]
name = st.sampled_from(NAMES) | st.text(min_size=1, max_size=4)
field = st.tuples(name, st.sampled_from(["", "close", "1", "a, b", "ö"]))
key = name | name.map(lambda text: text.encode("utf-8", "surrogateescape"))


@given(st.lists(field, max_size=6), key)
def test_get_and_in_answer_as_the_mapping_methods_do(fields: list[tuple[str, str]], wanted: str | bytes) -> None:
    headers = http.Headers([(n.encode("utf-8", "surrogateescape"), v.encode()) for n, v in fields])
    assert _get(headers, wanted, "absent") == Mapping.get(headers, wanted, "absent")
    assert _get(headers, wanted) == Mapping.get(headers, wanted)
    assert _contains(headers, wanted) == Mapping.__contains__(headers, wanted)


def test_installed_lookups_keep_an_empty_value_and_folded_duplicates() -> None:
    install()
    headers = http.Headers([(b"X-Empty", b""), (b"Accept", b"a"), (b"accept", b"b")])
    assert headers.get("x-empty", "absent") == ""
    assert "X-EMPTY" in headers
    assert headers.get("accept") == "a, b"
    assert headers.get("content-length") is None
    assert "connection" not in headers


def test_install_refuses_a_headers_type_that_reads_fields_another_way(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http.Headers, "__getitem__", lambda self, key: "x", raising=False)
    with pytest.raises(RuntimeError, match="mitmproxy version"):
        install()


def test_a_missing_field_is_answered_without_an_exception_raised_inside() -> None:
    install()
    headers = http.Headers([(b"Host", b"api.example")])
    raised: list[str] = []
    tool = 4  # a free sys.monitoring tool id (0, 1, 2 and 5 are named for debuggers, coverage, profilers, optimizers)
    sys.monitoring.use_tool_id(tool, "clavis-test")
    try:
        sys.monitoring.register_callback(
            tool, sys.monitoring.events.RAISE, lambda code, at, exc: raised.append(repr(exc))
        )
        sys.monitoring.set_events(tool, sys.monitoring.events.RAISE)
        assert headers.get("content-length") is None
        assert "connection" not in headers
    finally:
        sys.monitoring.set_events(tool, 0)
        sys.monitoring.free_tool_id(tool)
    assert raised == []
