"""An aiortc publisher in a Janus VideoRoom, joined with a videochat grant (as a browser).

The plain Janus HTTP API: a session, a VideoRoom handle, ``joinandconfigure`` with the
offer, the answer from the session's events; a background long poll keeps the session
alive. Its camera is a moving picture with a grey level of its own; its microphone a tone.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from fractions import Fraction
from typing import Any

import av
import httpx
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from tests.live.publisher import ToneTrack
from videochat.sfu.janus import JanusSession

VIDEO_TB = Fraction(1, 90_000)


class ShadeTrack(MediaStreamTrack):
    """Moving stripes around a grey level: each publisher's tile is told apart by it."""

    kind = "video"

    def __init__(self, shade: int, width: int = 320, height: int = 240, fps: int = 15) -> None:
        super().__init__()
        self.shade, self.width, self.height, self.fps = shade, width, height, fps
        self.count = 0
        self.started: float | None = None

    async def recv(self) -> Any:
        if self.started is None:
            self.started = time.time()
        due = self.started + self.count / self.fps
        await asyncio.sleep(max(0.0, due - time.time()))
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        luma = frame.planes[0]
        shift = self.count * 4
        row = bytes(
            self.shade + (24 if ((x + shift) // 16) % 2 else -24) for x in range(luma.line_size)
        )
        luma.update(row * luma.height)
        for plane in frame.planes[1:]:
            plane.update(b"\x80" * (plane.line_size * plane.height))
        frame.pts = round(self.count / self.fps / VIDEO_TB)
        frame.time_base = VIDEO_TB
        self.count += 1
        return frame


async def bind_handle(
    client: httpx.AsyncClient, room_id: str, access_token: str, session_id: int, handle_id: int
) -> None:
    """What the browser does before it joins: bind its grant to the publisher handle."""
    bound = await client.post(
        f"/rooms/{room_id}/call/sfu-handle",
        json={"session_id": session_id, "handle_id": handle_id},
        headers={"Authorization": f"Bearer {access_token}"},
    )
    assert bound.status_code == 204, bound.text


class JanusPublisher:
    """One person publishing camera and microphone to the room's VideoRoom."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        grant: dict[str, Any],
        shade: int,
        register: Callable[[int, int], Awaitable[None]] | None = None,
    ) -> None:
        self.http, self.grant, self.register = http, grant, register
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTransceiver(ShadeTrack(shade), direction="sendonly")
        self.pc.addTransceiver(ToneTrack(), direction="sendonly")
        self.session = JanusSession(http, grant["janus_url"], token=grant["token"])
        self.connected = asyncio.Event()
        self._poll: asyncio.Task[None] | None = None
        self._answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

        @self.pc.on("connectionstatechange")
        def _changed() -> None:
            if self.pc.connectionState == "connected":
                self.connected.set()

    async def publish(self, timeout: float = 20.0) -> None:
        await self.session.create()
        handle = await self.session.attach()
        if self.register is not None:  # as the browser: the handle bound to the grant first
            assert self.session.id is not None
            await self.register(self.session.id, handle)
        self._poll = asyncio.create_task(self._events())
        await self.pc.setLocalDescription(await self.pc.createOffer())
        body = {
            "request": "joinandconfigure",
            "ptype": "publisher",
            "room": self.grant["room"],
            "id": self.grant["publisher_id"],
            "token": self.grant["token"],
            "audio": True,
            "video": True,
        }
        offer = {"type": "offer", "sdp": self.pc.localDescription.sdp}
        ack = await self.session.message(handle, body, jsep=offer)
        assert ack["janus"] == "ack", ack
        async with asyncio.timeout(timeout):
            jsep = await self._answer
            await self.pc.setRemoteDescription(RTCSessionDescription(jsep["sdp"], jsep["type"]))
            await self.connected.wait()

    async def _events(self) -> None:
        while True:
            for event in await self.session.events():
                data = (event.get("plugindata") or {}).get("data") or {}
                if "error_code" in data and not self._answer.done():
                    self._answer.set_exception(AssertionError(f"janus refused: {data}"))
                if event.get("jsep") and not self._answer.done():
                    self._answer.set_result(event["jsep"])

    async def close(self) -> None:
        if self._poll is not None:
            self._poll.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._poll
        await self.pc.close()
        with contextlib.suppress(Exception):
            await self.session.destroy()
