"""HTML for the page and the report: every value escaped here, once, on its way out.

Audit fields come from agents (paths, agent names, reasons), so they are text, never markup.
The live tail builds its rows in the browser from :func:`record_cells` with ``textContent``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from html import escape
from typing import Any
from urllib.parse import urlencode

from clavis_mcp.vault.audit.display import request_text
from clavis_mcp.vault.audit.filters import record_time

from .charts import bars_svg, legend_html, timeline_svg
from .figures import PERIODS, ChainBadge, Overview

CELL_TITLES = ("time", "agent", "service", "request", "status", "decision", "reason")
FILTER_FIELDS = ("service", "agent", "decision", "method", "host", "path", "status", "since", "until", "q")


def e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def local_time(epoch: float | None) -> str:
    """The local time of ``epoch``, or its raw figure when no date has it: the value comes from
    recorded data, and one odd figure must not take the whole page or report down."""
    if epoch is None:
        return ""
    try:
        return datetime.fromtimestamp(epoch).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, ValueError, OSError):
        return str(epoch)


def shell(title: str, body: str, *, css: str | None = None, csrf: str = "", live: bool = False) -> str:
    """The document around ``body``: linked CSS and script on the page, inline CSS in the report."""
    if css is None:
        head = '<link rel="stylesheet" href="/static/ui.css"><script src="/static/ui.js" defer></script>'
        nav = '<nav><a href="/">Overview</a><a href="/records">Records</a><a href="/approvals">Approvals</a></nav>'
    else:
        # A file opened from disk: nothing may load from anywhere, the style is inline.
        policy = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
        head, nav = f'<meta http-equiv="Content-Security-Policy" content="{policy}"><style>{css}</style>', ""
    meta = f'<meta name="csrf-token" content="{e(csrf)}">' if csrf else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">{meta}'
        f"<title>{e(title)}</title>{head}</head>"
        f"<body{' data-live' if live else ''}><header><h1>clavis-mcp · {e(title)}</h1>{nav}</header>"
        f"<main>{body}</main></body></html>"
    )


def badge_html(chain: ChainBadge | None) -> str:
    if chain is None:
        return '<p id="chain" class="badge unknown">audit chain: not checked</p>'
    state = "ok" if chain.ok else "broken"
    word = "verified" if chain.ok else "BROKEN"
    ok = str(chain.ok).lower()
    return f'<p id="chain" class="badge {state}" data-ok="{ok}">audit chain {word}: {e(chain.summary)}</p>'


def overview_html(ov: Overview, *, period: str | None = None) -> str:
    """The overview's sections; ``period`` shows the hour/day/week switch (the page, not the report)."""
    span = f"{ov.start.astimezone():%Y-%m-%d %H:%M} to {ov.end.astimezone():%Y-%m-%d %H:%M}"
    switch = ""
    if period is not None:
        links = "".join(f'<a href="/?period={p}"{" class=current" if p == period else ""}>{p}</a>' for p in PERIODS)
        switch = f'<p class="periods">{links}</p>'
    parts = [
        badge_html(ov.chain),
        f'<section id="timeline"><h2>Requests <span id="total" data-total="{ov.total}">{ov.total}</span>'
        f" <small>{e(span)}</small></h2>{switch}{timeline_svg(ov)}{legend_html()}</section>",
        _matrix_html(ov),
        _refusals_html(ov),
        _latency_html(ov),
        _limits_html(ov),
    ]
    return "".join(parts)


def _matrix_html(ov: Overview) -> str:
    if not ov.matrix:
        return (
            '<section id="matrix"><h2>Services × agents</h2><p class="empty">no requests in this period</p></section>'
        )
    head = "".join(f"<th>{e(a)}</th>" for a in ov.agents)
    rows = []
    for service in ov.services:
        cells = []
        for agent in ov.agents:
            cell = ov.matrix.get((service, agent))
            if cell is None:
                cells.append('<td class="none">·</td>')
                continue
            errors = f' · <span class="errors">{cell.errors} err</span>' if cell.errors else ""
            cells.append(
                f'<td class="cell" data-service="{e(service)}" data-agent="{e(agent)}" data-count="{cell.count}" '
                f'data-bytes="{cell.bytes}" data-errors="{cell.errors}"><b>{cell.count}</b>'
                f"<small>{human_bytes(cell.bytes)}{errors}</small></td>"
            )
        rows.append(f"<tr><th>{e(service)}</th>{''.join(cells)}</tr>")
    return (
        '<section id="matrix"><h2>Services × agents <small>requests, response bytes, errors</small></h2>'
        f'<table class="matrix"><thead><tr><th>service \\ agent</th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    )


def _refusals_html(ov: Overview) -> str:
    if not ov.refusals:
        return '<section id="refusals"><h2>Refusals</h2><p class="empty">none in this period</p></section>'
    return f'<section id="refusals"><h2>Refusals by reason</h2>{bars_svg(ov.refusals)}</section>'


def _latency_html(ov: Overview) -> str:
    if not ov.latency:
        return '<section id="latency"><h2>Latency</h2><p class="empty">no timed requests in this period</p></section>'
    rows = "".join(
        f'<tr data-service="{e(x.service)}"><th>{e(x.service)}</th><td>{x.count}</td><td>{x.p50:g}</td>'
        f"<td>{x.p90:g}</td><td>{x.p99:g}</td><td>{x.max:g}</td></tr>"
        for x in ov.latency
    )
    return (
        '<section id="latency"><h2>Latency per service <small>milliseconds</small></h2><table class="numbers">'
        "<thead><tr><th>service</th><th>timed</th><th>p50</th><th>p90</th><th>p99</th><th>max</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></section>"
    )


def _limits_html(ov: Overview) -> str:
    if not ov.limits:
        return '<section id="limits"><h2>Rate limits</h2><p class="empty">no rate-limit headers seen yet</p></section>'
    rows = []
    for x in ov.limits:
        left = "?" if x.remaining is None else str(x.remaining)
        of = "" if x.limit is None else f" of {x.limit}"
        low = (
            " low"
            if x.remaining is not None and (x.remaining == 0 or (x.limit and x.remaining / x.limit < 0.1))
            else ""
        )
        rows.append(
            f'<tr class="limit{low}" data-service="{e(x.service)}"><th>{e(x.service)}</th>'
            f"<td>{e(left + of)} {e(x.scope)}</td><td>{e(local_time(x.reset_at) or 'unknown')}</td>"
            f"<td>{e(local_time(x.observed_at))}</td></tr>"
        )
    return (
        '<section id="limits"><h2>Rate limits <small>as last seen from each provider</small></h2>'
        '<table class="numbers"><thead><tr><th>service</th><th>remaining</th><th>resets at</th><th>seen at</th>'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table></section>"
    )


def record_cells(record: Mapping[str, Any]) -> list[str]:
    """One record as the table's display strings (:data:`CELL_TITLES`)."""
    moment = record_time(dict(record))
    request = request_text(record)
    values = [
        moment.astimezone().strftime("%Y-%m-%d %H:%M:%S") if moment else "?",
        record.get("source"),
        record.get("service"),
        request,
        record.get("status"),
        record.get("decision"),
        record.get("reason"),
    ]
    return ["" if v is None else str(v) for v in values]


def record_row(record: Mapping[str, Any]) -> str:
    cells = record_cells(record)
    tds = "".join(f'<td class="c-{t}">{e(c)}</td>' for t, c in zip(CELL_TITLES, cells, strict=True))
    fields = "".join(f"<dt>{e(k)}</dt><dd>{e(json.dumps(v) if not isinstance(v, str) else v)}</dd>"
                     for k, v in record.items())  # fmt: skip
    decision = e(record.get("decision"))
    return (
        f'<tr class="rec d-row-{decision}" data-id="{e(record.get("id"))}">{tds}'
        f"<td><details><summary>#{e(record.get('seq', ''))}</summary><dl>{fields}</dl></details></td></tr>"
    )


def records_html(
    records: Sequence[Mapping[str, Any]], filters: Mapping[str, str], page: int, total: int | None, more: bool
) -> str:
    inputs = "".join(
        f'<label>{name}<input name="{name}" value="{e(filters.get(name, ""))}"'
        f"{' placeholder=' + chr(34) + '1h, today, 2026-11-24' + chr(34) if name in ('since', 'until') else ''}>"
        "</label>"
        for name in FILTER_FIELDS
    )
    form = f'<form id="filters" method="get" action="/records">{inputs}<button type="submit">Filter</button></form>'
    head = "".join(f"<th>{t}</th>" for t in CELL_TITLES) + "<th>chain</th>"
    rows = "".join(record_row(r) for r in records)
    query = {k: v for k, v in filters.items() if v}
    nav = []
    if page > 1:
        nav.append(f'<a rel="prev" href="/records?{e(urlencode({**query, "page": page - 1}))}">newer</a>')
    if more:
        nav.append(f'<a rel="next" href="/records?{e(urlencode({**query, "page": page + 1}))}">older</a>')
    counted = f"{total} matching" if total is not None else ""
    live = '<span id="live" class="live">live</span>' if page == 1 else ""
    return (
        f'{form}<p class="pager">{live} page {page} {e(counted)} {" ".join(nav)}</p>'
        f'<table id="records" class="records"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'
        + ("" if records else '<p class="empty">no matching records</p>')
    )
