"""The hub: local sockets per room, fed by the broker.

Every frame for a room goes through the broker as an envelope: one line of JSON
``{"to": user_id | null, "to_connection": connection_id | null, "except": connection_id
| null, "id": message id, "v2": true unless the prototype had this frame, "control"}``,
a newline, then the frame's JSON exactly as the sockets get it. Each instance reads
the short header and hands the frame's text to its own sockets in the room: a frame
is serialised once, wherever its recipients are, and never parsed again.

When the broker loses its connection (Redis restarting) each instance keeps delivering
to its own sockets, and marks where each socket was. When the broker is back, a
``catch_up`` hook (given by the app: the chat's stored messages) sends every socket the
messages it missed meanwhile, in id order, skipping those it already got.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import structlog

from videochat.observability import metrics
from videochat.realtime.broker import Broker, MemoryBroker
from videochat.realtime.close_codes import GOING_AWAY, SLOW_CONSUMER
from videochat.realtime.connection import Connection
from videochat.realtime.delivered import Delivered
from videochat.realtime.presence import MemoryPresence, Presence
from videochat.realtime.wire import PreparedFrame

log = structlog.get_logger(__name__)

# ``catch_up(room_id, after, limit)``: the room's message frames after the id ``after``,
# oldest first, at most ``limit``, as ``(message id, frame text)``.
CatchUp = Callable[[str, int, int], Awaitable[list[tuple[int, str]]]]
# At most this many messages per room are caught up; beyond, sockets are told to
# reconnect with ``?since=`` (the replay pages through any number).
CATCH_UP_LIMIT = 1000
# Catch-up retries while the database is away too (both restarting at once).
CATCH_UP_RETRY_SECONDS = 1.0
# ``call_mode(room_id, participants)``: fields the room's presence list gets about its
# call (the SFU's ``call_mode``); set by the app when an SFU is configured.
CallMode = Callable[[str, list[dict[str, Any]]], Awaitable[dict[str, Any]]]


# The frames the prototype sent: all a protocol v1 socket (no ``?v=2``) ever gets from
# the room, so the prototype's clients, which read frames by position, work unchanged.
PROTOTYPE_FRAMES = frozenset({"user_joined", "message", "user_left"})


def _topic(room_id: str) -> str:
    return f"videochat:room:{room_id}"


# One encoder for every frame: json.dumps with options builds a JSONEncoder per call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def dumps(frame: dict[str, Any]) -> str:
    """Compact JSON for the wire."""
    return _ENCODER.encode(frame)


@dataclass(slots=True)
class Envelope:
    """A frame on its way through the broker: its header, and its JSON as sockets get it.

    ``str()`` is the wire form (the header's JSON line, a newline, the frame's JSON),
    made only when a broker between processes sends it: the in-process broker hands
    the object itself to the hub, which reads the header without parsing anything.
    """

    header: dict[str, Any]
    text: str

    def __str__(self) -> str:
        # dumps() escapes newlines inside strings, so the first newline ends the header.
        return f"{dumps(self.header)}\n{self.text}"

    @classmethod
    def parse(cls, payload: object) -> Envelope:
        if isinstance(payload, Envelope):
            return payload
        head, _, text = str(payload).partition("\n")
        return cls(json.loads(head), text)


def _envelope(
    frame: dict[str, Any],
    *,
    to_user: str | None = None,
    to_connection: str | None = None,
    except_connection: str | None = None,
    control: dict[str, Any] | None = None,
    droppable: bool = False,
    order: tuple[str, int | None] | None = None,
) -> Envelope:
    kind = frame.get("type")
    # Message ids let a socket skip what its reconnect replay already sent.
    message_id = frame.get("id", 0) if kind == "message" else 0
    header: dict[str, Any] = {"to": to_user, "except": except_connection, "id": message_id}
    if kind not in PROTOTYPE_FRAMES:
        # Decided once here, so delivery asks each socket one flag. Marking the new
        # frames (not the prototype's) means an envelope from an older instance, with no
        # mark, still reaches v1 sockets: extra frames at worst, never a lost message.
        header["v2"] = True
    if to_connection is not None:
        header["to_connection"] = to_connection
    if control:
        header["control"] = control
    if droppable:
        header["droppable"] = True
    if order is not None and order[1] is not None:
        header["order"] = order
    return Envelope(header, dumps(frame))


@dataclass(eq=False)
class _PresenceWindow:
    """A room's presence window: a list went out at its start; ``due`` asks for one at its end."""

    due: bool = False
    task: asyncio.Task[None] | None = None


class Hub:
    def __init__(
        self,
        broker: Broker,
        presence: Presence | None = None,
        *,
        presence_interval: float = 0.0,
        catch_up: CatchUp | None = None,
    ) -> None:
        self.broker = broker
        self.presence = presence or MemoryPresence()
        # Full participant lists go to a room at most once per window (see publish_presence).
        self.presence_interval = presence_interval
        self._presence_windows: dict[str, _PresenceWindow] = {}
        # Set by the app once it has a database (runtime.open_context).
        self.catch_up = catch_up
        self.call_mode: CallMode | None = None
        # True from a lost broker connection until its catch-up ran.
        self._cut_off = False
        # Kicks, bans and mutes published here so far (any room), counted as published:
        # rooms.admission.confirm's test for "none landed while a socket was admitted".
        self.moderation_published = 0
        self._catch_up_wanted = False
        self._catching_up: asyncio.Task[None] | None = None
        # Per room with a socket here, the message ids delivered to it lately (and the
        # last: where a socket that opens while the broker is away starts its catch-up).
        self._delivered: dict[str, Delivered] = {}
        # Per room, the stamp of the last state of each kind delivered here (its
        # participant list, each person's devices): see Presence.stamped_entries.
        self._stamps: defaultdict[str, dict[str, int]] = defaultdict(dict)
        broker.watch(self._broker_changed)
        self._rooms: defaultdict[str, dict[str, Connection]] = defaultdict(dict)
        self._handlers: dict[str, Any] = {}
        self._subscribed: dict[str, asyncio.Future[None]] = {}
        # Sockets per client address and per account (from their handshake to their
        # end), kept as they come and go: counting them by walking every connection was
        # O(connections). Keys: ("ip", address), ("user", user id).
        self._slots: Counter[tuple[str, str]] = Counter()

    @property
    def only_instance(self) -> bool:
        """True when no other instance shares the rooms (the in-process broker): every
        kick, ban and mute then goes through this hub's ``publish``."""
        return isinstance(self.broker, MemoryBroker)

    def all_connections(self) -> list[Connection]:
        """Every local socket, in every room."""
        return [c for room in self._rooms.values() for c in room.values()]

    def open_from(self, ip: str) -> int:
        """How many sockets this instance holds open (or in their handshake) for one address."""
        return self._slots[("ip", ip)]

    def claim_address(self, ip: str, limit: int | None) -> bool:
        """Take one of the address's socket slots at once; False when ``limit`` are taken.

        Synchronous on purpose: a check and a count apart (with the handshake's awaits
        between them) let concurrent handshakes past the limit.
        """
        return self._claim(("ip", ip), limit)

    def release_address(self, ip: str) -> None:
        """Give back a slot taken by ``claim_address``."""
        self._release(("ip", ip))

    def claim_account(self, user_id: str, limit: int | None) -> bool:
        """Take one of the account's socket slots (its tabs and devices), as
        ``claim_address`` does for an address; False when ``limit`` are taken."""
        return self._claim(("user", user_id), limit)

    def release_account(self, user_id: str) -> None:
        """Give back a slot taken by ``claim_account``."""
        self._release(("user", user_id))

    def _claim(self, key: tuple[str, str], limit: int | None) -> bool:
        if limit is not None and self._slots[key] >= limit:
            return False
        self._slots[key] += 1
        return True

    def _release(self, key: tuple[str, str]) -> None:
        self._slots[key] -= 1
        if self._slots[key] <= 0:
            del self._slots[key]

    def connections(self, room_id: str) -> list[Connection]:
        """The local sockets in a room."""
        return list(self._rooms.get(room_id, {}).values())

    async def participants(self, room_id: str) -> list[dict[str, Any]]:
        """Who is connected to the room on any instance, one entry per user."""
        return await self.presence.participants(room_id)

    async def is_present(self, room_id: str, user_id: str) -> bool:
        """Whether the user has a socket open in the room on any instance."""
        return await self.presence.is_present(room_id, user_id)

    async def connections_of(self, room_id: str, user_id: str) -> list[str]:
        """The user's connection ids in the room on any instance, oldest first."""
        return await self.presence.connections_of(room_id, user_id)

    async def media_changed(self, connection: Connection) -> None:
        """Record a socket's new mic/camera/screen state."""
        await self.presence.update(connection)

    async def publish_media(self, room_id: str, user_id: str) -> None:
        """Tell the room a person's devices, all their tabs merged (``media_state``)."""
        stamp, media = await self.presence.media_snapshot(room_id, user_id)
        frame = {"type": "media_state", "user_id": user_id, **media}
        await self.publish(room_id, frame, order=(f"media:{user_id}", stamp))

    async def register(self, connection: Connection) -> None:
        """Start delivering the room's frames to this connection."""
        room_id = connection.room_id
        room = self._rooms[room_id]
        first = not room
        # Added before any await: a second socket of the room registering meanwhile must
        # see the room as taken, or it would subscribe a second handler (and every frame
        # would then be delivered twice on this instance).
        room[connection.id] = connection
        delivered = self._delivered.get(room_id)
        if delivered is None:
            delivered = self._delivered[room_id] = Delivered()
        connection.joined = delivered.count
        if self._cut_off and connection.catch_up_after is None:
            # Whatever the other instances send from now on may not reach it.
            connection.catch_up_after = delivered.last_id or None
        metrics.WS_ACTIVE.inc()  # unregister() undoes these, whatever fails below
        if first:
            ready = self._subscribed[room_id] = asyncio.get_running_loop().create_future()
            handler = partial(self._deliver, room_id)
            self._handlers[room_id] = handler
            try:
                await self.broker.subscribe(_topic(room_id), handler)
            except Exception as exc:
                ready.set_exception(exc)
                ready.exception()  # marks it retrieved; waiters re-raise it themselves
                raise
            else:
                ready.set_result(None)
            finally:
                self._subscribed.pop(room_id, None)
        elif room_id in self._subscribed:
            # The room's subscription is still being set up by the first socket.
            await asyncio.shield(self._subscribed[room_id])
        await self.presence.add(connection)

    async def unregister(self, connection: Connection) -> None:
        """Stop delivering to this connection; drop the subscription with the last one."""
        room_id = connection.room_id
        room = self._rooms.get(room_id)
        if room is None or room.pop(connection.id, None) is None:
            return
        metrics.WS_ACTIVE.dec()
        handler = None
        # Decided before any await, so a socket registering meanwhile starts a fresh
        # subscription instead of sharing one that is about to be dropped.
        if not room:
            del self._rooms[room_id]
            handler = self._handlers.pop(room_id, None)
            self._stamps.pop(room_id, None)
            self._delivered.pop(room_id, None)
        try:
            await self.presence.remove(connection)
        except Exception:  # Redis is down: its heartbeat expiry cleans up later
            log.warning("hub.presence_remove_failed", room_id=room_id)
        if handler is not None:
            try:
                await self.broker.unsubscribe(_topic(room_id), handler)
            except Exception:  # the broker is down; a later reconnect drops it
                log.warning("hub.unsubscribe_failed", room_id=room_id)

    async def publish(
        self,
        room_id: str,
        frame: dict[str, Any],
        *,
        to_user: str | None = None,
        to_connection: str | None = None,
        except_connection: str | None = None,
        control: dict[str, Any] | None = None,
        droppable: bool = False,
        order: tuple[str, int | None] | None = None,
    ) -> None:
        """Send a frame to everyone in the room (or one user, or one connection).

        A ``droppable`` frame is skipped by a socket that is far behind instead of
        growing its backlog (see ``Connection.offer``): what one member sends another
        must never get the recipient closed as a slow consumer.

        ``control`` acts on sockets after the frame went out: ``{"disconnect": user_id,
        "code", "reason"}`` closes that user's sockets in the room; ``{"mute": user_id,
        "muted": bool}`` updates their sockets' muted flag.
        """
        if control is not None and (control.get("disconnect") or control.get("mute")):
            self.moderation_published += 1
        payload = _envelope(
            frame,
            to_user=to_user,
            to_connection=to_connection,
            except_connection=except_connection,
            control=control,
            droppable=droppable,
            order=order,
        )
        try:
            await self.broker.publish(_topic(room_id), payload)
        except Exception as exc:
            # The broker is down or this instance's subscription is (Redis restarting):
            # a message is already stored, so deliver to this instance's sockets at
            # least; other instances' clients catch up with ?since= when they reconnect.
            log.warning("hub.publish_degraded", room_id=room_id, error=str(exc))
            self._deliver(room_id, payload)

    async def publish_presence(self, room_id: str) -> None:
        """Send the room its participant list (after a join or a leave), coalesced.

        A list costs O(room) bytes to each of the room's O(room) sockets: sent for every
        change it grows with the square of the room. So the first change sends at once and
        opens a window of ``presence_interval``; changes within it send one list when it
        ends, read then (the latest wins), and open the next window.
        """
        if self.presence_interval <= 0:
            await self._send_presence(room_id)
            return
        window = self._presence_windows.get(room_id)
        if window is not None:
            window.due = True
            return
        window = self._presence_windows[room_id] = _PresenceWindow()
        window.task = asyncio.create_task(
            self._presence_trailing_edge(room_id, window), name=f"presence-{room_id}"
        )
        await self._send_presence(room_id)

    async def _presence_trailing_edge(self, room_id: str, window: _PresenceWindow) -> None:
        try:
            while True:
                await asyncio.sleep(self.presence_interval)
                if not window.due:
                    return
                window.due = False
                try:
                    await self._send_presence(room_id)
                except Exception:  # the broker or Redis is away: the next change retries
                    log.warning("hub.presence_failed", room_id=room_id, exc_info=True)
        finally:
            self._presence_windows.pop(room_id, None)

    async def _send_presence(self, room_id: str) -> None:
        stamp, participants = await self.presence.snapshot(room_id)
        frame = {"type": "presence", "room_id": room_id, "participants": participants}
        if self.call_mode is not None:
            try:
                frame.update(await self.call_mode(room_id, participants))
            except Exception:  # the database or Janus is away: clients keep their mode
                log.warning("hub.call_mode_failed", room_id=room_id, exc_info=True)
        await self.publish(room_id, frame, order=("presence", stamp))

    async def publish_many(self, frames: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Broadcast ``(room_id, frame)`` pairs to their rooms, in this order."""
        items = [(room_id, _envelope(frame)) for room_id, frame in frames]
        try:
            await self.broker.publish_many([(_topic(room), payload) for room, payload in items])
        except Exception as exc:
            # As in publish(): the frames are stored; at least this instance's sockets
            # get them, and other instances' clients catch up with ?since=.
            log.warning("hub.publish_degraded", rooms=len(items), error=str(exc))
            for room_id, payload in items:
                self._deliver(room_id, payload)

    def _deliver(self, room_id: str, payload: object) -> None:
        envelope = Envelope.parse(payload)
        header = envelope.header
        order = header.get("order")
        if order is not None:
            if not self._rooms.get(room_id):
                return  # no socket here (the publish went degraded): nothing to keep
            # A state (the participant list, a person's devices) read before the last one
            # of its kind delivered here, published after it (its instance was busy
            # between the two): stale, and it would stay so until the next change.
            kind, stamp = order
            seen = self._stamps[room_id]
            if stamp < seen.get(kind, 0):
                return
            seen[kind] = stamp
        to_user, skip, message_id = header["to"], header["except"], header["id"]
        only = header.get("to_connection")
        droppable = header.get("droppable", False)
        v2_only = header.get("v2", False)
        if message_id:
            delivered = self._delivered.get(room_id)
            if delivered is not None and not delivered.record(message_id):
                return  # delivered here already (the same message published twice)
        frame = PreparedFrame(envelope.text)  # compressed once for all the room's sockets
        room = self._rooms.get(room_id)
        targeted = skip is not None or to_user is not None or only is not None or v2_only
        sent = 0
        for connection in list(room.values()) if room else ():
            if targeted:
                if connection.id == skip or (to_user is not None and connection.user_id != to_user):
                    continue
                if only is not None and connection.id != only:
                    continue
                if v2_only and connection.v1:
                    continue  # a frame the prototype never sent: only for protocol v2
            sent += connection.offer(frame, message_id, droppable)
        metrics.frames_sent(sent)  # once per broadcast, not a lock per socket
        control = header.get("control")
        if control:
            self._apply_control(room_id, control)

    def _apply_control(self, room_id: str, control: dict[str, Any]) -> None:
        for connection in self.connections(room_id):
            if connection.user_id == control.get("disconnect"):
                connection.close(int(control.get("code", 4003)), str(control.get("reason", "")))
            if connection.user_id == control.get("mute"):
                connection.muted = bool(control.get("muted"))

    def _broker_changed(self, connected: bool) -> None:
        """The broker lost its connection (mark every socket) or got it back (catch up)."""
        if not connected:
            self._cut_off = True
            for connection in self.all_connections():
                if connection.catch_up_after is None:
                    connection.catch_up_after = self._catch_up_mark(connection)
            return
        self._cut_off = False
        self._catch_up_wanted = True
        if self._catching_up is None or self._catching_up.done():
            self._catching_up = asyncio.get_running_loop().create_task(
                self._catch_up_all(), name="hub-catch-up"
            )

    async def _catch_up_all(self) -> None:
        """Send every marked socket what it missed, room by room, until all are done."""
        while self._catch_up_wanted:
            self._catch_up_wanted = False
            failed = False
            # Redis may have come back empty or from a snapshot: put back who is here.
            await self.presence.resync()
            for room_id in list(self._rooms):
                try:
                    await self._catch_up_room(room_id)
                    # Clients' participant lists may be out of date too.
                    await self.publish_presence(room_id)
                except Exception as exc:  # the database is away too: try again soon
                    log.warning("hub.catch_up_failed", room_id=room_id, error=str(exc))
                    failed = True
            if failed and not self._cut_off:
                # (Cut off again: the broker's return asks for the next round.)
                self._catch_up_wanted = True
                await asyncio.sleep(CATCH_UP_RETRY_SECONDS)

    async def _catch_up_room(self, room_id: str) -> None:
        waiting = [c for c in self.connections(room_id) if c.catch_up_after is not None]
        if not waiting:
            return
        if self.catch_up is None:
            for connection in waiting:
                connection.catch_up_after = None
            return
        after = min(c.catch_up_after or 0 for c in waiting)
        missed = await self.catch_up(room_id, after, CATCH_UP_LIMIT)
        delivered = self._delivered.get(room_id) or Delivered()
        caught_up = sent = 0
        for connection in waiting:
            start = max(connection.catch_up_after or 0, _given_up_to(connection))
            connection.catch_up_after = None
            if len(missed) >= CATCH_UP_LIMIT or not delivered.remembers_after(start):
                # Too much to be sure of sending it all once: the client resumes itself.
                connection.close(SLOW_CONSUMER, "missed too much; reconnect with ?since=")
                continue
            for message_id, text in missed:  # oldest first: the room's order
                if message_id > start and not delivered.given(message_id, connection.joined):
                    sent += connection.offer(text, message_id=message_id)
            if missed:
                # It has every message up to the last one read: a copy of one of them
                # still on its way live is skipped, and a later catch-up starts there.
                connection.caught_up_to = max(connection.caught_up_to, missed[-1][0])
            caught_up += 1
        metrics.frames_sent(sent)
        if missed:
            delivered.last_id = max(delivered.last_id, missed[-1][0])
        log.info("hub.caught_up", room_id=room_id, sockets=caught_up, messages=len(missed))

    def _catch_up_mark(self, connection: Connection) -> int:
        """Where a catch-up for this socket starts: a little before the last message it got."""
        delivered = self._delivered.get(connection.room_id)
        floor = _given_up_to(connection)
        return delivered.catch_up_mark(connection.joined, floor) if delivered else floor

    async def close_all(self) -> None:
        """Tell every socket the server is going away (shutdown)."""
        for window in list(self._presence_windows.values()):
            if window.task is not None:
                window.task.cancel()
        if self._catching_up is not None:
            self._catching_up.cancel()
        for room in list(self._rooms.values()):
            for connection in list(room.values()):
                connection.close(GOING_AWAY, "server shutting down")


def _given_up_to(connection: Connection) -> int:
    """Every message up to this id was given to the socket by its replay or a catch-up."""
    return max(connection.replayed_up_to, connection.caught_up_to)
