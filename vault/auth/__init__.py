"""Auth methods as strategies: one module per way of putting a credential on a request.

:class:`AuthMethod` is the protocol; :mod:`.registry` maps a stored ``kind`` to its class.
"""

from __future__ import annotations

from .base import CREDENTIAL, PLACEHOLDER, AuthMethod, OutgoingRequest
from .basic import BasicAuth
from .header import HeaderAuth, parse_header_template
from .oauth2 import OAuth2Auth
from .query import QueryAuth

__all__ = [
    "CREDENTIAL",
    "PLACEHOLDER",
    "AuthMethod",
    "BasicAuth",
    "HeaderAuth",
    "OAuth2Auth",
    "OutgoingRequest",
    "QueryAuth",
    "parse_header_template",
]
