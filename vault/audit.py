"""The audit log: one JSON line per decision, never a header value, body or query value.

Writes go through one ``O_APPEND`` descriptor with a single ``write`` per record, so records
from several processes never interleave. A write that fails raises AuditWriteError and the
caller refuses the request it was recording (fail closed, like mitmproxy's ``save``).
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .errors import AuditWriteError

AUDIT_FILE = "audit.jsonl"

# Field names of a record, the single vocabulary for writers, readers and tests.
ID, TIME, SOURCE, SERVICE, METHOD, SCHEME, HOST, PORT, PATH = (
    "id", "time", "source", "service", "method", "scheme", "host", "port", "path",
)  # fmt: skip
STATUS, BYTES, DURATION_MS, DECISION, REASON, REDACTIONS, ACTION = (
    "status", "bytes", "duration_ms", "decision", "reason", "redactions", "action",
)  # fmt: skip
FIELDS = (ID, TIME, SOURCE, SERVICE, METHOD, SCHEME, HOST, PORT, PATH, STATUS, BYTES, DURATION_MS,
          DECISION, REASON, REDACTIONS, ACTION)  # fmt: skip

INJECTED, REFUSED, PASSED, ERROR = "injected", "refused", "passed", "error"


def path_without_query_values(path: str) -> str:
    """``/v1/x?key=abc&b=2`` becomes ``/v1/x?key=&b=``: names help a review, values may be secrets."""
    parts = urlsplit(path)
    if not parts.query:
        return parts.path or "/"
    names = [name for name, _ in parse_qsl(parts.query, keep_blank_values=True)]
    return (parts.path or "/") + "?" + "&".join(f"{name}=" for name in names)


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def append(self, **fields: Any) -> str:
        """Write one record; return its id. Unknown field names are a programming error."""
        unknown = set(fields) - set(FIELDS)
        if unknown:
            raise ValueError(f"unknown audit fields: {sorted(unknown)}")
        record = {ID: uuid.uuid4().hex[:16], TIME: datetime.now(UTC).isoformat(timespec="milliseconds")}
        record.update({k: v for k, v in fields.items() if v is not None})
        if PATH in record:
            record[PATH] = path_without_query_values(record[PATH])
        line = (json.dumps(record, separators=(",", ":"), sort_keys=True) + "\n").encode()
        with self._lock:
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    if os.write(fd, line) != len(line):
                        raise OSError("short write")
                finally:
                    os.close(fd)
            except OSError as exc:
                raise AuditWriteError(
                    f"cannot write the audit log {self.path} ({exc.strerror or exc}); "
                    "requests are refused until it is writable (check disk space and permissions)"
                ) from None
        return record[ID]

    def check_writable(self) -> None:
        """Raise AuditWriteError now rather than after a request has gone out."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            os.close(fd)
        except OSError as exc:
            raise AuditWriteError(
                f"cannot write the audit log {self.path} ({exc.strerror or exc}); "
                "requests are refused until it is writable"
            ) from None

    def records(self) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        with self.path.open("rb") as handle:
            for line in handle:
                if line.strip():
                    yield json.loads(line)
