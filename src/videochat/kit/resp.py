"""A lean Redis connection for pub/sub's hot paths: RESP2 parsed by hiredis in the transport.

redis-py spends ~140 µs of CPU on a round trip of a batch of PUBLISH commands (a pool
checkout, its generic packing, a timeout context per reply) and ~7 µs on reading one
pub/sub message (a chain of coroutines per message). Here a batch's commands are written
at once and every reply and message is parsed in the transport's callback: ~80 µs a batch
of one and ~90 a batch of six, against 144 and 239 (a micro-benchmark of 3,000 batches on
this machine's Redis). redis-py stays the client for everything else.

Replies are matched to commands in order (Redis answers each connection in order), so a
caller that stops waiting (cancelled) leaves nothing behind: its replies, when they come,
are read and dropped. A connection is lost for good: its waiting callers get
``ConnectionError``, its owner opens a new one.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import hiredis
from redis.asyncio.connection import SSLConnection, parse_url

from videochat.kit.redis_client import CONNECT_TIMEOUT_SECONDS

# A connection that does not answer in this long is taken for dead (closed).
REPLY_TIMEOUT_SECONDS = 5.0

# ``on_push(reply)`` sees every reply first and returns True for those that answer no
# command (pub/sub's messages); ``on_lost()`` is told once when the connection ends.
OnPush = Callable[[Any], bool]
OnLost = Callable[[], None]


class ReplyError(Exception):
    """Redis answered a command with an error."""


def pack(*args: str | bytes | int) -> bytes:
    """One command in RESP: an array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(parts)


@dataclass(slots=True)
class _Waiting:
    future: asyncio.Future[list[Any]]
    left: int
    replies: list[Any] = field(default_factory=list)


class RespConnection(asyncio.Protocol):
    """One connection to Redis; see the module's docstring."""

    def __init__(self, on_push: OnPush | None = None, on_lost: OnLost | None = None) -> None:
        self._on_push = on_push
        self._on_lost = on_lost
        # (Text that is not UTF-8, which this service never publishes, is replaced
        # rather than breaking the connection's parsing.)
        self._parser = hiredis.Reader(encoding="utf-8", errors="replace")
        self._waiting: deque[_Waiting] = deque()
        self._transport: asyncio.Transport | None = None
        self.closed = False

    @classmethod
    async def open(
        cls, url: str, *, on_push: OnPush | None = None, on_lost: OnLost | None = None
    ) -> RespConnection:
        """Connect to the Redis at ``url`` (redis://, rediss:// or unix://) and log in."""
        options = parse_url(url)
        loop = asyncio.get_running_loop()
        connection = cls(on_push, on_lost)
        if "path" in options:
            opening = loop.create_unix_connection(lambda: connection, options["path"])
        else:
            tls = None
            if options.get("connection_class") is SSLConnection:
                tls = ssl.create_default_context()
                if options.get("ssl_cert_reqs") == "none":
                    tls.check_hostname = False
                    tls.verify_mode = ssl.CERT_NONE
            host, port = options.get("host", "localhost"), options.get("port", 6379)
            opening = loop.create_connection(lambda: connection, host, port, ssl=tls)
        async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
            await opening
        try:
            if options.get("password"):
                login = [options["password"]]
                if options.get("username"):
                    login.insert(0, options["username"])
                await connection.call("AUTH", *login)
        except BaseException:
            connection.close()
            raise
        return connection

    async def call_many(
        self, commands: Sequence[Sequence[str | bytes | int]], replies: int
    ) -> list[Any]:
        """Write the commands at once and wait for their ``replies`` replies (one per
        command, but one per channel for (UN)SUBSCRIBE). Raises ``ReplyError`` (the first
        error among them) or ``ConnectionError``; after ``REPLY_TIMEOUT_SECONDS`` without
        them the connection is closed (a Redis that stopped answering is taken for gone)."""
        if self.closed or self._transport is None:
            raise ConnectionError("the Redis connection is closed")
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._transport.write(b"".join(pack(*command) for command in commands))
        self._waiting.append(_Waiting(future, replies))
        timer = asyncio.get_running_loop().call_later(REPLY_TIMEOUT_SECONDS, self._expire, future)
        try:
            return await future
        finally:
            timer.cancel()

    async def call(self, *args: str | bytes | int) -> Any:
        """One command; its reply."""
        return (await self.call_many([args], 1))[0]

    def close(self) -> None:
        if self._transport is not None:
            self._transport.abort()  # connection_lost follows, failing the waiting
        self.closed = True

    def _expire(self, future: asyncio.Future[list[Any]]) -> None:
        if not future.done():
            self.close()

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports are not asyncio.Transport subclasses, but behave as one.)
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        parser.feed(data)
        on_push = self._on_push
        while (reply := parser.gets()) is not False:
            if on_push is not None and on_push(reply):
                continue
            if not self._waiting:
                continue  # (nothing asked for it: never happens with a sane server)
            waiting = self._waiting[0]
            waiting.replies.append(reply)
            waiting.left -= 1
            if waiting.left:
                continue
            self._waiting.popleft()
            if waiting.future.done():
                continue  # its caller stopped waiting: read and dropped
            error = next((r for r in waiting.replies if isinstance(r, hiredis.ReplyError)), None)
            if error is not None:
                waiting.future.set_exception(ReplyError(str(error)))
            else:
                waiting.future.set_result(waiting.replies)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._transport = None
        while self._waiting:
            future = self._waiting.popleft().future
            if not future.done():
                future.set_exception(ConnectionError(f"the Redis connection was lost: {exc}"))
        if self._on_lost is not None:
            self._on_lost()
