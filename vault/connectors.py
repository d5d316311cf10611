"""The connector catalog: what we know about a provider, as data.

Built-in entries ship in ``vault/connectors.toml``; a user adds or overrides entries with a
``connectors.toml`` in the vault home (or any file passed explicitly), in the same format.
An entry gives default hosts, how the key is put on a request, a cheap probe request that
proves a key works, and the provider's rate-limit headers. Every entry is validated with
the same rules as a service registered by hand, so a catalog cannot smuggle in a wildcard
over a public suffix or a template that splits headers.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from .auth import AuthMethod
from .auth.registry import OPTIONS, build
from .errors import InvalidService
from .hosts import HostRule
from .service import normalise_methods, parse_hosts, validate_name

CATALOG_FILE = "connectors.toml"
GENERIC = "generic"
_KEYS = frozenset(
    {"title", "docs", "hosts", "auth", "header", "template", "param", "extra_headers", "probe", "probe_body",
     "rate_limit_headers", "base_url_env", "base_url_path", "key_env", *OPTIONS}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Probe:
    """A cheap request that succeeds only with a valid key (e.g. ``GET /v1/models``)."""

    method: str
    path: str
    body: str | None = None


@dataclass(frozen=True, slots=True)
class Connector:
    name: str
    title: str
    docs: str
    hosts: tuple[HostRule, ...]
    auth: AuthMethod
    probe: Probe | None
    rate_limit_headers: tuple[str, ...]
    source: str  # "built-in" or the path of the file that defined it
    base_url_env: str | None = None  # the SDK's base-URL variable (OPENAI_BASE_URL), for base-URL mode
    base_url_path: str = ""  # what the SDK expects after the host in it ("/v1" for OpenAI)
    key_env: str | None = None  # the SDK's API-key variable: in base-URL mode it carries the agent key


def load_catalog(home: Path | None = None, extra: Path | None = None) -> dict[str, Connector]:
    """Built-in connectors, then ``home/connectors.toml``, then ``extra``; later files override."""
    builtin = resources.files("clavis_mcp.vault").joinpath(CATALOG_FILE).read_text(encoding="utf-8")
    catalog = _parse(builtin, "built-in")
    for path in (home / CATALOG_FILE if home else None, extra):
        if path is not None and (path.exists() or path == extra):
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise InvalidService(f"cannot read connector catalog {path}: {exc.strerror or exc}") from None
            catalog.update(_parse(text, str(path)))
    return catalog


def connector(name: str, catalog: dict[str, Connector]) -> Connector:
    try:
        return catalog[name]
    except KeyError:
        raise InvalidService(f"unknown connector {name!r}; known connectors: {', '.join(sorted(catalog))}") from None


def _parse(text: str, source: str) -> dict[str, Connector]:
    import tomllib  # read when a catalog is, not at the MCP server's start-up

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidService(f"connector catalog {source} is not valid TOML: {exc}") from None
    result = {}
    for name, entry in data.items():
        try:
            result[name] = _entry(name, entry, source)
        except InvalidService as exc:
            raise InvalidService(f"connector {name!r} in {source}: {exc}") from None
    return result


def _entry(name: str, entry: Any, source: str) -> Connector:
    if not isinstance(entry, dict):
        raise InvalidService("each connector is a [table]")
    unknown = set(entry) - _KEYS
    if unknown:
        raise InvalidService(f"unknown fields {sorted(unknown)}; allowed: {sorted(_KEYS)}")
    validate_name(name)
    auth = build(
        str(entry.get("auth", "bearer")),
        header=entry.get("header"),
        template=entry.get("template"),
        param=entry.get("param"),
        extra_headers={str(k): str(v) for k, v in dict(entry.get("extra_headers", {})).items()},
        **{key: entry[key] for key in OPTIONS if key in entry},
    )
    hosts = list(entry.get("hosts", []))
    return Connector(
        name=name,
        title=str(entry.get("title", name)),
        docs=str(entry.get("docs", "")),
        hosts=parse_hosts(hosts) if hosts else (),
        auth=auth,
        probe=_probe(entry.get("probe"), entry.get("probe_body")),
        rate_limit_headers=tuple(str(h).lower() for h in entry.get("rate_limit_headers", [])),
        source=source,
        base_url_env=_variable(entry.get("base_url_env")),
        base_url_path=_base_path(entry.get("base_url_path", "")),
        key_env=_variable(entry.get("key_env")),
    )


def _variable(value: object) -> str | None:
    if value is None:
        return None
    if not (isinstance(value, str) and value.replace("_", "A").isalnum() and value.isascii() and value[0].isalpha()):
        raise InvalidService(f"{value!r} is not an environment variable name (letters, digits and '_')")
    return value


def _base_path(value: object) -> str:
    text = str(value)
    if text and (not text.startswith("/") or text.endswith("/") or any(c in text for c in "?#% \\")):
        raise InvalidService(f"base_url_path {text!r} must look like '/v1' (no trailing slash, query or escapes)")
    return text


def _probe(text: object, body: object) -> Probe | None:
    if text is None:
        return None
    method, _, path = str(text).partition(" ")
    if not path.startswith("/") or " " in path:
        raise InvalidService(f"probe {text!r} must look like 'GET /v1/models'")
    return Probe(normalise_methods([method])[0], path, None if body is None else str(body))
