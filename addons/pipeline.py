"""The pipeline: our addons as one entry in mitmproxy's chain, run in order, failing closed.

mitmproxy dispatches every event to every addon in its chain through a coroutine and an error
guard of its own, whether the addon has that hook or not, and follows each flow event with an
``update`` event dispatched the same way. With our ten addons in the chain that was 128
dispatches per proxied request instead of 48 (bench/notes.md); as one entry they cost what
one addon costs, and a stage's hook is a plain call.

It is also the one place where a stage's exception is handled. mitmproxy logs an addon's
exception and carries on with the flow, which for a hook that decides, injects, scrubs or
audits would mean a half-checked request or an unscrubbed, unrecorded response. Here a stage
that raises on a flow refuses it (502) and the later stages still run, so the refusal is
audited; a WebSocket message that could not be scrubbed is dropped and its connection closed;
a dial whose check raised is not made. Our own errors are reported in their words (they say
what to do and never hold a secret); anything else by its type only.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Sequence
from typing import Any

from mitmproxy import http, tls
from mitmproxy.proxy import server_hooks

from clavis_mcp.vault import ClavisError

from .flowmeta import refuse

logger = logging.getLogger(__name__)

HOOKS = (
    "running",
    "done",
    "http_connect",
    "tls_clienthello",
    "requestheaders",
    "request",
    "server_connect",
    "responseheaders",
    "response",
    "error",
    "websocket_message",
)
ASYNC_HOOKS = frozenset({"request", "server_connect", "response"})  # the hooks a stage may define as async
type Stage = tuple[str, Callable[..., Any], bool]  # addon name, bound hook, whether it is async
type OnError = Callable[[str, str, Exception, Any], None]  # stage, hook, exception, the hook's argument


def describe(exc: Exception) -> str:
    return str(exc) if isinstance(exc, ClavisError) else f"internal error ({type(exc).__name__})"


def _log(stage: str, hook: str, exc: Exception, _: object) -> None:
    logger.error("clavis-mcp %s.%s failed: %s", stage, hook, describe(exc))


def _refuse_flow(stage: str, hook: str, exc: Exception, flow: http.HTTPFlow) -> None:
    _log(stage, hook, exc, flow)
    refuse(flow, 502, f"clavis-mcp could not process this request: {describe(exc)}")


def _refuse_dial(stage: str, hook: str, exc: Exception, data: server_hooks.ServerConnectionHookData) -> None:
    _log(stage, hook, exc, data)
    data.server.error = f"clavis-mcp refused to dial: the check failed ({describe(exc)})"


def _drop_message(stage: str, hook: str, exc: Exception, flow: http.HTTPFlow) -> None:
    _log(stage, hook, exc, flow)
    if flow.websocket is not None:
        flow.websocket.messages[-1].drop()
    if flow.killable:
        flow.kill()


class Pipeline:
    def __init__(self, stages: Sequence[object]) -> None:
        self.stages = tuple(stages)
        self._hooks: dict[str, tuple[Stage, ...]] = {
            hook: tuple(
                (type(stage).__name__, method, inspect.iscoroutinefunction(method))
                for stage in self.stages
                if callable(method := getattr(stage, hook, None))
            )
            for hook in HOOKS
        }
        for hook, stages in self._hooks.items():
            for name, _, is_async in stages:
                if is_async and hook not in ASYNC_HOOKS:
                    raise TypeError(f"{name}.{hook} is async; the pipeline awaits only {sorted(ASYNC_HOOKS)}")

    # -- mitmproxy's hooks ---------------------------------------------------------------------

    def running(self) -> None:
        self._run("running", None, _log)

    def done(self) -> None:
        self._run("done", None, _log)

    def http_connect(self, flow: http.HTTPFlow) -> None:
        self._run("http_connect", flow, _refuse_flow)

    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        self._run("tls_clienthello", data, _log)

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        self._run("requestheaders", flow, _refuse_flow)

    async def request(self, flow: http.HTTPFlow) -> None:
        await self._run_async("request", flow, _refuse_flow)

    async def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        await self._run_async("server_connect", data, _refuse_dial)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        self._run("responseheaders", flow, _refuse_flow)

    async def response(self, flow: http.HTTPFlow) -> None:
        await self._run_async("response", flow, _refuse_flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._run("error", flow, _log)  # the flow already failed: nothing reached the client to withhold

    def websocket_message(self, flow: http.HTTPFlow) -> None:
        self._run("websocket_message", flow, _drop_message)

    # -- dispatch ------------------------------------------------------------------------------

    def _run(self, hook: str, arg: object, on_error: OnError) -> None:
        args = () if arg is None else (arg,)
        for name, method, _ in self._hooks[hook]:
            try:
                method(*args)
            except Exception as exc:
                on_error(name, hook, exc, arg)

    async def _run_async(self, hook: str, arg: object, on_error: OnError) -> None:
        for name, method, is_async in self._hooks[hook]:
            try:
                if is_async:
                    await method(arg)
                else:
                    method(arg)
            except Exception as exc:
                on_error(name, hook, exc, arg)
