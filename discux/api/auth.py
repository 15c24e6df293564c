"""Who is calling the API: the user behind the request's Bearer token, and nothing else.

A browser's session cookie never authenticates here, so cross-site requests carry no
authority and the API needs no CSRF token.
"""

from __future__ import annotations

from flask import request
from flask_limiter.util import get_remote_address

from discux.api.tokens import token_for
from discux.errors import DiscuxError
from discux.models import ApiToken

# Kept on the request itself (not `g`, which an app context can carry across requests) so a
# token revoked a moment ago is looked up afresh on the very next request.
_ENVIRON_KEY = "discux.api_token"


class Unauthorized(DiscuxError):
    status = 401
    code = "unauthorized"


def bearer_value() -> str | None:
    """The raw token of an `Authorization: Bearer <token>` header, or None."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def request_token() -> ApiToken | None:
    """The live token this request carries (looked up once per request), or None."""
    if _ENVIRON_KEY not in request.environ:
        request.environ[_ENVIRON_KEY] = token_for(bearer_value())
    return request.environ[_ENVIRON_KEY]


def require_token() -> ApiToken:
    """The request's token, or a 401 saying what is missing."""
    token = request_token()
    if token is not None:
        return token
    if bearer_value() is None:
        raise Unauthorized(
            "This API needs a personal API token: send `Authorization: Bearer <token>`. "
            "Create one in Settings → API tokens (a signed-in browser session does not count).",
            code="missing_token",
        )
    raise Unauthorized(
        "That API token is not valid: it may have been revoked or mistyped. "
        "Create a new one in Settings → API tokens.",
        code="invalid_token",
    )


def rate_limit_key() -> str:
    """One rate-limit budget per token; requests without a valid token share their address's."""
    token = request_token()
    return f"api-token:{token.id}" if token else f"api-address:{get_remote_address()}"
