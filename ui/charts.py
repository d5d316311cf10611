"""Charts as server-side SVG: plain markup the page and the report embed, no script to draw them.

Colours come from CSS classes (``d-injected``...), so the strict Content-Security-Policy needs no
inline style; every bar carries its figure in a ``<title>`` (the tooltip) and a ``data-count``.
"""

from __future__ import annotations

from datetime import timedelta
from html import escape

from .figures import STACK, Overview

WIDTH, HEIGHT = 760, 220
LEFT, BOTTOM, TOP = 40, 28, 16


def _label(overview: Overview, index: int) -> str:
    moment = overview.timeline[index].start.astimezone()
    if overview.width >= timedelta(days=1):
        return moment.strftime("%a %d")
    return moment.strftime("%H:%M")


def timeline_svg(overview: Overview) -> str:
    """Requests per bucket, stacked by decision, with each bar's total above it."""
    buckets = overview.timeline
    peak = max((b.total for b in buckets), default=0) or 1
    plot_w, plot_h = WIDTH - LEFT - 8, HEIGHT - BOTTOM - TOP
    slot = plot_w / len(buckets)
    bar = max(2.0, slot * 0.8)
    every = max(1, len(buckets) // 8)
    out = [
        f'<svg class="chart timeline" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="requests over time, stacked by decision" xmlns="http://www.w3.org/2000/svg">',
        f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - 8}" y2="{TOP + plot_h}"/>',
        f'<text class="tick" x="{LEFT - 4}" y="{TOP + 4}" text-anchor="end">{peak}</text>',
        f'<text class="tick" x="{LEFT - 4}" y="{TOP + plot_h}" text-anchor="end">0</text>',
    ]
    for i, bucket in enumerate(buckets):
        x = LEFT + i * slot + (slot - bar) / 2
        y: float = TOP + plot_h
        when = escape(_label(overview, i))
        out.append(f'<g class="bar" data-start="{bucket.start.isoformat()}" data-total="{bucket.total}">')
        for decision in STACK:
            count = bucket.counts[decision]
            if not count:
                continue
            h = count / peak * plot_h
            y -= h
            out.append(
                f'<rect class="seg d-{decision}" data-decision="{decision}" data-count="{count}" '
                f'x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}">'
                f"<title>{when}: {count} {decision}</title></rect>"
            )
        if bucket.total:
            out.append(f'<text class="total" x="{x + bar / 2:.1f}" y="{y - 3:.1f}" text-anchor="middle">'
                       f"{bucket.total}</text>")  # fmt: skip
        out.append("</g>")
        if i % every == 0:
            out.append(f'<text class="tick" x="{x + bar / 2:.1f}" y="{HEIGHT - 8}" text-anchor="middle">{when}</text>')
    out.append("</svg>")
    return "".join(out)


def legend_html() -> str:
    items = "".join(f'<li><span class="swatch d-{d}"></span>{d}</li>' for d in STACK)
    return f'<ul class="legend">{items}</ul>'


def bars_svg(rows: list[tuple[str, int]], css_class: str = "d-refused") -> str:
    """Horizontal bars, one per row (label, count), largest first as given."""
    if not rows:
        return ""
    row_h, label_w, width = 22, 300, WIDTH
    peak = max(count for _, count in rows) or 1
    height = row_h * len(rows) + 4
    out = [f'<svg class="chart bars" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">']
    for i, (label, count) in enumerate(rows):
        y = 2 + i * row_h
        w = count / peak * (width - label_w - 60)
        short = label if len(label) <= 48 else label[:47] + "…"
        out.append(
            f'<g class="row" data-count="{count}"><title>{escape(label)}: {count}</title>'
            f'<text class="label" x="{label_w - 6}" y="{y + 15}" text-anchor="end">{escape(short)}</text>'
            f'<rect class="seg {css_class}" x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}"/>'
            f'<text class="total" x="{label_w + w + 6:.1f}" y="{y + 15}">{count}</text></g>'
        )
    out.append("</svg>")
    return "".join(out)
