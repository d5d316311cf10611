"""`clavis-mcp proxy` on a team client: agents' HTTPS through the team server, no secret in this process.

The agent's TLS to a team service's host is terminated here with the local CA, as in local
mode; each request is then streamed, as it came, to the team server's ``/v1/egress`` with the
destination in ``X-Clavis-Target`` and the caller's own key, and the answer is streamed back.
The server injects, redacts and audits. Hosts no team service owns are tunnelled untouched,
but never to a private destination: a loopback name or a non-public address literal is refused
at CONNECT (as local mode's default passthrough does), and :class:`TeamDialGuard` resolves every
other tunnel's name itself and refuses it if any address is private, loopback, link-local or
metadata, then dials the checked address (so no agent pivots into the LAN or cloud metadata).
Each refusal is a line on stderr with the destination only. Agents authenticate with a proxy
token made at start (loopback is shared by every local user).
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import secrets
import signal
import sys
from pathlib import Path

import click
import httpx
from mitmproxy import http, master, options, tls
from mitmproxy.addons import core, disable_h2c, next_layer, proxyserver, tlsconfig
from mitmproxy.proxy import server_hooks

from clavis_mcp.addons.destination import is_private_host
from clavis_mcp.addons.dial_guard import REFUSAL_PREFIX, DialGuard
from clavis_mcp.certs import LocalCA
from clavis_mcp.mcp_front.team_client import TeamClient
from clavis_mcp.proxy.peek import SamePortDispatch
from clavis_mcp.proxy.upstream_trust import build_upstream_bundle
from clavis_mcp.vault import canonical_host
from clavis_mcp.vault.dialing import Resolver
from clavis_mcp.vault.errors import ClavisError, ProxyStartError
from clavis_mcp.vault.hosts import HostRule, parse_host_rule

TARGET_HEADER = "X-Clavis-Target"
PROXY_USER = "clavis"


class TeamForward:
    """Intercepted requests go to the team server's egress; everything else is a tunnel."""

    def __init__(self, client: TeamClient, rules: list[HostRule], token: str) -> None:
        self._client, self._rules, self._token = client, rules, token
        server = httpx.URL(client.url)
        self._scheme, self._host = server.scheme, server.host
        self._port = server.port or (443 if self._scheme == "https" else 80)
        self._authority = server.netloc.decode("ascii")
        self.server_host, self.server_port = self._host, self._port
        self._trusted: set[str] = set()

    def _authorized(self, header: str) -> bool:
        scheme, _, value = header.partition(" ")
        try:
            user, _, given = base64.b64decode(value).decode().partition(":")
        except ValueError:
            return False
        return scheme.lower() == "basic" and user == PROXY_USER and hmac.compare_digest(given, self._token)

    def http_connect(self, flow: http.HTTPFlow) -> None:
        if self._authorized(flow.request.headers.get("proxy-authorization", "")):
            self._trusted.add(flow.client_conn.id)
            self._check_tunnel(flow)
            return
        flow.response = http.Response.make(407, b"clavis-mcp proxy: give the proxy token (see `clavis-mcp proxy`)\n",
                                           {"Proxy-Authenticate": 'Basic realm="clavis-mcp"'})  # fmt: skip

    def _check_tunnel(self, flow: http.HTTPFlow) -> None:
        """A host no team service owns is tunnelled only if it is not a loopback name or private literal."""
        try:
            host = canonical_host(flow.request.host)
        except ValueError as exc:
            flow.response = http.Response.make(400, f"clavis-mcp: malformed destination: {exc}\n".encode())
            return
        port = flow.request.port
        if any(rule.matches(host, port) for rule in self._rules) or not is_private_host(host):
            return
        reason = (
            f"{REFUSAL_PREFIX} {host}:{port}: no team service owns it, and it is a private or loopback address, "
            "which the team client's proxy does not pass through; reach it directly (NO_PROXY)"
        )
        note_refusal(reason)
        flow.response = http.Response.make(403, f"{reason}\n".encode())

    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        address = data.context.server.address
        if address is None or not any(rule.matches(address[0], address[1]) for rule in self._rules):
            data.ignore_connection = True  # no team service here: the agent's own TLS, untouched

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None:
            return
        if flow.client_conn.id not in self._trusted and not self._authorized(
            flow.request.headers.get("proxy-authorization", "")
        ):
            flow.response = http.Response.make(407, b"clavis-mcp proxy: give the proxy token\n",
                                               {"Proxy-Authenticate": 'Basic realm="clavis-mcp"'})  # fmt: skip
            return
        request = flow.request
        target = f"{request.scheme}://{request.host}:{request.port}{request.path}"
        try:
            key = self._client.key().secret.reveal()
        except ClavisError as exc:  # an expired login: the agent reads why and what to run
            flow.response = http.Response.make(401, f"clavis-mcp: {exc}\n".encode())
            return
        request.stream = True
        request.scheme, request.host, request.port = self._scheme, self._host, self._port
        request.path = "/v1/egress"
        request.headers.pop("proxy-authorization", None)
        request.headers[TARGET_HEADER] = target
        request.headers["Authorization"] = f"Bearer {key}"
        request.headers["Host"] = self._authority

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None:
            flow.response.stream = True


class TeamDialGuard(DialGuard):
    """The proxy's dial guard with no ``--local`` service and the team server exempt: every
    other tunnel's name is resolved here, refused if any address is not public, and pinned to
    the checked address; each refusal is also a line on stderr."""

    def __init__(self, team_server: tuple[str, int], resolver: Resolver | None = None) -> None:
        super().__init__(None, resolver, exempt=team_server)

    async def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        await super().server_connect(data)
        if data.server.error:
            note_refusal(data.server.error)


def note_refusal(reason: str) -> None:
    """A refused tunnel on stderr: the destination and why, never a header or token."""
    click.echo(f"clavis-mcp proxy: {reason}", err=True)


def team_addons(
    client: TeamClient, rules: list[HostRule], token: str, resolver: Resolver | None = None
) -> list[object]:
    """The team client's own addons, in hook order: forward or refuse, then guard the dial."""
    forward = TeamForward(client, rules, token)
    return [forward, TeamDialGuard((forward.server_host, forward.server_port), resolver)]


def announce(line: str) -> None:
    click.echo(line)
    sys.stdout.flush()


async def serve_team_proxy(home: Path, port: int) -> None:
    """Run until SIGINT/SIGTERM, after printing the lines an agent's environment needs."""
    client = TeamClient.from_env()
    try:
        rules = [parse_host_rule(h) for s in await client.services() for h in s.get("hosts") or []]
    finally:
        await client.aclose()
    ca = LocalCA(home / "certs")
    ca.ensure()
    token = secrets.token_urlsafe(24)
    opts = options.Options(listen_host="127.0.0.1", listen_port=port, confdir=str(ca.directory),
                           ssl_verify_upstream_trusted_ca=str(build_upstream_bundle(home / "upstream-ca-bundle.pem")),
                           upstream_cert=False)  # fmt: skip
    server = proxyserver.Proxyserver()
    # No base-URL front here: only the CONNECT repair (proxy/peek.py). Kept in a name while the
    # proxy runs: the servers' signal holds it weakly.
    _dispatch = SamePortDispatch(server.servers, None)
    m = master.Master(opts, event_loop=asyncio.get_running_loop())
    m.addons.add(core.Core(), disable_h2c.DisableH2C(), server, next_layer.NextLayer(), tlsconfig.TlsConfig(),
                 *team_addons(client, rules, token))  # fmt: skip
    opts.update(connection_strategy="lazy")
    task = asyncio.create_task(m.run())
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    try:
        for _ in range(200):
            if server.listen_addrs() or task.done():
                break
            await asyncio.sleep(0.05)
        if not server.listen_addrs():
            raise ProxyStartError(f"the proxy could not listen on 127.0.0.1:{port}; use --port to choose another")
        bound = server.listen_addrs()[0][1]
        announce(f"clavis-mcp proxy (team client of {client.url}) listening on 127.0.0.1:{bound}")
        announce(f"HTTPS_PROXY=http://{PROXY_USER}:{token}@127.0.0.1:{bound}")
        announce(f"SSL_CERT_FILE={ca.cert_path}")
        await stop.wait()
    finally:
        await server.servers.update([])
        m.shutdown()
        await task
