"""A small typed client of the OpenBao HTTP API: the few calls team mode makes.

KV v2 (secrets, with check-and-set), transit (signatures whose key never leaves OpenBao) and
AppRole login. Plain httpx instead of hvac: hvac is untyped, and these are a dozen requests.
A replica logs in with its AppRole and logs in again before its token expires.
"""

from __future__ import annotations

import base64
import threading
import time
from typing import Any

import httpx

from clavis_mcp.vault.errors import BaoRefused as BaoError

TIMEOUT = 10.0


class Bao:
    """One OpenBao client with one token (a root token at bootstrap, an AppRole token in a replica)."""

    def __init__(self, addr: str, token: str = "", *, approle: tuple[str, str, str] | None = None) -> None:
        """``approle`` is ``(mount, role_id, secret_id)``: log in now and again before expiry."""
        self.addr = addr.rstrip("/")
        self._http = httpx.Client(base_url=self.addr, timeout=TIMEOUT, trust_env=False)
        self._token = token
        self._approle = approle
        self._renew_at = float("inf")
        self._lock = threading.Lock()
        if approle is not None:
            self._login()

    def close(self) -> None:
        self._http.close()

    def __repr__(self) -> str:
        return f"Bao({self.addr!r})"

    # -- raw -------------------------------------------------------------------------------------

    def request(self, method: str, path: str, body: dict[str, Any] | None = None, *, ok404: bool = False) -> Any:
        if self._approle is not None and time.monotonic() > self._renew_at:
            with self._lock:
                if time.monotonic() > self._renew_at:
                    self._login()
        try:
            response = self._http.request(method, f"/v1/{path}", json=body, headers={"X-Vault-Token": self._token})
        except httpx.HTTPError as exc:
            raise BaoError(f"OpenBao at {self.addr} could not be reached ({type(exc).__name__})") from None
        if response.status_code == 404 and ok404:
            return None
        if response.status_code >= 400:
            try:
                errors = response.json().get("errors") or []
            except ValueError:
                errors = []
            raise BaoError(
                f"OpenBao refused {method} {path}: {'; '.join(map(str, errors))[:300]}", response.status_code
            )
        return response.json() if response.content else None

    def _login(self) -> None:
        assert self._approle is not None
        mount, role_id, secret_id = self._approle
        answer = self.request_unauthenticated(
            "POST", f"auth/{mount}/login", {"role_id": role_id, "secret_id": secret_id}
        )
        self._token = answer["auth"]["client_token"]
        self._renew_at = time.monotonic() + max(float(answer["auth"]["lease_duration"]) / 2, 5.0)

    def request_unauthenticated(self, method: str, path: str, body: dict[str, Any]) -> Any:
        try:
            response = self._http.request(method, f"/v1/{path}", json=body)
        except httpx.HTTPError as exc:
            raise BaoError(f"OpenBao at {self.addr} could not be reached ({type(exc).__name__})") from None
        if response.status_code >= 400:
            raise BaoError(f"OpenBao refused the AppRole login ({response.status_code}); check role and secret id")
        return response.json()

    # -- KV v2 -------------------------------------------------------------------------------------

    def kv_read(self, mount: str, path: str, version: int | None = None) -> tuple[dict[str, str], int] | None:
        """The latest version, or exactly ``version``; None if it was never written, deleted or destroyed."""
        query = f"?version={int(version)}" if version is not None else ""
        answer = self.request("GET", f"{mount}/data/{path}{query}", ok404=True)
        if answer is None or answer["data"]["data"] is None:
            return None
        return answer["data"]["data"], int(answer["data"]["metadata"]["version"])

    def kv_version(self, mount: str, path: str) -> int:
        """The current version number (0 if there is none): what a check-and-set write must name."""
        answer = self.request("GET", f"{mount}/metadata/{path}", ok404=True)
        return int(answer["data"]["current_version"]) if answer else 0

    def kv_write(self, mount: str, path: str, data: dict[str, str], cas: int | None = None) -> int:
        """Write a new version; with ``cas`` only if the current version is that one (0: only if absent)."""
        body: dict[str, Any] = {"data": data}
        if cas is not None:
            body["options"] = {"cas": cas}
        return int(self.request("POST", f"{mount}/data/{path}", body)["data"]["version"])

    def kv_destroy(self, mount: str, path: str) -> None:
        """Every version and the metadata: a removed service's secrets are not kept as old versions."""
        self.request("DELETE", f"{mount}/metadata/{path}", ok404=True)

    # -- transit -----------------------------------------------------------------------------------

    def sign(self, mount: str, key: str, data: bytes) -> tuple[int, bytes]:
        """Sign ``data`` with the latest version of ``key``; return (version, raw signature)."""
        answer = self.request("POST", f"{mount}/sign/{key}", {"input": base64.b64encode(data).decode()})
        _, version, signature = answer["data"]["signature"].split(":", 2)
        return int(version.removeprefix("v")), base64.b64decode(signature)

    def public_keys(self, mount: str, key: str) -> dict[int, bytes]:
        """Raw Ed25519 public keys by version: signatures are checked here, with no round trip."""
        answer = self.request("GET", f"{mount}/keys/{key}")
        return {int(v): base64.b64decode(k["public_key"]) for v, k in answer["data"]["keys"].items()}
