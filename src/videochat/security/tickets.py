"""One-time socket tickets: what the web client puts in the socket's URL instead of a token.

Browsers cannot set headers on a WebSocket handshake, so the credential goes in the
URL, where proxies and servers log it. An access token there is reusable for its whole
life (15 min, a guest's for days); a ticket is a signed token of kind ``socket`` that
opens one socket for one user, within ``jwt.socket_ticket_ttl_seconds`` (30 s), once:
its id is spent with one atomic increment in the limiter's storage (Redis when
configured, so a ticket spent on one instance is refused by every other; else this
process). It carries the access token's expiry: the socket's session ends with it.
"""

from __future__ import annotations

from videochat.config import JWTSettings
from videochat.exceptions import Unauthorized
from videochat.security.ratelimit import Limiter
from videochat.security.tokens import TokenClaims, issue_token, token_time, verified_payload

# Claim holding the expiry (epoch seconds) of the access token the ticket was made from.
SESSION_EXPIRY = "aexp"


def issue_socket_ticket(jwt: JWTSettings, *, access: TokenClaims) -> tuple[str, int]:
    """A ticket for the access token's user, and its lifetime in seconds."""
    seconds = jwt.socket_ticket_ttl_seconds
    ticket, _ = issue_token(
        jwt,
        subject=access.subject,
        kind="socket",
        ttl_seconds=seconds,
        extra={SESSION_EXPIRY: int(access.expires_at.timestamp())},
    )
    return ticket, seconds


def read_socket_ticket(jwt: JWTSettings, ticket: str) -> TokenClaims:
    """A valid, unexpired ticket's claims (not yet spent); ``Unauthorized`` otherwise.

    ``expires_at`` is the session's end: the expiry of the access token behind it.
    """
    payload = verified_payload(jwt, ticket, kind="socket")
    if SESSION_EXPIRY not in payload:
        raise Unauthorized("Invalid token")
    return TokenClaims(
        subject=str(payload["sub"]),
        kind="socket",
        token_id=str(payload["jti"]),
        expires_at=token_time(payload[SESSION_EXPIRY]),
    )


async def spend_socket_ticket(jwt: JWTSettings, limiter: Limiter, claims: TokenClaims) -> None:
    """Spend the ticket; ``Unauthorized`` if it was spent before (here or elsewhere)."""
    if not await limiter.first_use(f"socket-ticket/{claims.token_id}", seconds=_spent_for(jwt)):
        raise Unauthorized("Ticket was already used")


def _spent_for(jwt: JWTSettings) -> int:
    # Remembered past the ticket's own life (and the 5 s leeway) so it can never be reused.
    return jwt.socket_ticket_ttl_seconds + 10
