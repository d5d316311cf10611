"""`clavis-mcp team serve`: one replica, or N worker processes on one socket (uvicorn's supervisor).

The socket is bound here, before any worker starts, so port 0 works and the bound port is the
one printed. The ready line goes to stderr once ``/healthz`` answers through that socket, i.e.
once a worker has connected to PostgreSQL and OpenBao and started its proxy. A killed worker
is replaced by the supervisor; the others keep serving meanwhile.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time

import httpx
import psycopg
import uvicorn
from starlette.applications import Starlette
from uvicorn.supervisors import Multiprocess

from .app import build_app
from .config import ReplicaConfig
from .replica import check_schema

READY_TIMEOUT = 60.0
READY_LINE = "clavis team server listening on http://{host}:{port}"
STDERR_HANDLER = "clavis-team-stderr"


def app_from_env() -> Starlette:
    """The ASGI app of one replica, configured from CLAVIS_TEAM_* (uvicorn's factory). Called in
    each worker process, so that is where logging is set up: uvicorn spawns its workers afresh."""
    log_to_stderr()
    return build_app(ReplicaConfig.from_env())


def log_to_stderr() -> None:
    """Our own warnings and errors go to stderr, once each: mitmproxy puts a handler on the root
    logger that keeps what reaches it, so without one of ours an admin never reads that a service
    is not loaded or a request failed unexpectedly. Only our loggers, whose messages are written to
    hold no secret; the libraries that log URLs at INFO stay at WARNING and off this handler."""
    ours = logging.getLogger("clavis_mcp")
    if not any(h.get_name() == STDERR_HANDLER for h in ours.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.set_name(STDERR_HANDLER)
        handler.setLevel(logging.WARNING)
        handler.setFormatter(logging.Formatter("clavis-mcp %(levelname)s %(name)s: %(message)s"))
        ours.addHandler(handler)
    for noisy in ("mitmproxy", "httpx", "httpcore", "hpack", "h2"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def serve(host: str, port: int, workers: int) -> None:
    replica = ReplicaConfig.from_env()  # a missing variable is one clear line, before any worker starts
    _check_schema(replica.database_url)  # so is a database an older version set up
    config = uvicorn.Config(
        "clavis_mcp.team.serve:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,
        # The client address (login limits) is the peer's unless it is a proxy named here.
        proxy_headers=bool(os.environ.get("CLAVIS_TEAM_TRUSTED_PROXIES")),
        forwarded_allow_ips=os.environ.get("CLAVIS_TEAM_TRUSTED_PROXIES") or None,
        log_level="warning",
        lifespan="on",
    )
    sock = config.bind_socket()
    bound = sock.getsockname()[1]
    threading.Thread(target=_announce, args=(host, bound), daemon=True).start()
    if workers > 1:
        Multiprocess(config, sockets=[sock]).run()
    else:
        uvicorn.Server(config).run(sockets=[sock])


def _check_schema(database_url: str) -> None:
    """The replicas' own check, made once here: each worker would otherwise fail its start-up with
    a traceback in the log. A database that cannot be reached now is left for the workers to say."""
    try:
        with psycopg.connect(database_url, autocommit=True, connect_timeout=10) as conn:
            check_schema(conn)
    except psycopg.Error:
        pass


def _announce(host: str, port: int) -> None:
    shown = f"[{host}]" if ":" in host else host
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://{shown}:{port}/healthz", timeout=2.0, trust_env=False).status_code == 200:
                print(READY_LINE.format(host=shown, port=port), file=sys.stderr, flush=True)
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    print(f"clavis team server did not become ready on port {port} in {READY_TIMEOUT:.0f} s", file=sys.stderr)
