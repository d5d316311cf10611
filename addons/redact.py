"""Response redaction: the service's secret never comes back to the client, in any encoding.

Runs on every response of a flow that carried a credential: headers first, then the decoded
body, which mitmproxy re-encodes with the original content encoding.
"""

from __future__ import annotations

from mitmproxy import http

from vault import Vault
from vault.redaction import Redactor

from .flowmeta import REDACTIONS, SERVICE


class RedactResponse:
    def __init__(self, vault: Vault) -> None:
        self._vault = vault
        self._cache: dict[tuple[str, str], Redactor] = {}

    def redactor_for(self, name: str) -> Redactor:
        snapshot = self._vault.snapshot()
        service = snapshot.service(name)
        secret = snapshot.secrets[name]
        key = (name, secret.fingerprint)
        redactor = self._cache.get(key)
        if redactor is None:
            derived = []
            if service.auth.header_name:
                derived.append(service.auth.header_value(secret))
            redactor = Redactor(name, [secret], derived)
            self._cache = {k: v for k, v in self._cache.items() if k[0] != name}
            self._cache[key] = redactor
        return redactor

    def response(self, flow: http.HTTPFlow) -> None:
        name = flow.metadata.get(SERVICE)
        if name is None or flow.response is None:
            return
        redactor = self.redactor_for(name)
        response = flow.response
        total = 0
        for header, value in list(response.headers.items(multi=True)):
            clean, count = redactor.redact_text(value)
            if count:
                total += count
                values = [redactor.redact_text(v)[0] for v in response.headers.get_all(header)]
                response.headers.set_all(header, values)
        body = response.get_content(strict=False)
        if body:
            clean_body, count = redactor.redact(body)
            if count:
                total += count
                response.set_content(clean_body)
        flow.metadata[REDACTIONS] = total
