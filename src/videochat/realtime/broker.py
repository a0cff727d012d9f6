"""Publish/subscribe between the instances of the service.

One interface, an in-process implementation (the embedded default) and a Redis
pub/sub one for several instances. The hub publishes a room's frames to the
broker and delivers what the broker hands back to its local sockets, so the same
path serves one instance and many.

A broker that can lose its connection tells its watchers (``watch``): ``False`` when
frames stopped flowing between instances, ``True`` once it is subscribed again, so the
hub can have its sockets catch up on what they missed meanwhile.
"""

from __future__ import annotations

import abc
from collections import defaultdict
from collections.abc import Callable, Sequence

# A payload is text, or an object whose ``str()`` is that text: the in-process broker
# hands it on as it is (the hub then reads its envelope's header without serialising
# and parsing it), a broker between processes sends the text.
Payload = object
Handler = Callable[[Payload], None]
# Told ``False`` when the broker lost its connection, ``True`` when it is back.
Watcher = Callable[[bool], None]


class Broker(abc.ABC):
    """Topic-based fan-out of text payloads."""

    def __init__(self) -> None:
        self._watchers: list[Watcher] = []

    def watch(self, watcher: Watcher) -> None:
        """Call ``watcher(connected)`` whenever the connection between instances changes."""
        self._watchers.append(watcher)

    def _tell_watchers(self, connected: bool) -> None:
        for watcher in tuple(self._watchers):
            watcher(connected)

    async def start(self) -> None:
        """Connect, if the implementation needs to."""
        return None

    async def stop(self) -> None:
        """Disconnect and drop every subscription."""
        return None

    @abc.abstractmethod
    async def publish(self, topic: str, payload: Payload) -> None:
        """Send the payload to every subscriber of the topic, on any instance."""

    async def publish_many(self, items: Sequence[tuple[str, Payload]]) -> None:
        """Publish ``(topic, payload)`` pairs in this order."""
        for topic, payload in items:
            await self.publish(topic, payload)

    @abc.abstractmethod
    async def subscribe(self, topic: str, handler: Handler) -> None:
        """Call ``handler(payload)`` for each payload published to the topic."""

    @abc.abstractmethod
    async def unsubscribe(self, topic: str, handler: Handler) -> None:
        """Stop calling the handler for the topic."""

    async def ping(self) -> None:
        """Raise when the broker cannot be reached."""
        return None


class MemoryBroker(Broker):
    """In-process fan-out: publish calls the topic's handlers directly."""

    def __init__(self) -> None:
        super().__init__()
        self._handlers: defaultdict[str, list[Handler]] = defaultdict(list)

    async def publish(self, topic: str, payload: Payload) -> None:
        for handler in tuple(self._handlers.get(topic, ())):
            handler(payload)

    async def subscribe(self, topic: str, handler: Handler) -> None:
        self._handlers[topic].append(handler)

    async def unsubscribe(self, topic: str, handler: Handler) -> None:
        handlers = self._handlers.get(topic)
        if handlers and handler in handlers:
            handlers.remove(handler)
            if not handlers:
                del self._handlers[topic]

    async def stop(self) -> None:
        self._handlers.clear()
