"""Auth methods as strategies: one module per way of putting a credential on a request.

:class:`AuthMethod` is the protocol; :mod:`.registry` maps a stored ``kind`` to its class.
"""

from __future__ import annotations

from .base import CREDENTIAL, PLACEHOLDER, AuthMethod, OutgoingRequest
from .basic import BasicAuth
from .body import BodyAuth
from .github_app import GitHubAppAuth
from .header import HeaderAuth, parse_header_template
from .headers import HeadersAuth
from .hmac_sign import HmacAuth
from .oauth2 import OAuth2Auth
from .path import PathAuth
from .query import QueryAuth
from .sigv4 import SigV4Auth

__all__ = [
    "CREDENTIAL",
    "PLACEHOLDER",
    "AuthMethod",
    "BasicAuth",
    "BodyAuth",
    "GitHubAppAuth",
    "HeaderAuth",
    "HeadersAuth",
    "HmacAuth",
    "OAuth2Auth",
    "OutgoingRequest",
    "PathAuth",
    "QueryAuth",
    "SigV4Auth",
    "parse_header_template",
]
