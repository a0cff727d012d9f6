"""Redis pub/sub broker: fan-out between instances of the service.

While Redis is away the broker keeps working for this instance: ``publish`` raises (the
hub then delivers to its own sockets), ``subscribe`` records the handler, and a keeper
task reconnects with back-off and subscribes every topic again. Watchers hear when the
connection was lost and when it is back (see ``Broker.watch``).

Both connections (one publishes, one is subscribed) are ``kit.resp`` connections, not
redis-py's: every frame between instances goes through them, and redis-py cost about
twice the CPU per batch published and several times as much per message read.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Sequence

import structlog

from videochat.kit.redis_client import HEALTH_CHECK_SECONDS
from videochat.kit.resp import RespConnection
from videochat.observability import metrics
from videochat.realtime.broker import Broker, Handler, Payload

log = structlog.get_logger(__name__)


class SubscriptionLost(ConnectionError):
    """A frame went out, but it will not come back to this instance's sockets."""


class RedisBroker(Broker):
    """One connection publishes, one is subscribed; a keeper task heals them."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self._url = url
        self._publisher: RespConnection | None = None
        self._opening = asyncio.Lock()
        # No read timeout on the subscribed connection (it waits for messages as long
        # as it takes; the keeper PINGs it every health check) and no silent
        # re-subscription: a lost subscription must be seen, so the sockets catch up on
        # what it missed.
        self._subscriber: RespConnection | None = None
        self._handlers: defaultdict[str, list[Handler]] = defaultdict(list)
        # The topics Redis was last told to send us, and the lock that puts one
        # (un)subscribe command at a time on the wire: each decides from the handlers
        # as they are when it runs, so interleaved joins and leaves of a room end with
        # Redis agreeing with the handlers (a leave's UNSUBSCRIBE landing after a
        # join's SUBSCRIBE left a room deaf on this instance).
        self._at_redis: set[str] = set()
        self._commands = asyncio.Lock()
        self._keeper: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        # True between a lost connection and its re-subscription: frames published
        # meanwhile do not come back to this instance's own sockets.
        self._lost = False

    async def start(self) -> None:
        await self.ping()
        self._keeper = asyncio.create_task(self._keep(), name="redis-broker-keeper")

    async def stop(self) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._keeper
        for connection in (self._publisher, self._subscriber):
            if connection is not None:
                connection.close()
        self._publisher = self._subscriber = None
        self._handlers.clear()

    @property
    def connected(self) -> bool:
        """False while frames do not flow between instances."""
        return not self._lost

    async def ping(self) -> None:
        await (await self._publishing()).call("PING")

    async def publish(self, topic: str, payload: Payload) -> None:
        await self.publish_many([(topic, payload)])

    async def publish_many(self, items: Sequence[tuple[str, Payload]]) -> None:
        # One round trip for a whole batch, in order on one connection.
        try:
            publisher = await self._publishing()
            await publisher.call_many([("PUBLISH", t, str(p)) for t, p in items], len(items))
        except Exception:
            self._connection_lost()
            raise
        if self._lost:
            raise SubscriptionLost("published, but this instance is not subscribed right now")

    async def _publishing(self) -> RespConnection:
        """The publishing connection, opened again if it was lost."""
        publisher = self._publisher
        if publisher is not None and not publisher.closed:
            return publisher
        async with self._opening:  # (one connection, whoever asks meanwhile)
            if self._publisher is None or self._publisher.closed:
                self._publisher = await RespConnection.open(self._url)
            return self._publisher

    async def subscribe(self, topic: str, handler: Handler) -> None:
        self._handlers[topic].append(handler)
        await self._sync(topic)

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
                subscriber = self._subscriber
                if subscriber is None or subscriber.closed:
                    subscriber = await self._open_subscriber()
                if wanted:
                    await subscriber.call_many([("SUBSCRIBE", topic)], 1)
                    self._at_redis.add(topic)
                else:
                    self._at_redis.discard(topic)
                    await subscriber.call_many([("UNSUBSCRIBE", topic)], 1)
            except Exception:
                # Kept in _handlers: the reconnection subscribes it with the others.
                self._connection_lost()

    async def _open_subscriber(self) -> RespConnection:
        old, self._subscriber = self._subscriber, None
        if old is not None:
            old.close()
        self._at_redis = set()
        subscriber: RespConnection | None = None

        def lost() -> None:
            # (Not for one closed on purpose: it is no longer self._subscriber.)
            if subscriber is not None and self._subscriber is subscriber:
                self._connection_lost()

        subscriber = await RespConnection.open(self._url, on_push=self._on_push, on_lost=lost)
        self._subscriber = subscriber
        return subscriber

    def _on_push(self, reply: object) -> bool:
        """A pub/sub message: to the topic's handlers (True); any other reply: False."""
        if type(reply) is not list or len(reply) != 3 or reply[0] != "message":
            return False
        for handler in tuple(self._handlers.get(reply[1], ())):
            try:
                handler(reply[2])
            except Exception:
                log.exception("broker.handler_failed", topic=reply[1])
        return True

    def _connection_lost(self) -> None:
        """Frames stopped flowing: say so once, and let the keeper reconnect."""
        if self._lost:
            return
        self._lost = True
        log.warning("broker.connection_lost")
        metrics.redis_degraded("broker", True)
        self._wake.set()
        self._tell_watchers(False)

    async def _reconnect(self) -> None:
        """Open a fresh subscribed connection and subscribe again, retrying until Redis is back."""
        delay = 0.2
        while True:
            await asyncio.sleep(delay)
            try:
                async with self._commands:
                    subscriber = await self._open_subscriber()
                    # Topics subscribed while this ran are taken up on the next pass.
                    while missing := [t for t in self._handlers if t not in self._at_redis]:
                        await subscriber.call_many([("SUBSCRIBE", *missing)], len(missing))
                        self._at_redis.update(missing)
                    await self._ping_subscriber(subscriber)
                    self._lost = False
            except Exception:
                delay = min(delay * 2, 2.0)
                continue
            log.info("broker.reconnected", topics=len(self._at_redis))
            metrics.redis_degraded("broker", False)
            self._tell_watchers(True)
            return

    async def _ping_subscriber(self, subscriber: RespConnection) -> None:
        # (Subscribed, Redis answers PING with a ["pong", ""] array.)
        await subscriber.call_many([("PING",)], 1)

    async def _keep(self) -> None:
        """Reconnect after a loss; PING the subscribed connection every health check (a
        peer gone without a word is noticed within a health check and a reply timeout)."""
        while True:
            if self._lost:
                await self._reconnect()
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HEALTH_CHECK_SECONDS):
                    await self._wake.wait()
                continue
            subscriber = self._subscriber
            if subscriber is not None and not subscriber.closed and self._at_redis:
                try:
                    await self._ping_subscriber(subscriber)
                except Exception:
                    self._connection_lost()
