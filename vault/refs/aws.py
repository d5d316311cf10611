"""``aws-sm://SECRET-ID[#JSON-KEY]``: AWS Secrets Manager, through boto3 (``GetSecretValue``).

Trusts the AWS credentials of the proxy's environment (the standard chain: variables, profile,
instance role), the region it names (``AWS_REGION``; ``?region=`` on the reference) and the
endpoint botocore picks (``AWS_ENDPOINT_URL_SECRETS_MANAGER`` can point elsewhere).
A secret stored as JSON gives one key with ``#KEY``.
"""

from __future__ import annotations

import json
import os
from urllib.parse import parse_qs

from ..errors import InvalidSecretRef, SecretRefUnresolved
from ..secret import Secret
from .base import SecretRef, checked


def parts(ref: SecretRef) -> tuple[str, str | None]:
    secret_id, _, query = ref.location.partition("?")
    options = parse_qs(query)
    if not secret_id.strip("/") or set(options) - {"region"}:
        raise InvalidSecretRef(f"{ref} must be aws-sm://SECRET-ID[?region=REGION][#JSON-KEY]")
    regions = options.get("region") or []
    return secret_id.strip("/"), regions[0] if regions else None


def validate(ref: SecretRef) -> None:
    parts(ref)


def resolve(ref: SecretRef) -> Secret:
    try:
        import boto3  # type: ignore[import-untyped]
        import botocore.exceptions  # type: ignore[import-untyped]
    except ImportError:
        raise SecretRefUnresolved(f"{ref} needs boto3: pip install 'clavis-mcp[refs]'") from None

    secret_id, region = parts(ref)
    try:
        region = region or os.environ.get("AWS_REGION") or None  # botocore reads only AWS_DEFAULT_REGION
        client = boto3.session.Session().client("secretsmanager", region_name=region)
        answer = client.get_secret_value(SecretId=secret_id)
    except botocore.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        raise SecretRefUnresolved(f"AWS Secrets Manager refused {ref} ({code}); check the secret's id, region and "
                                  "the proxy's AWS credentials") from None  # fmt: skip
    except botocore.exceptions.BotoCoreError as exc:
        raise SecretRefUnresolved(f"AWS Secrets Manager could not be reached for {ref} ({type(exc).__name__}); "
                                  "check AWS_REGION and the proxy's AWS credentials") from None  # fmt: skip
    text = answer.get("SecretString")
    if not isinstance(text, str):
        raise SecretRefUnresolved(f"{ref} is a binary secret; store the value as text")
    return checked(ref, _key(ref, text))


def _key(ref: SecretRef, text: str) -> str:
    if ref.fragment is None:
        return text
    try:
        value = json.loads(text)[ref.fragment]
    except (ValueError, KeyError, TypeError):
        raise SecretRefUnresolved(f"the secret of {ref} is not JSON with the key {ref.fragment!r}") from None
    if not isinstance(value, str):
        raise SecretRefUnresolved(f"the key {ref.fragment!r} of {ref} is not text")
    return value
