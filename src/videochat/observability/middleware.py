"""Request ids, request logs and HTTP metrics, as one pure-ASGI middleware."""

from __future__ import annotations

import time
import uuid
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from videochat.observability import metrics

log = structlog.get_logger("videochat.http")


UNMATCHED = "<unmatched>"


def _from_path_params(path: str, params: dict[str, Any]) -> str | None:
    # Put each parameter's name back where its value sits in the path, left to right.
    template = path
    position = 0
    for name, value in params.items():
        text = str(value)
        found = template.find(text, position) if text else -1
        if found < 0:
            return None
        placeholder = "{" + name + "}"
        template = template[:found] + placeholder + template[found + len(text) :]
        position = found + len(placeholder)
    return template


def route_template(scope: Scope) -> str:
    """The matched route's path template (``/rooms/{room_id}``), never the raw path."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    if isinstance(template, str) and template:
        return template
    if scope.get("endpoint") is not None:
        # A mount (the static files): FastAPI's router records no route for it.
        prefix = str(scope.get("root_path", ""))[len(str(scope.get("app_root_path", ""))) :]
        if prefix:
            return prefix + "/{path}"
        params = scope.get("path_params")
        if isinstance(params, dict):
            derived = _from_path_params(str(scope.get("path", "")), params)
            if derived is not None:
                return derived
    # Unknown paths (and requests refused before routing, such as 429s) share one
    # label so scanners cannot blow up the metric's cardinality.
    return UNMATCHED


def _token_subject(scope: Scope) -> str | None:
    """The user a verified bearer token speaks for (the log's ``user_id``); never the token.

    Read from the request's state, where security.identity keeps (under its ``CLAIMS``)
    the claims it verified for the rate limit or the endpoint: logging decodes nothing.
    """
    state = scope.get("state") or {}
    return getattr(state.get("videochat.access_claims"), "subject", None)


class RequestContextMiddleware:
    """Bind a request id to every log line, log each request, count it."""

    def __init__(
        self, app: ASGIApp, *, metrics_enabled: bool = True, request_logs: bool = True
    ) -> None:
        self.app = app
        self.metrics_enabled = metrics_enabled
        self.request_logs = request_logs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in {"http", "websocket"}:
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else ""
        request_id = request_id or uuid.uuid4().hex
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return

        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = route_template(scope)
            method = scope["method"]
            if self.metrics_enabled:
                metrics.HTTP_REQUESTS.labels(method=method, route=route, status=str(status)).inc()
                metrics.HTTP_DURATION.labels(method=method, route=route).observe(elapsed)
            if self.request_logs:
                self._log(scope, route, status, elapsed)

    @staticmethod
    def _log(scope: Scope, route: str, status: int, elapsed: float) -> None:
        params = scope.get("path_params") or {}
        log.info(
            "http.request",
            method=scope["method"],
            path=scope["path"],
            route=route,
            status=status,
            duration_ms=round(elapsed * 1000, 2),
            user_id=_token_subject(scope),
            room_id=params.get("room_id"),
        )
