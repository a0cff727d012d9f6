"""A room's VideoRoom on its Janus instance, managed through the admin API.

The VideoRoom is created with an empty ``allowed`` list (its ACL): only tokens
videochat added for this room join it, whatever else a token opens in Janus. Its
``secret`` stays on the server, so a participant cannot destroy, kick or moderate.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from videochat.sfu.janus import NO_SUCH_FEED, NO_SUCH_ROOM, ROOM_EXISTS, JanusAdmin, JanusError

# JavaScript numbers are exact up to 2**53: ids stay below, for the browser's sake.
ID_BITS = 52
# Streams one publisher may have (audio, camera, screen, and then some): moderate by mid.
MAX_STREAMS = 8


def janus_room_id(room_id: str) -> int:
    """The VideoRoom id of a videochat room: stable, so every instance derives the same."""
    digest = hashlib.sha256(f"videochat-room:{room_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - ID_BITS) or 1


@dataclass(slots=True, frozen=True)
class VideoRoom:
    """What addresses one VideoRoom: its instance's admin API, its id and its secret."""

    admin: JanusAdmin
    room: int
    secret: str

    def _request(self, request: str, **fields: Any) -> dict[str, Any]:
        return {"request": request, "room": self.room, "secret": self.secret, **fields}

    async def exists(self) -> bool:
        answer = await self.admin.videoroom({"request": "exists", "room": self.room})
        return bool(answer.get("exists"))

    @staticmethod
    def _recording_fields(record_dir: str | None) -> dict[str, Any]:
        if record_dir is None:
            return {"record": False}
        return {"record": True, "rec_dir": record_dir}

    async def ensure(
        self,
        *,
        admin_key: str,
        description: str,
        publishers: int,
        record_dir: str | None = None,
    ) -> bool:
        """Create the VideoRoom unless it exists; whether this call created it.

        ``record_dir``: a recording of the call is running, and a VideoRoom made anew
        (after a Janus restart, say) records into its folder from the start.
        """
        if await self.exists():
            return False
        try:
            await self.admin.videoroom(
                self._request(
                    "create",
                    admin_key=admin_key,
                    description=description,
                    is_private=True,
                    permanent=False,
                    allowed=[],
                    publishers=publishers,
                    # Recording is started and stopped by videochat only (the room's
                    # secret), never by a participant's own "configure".
                    lock_record=True,
                    **self._recording_fields(record_dir),
                )
            )
        except JanusError as exc:
            if exc.code != ROOM_EXISTS:  # another instance created it meanwhile
                raise
            return False
        return True

    async def destroy(self) -> bool:
        """Destroy it (everyone in it is told and dropped); False when it was gone."""
        try:
            await self.admin.videoroom(self._request("destroy", permanent=False))
        except JanusError as exc:
            if exc.code != NO_SUCH_ROOM:
                raise
            return False
        return True

    async def allow(self, token: str) -> None:
        await self.admin.videoroom(self._request("allowed", action="add", allowed=[token]))

    async def disallow(self, token: str) -> None:
        try:
            await self.admin.videoroom(self._request("allowed", action="remove", allowed=[token]))
        except JanusError as exc:
            if exc.code != NO_SUCH_ROOM:
                raise

    async def participants(self) -> list[dict[str, Any]]:
        answer = await self.admin.videoroom({"request": "listparticipants", "room": self.room})
        return list(answer.get("participants") or [])

    async def kick(self, publisher_id: int) -> bool:
        """Drop a participant (their publisher handle); False when they were not in it."""
        try:
            await self.admin.videoroom(self._request("kick", id=publisher_id))
        except JanusError as exc:
            if exc.code not in (NO_SUCH_FEED, NO_SUCH_ROOM):
                raise
            return False
        return True

    async def mute(self, publisher_id: int, *, muted: bool = True) -> int:
        """Moderate every stream the participant publishes; how many were changed.

        ``listparticipants`` does not list streams, and ``moderate`` addresses one mid:
        browsers number their m-lines' mids 0, 1, 2..., so they are tried in order
        until one is missing.
        """
        changed = 0
        for mid in range(MAX_STREAMS):
            try:
                await self.admin.videoroom(
                    self._request("moderate", id=publisher_id, mid=str(mid), mute=muted)
                )
            except JanusError as exc:
                if exc.code not in (NO_SUCH_FEED, NO_SUCH_ROOM):
                    raise
                break
            changed += 1
        return changed

    async def start_recording(self, record_dir: str) -> None:
        """Record every publisher (those in it now and those who join) into ``record_dir``.

        The folder first (a publisher's recorder is opened in the room's folder at the
        moment recording starts for it), then recording on; Janus makes the folder.
        """
        await self.admin.videoroom(
            self._request("edit", new_rec_dir=record_dir, new_lock_record=True)
        )
        await self.admin.videoroom(self._request("enable_recording", record=True))

    async def stop_recording(self) -> bool:
        """Close every publisher's recorders (their files are complete once this returns);
        False when the VideoRoom is gone (Janus closed them when it went)."""
        try:
            await self.admin.videoroom(self._request("enable_recording", record=False))
        except JanusError as exc:
            if exc.code != NO_SUCH_ROOM:
                raise
            return False
        return True
