"""One flow per call action: relaying signalling between sockets, changing devices."""

from __future__ import annotations

import json

from videochat.calls.frames import (
    BadSignal,
    MediaStateFrame,
    PeerNotFound,
    SignalFrame,
    SignalRateLimited,
)
from videochat.calls.sdp import receive_only_signal
from videochat.config import CallSettings
from videochat.realtime.budget import PeerBudget
from videochat.realtime.connection import Connection
from videochat.realtime.hub import Hub
from videochat.rooms.policy import Act, refuse_if_muted


async def relay_signal(
    hub: Hub,
    connection: Connection,
    signal: SignalFrame,
    *,
    settings: CallSettings,
    budget: PeerBudget,
) -> None:
    """Relay WebRTC signalling to one connection of a named peer in the same room.

    A user may have several sockets in a room (tabs, a reconnect the server has not
    noticed yet); only the latest is in the call. ``to_connection`` names the socket
    (it must be one of that user's in this room); without it the signal goes to the
    user's latest socket. Never to all of them: two tabs answering one offer would
    break the negotiation.

    A muted sender may still signal, to receive the others' media (rooms.policy,
    ``Act.WATCH``): what they describe is relayed receive-only.

    Size and volume are bounded per peer (``bad_signal``, ``rate_limited`` to the
    sender), and the relayed frame may be dropped by a recipient that is far behind
    rather than cost it its socket: a sender can never get another member dropped.
    """
    size = len(json.dumps(signal.data))  # ASCII: characters are bytes
    if size > settings.max_signal_bytes:
        raise BadSignal(f"signal data may be at most {settings.max_signal_bytes} bytes")
    target, target_connection = signal.to, signal.to_connection
    connections = (
        [] if target == connection.user_id else await hub.connections_of(connection.room_id, target)
    )
    if target_connection is None and connections:
        target_connection = connections[-1]
    if target_connection not in connections:
        raise PeerNotFound()
    if not budget.spend(target, size):
        raise SignalRateLimited(settings.signal_window_seconds)
    await hub.publish(
        connection.room_id,
        {
            "type": "signal",
            "from": connection.user_id,
            "from_connection": connection.id,
            "to": target,
            "to_connection": target_connection,
            "data": receive_only_signal(signal.data) if connection.muted else signal.data,
        },
        to_user=target,
        to_connection=target_connection,
        droppable=True,
    )


async def change_media(hub: Hub, connection: Connection, state: MediaStateFrame) -> None:
    """Record a socket's mic/camera/screen and tell the room; muted people turn nothing on.

    The room gets the small ``media_state`` frame only, never the participant list
    again: a list for every toggle cost O(room) bytes to each of O(room) sockets. The
    list still carries the new state to whoever joins next.
    """
    if state.turns_on:
        refuse_if_muted(connection.muted, Act.MEDIA_ON)
    connection.media.update(state.changes)
    await hub.media_changed(connection)
    await hub.publish_media(connection.room_id, connection.user_id)
