"""``audit report --html``: the overview as one file, to share or archive.

Inline CSS and SVG, no script, and a Content-Security-Policy that forbids every load, so the file
shows the same figures as the page with no network and no server.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from .app import STATIC
from .figures import bucket_width
from .pages import overview_html, shell
from .source import AuditSource


def report_html(source: AuditSource, start: datetime, end: datetime) -> str:
    ov = source.overview(start, end, bucket_width(end - start))
    css = (STATIC / "ui.css").read_text(encoding="utf-8")
    title = f"audit report {start.astimezone():%Y-%m-%d %H:%M} to {end.astimezone():%Y-%m-%d %H:%M}"
    generated = f'<p class="generated">generated {datetime.now().astimezone():%Y-%m-%d %H:%M:%S %Z}</p>'
    return shell(title, overview_html(ov) + generated, css=css)


def write_report(source: AuditSource, start: datetime, end: datetime, path: Path) -> None:
    """Written to a temporary name and renamed, so a reader never sees half a report."""
    text = report_html(source, start, end)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)
