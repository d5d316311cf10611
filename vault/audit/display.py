"""How a record's request reads in a table row: the CLI's `audit` and the review page agree."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_DEFAULT_PORTS = {"https": 443, "http": 80}


def request_text(record: Mapping[str, Any]) -> str:
    """``METHOD host[:port]/path`` (the port only when it is not the scheme's), or the record's
    ``action`` for what is not a request (a CLI change, a reveal)."""
    if record.get("action"):
        return str(record["action"])
    port = record.get("port")
    default = _DEFAULT_PORTS.get(str(record.get("scheme")))
    authority = f"{record.get('host', '')}" + (f":{port}" if port and port != default else "")
    return f"{record.get('method', '')} {authority}{record.get('path', '')}".strip()
