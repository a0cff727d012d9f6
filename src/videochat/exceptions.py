"""One exception family for the whole service, mapped to JSON ``{"detail": ...}``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


class VideochatError(Exception):
    """Base of every error the service raises on purpose."""

    status_code = 400
    # The code of the socket's error frame, when the status code does not say it well.
    frame_code: str | None = None

    def __init__(
        self,
        detail: str,
        *,
        status_code: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if status_code is not None:
            self.status_code = status_code
        self.headers = headers


class BadRequest(VideochatError):
    status_code = 400


class Unauthorized(VideochatError):
    status_code = 401

    def __init__(self, detail: str = "Not authenticated") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(VideochatError):
    status_code = 403


class NotFound(VideochatError):
    status_code = 404


class Conflict(VideochatError):
    status_code = 409


class PayloadTooLarge(VideochatError):
    status_code = 413


class TooManyRequests(VideochatError):
    status_code = 429

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after))})


class ServiceUnavailable(VideochatError):
    status_code = 503


DATABASE_UNAVAILABLE = "The database is unavailable right now; retry in a few seconds"


_ASYNCPG_OUTAGES = {
    "CannotConnectNowError",  # starting up or shutting down
    "ConnectionDoesNotExistError",
    "ConnectionFailureError",
    "AdminShutdownError",
    "CrashShutdownError",
    "TooManyConnectionsError",
    # "connection is closed": what asyncpg raises itself on a connection the server
    # dropped (the chat writer's statements go to asyncpg directly; through SQLAlchemy it
    # arrives wrapped as SQLAlchemy's InterfaceError, an outage above).
    "InterfaceError",
    # "cannot switch to state ...; another operation is in progress": a connection whose
    # statement a restarting server cut off, reused (seen once in the chat writer during
    # tests/test_postgres_restart.py). Raised before anything is sent: nothing stored.
    "InternalClientError",
}


def is_database_outage(exc: BaseException) -> bool:
    """Whether an exception means the database cannot be reached (restart, network).

    Connection-level failures only: a constraint violation or a bad query is a bug or
    a conflict, not an outage, and keeps its own handling. SQLAlchemy wraps the
    driver's error, so the whole chain of causes is looked at.
    """
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (OperationalError, InterfaceError, ConnectionError, TimeoutError)):
            return True
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        if type(current).__name__ in _ASYNCPG_OUTAGES:
            return True
        current = current.__cause__ or current.__context__ or getattr(current, "orig", None)
    return False


def _validation_detail(exc: RequestValidationError) -> list[dict[str, Any]]:
    # FastAPI's own shape, minus the raw input echo (which may hold a password).
    return [
        {key: value for key, value in error.items() if key not in {"input", "ctx", "url"}}
        for error in exc.errors()
    ]


def install_exception_handlers(app: FastAPI) -> None:
    """Map the family, HTTP errors and validation errors to JSON with ``detail``."""

    async def on_videochat_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, VideochatError)
        return JSONResponse(
            {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
        )

    async def on_validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return JSONResponse({"detail": _validation_detail(exc)}, status_code=422)

    async def on_http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return JSONResponse(
            {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
        )

    async def on_database_error(_: Request, exc: Exception) -> JSONResponse:
        if not is_database_outage(exc):
            raise exc
        # Fail fast with a retryable answer instead of a 500 or a hang.
        return JSONResponse(
            {"detail": DATABASE_UNAVAILABLE}, status_code=503, headers={"Retry-After": "2"}
        )

    from sqlalchemy.exc import DBAPIError

    app.add_exception_handler(VideochatError, on_videochat_error)
    app.add_exception_handler(DBAPIError, on_database_error)
    app.add_exception_handler(ConnectionError, on_database_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
