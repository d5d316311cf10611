"""The pipeline runs our addons in order and fails closed when one of them raises."""

from __future__ import annotations

import pytest
from mitmproxy import connection
from mitmproxy.hooks import all_hooks
from mitmproxy.proxy import server_hooks
from mitmproxy.test import taddons, tflow

from clavis_mcp.addons import default_addons
from clavis_mcp.addons.flowmeta import DECISION, REASON, is_settled
from clavis_mcp.addons.pipeline import HOOKS, Pipeline
from clavis_mcp.vault import AuditLog, ClavisError, Vault
from clavis_mcp.vault.proxy_config import ProxyConfig

pytestmark = pytest.mark.anyio


class Recorder:
    """Notes each hook call, and whether the flow was already settled when it came."""

    def __init__(self, name: str, calls: list[tuple[str, str, bool]]) -> None:
        self.name, self.calls = name, calls

    def requestheaders(self, flow: object) -> None:
        self.calls.append((self.name, "requestheaders", is_settled(flow)))  # type: ignore[arg-type]

    async def request(self, flow: object) -> None:
        self.calls.append((self.name, "request", is_settled(flow)))  # type: ignore[arg-type]

    def response(self, flow: object) -> None:
        self.calls.append((self.name, "response", is_settled(flow)))  # type: ignore[arg-type]


class Raising:
    """Raises ``exc`` from every hook it has, sync or async."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def requestheaders(self, flow: object) -> None:
        raise self.exc

    async def request(self, flow: object) -> None:
        raise self.exc

    def responseheaders(self, flow: object) -> None:
        raise self.exc

    async def server_connect(self, data: object) -> None:
        raise self.exc

    def websocket_message(self, flow: object) -> None:
        raise self.exc

    def error(self, flow: object) -> None:
        raise self.exc


async def test_stages_run_in_the_given_order_for_every_hook() -> None:
    calls: list[tuple[str, str, bool]] = []
    pipeline = Pipeline([Recorder("first", calls), Recorder("second", calls)])
    with taddons.context():
        f = tflow.tflow(resp=False)
        pipeline.requestheaders(f)
        await pipeline.request(f)
    assert calls == [
        ("first", "requestheaders", False), ("second", "requestheaders", False),
        ("first", "request", False), ("second", "request", False),
    ]  # fmt: skip


@pytest.mark.parametrize("hook", ["requestheaders", "request"], ids=["sync-hook", "async-hook"])
async def test_a_stage_that_raises_refuses_the_flow_and_later_stages_still_run(hook: str) -> None:
    calls: list[tuple[str, str, bool]] = []
    pipeline = Pipeline([Raising(RuntimeError("sk-must-not-show-0123456789")), Recorder("after", calls)])
    with taddons.context():
        f = tflow.tflow(resp=False)
        result = getattr(pipeline, hook)(f)
        if result is not None:
            await result
    assert f.response is not None and f.response.status_code == 502
    assert f.metadata[DECISION] == "refused"
    assert f.metadata[REASON] == "clavis-mcp could not process this request: internal error (RuntimeError)"
    assert b"sk-must-not-show" not in f.response.content
    assert calls == [("after", hook, True)]  # the later stage sees a settled flow (the audit trail records it)


async def test_our_own_errors_are_reported_in_their_own_words() -> None:
    pipeline = Pipeline([Raising(ClavisError("the vault is locked; unlock it with clavis-mcp status"))])
    with taddons.context():
        f = tflow.tflow(resp=True)
        pipeline.responseheaders(f)
    assert f.response is not None and f.response.status_code == 502
    assert "the vault is locked; unlock it" in f.response.text


async def test_a_dial_whose_check_raised_is_not_made() -> None:
    server = connection.Server(address=("api.example.com", 443))
    data = server_hooks.ServerConnectionHookData(server=server, client=connection.Client(
        peername=("127.0.0.1", 5000), sockname=("127.0.0.1", 8899), timestamp_start=0))  # fmt: skip
    await Pipeline([Raising(KeyError("x"))]).server_connect(data)
    assert server.error == "clavis-mcp refused to dial: the check failed (internal error (KeyError))"


async def test_a_websocket_message_that_could_not_be_scrubbed_is_dropped_and_the_connection_closed() -> None:
    with taddons.context():
        f = tflow.twebsocketflow()
        Pipeline([Raising(ValueError("scrub failed"))]).websocket_message(f)
    assert f.websocket is not None and f.websocket.messages[-1].dropped
    assert f.error is not None and f.error.msg == f.error.KILLED_MESSAGE


async def test_an_error_hook_that_raises_is_logged_and_the_rest_run(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[str] = []

    class After:
        def error(self, flow: object) -> None:
            seen.append("after")

    with taddons.context():
        f = tflow.tflow(err=True)
        Pipeline([Raising(OSError("disk")), After()]).error(f)
    assert seen == ["after"]
    assert "Raising.error failed: internal error (OSError)" in caplog.text


def test_an_async_stage_on_a_hook_the_pipeline_calls_synchronously_is_refused_at_construction() -> None:
    class AsyncHeaders:
        async def requestheaders(self, flow: object) -> None: ...

    with pytest.raises(TypeError, match="AsyncHeaders.requestheaders is async"):
        Pipeline([AsyncHeaders()])


def test_the_pipeline_forwards_every_hook_our_addons_define(vault: Vault, audit: AuditLog) -> None:
    defined = {
        name
        for stage in default_addons(vault, audit, ProxyConfig())
        for name in all_hooks
        if callable(getattr(stage, name, None))
    }
    assert defined <= set(HOOKS)
