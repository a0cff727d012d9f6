"""A deadline for request headers (slowloris): uvicorn's httptools protocol with a timer.

uvicorn bounds idle keep-alive connections but not how long a request's headers take:
a client sending them a byte at a time holds a connection (and a file descriptor) for
ever, and a few thousand such clients exhaust the server. Like nginx's
``client_header_timeout`` and Go's ``ReadHeaderTimeout``, a connection must deliver a
request's complete headers within ``http.header_timeout_seconds``: counted from the
connection's start for its first request, from the request's first byte for the next
ones (uvicorn's keep-alive timeout covers the idle time between requests). Past it the
server answers 408 (when a request had begun) and closes. Bodies are not covered:
uploads stream for as long as they need.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from videochat.config import Settings

_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: 35\r\n"
    b"connection: close\r\n\r\n"
    b"Request headers took too long: 408\n"
)


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol; the connection closes when headers come too slowly."""

    def __init__(self, *args: Any, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout
        self._header_deadline: asyncio.TimerHandle | None = None
        self._request_begun = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._request_begun = True
        self._arm_header_deadline()

    def on_headers_complete(self) -> None:
        # Before the parent: an upgrade hands the transport to the WebSocket protocol.
        self._disarm_header_deadline()
        self._request_begun = False
        super().on_headers_complete()

    def _arm_header_deadline(self) -> None:
        if self._header_deadline is None:
            self._header_deadline = self.loop.call_later(
                self.header_timeout, self._headers_too_slow
            )

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing():
            return
        if self._request_begun:
            self.transport.write(_TIMEOUT_RESPONSE)
        self.transport.close()


def uvicorn_http_options(settings: Settings) -> dict[str, Any]:
    """The HTTP protocol every way of serving the app hands to uvicorn."""
    # A partial of a module-level class: uvicorn calls it like the class, and it pickles
    # for ``--workers``.
    return {
        "http": partial(HeaderTimeoutProtocol, header_timeout=settings.http.header_timeout_seconds)
    }
