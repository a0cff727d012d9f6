"""Shortcuts for the live stream tests: streams, WHIP requests, hand-written SDP offers."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support import LiveServer, auth
from videochat.db.models import LiveStreamStatus
from videochat.db.unit_of_work import unit_of_work
from videochat.live import repository

FINGERPRINT = ":".join(["AB"] * 32)


def offer_sdp(*media: str) -> str:
    """A syntactically complete offer (no candidates) with the given m-sections."""
    lines = [
        "v=0",
        "o=- 1 1 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE " + " ".join(str(index) for index in range(len(media))),
    ]
    for index, section in enumerate(media):
        kind, codec = section.split(":", 1)
        payload = 111 if kind == "audio" else 96
        rate = "48000/2" if kind == "audio" else "90000"
        lines += [
            f"m={kind} 9 UDP/TLS/RTP/SAVPF {payload}",
            "c=IN IP4 0.0.0.0",
            f"a=mid:{index}",
            "a=sendonly",
            "a=rtcp-mux",
            f"a=rtpmap:{payload} {codec}/{rate}",
            "a=ice-ufrag:abcd",
            "a=ice-pwd:abcdefghijklmnopqrstuvwx",
            f"a=fingerprint:sha-256 {FINGERPRINT}",
            "a=setup:actpass",
        ]
    return "\r\n".join(lines) + "\r\n"


async def create_stream(
    client: httpx.AsyncClient, token: str | None, room_id: str, title: str = "Show"
) -> httpx.Response:
    """POST /rooms/{id}/live-stream."""
    headers = auth(token) if token else {}
    return await client.post(
        f"/rooms/{room_id}/live-stream", json={"title": title}, headers=headers
    )


async def new_stream(client: httpx.AsyncClient, token: str, room_id: str) -> dict[str, Any]:
    """A stream that must be created."""
    response = await create_stream(client, token, room_id)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def whip_post(
    client: httpx.AsyncClient,
    url: str,
    key: str | None,
    sdp: str,
    content_type: str = "application/sdp",
) -> httpx.Response:
    """POST an offer to a WHIP endpoint."""
    headers = {"Content-Type": content_type, **(auth(key) if key else {})}
    return await client.post(url, content=sdp.encode(), headers=headers)


async def force_status(server: LiveServer, stream_id: str, status: LiveStreamStatus) -> None:
    """Put a stream in a state directly in the database (no publisher needed)."""
    async with unit_of_work(server.context.sessionmaker) as session:
        moved = await repository.transition(
            session, stream_id, from_=list(LiveStreamStatus), to=status
        )
    assert moved


async def unconnectable_offer(port: int) -> str:
    """A real aiortc offer whose only candidate is a loopback port that never answers.

    The server's ICE checks go to 127.0.0.1 and are never answered: ICE and DTLS never
    complete, as with a publisher that sends an offer and goes away.
    """
    from aiortc import RTCPeerConnection

    pc = RTCPeerConnection()
    try:
        pc.addTransceiver("video", direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        lines = [
            line for line in pc.localDescription.sdp.splitlines() if not line.startswith("a=cand")
        ]
    finally:
        await pc.close()
    candidate = f"a=candidate:1 1 udp 2130706431 127.0.0.1 {port} typ host"
    at = next(i for i, line in enumerate(lines) if line.startswith("a=end-of-candidates"))
    return "\r\n".join([*lines[:at], candidate, *lines[at:]]) + "\r\n"
