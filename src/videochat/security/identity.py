"""Who a request speaks for: the one bearer parser, and its token decoded once.

The rate limiter (per-user write limits), the endpoints' identity dependencies and the
request log all want the caller's access token. The first to ask decodes it and keeps
the outcome in the request's ASGI ``state`` (per request, unlike ``app.state``); the
others read it from there, so an authenticated write verifies its JWT once.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import Scope

from videochat.config import JWTSettings
from videochat.exceptions import Unauthorized
from videochat.security.tokens import TokenClaims, decode_token

# scope["state"][CLAIMS]: the verified access claims, or the Unauthorized they raised.
CLAIMS = "videochat.access_claims"
MALFORMED = "Authorization header must be 'Bearer <token>'"


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer ...`` value; None when absent.

    A header of another scheme, or with no token, raises ``Unauthorized``.
    """
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(MALFORMED)
    return token.strip()


def authorization_header(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The raw ``Authorization`` header of an ASGI scope's headers, if any."""
    for name, value in headers:
        if name == b"authorization":
            return value.decode("latin-1")
    return None


def access_claims(scope: Scope, jwt: JWTSettings) -> TokenClaims | None:
    """The request's verified access token; None without one, ``Unauthorized`` if bad."""
    state: dict[str, object] = scope.setdefault("state", {})
    known = state.get(CLAIMS)
    if known is None:
        token = bearer_token(authorization_header(scope.get("headers", [])))
        if token is None:
            return None
        try:
            known = decode_token(jwt, token, kind="access")
        except Unauthorized as exc:
            known = exc
        state[CLAIMS] = known
    if isinstance(known, Unauthorized):
        raise Unauthorized(known.detail)
    assert isinstance(known, TokenClaims)
    return known


def verified_subject(scope: Scope, jwt: JWTSettings) -> str | None:
    """The user id of a valid access token in the request; None for none or a bad one."""
    try:
        claims = access_claims(scope, jwt)
    except Unauthorized:
        return None  # the endpoint answers 401 itself
    return claims.subject if claims else None
