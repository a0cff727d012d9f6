"""JWT access and refresh tokens (PyJWT) with expiry, issuer and audience.

Below the domains: accounts issues them, the security middlewares and the socket
handshake verify them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import jwt

from videochat.config import JWTSettings
from videochat.exceptions import Unauthorized
from videochat.kit.clock import utcnow
from videochat.kit.ids import new_id

TokenKind = Literal["access", "refresh", "socket"]


@dataclass(frozen=True, slots=True)
class TokenClaims:
    subject: str
    kind: TokenKind
    token_id: str
    expires_at: datetime
    family_id: str | None = None


def issue_token(
    settings: JWTSettings,
    *,
    subject: str,
    kind: TokenKind,
    ttl_seconds: int,
    token_id: str | None = None,
    family_id: str | None = None,
    extra: dict[str, Any] | None = None,
) -> tuple[str, TokenClaims]:
    """Sign a token of the given kind for ``subject``."""
    now = utcnow()
    claims = TokenClaims(
        subject=subject,
        kind=kind,
        token_id=token_id or new_id(),
        expires_at=now + timedelta(seconds=ttl_seconds),
        family_id=family_id,
    )
    payload: dict[str, Any] = {
        "sub": subject,
        "typ": kind,
        "jti": claims.token_id,
        "iat": now,
        "nbf": now - timedelta(seconds=5),
        "exp": claims.expires_at,
        "iss": settings.issuer,
        "aud": settings.audience,
        **(extra or {}),
    }
    if family_id:
        payload["fam"] = family_id
    token = jwt.encode(payload, settings.secret.get_secret_value(), algorithm=settings.algorithm)
    return token, claims


def verified_payload(settings: JWTSettings, token: str, *, kind: TokenKind) -> dict[str, Any]:
    """Verify signature, expiry, issuer, audience and kind; the claims, or ``Unauthorized``."""
    try:
        payload: dict[str, Any] = jwt.decode(
            token,
            settings.secret.get_secret_value(),
            algorithms=[settings.algorithm],
            audience=settings.audience,
            issuer=settings.issuer,
            options={"require": ["exp", "iat", "sub", "jti", "iss", "aud"]},
            leeway=5,
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("Token has expired") from exc
    except jwt.PyJWTError as exc:
        raise Unauthorized("Invalid token") from exc
    if payload.get("typ") != kind:
        raise Unauthorized(f"Expected an {kind} token")
    return payload


def decode_token(settings: JWTSettings, token: str, *, kind: TokenKind) -> TokenClaims:
    """Verify signature, expiry, issuer, audience and kind; raise ``Unauthorized``."""
    payload = verified_payload(settings, token, kind=kind)
    return TokenClaims(
        subject=str(payload["sub"]),
        kind=kind,
        token_id=str(payload["jti"]),
        expires_at=token_time(payload["exp"]),
        family_id=payload.get("fam"),
    )


def token_time(epoch_seconds: object) -> datetime:
    """A JWT NumericDate as an aware datetime (``Unauthorized`` if it is not a number)."""
    try:
        return datetime.fromtimestamp(int(epoch_seconds), tz=utcnow().tzinfo)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError) as exc:
        raise Unauthorized("Invalid token") from exc
