"""The token endpoint client: the one network call of OAuth2, kept out of the pure protocol code.

What to send and how to read the answer are decided in :mod:`.flow`; this module only dials
the endpoint (through the same resolve-check-pin rule as the proxy's dial guard) and posts.
"""

from __future__ import annotations

import time

from ..dialing import Resolver, checked_address, upstream_context
from ..errors import DialRefused, TokenEndpointError
from .flow import TokenGrant, TokenRequest, parse_token_response

TOKEN_TIMEOUT, TOKEN_CONNECT_TIMEOUT = 8.0, 5.0


async def post_token_request(
    service: str, request: TokenRequest, *, local: bool, resolver: Resolver | None = None
) -> tuple[int, bytes]:
    """The one network call: POST the form, return status and body.

    The token URL was checked at registration, but its name may resolve elsewhere now: it is
    resolved here, refused if it leads to a private or loopback address (unless the service is
    ``local``), and the checked address is dialled, with the name kept for TLS and ``Host``, as
    the proxy's dial guard does for API hosts. Transport errors are reported by type only,
    since httpx's messages can include the URL and we keep them plain. httpx is imported here,
    on the first refresh: the MCP server's start-up does not pay for it.
    """
    import httpx

    url = httpx.URL(request.url)
    try:
        address = await checked_address(url.host, url.port or 443, local_allowed=local, resolver=resolver)
    except DialRefused as exc:
        raise TokenEndpointError(f"the token endpoint of {service!r} was not contacted: {exc}") from None
    pinned = url.copy_with(host=address)
    headers = {**request.headers, "Host": url.netloc.decode("ascii")}
    try:
        async with httpx.AsyncClient(
            verify=upstream_context(),
            timeout=httpx.Timeout(TOKEN_TIMEOUT, connect=TOKEN_CONNECT_TIMEOUT),
            follow_redirects=False,
            trust_env=False,
        ) as client:
            response = await client.post(
                pinned, data=request.form, headers=headers, extensions={"sni_hostname": url.host}
            )
            return response.status_code, response.content
    except httpx.TimeoutException:
        raise TokenEndpointError(f"the token endpoint of {service!r} did not answer in time; try again later") from None
    except httpx.HTTPError as exc:
        raise TokenEndpointError(
            f"the token endpoint of {service!r} could not be reached ({type(exc).__name__}); try again later"
        ) from None


async def obtain_grant(
    service: str, request: TokenRequest, *, local: bool, resolver: Resolver | None = None
) -> TokenGrant:
    """POST a token request and read the answer: a first login, a code exchange, a client-credentials grant."""
    status, body = await post_token_request(service, request, local=local, resolver=resolver)
    return parse_token_response(service, status, body, time.time())
