"""Redis pub/sub broker: fan-out between instances of the service.

While Redis is away the broker keeps working for this instance: ``publish`` raises (the
hub then delivers to its own sockets), ``subscribe`` records the handler, and a reader
task reconnects with back-off and subscribes every topic again. Watchers hear when the
connection was lost and when it is back (see ``Broker.watch``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Sequence

import structlog

from videochat.kit.redis_client import connect
from videochat.observability import metrics
from videochat.realtime.broker import Broker, Handler, Payload

log = structlog.get_logger(__name__)


class SubscriptionLost(ConnectionError):
    """A frame went out, but it will not come back to this instance's sockets."""


class RedisBroker(Broker):
    """One pub/sub connection per instance; a reader task dispatches to handlers."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self._client = connect(url, decode_responses=True)
        # No socket timeout (it waits for messages as long as it takes) and no retries:
        # a lost subscription must be seen, so the sockets catch up on what it missed.
        # RESP2: under RESP3 (redis-py's default) every message arrives as a push, whose
        # handler formats the whole message for a debug log line, logged or not: ~9.6 µs
        # of CPU a message read against ~6.1 (a micro-benchmark of 40,000).
        self._subscriber = connect(
            url, decode_responses=True, socket_timeout=None, retries=0, protocol=2
        )
        self._pubsub = self._subscriber.pubsub(ignore_subscribe_messages=True)
        self._handlers: defaultdict[str, list[Handler]] = defaultdict(list)
        # The topics Redis was last told to send us, and the lock that puts one
        # (un)subscribe command at a time on the wire: each decides from the handlers
        # as they are when it runs, so interleaved joins and leaves of a room end with
        # Redis agreeing with the handlers (a leave's UNSUBSCRIBE landing after a
        # join's SUBSCRIBE left a room deaf on this instance).
        self._at_redis: set[str] = set()
        self._commands = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        # True between a lost connection and its re-subscription: frames published
        # meanwhile do not come back to this instance's own sockets.
        self._lost = False

    async def start(self) -> None:
        await self._client.ping()
        self._reader = asyncio.create_task(self._read(), name="redis-broker-reader")

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        for client in (self._client, self._subscriber):
            with contextlib.suppress(Exception):
                await client.aclose()
        self._handlers.clear()

    @property
    def connected(self) -> bool:
        """False while frames do not flow between instances."""
        return not self._lost

    async def ping(self) -> None:
        await self._client.ping()

    async def publish(self, topic: str, payload: Payload) -> None:
        try:
            await self._client.publish(topic, str(payload))
        except Exception:
            self._connection_lost()
            raise
        if self._lost:
            raise SubscriptionLost("published, but this instance is not subscribed right now")

    async def publish_many(self, items: Sequence[tuple[str, Payload]]) -> None:
        # One round trip for a whole batch, in order on one connection: the commands
        # packed and sent at once, then their replies read. Not a pipeline object: that
        # cost ~45 µs more CPU a batch (a micro-benchmark: 166 against 121 µs for one
        # command, 101 against 75 for two), and batches between instances are small.
        pool = self._client.connection_pool
        try:
            connection = await pool.get_connection()  # type: ignore[no-untyped-call]
            try:
                commands = [("PUBLISH", topic, str(payload)) for topic, payload in items]
                await connection.send_packed_command(connection.pack_commands(commands))
                for _ in commands:
                    await connection.read_response()
            except BaseException:
                # Replies left unread would answer the next command: start afresh.
                await connection.disconnect()
                raise
            finally:
                await pool.release(connection)
        except Exception:
            self._connection_lost()
            raise
        if self._lost:
            raise SubscriptionLost("published, but this instance is not subscribed right now")

    async def subscribe(self, topic: str, handler: Handler) -> None:
        self._handlers[topic].append(handler)
        await self._sync(topic)
        self._wake.set()

    async def unsubscribe(self, topic: str, handler: Handler) -> None:
        handlers = self._handlers.get(topic)
        if handlers and handler in handlers:
            handlers.remove(handler)
            if not handlers:
                del self._handlers[topic]
            await self._sync(topic)

    async def _sync(self, topic: str) -> None:
        """Tell Redis whether we want the topic, if that changed (one command at a time)."""
        async with self._commands:
            wanted = bool(self._handlers.get(topic))
            if self._lost or wanted == (topic in self._at_redis):
                return  # (after a loss the reconnection subscribes what is wanted then)
            try:
                if wanted:
                    await self._pubsub.subscribe(topic)
                    self._at_redis.add(topic)
                else:
                    self._at_redis.discard(topic)
                    await self._pubsub.unsubscribe(topic)
            except Exception:
                # Kept in _handlers: the reconnection subscribes it with the others.
                self._connection_lost()

    def _connection_lost(self) -> None:
        """Frames stopped flowing: say so once, and let the reader reconnect."""
        if self._lost:
            return
        self._lost = True
        log.warning("broker.connection_lost")
        metrics.redis_degraded("broker", True)
        self._wake.set()
        self._tell_watchers(False)

    async def _reconnect(self) -> None:
        """Open a fresh pub/sub connection and subscribe again, retrying until Redis is back."""
        delay = 0.2
        while True:
            await asyncio.sleep(delay)
            old = self._pubsub
            self._pubsub = self._subscriber.pubsub(ignore_subscribe_messages=True)
            with contextlib.suppress(Exception):
                await old.aclose()  # type: ignore[no-untyped-call]
            try:
                async with self._commands:
                    self._at_redis = set()
                    # Topics subscribed while this ran are taken up on the next pass.
                    while missing := [t for t in self._handlers if t not in self._at_redis]:
                        await self._pubsub.subscribe(*missing)
                        self._at_redis.update(missing)
                    await self._subscriber.ping()
                    self._lost = False
            except Exception:
                delay = min(delay * 2, 2.0)
                continue
            log.info("broker.reconnected", topics=len(self._at_redis))
            metrics.redis_degraded("broker", False)
            self._tell_watchers(True)
            return

    async def _read(self) -> None:
        while True:
            if self._lost:
                await self._reconnect()
                continue
            if not self._pubsub.subscribed:
                # get_message() needs a subscription; wait for the first one (or a loss).
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                # Blocking (no timeout): a read with a timeout costs ~12 µs of CPU a
                # message in redis-py, a blocking one ~7 (a micro-benchmark of 50,000).
                # A loss still ends the read (the connection's error), and stop() cancels.
                message = await self._pubsub.get_message(timeout=None)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("broker.read_failed", exc_info=True)
                self._connection_lost()
                continue
            if message is None or message.get("type") != "message":
                continue
            for handler in tuple(self._handlers.get(message["channel"], ())):
                try:
                    handler(message["data"])
                except Exception:
                    log.exception("broker.handler_failed", topic=message["channel"])
