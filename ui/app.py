"""The page's routes: the overview, the records table, the live tail; built behind :class:`Guard`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from clavis_mcp.vault.errors import AuditQueryError

from .approvals import ApprovalDesk, approvals_html
from .figures import PERIODS
from .guard import Guard, csrf_token
from .pages import e, overview_html, record_cells, records_html, shell
from .source import AuditSource, Position, RecordQuery

STATIC = Path(__file__).parent / "static"
TAIL_POLL_SECONDS = 0.25
KEEPALIVE_SECONDS = 15.0
DEFAULT_PERIOD = "day"


def period_window(period: str, now: datetime) -> tuple[datetime, datetime, timedelta]:
    """[start, end) of the last ``period``, in whole buckets that end with the current one."""
    span, width = PERIODS[period]
    if width >= timedelta(days=1):
        floor = now.replace(hour=0, minute=0, second=0, microsecond=0)
    else:
        seconds = int(width.total_seconds())
        floor = datetime.fromtimestamp(int(now.timestamp()) // seconds * seconds, now.tzinfo)
    end = floor + width
    return end - span, end, width


def build_app(source: AuditSource, token: str, desk: ApprovalDesk | None = None) -> Guard:
    csrf = csrf_token(token)

    async def overview(request: Request) -> Response:
        period = request.query_params.get("period", DEFAULT_PERIOD)
        if period not in PERIODS:
            return _error(f"unknown period {period!r}: use one of {', '.join(PERIODS)}", csrf)
        start, end, width = period_window(period, datetime.now().astimezone())
        ov = await run_in_threadpool(source.overview, start, end, width)
        return HTMLResponse(shell("Overview", overview_html(ov, period=period), csrf=csrf))

    async def records(request: Request) -> Response:
        params = dict(request.query_params)
        try:
            query = RecordQuery.parse(params)
            page = max(1, int(params.get("page", "1") or 1))
        except (AuditQueryError, ValueError) as exc:
            return _error(str(exc), csrf)
        position = await run_in_threadpool(source.end)
        found, total, more = await run_in_threadpool(source.page, query, page)
        body = records_html(found, params, page, total, more)
        body = f'<div id="tail" data-from="{position[0]}:{position[1]}"></div>{body}'
        return HTMLResponse(shell("Records", body, csrf=csrf, live=page == 1))

    async def events(request: Request) -> Response:
        params = dict(request.query_params)
        try:
            query = RecordQuery.parse(params)
            start = _position(params.get("from", ""))
        except (AuditQueryError, ValueError) as exc:
            return Response(str(exc) + "\n", status_code=400, media_type="text/plain")
        if start is None:
            start = await run_in_threadpool(source.end)
        return StreamingResponse(_tail(source, query, start), media_type="text/event-stream")

    async def approvals(request: Request) -> Response:
        return HTMLResponse(shell("Approvals", approvals_html(), csrf=csrf))

    pages = [Route("/", overview), Route("/records", records), Route("/approvals", approvals)]
    routes = [*pages, Route("/events", events), Mount("/static", StaticFiles(directory=STATIC), name="static")]
    if desk is not None:
        routes += [
            Route("/approvals.json", html_safe_json(desk.list_route)),
            Route("/approvals/{held_id:str}", html_safe_json(desk.decide_route), methods=["POST"]),
            Route("/grants/{held_id:str}/revoke", html_safe_json(desk.revoke_route), methods=["POST"]),
        ]
    return Guard(Starlette(routes=routes), token, frozenset(page.path for page in pages))


def html_safe(data: str) -> str:
    """JSON with <, > and & written as \\u003c, \\u003e, \\u0026: the same data to a JSON reader, and
    no markup (agent text holds some) to anything that ever parses it as HTML."""
    return data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def html_safe_json(route: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """The approval desk's answers, which carry agent text, as :func:`html_safe` JSON."""

    async def answer(request: Request) -> Response:
        response = await route(request)
        body = html_safe(bytes(response.body).decode())
        return Response(body, response.status_code, media_type=response.media_type)

    return answer


async def _tail(source: AuditSource, query: RecordQuery, position: Position) -> AsyncIterator[str]:
    """Each new matching record as an SSE ``record`` event, the display cells with all fields."""
    yield ": tail\n\n"
    idle = 0.0
    while True:
        found, position = await run_in_threadpool(source.after, position)
        sent = False
        for record in found:
            if query.matches(record):
                data = html_safe(json.dumps({"cells": record_cells(record), "record": record}))
                yield f"event: record\ndata: {data}\n\n"
                sent = True
        idle = 0.0 if sent else idle + TAIL_POLL_SECONDS
        if idle >= KEEPALIVE_SECONDS:
            idle = 0.0
            yield ": keepalive\n\n"
        await asyncio.sleep(TAIL_POLL_SECONDS)


def _position(text: str) -> Position | None:
    if not text:
        return None
    number, _, offset = text.partition(":")
    return int(number), int(offset)


def _error(message: str, csrf: str) -> Response:
    return HTMLResponse(shell("Error", f'<p class="error">{e(message)}</p>', csrf=csrf), status_code=400)
