"""Pages of list_services: at most ``limit`` services a call, after a cursor, optionally only the
names that hold a text. The local and the team server page alike, so one call's cost and size
stay flat however many services exist, and a model's context is not flooded by 10,000 of them.

The cursor is the last name of the page before, encoded so that it reads as a token to pass
back, not a name to edit. The next page starts after that name in name order: a service added
or removed meanwhile neither repeats nor hides another, and a cursor whose service was removed
still works.
"""

from __future__ import annotations

import base64
import binascii
from bisect import bisect_right
from collections.abc import Callable, Sequence

from mcp.server.mcpserver.exceptions import ToolError

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
BAD_CURSOR = (
    "this cursor is not one list_services gave: pass next_cursor from the previous page unchanged, "
    "or leave cursor out to start from the first page"
)


def page[T](
    items: Sequence[T], name: Callable[[T], str], limit: int, cursor: str | None, match: str | None
) -> tuple[list[T], int, str | None]:
    """(the page of ``items``, how many match over all pages, the cursor of the next page or None).

    ``items`` are in name order; ``match`` keeps the names that contain it, in any case."""
    after = None if cursor is None else _read(cursor)
    wanted = [item for item in items if match.lower() in name(item)] if match else items
    start = 0 if after is None else bisect_right(wanted, after, key=name)
    chosen = list(wanted[start : start + limit])
    more = start + limit < len(wanted)
    return chosen, len(wanted), _cursor(name(chosen[-1])) if more else None


def _cursor(last: str) -> str:
    return base64.urlsafe_b64encode(last.encode()).decode().rstrip("=")


def _read(cursor: str) -> str:
    try:
        last = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, ValueError):
        raise ToolError(BAD_CURSOR) from None
    if not last or _cursor(last) != cursor:  # only the spelling this module writes (a team's names may be any text)
        raise ToolError(BAD_CURSOR)
    return last
