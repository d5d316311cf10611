"""``gcp-sm://PROJECT/SECRET[/VERSION]``: Google Secret Manager, through its official client
(``google-cloud-secret-manager``), version ``latest`` unless one is named.

Trusts the Google credentials of the proxy's environment (Application Default Credentials, or a
short-lived ``GOOGLE_OAUTH_ACCESS_TOKEN``) and the endpoint: Google's, or
``CLAVIS_GCP_SM_ENDPOINT`` (a private endpoint; the tests' loopback stand-in).
"""

from __future__ import annotations

import os
import re

from ..errors import InvalidSecretRef, SecretRefUnresolved
from ..secret import Secret
from .base import SecretRef, checked

NAME = re.compile(r"^[A-Za-z0-9_-]+$")
TIMEOUT = 10.0
ENDPOINT_VARIABLE = "CLAVIS_GCP_SM_ENDPOINT"
TOKEN_VARIABLE = "GOOGLE_OAUTH_ACCESS_TOKEN"


def version_name(ref: SecretRef) -> str:
    parts = ref.location.strip("/").split("/")
    if len(parts) == 2:
        parts.append("latest")
    if len(parts) != 3 or not all(NAME.fullmatch(p) for p in parts) or ref.fragment or "?" in ref.rest:
        raise InvalidSecretRef(f"{ref} must be gcp-sm://PROJECT/SECRET or gcp-sm://PROJECT/SECRET/VERSION")
    project, secret, version = parts
    return f"projects/{project}/secrets/{secret}/versions/{version}"


def validate(ref: SecretRef) -> None:
    version_name(ref)


def resolve(ref: SecretRef) -> Secret:
    name = version_name(ref)
    try:
        from google.api_core import exceptions
        from google.cloud import secretmanager
        from google.oauth2.credentials import Credentials
    except ImportError:
        raise SecretRefUnresolved(f"{ref} needs google-cloud-secret-manager: pip install 'clavis-mcp[refs]'") from None
    token = os.environ.get(TOKEN_VARIABLE)
    endpoint = os.environ.get(ENDPOINT_VARIABLE)
    try:
        client = secretmanager.SecretManagerServiceClient(
            credentials=Credentials(token) if token else None,  # type: ignore[no-untyped-call]
            transport="rest" if endpoint else None,
            client_options={"api_endpoint": endpoint} if endpoint else None,
        )
        answer = client.access_secret_version(name=name, timeout=TIMEOUT)
    except exceptions.GoogleAPICallError as exc:
        raise SecretRefUnresolved(f"Google Secret Manager refused {ref} ({type(exc).__name__}); check the project, "
                                  "the secret's name and the proxy's Google credentials") from None  # fmt: skip
    except Exception as exc:  # google.auth's DefaultCredentialsError, transport errors: no value in them
        raise SecretRefUnresolved(f"Google Secret Manager could not be used for {ref} ({type(exc).__name__}); "
                                  f"check the proxy's Google credentials (or {TOKEN_VARIABLE})") from None  # fmt: skip
    try:
        return checked(ref, answer.payload.data.decode("utf-8"))
    except UnicodeDecodeError:
        raise SecretRefUnresolved(f"the secret of {ref} is not UTF-8 text") from None
