"""Security headers on every response, and a CSP strict enough for the web client."""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from videochat.config import Settings

# The web client is same-origin ES modules and CSS: no inline code, no third parties.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self' ws: wss:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
_CONNECT = "connect-src 'self' ws: wss:"


def content_security_policy(settings: Settings) -> str:
    """The CSP, letting the client reach the SFU's Janus API where it is another origin.

    Browsers talk to Janus directly (``VIDEOCHAT_SFU__PUBLIC_URL``): behind the same
    proxy that is 'self'; an absolute URL elsewhere (a Janus port of its own) is added.
    """
    origins = set()
    for url in settings.sfu.public_urls if settings.sfu.enabled else []:
        parts = urlsplit(url)
        if parts.scheme in ("http", "https") and parts.netloc:
            origins.add(f"{parts.scheme}://{parts.netloc}")
    if not origins:
        return CONTENT_SECURITY_POLICY
    return CONTENT_SECURITY_POLICY.replace(_CONNECT, " ".join([_CONNECT, *sorted(origins)]))


# Swagger UI and ReDoc (when served: not in production by default) start from an inline
# script and style themselves inline (ReDoc's search runs in a blob: worker); everything
# they load comes from this origin (web.docs), so no third party is allowed either.
DOCS_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
_DOCS_PREFIXES = ("/docs", "/redoc")
_DOCS_CSP = (b"content-security-policy", DOCS_CONTENT_SECURITY_POLICY.encode())

_COMMON = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"permissions-policy", b"camera=(self), microphone=(self), display-capture=(self)"),
]


def hsts_header(settings: Settings) -> bytes | None:
    """Strict-Transport-Security for production served over https (browsers ignore it on http)."""
    plain_http = (settings.public_url or "").lower().startswith("http://")
    if not settings.is_production or plain_http or settings.http.hsts_seconds == 0:
        return None
    return f"max-age={settings.http.hsts_seconds}; includeSubDomains".encode()


class SecurityHeadersMiddleware:
    def __init__(
        self, app: ASGIApp, hsts: bytes | None = None, csp: str = CONTENT_SECURITY_POLICY
    ) -> None:
        self.app = app
        self.csp = (b"content-security-policy", csp.encode())
        self.common = list(_COMMON)
        if hsts is not None:
            self.common.append((b"strict-transport-security", hsts))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = _DOCS_CSP if scope.get("path", "").startswith(_DOCS_PREFIXES) else self.csp

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.common, csp]
            await send(message)

        await self.app(scope, receive, send_with_headers)
