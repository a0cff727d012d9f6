"""What a room's sockets were given: remembered once per room, and the catch-up after a
broker outage that relies on it (each socket gets every message once)."""

from __future__ import annotations

import gc
import json
import tracemalloc
from typing import Any

from videochat.realtime.broker import MemoryBroker
from videochat.realtime.connection import Connection
from videochat.realtime.hub import Hub
from videochat.realtime.wire import WIRE_EXTENSION, PreparedFrame


class _Socket:
    """A socket whose frames are written at once (the wire's send_nowait), kept as ids."""

    def __init__(self, keep: bool = True) -> None:
        self.ids: list[int] = []
        self.keep = keep
        self.scope = {"extensions": {WIRE_EXTENSION: {"send_nowait": self._send_nowait}}}

    def _send_nowait(self, frame: PreparedFrame) -> bool:
        if self.keep:
            frame_ = json.loads(frame.text)
            if frame_["type"] == "message":  # (presence lists come after a catch-up)
                self.ids.append(frame_["id"])
        return True


async def _join(hub: Hub, room_id: str, name: str, *, keep: bool = True) -> Connection:
    socket: Any = _Socket(keep)
    connection = Connection(socket, room_id, f"u-{name}", name, queue_size=64)
    await hub.register(connection)
    connection.start_writer()
    return connection


def _message(message_id: int) -> dict[str, Any]:
    return {"type": "message", "id": message_id, "content": f"m{message_id}"}


def _ids(connection: Connection) -> list[int]:
    return connection.websocket.ids  # type: ignore[attr-defined, no-any-return]


async def test_a_busy_room_keeps_its_message_ids_once_not_once_per_socket() -> None:
    """20 sockets given 6,000 messages: each used to keep 4,096 ids (~290 KB apiece)."""
    hub = Hub(MemoryBroker())
    sockets = [await _join(hub, "busy", f"p{n}", keep=False) for n in range(20)]
    await hub.publish_many([("busy", _message(n)) for n in range(1, 101)])
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for start in range(101, 6101, 500):
            await hub.publish_many([("busy", _message(n)) for n in range(start, start + 500)])
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert all(not s.closed for s in sockets)
    # The room's 4,096 ids with their places: well under a megabyte (it was ~5.8 MB).
    assert grown < 1_000_000, grown


async def test_a_catch_up_gives_each_socket_what_it_missed_once() -> None:
    stored = [(n, _message(n)) for n in range(1, 13)]  # the database's history

    async def catch_up(room_id: str, after: int, limit: int) -> list[tuple[int, str]]:
        from videochat.realtime.hub import dumps

        return [(n, dumps(frame)) for n, frame in stored if n > after][:limit]

    hub = Hub(MemoryBroker(), catch_up=catch_up)
    alice = await _join(hub, "r", "alice")
    await hub.publish_many([("r", _message(n)) for n in (1, 2, 3)])
    bob = await _join(hub, "r", "bob")  # joined after 3
    await hub.publish_many([("r", _message(n)) for n in (4, 5)])

    hub._broker_changed(False)  # the broker is away: 6 and 7 are lost in flight
    await hub.publish_many([("r", _message(8))])  # this instance's own, delivered here
    hub._broker_changed(True)
    assert hub._catching_up is not None
    await hub._catching_up
    # A live copy of 9, read by the catch-up first, arrives late: not given twice.
    await hub.publish_many([("r", _message(9))])
    assert _ids(alice) == [1, 2, 3, 4, 5, 8, 6, 7, 9, 10, 11, 12]
    assert _ids(bob) == [4, 5, 8, 6, 7, 9, 10, 11, 12]

    # A second outage: nothing from the first catch-up is sent again.
    stored += [(n, _message(n)) for n in (13, 14)]
    hub._broker_changed(False)
    hub._broker_changed(True)
    await hub._catching_up
    assert _ids(alice)[-3:] == [12, 13, 14]
    assert _ids(bob)[-3:] == [12, 13, 14]
