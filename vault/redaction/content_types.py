"""What a response's ``Content-Type`` tells its readers: whether they read it as text, and in
which charset. The proxy decides from it which bodies to scan as their readers decode them, and
call_service which bodies it shows the model as text."""

from __future__ import annotations

TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript",
              "application/x-www-form-urlencoded", "application/x-ndjson", "+json", "+xml")  # fmt: skip


def is_text(content_type: str) -> bool:
    """Text, JSON, XML, JavaScript or a form; a missing type counts as text (readers sniff it)."""
    kind = content_type.split(";", 1)[0].strip().lower()
    return not kind or any(kind.startswith(t) or kind.endswith(t) for t in TEXT_TYPES)


def declared_charset(content_type: str) -> str | None:
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"').lower()
    return None
