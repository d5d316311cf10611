"""The embedded mitmproxy: our addons on mitmproxy's engine, in-process, on 127.0.0.1 only.

Only the engine's own addons that a forward proxy needs are loaded (no onboarding page, no
scripts, no flow saving): less to configure, less to attack. mitmproxy keeps global state,
so there is one embedded proxy per process. Base-URL connections on the same port are served
by the base-URL front (:mod:`.base_url_front`) through the very same pipeline instance.
"""

from __future__ import annotations

import asyncio
import logging

from mitmproxy import master, options
from mitmproxy.addons import core, disable_h2c, next_layer, proxyserver, tlsconfig

from clavis_mcp.addons import Pipeline, default_addons
from clavis_mcp.certs import LocalCA
from clavis_mcp.vault import AuditLog, Vault
from clavis_mcp.vault.errors import ProxyStartError
from clavis_mcp.vault.proxy_config import ProxyConfig

from .base_url import with_base_url
from .base_url_front import BaseUrlServer
from .header_lookup import install as install_header_lookup
from .message_types import install as install_message_check
from .peek import SamePortDispatch
from .upstream_pool import UpstreamPool, upstream_tls
from .upstream_reuse import KeepUpstreamAddress
from .upstream_trust import build_upstream_bundle

LISTEN_HOST = "127.0.0.1"
logger = logging.getLogger(__name__)


class _Ready:
    """Tells the starter that mitmproxy has finished bringing up its servers."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def running(self) -> None:
        self.event.set()


class EmbeddedProxy:
    def __init__(self, vault: Vault, audit: AuditLog, ca: LocalCA, config: ProxyConfig, *, port: int = 0) -> None:
        """``config`` is handed to our addons unchanged; its ``extra_addons`` run after ours (a test
        routes real-looking names to loopback in ``server_connect`` after our dial check). ``port``
        is where to listen, not how to treat traffic, so it is not part of the config."""
        self._vault = vault
        self._audit = audit
        self._ca = ca
        self._config = config
        self._port = port
        self._master: master.Master | None = None
        self._server: proxyserver.Proxyserver | None = None
        self._task: asyncio.Task[None] | None = None
        self._front: BaseUrlServer | None = None
        self._dispatch: SamePortDispatch | None = None
        self.port: int | None = None

    async def start(self) -> int:
        """Start listening; return the bound port. Must run on the event loop that serves clients."""
        if self._master is not None:
            raise ProxyStartError("the proxy is already running")
        self._ca.ensure()
        install_message_check()
        install_header_lookup()
        bundle = build_upstream_bundle(self._vault.home / "upstream-ca-bundle.pem")
        opts = options.Options(
            listen_host=LISTEN_HOST,
            listen_port=self._port,
            confdir=str(self._ca.directory),
            ssl_verify_upstream_trusted_ca=str(bundle),
            upstream_cert=False,
        )
        ready = _Ready()
        proxy_server = proxyserver.Proxyserver()
        pipeline = Pipeline(
            with_base_url(default_addons(self._vault, self._audit, self._config), self._config.tokens, self._vault)
        )
        self._front = BaseUrlServer(
            pipeline, self._config.extra_addons, UpstreamPool(upstream_tls(bundle)), self._config.max_request_body
        )
        self._dispatch = SamePortDispatch(proxy_server.servers, self._front.serve)
        m = master.Master(opts, event_loop=asyncio.get_running_loop())
        m.addons.add(
            core.Core(),
            disable_h2c.DisableH2C(),
            proxy_server,
            next_layer.NextLayer(),
            tlsconfig.TlsConfig(),
            KeepUpstreamAddress(),
            pipeline,
            *self._config.extra_addons,
            ready,
        )
        opts.update(connection_strategy="lazy")
        self._master, self._server = m, proxy_server
        self._task = asyncio.create_task(m.run(), name="clavis-proxy")
        waiter = asyncio.create_task(ready.event.wait())
        done, _ = await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if self._task in done:
            waiter.cancel()
            self._task.result()
            raise ProxyStartError("the proxy stopped while starting")
        m.addons.remove(ready)  # every addon in the chain costs a dispatch on every event
        addresses = proxy_server.listen_addrs()
        if not addresses:
            await self.stop()
            raise ProxyStartError(
                f"the proxy could not listen on {LISTEN_HOST}:{self._port}; is another program using the port?"
            )
        self.port = addresses[0][1]
        return self.port

    async def stop(self) -> None:
        if self._master is None:
            return
        if self._server is not None:
            await self._server.servers.update([])  # mitmproxy leaves its listeners open at shutdown
        if self._front is not None:
            self._front.close()
        self._master.shutdown()
        if self._task is not None:
            await self._task
        self._master = self._server = self._task = None
        self._front = self._dispatch = None
        self.port = None

    @property
    def front(self) -> BaseUrlServer:
        """The base-URL front, for callers in this process (:mod:`.in_process`)."""
        if self._front is None:
            raise ProxyStartError("the proxy is not running")
        return self._front

    @property
    def url(self) -> str:
        if self.port is None:
            raise ProxyStartError("the proxy is not running")
        return f"http://{LISTEN_HOST}:{self.port}"
