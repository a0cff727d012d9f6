"""A WHIP publisher in Python: aiortc with a synthetic moving picture and a tone."""

from __future__ import annotations

import asyncio
import math
import time
from array import array
from fractions import Fraction
from typing import Any

import av
import httpx
from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamTrack

VIDEO_TB = Fraction(1, 90_000)
BAR = 32  # pixels per bit of the frame-number barcode
BAR_ROWS = 32


def read_frame_number(frame: Any) -> int:
    """The frame number PatternTrack drew into a (decoded) picture."""
    luma = frame.reformat(format="gray")
    plane = luma.planes[0]
    row = bytes(plane)[plane.line_size * (BAR_ROWS // 2) : plane.line_size * (BAR_ROWS // 2 + 1)]
    scale = frame.width / PatternTrack.WIDTH
    number = 0
    for bit in range(16):
        number = number << 1 | (row[int((bit * BAR + BAR // 2) * scale)] > 128)
    return number


class PatternTrack(MediaStreamTrack):
    """Moving stripes at a fixed frame rate; records when the first frame was captured."""

    kind = "video"
    WIDTH = 640

    def __init__(self, width: int = WIDTH, height: int = 480, fps: int = 20) -> None:
        super().__init__()
        self.width, self.height, self.fps = width, height, fps
        self.count = 0
        self.started: float | None = None  # wall clock of the first frame
        self.frozen = False  # True: stop producing, as a publisher that vanished
        self.captured: list[float] = []  # wall clock of each frame, by frame number

    async def recv(self) -> Any:
        if self.frozen:
            await asyncio.Future()  # never resolves: no more media
        if self.started is None:
            self.started = time.time()
        due = self.started + self.count / self.fps
        await asyncio.sleep(max(0.0, due - time.time()))
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        shift = self.count * 6
        luma = frame.planes[0]
        row = bytes(((x + shift) * 3) % 256 for x in range(luma.line_size))
        rows = [row if (y // 40) % 2 else row[::-1] for y in range(self.height)]
        # The frame number as a 16-bit barcode across the top rows, so whoever decodes
        # this picture later knows exactly when it was captured.
        code = b"".join(
            (b"\xeb" if self.count >> (15 - bit) & 1 else b"\x10") * BAR for bit in range(16)
        )
        code = code.ljust(luma.line_size, b"\x80")
        luma.update(code * BAR_ROWS + b"".join(rows[BAR_ROWS:]))
        self.captured.append(time.time())
        for plane in frame.planes[1:]:
            plane.update(bytes([(self.count * 3) % 256]) * (plane.line_size * plane.height))
        frame.pts = round(self.count / self.fps / VIDEO_TB)
        frame.time_base = VIDEO_TB
        self.count += 1
        return frame


class ToneTrack(MediaStreamTrack):
    """A 440 Hz tone in 20 ms frames."""

    kind = "audio"
    RATE = 48_000
    SAMPLES = 960

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0
        self.started: float | None = None
        self.frozen = False

    async def recv(self) -> Any:
        if self.frozen:
            await asyncio.Future()
        if self.started is None:
            self.started = time.time()
        due = self.started + self.sent / self.RATE
        await asyncio.sleep(max(0.0, due - time.time()))
        pcm = array(
            "h",
            (
                int(8000 * math.sin(2 * math.pi * 440 * (self.sent + n) / self.RATE))
                for n in range(self.SAMPLES)
            ),
        )
        frame = av.AudioFrame(format="s16", layout="mono", samples=self.SAMPLES)
        frame.planes[0].update(pcm.tobytes())
        frame.sample_rate = self.RATE
        frame.pts = self.sent
        frame.time_base = Fraction(1, self.RATE)
        self.sent += self.SAMPLES
        return frame


class Publisher:
    """One aiortc peer connection publishing to a WHIP endpoint."""

    def __init__(self, *, codec: str | None = None, audio: bool = True) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.video = PatternTrack()
        transceiver = self.pc.addTransceiver(self.video, direction="sendonly")
        if codec is not None:
            wanted = [
                c
                for c in RTCRtpSender.getCapabilities("video").codecs
                if c.mimeType.lower() in (f"video/{codec.lower()}", "video/rtx")
            ]
            transceiver.setCodecPreferences(wanted)
        self.audio = ToneTrack() if audio else None
        if self.audio is not None:
            self.pc.addTransceiver(self.audio, direction="sendonly")
        self.connected = asyncio.Event()
        self.closed = asyncio.Event()

        @self.pc.on("connectionstatechange")
        def _changed() -> None:
            if self.pc.connectionState == "connected":
                self.connected.set()
            if self.pc.connectionState in ("failed", "closed"):
                self.closed.set()

    async def offer(self) -> str:
        """The complete offer (every candidate gathered)."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        sdp: str = self.pc.localDescription.sdp
        return sdp

    async def publish(self, client: httpx.AsyncClient, url: str, key: str) -> httpx.Response:
        """POST the offer; on 201 apply the answer."""
        response = await client.post(
            url,
            content=(await self.offer()).encode(),
            headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {key}"},
        )
        if response.status_code == 201:
            answer = RTCSessionDescription(sdp=response.text, type="answer")
            await self.pc.setRemoteDescription(answer)
        return response

    async def close(self) -> None:
        await self.pc.close()
