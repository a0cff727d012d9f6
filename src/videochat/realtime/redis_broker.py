"""Redis pub/sub broker: fan-out between instances of the service."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Sequence

import redis.asyncio as redis
import structlog

from videochat.realtime.broker import Broker, Handler

log = structlog.get_logger(__name__)


class SubscriptionLost(ConnectionError):
    """A frame went out, but it will not come back to this instance's sockets."""


class RedisBroker(Broker):
    """One pub/sub connection per instance; a reader task dispatches to handlers."""

    def __init__(self, url: str) -> None:
        self._client = redis.Redis.from_url(url, decode_responses=True)
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        self._handlers: defaultdict[str, list[Handler]] = defaultdict(list)
        self._reader: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        # False between a lost pub/sub connection and its re-subscription: frames
        # published meanwhile would not come back to this instance's own sockets.
        self._listening = True

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
        await self._client.aclose()
        self._handlers.clear()

    async def ping(self) -> None:
        await self._client.ping()

    async def publish(self, topic: str, payload: str) -> None:
        await self._client.publish(topic, payload)
        if not self._listening:
            raise SubscriptionLost("published, but this instance is not subscribed right now")

    async def publish_many(self, items: Sequence[tuple[str, str]]) -> None:
        # One round trip for a whole batch; a pipeline keeps the order on one connection.
        async with self._client.pipeline(transaction=False) as pipe:
            for topic, payload in items:
                pipe.publish(topic, payload)
            await pipe.execute()
        if not self._listening:
            raise SubscriptionLost("published, but this instance is not subscribed right now")

    async def subscribe(self, topic: str, handler: Handler) -> None:
        first = not self._handlers.get(topic)
        self._handlers[topic].append(handler)
        if first:
            await self._pubsub.subscribe(topic)
            self._subscribed.set()

    async def unsubscribe(self, topic: str, handler: Handler) -> None:
        handlers = self._handlers.get(topic)
        if handlers and handler in handlers:
            handlers.remove(handler)
            if not handlers:
                del self._handlers[topic]
                await self._pubsub.unsubscribe(topic)

    async def _reconnect(self) -> None:
        """Open a fresh pub/sub connection and subscribe again, retrying until Redis is back."""
        delay = 0.2
        while True:
            await asyncio.sleep(delay)
            old, self._pubsub = self._pubsub, self._client.pubsub(ignore_subscribe_messages=True)
            with contextlib.suppress(Exception):
                await old.aclose()  # type: ignore[no-untyped-call]
            try:
                topics = list(self._handlers)
                if topics:
                    await self._pubsub.subscribe(*topics)
                else:
                    await self._client.ping()
            except Exception:
                delay = min(delay * 2, 5.0)
                continue
            log.info("broker.reconnected", topics=len(topics))
            return

    async def _read(self) -> None:
        while True:
            if not self._pubsub.subscribed:
                # get_message() needs a subscription; wait for the first one.
                self._subscribed.clear()
                await self._subscribed.wait()
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("broker.read_failed", exc_info=True)
                self._listening = False
                await self._reconnect()
                self._listening = True
                continue
            if message is None or message.get("type") != "message":
                continue
            for handler in tuple(self._handlers.get(message["channel"], ())):
                try:
                    handler(message["data"])
                except Exception:
                    log.exception("broker.handler_failed", topic=message["channel"])
