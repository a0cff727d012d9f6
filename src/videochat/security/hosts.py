"""Host header checks (Starlette's TrustedHostMiddleware), service paths excepted.

Load balancers, orchestrators and Prometheus reach each instance by its address
(``Host: 10.0.0.5:8000``), not by the public name; ``/health*`` and ``/metrics*`` build
no URLs from the Host and ``/metrics`` has its own token, so they skip the check.
"""

from __future__ import annotations

from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

SERVICE_PREFIXES = ("/health", "/metrics")


class HostCheckMiddleware:
    def __init__(self, app: ASGIApp, allowed_hosts: list[str]) -> None:
        self.app = app
        self.checked = TrustedHostMiddleware(app, allowed_hosts=allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in {"http", "websocket"} and scope.get("path", "").startswith(
            SERVICE_PREFIXES
        ):
            await self.app(scope, receive, send)
            return
        await self.checked(scope, receive, send)
