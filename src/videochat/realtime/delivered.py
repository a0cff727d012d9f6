"""Which chat messages a room's sockets on this instance were given: kept once per room.

After a broker outage the hub sends each socket the messages it missed (hub's catch-up),
and must skip those it got live. Each socket used to remember the ids it was given
(4,096 of them, ~290 KB once full): a thousand sockets in busy rooms held ~290 MB of
ids, the same ids once per member. But every socket of a room is given every message
frame delivered to the room while it is registered, so the room keeps the ids, each with
its place in the room's delivery order, and a socket only keeps its own place at the
time it joined: it was given a message if the room's delivery of it came later.
"""

from __future__ import annotations

from itertools import islice

# Message ids a room remembers having delivered here; the oldest are forgotten first.
SEEN_IDS = 4096
# A catch-up starts this many received messages back: one published just before the
# outage may have been lost in flight while a later one got through.
CATCH_UP_LOOKBACK = 32


class Delivered:
    """The message ids delivered live to one room here, in delivery order."""

    __slots__ = ("_ids", "count", "last_id")

    def __init__(self) -> None:
        # id -> its place in the room's deliveries (1, 2, ...).
        self._ids: dict[int, int] = {}
        self.count = 0
        # The newest message id delivered or caught up here (0: none yet).
        self.last_id = 0

    def record(self, message_id: int) -> bool:
        """Count a delivery; False when this message was delivered here already."""
        if message_id in self._ids:
            return False
        self.count += 1
        self._ids[message_id] = self.count
        self.last_id = max(self.last_id, message_id)
        if len(self._ids) > SEEN_IDS:
            del self._ids[next(iter(self._ids))]
        return True

    def given(self, message_id: int, joined: int) -> bool:
        """Whether a socket that joined at ``joined`` (``count`` then) was given it live."""
        return self._ids.get(message_id, 0) > joined

    def catch_up_mark(self, joined: int, floor: int) -> int:
        """Where a socket's catch-up starts: a little before the last message it got
        (``floor``: every message up to it was given some other way)."""
        recent = [
            message_id
            for message_id, place in islice(reversed(self._ids.items()), CATCH_UP_LOOKBACK)
            if place > joined
        ]
        return max(floor, recent[-1] - 1 if recent else 0)

    def remembers_after(self, after: int) -> bool:
        """Whether every message delivered here after ``after`` is still remembered.

        When it is not (more messages came during the outage than the room remembers),
        a catch-up could repeat some: the socket should reconnect with ``?since=``.
        """
        return len(self._ids) < SEEN_IDS or min(self._ids) <= after
