"""Reading client frames: what the wire reads itself and what it leaves to websockets.

``WireProtocol.data_received`` reads whole, final, uncompressed text frames itself and
hands anything else to websockets' parser. These tests write frames byte by byte over a
raw TCP socket to a real server, so each case lands in one read or is split on purpose,
and check the answer is the protocol's either way.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
import zlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import processes

FRAME_LIMIT = 2048  # the server's VIDEOCHAT_REALTIME__MAX_FRAME_BYTES here
TEXT, CONT, CLOSE, PING, PONG = 0x1, 0x0, 0x8, 0x9, 0xA


class Server:
    def __init__(self, port: int, log: Path) -> None:
        self.port, self.log = port, log
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            self.person = http.post("/users", json={"username": "reader"}).json()
            auth = {"Authorization": f"Bearer {self.person['access_token']}"}
            self.room = http.post("/rooms", json={"name": "Frames"}, headers=auth).json()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp: Path = tmp_path_factory.mktemp("wire-reading")
    port = processes.free_port()
    env = processes.server_env(
        tmp,
        f"sqlite+aiosqlite:///{tmp / 'vc.db'}",
        VIDEOCHAT_REALTIME__MAX_FRAME_BYTES=str(FRAME_LIMIT),
    )
    process = processes.start_server(env, port)
    try:
        yield Server(port, tmp / f"server-{port}.log")
    finally:
        processes.stop_server(process)


def frame(
    opcode: int, payload: bytes, *, fin: bool = True, masked: bool = True, rsv1: bool = False
) -> bytes:
    """One client frame (RFC 6455, 5.2), masked as clients must."""
    head = bytes([(0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode])
    length = len(payload)
    mask_bit = 0x80 if masked else 0
    if length < 126:
        head += bytes([mask_bit | length])
    elif length < 65536:
        head += bytes([mask_bit | 126]) + struct.pack("!H", length)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", length)
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def ping(n: int) -> bytes:
    """The app's own ping frame (answered with a ``pong`` carrying the same time)."""
    return frame(TEXT, json.dumps({"type": "ping", "time": n}).encode())


class RawSocket:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def write(self, *chunks: bytes, pause: float = 0.0) -> None:
        """Write each chunk on its own (a pause between them makes separate reads)."""
        for chunk in chunks:
            self.writer.write(chunk)
            await self.writer.drain()
            if pause:
                await asyncio.sleep(pause)

    async def next_frame(self) -> tuple[int, bytes]:
        head = await self.reader.readexactly(2)
        length = head[1] & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
        payload = await self.reader.readexactly(length)
        if head[0] & 0x40:  # compressed by the server (deflate agreed)
            payload = zlib.decompressobj(wbits=-15).decompress(payload + b"\x00\x00\xff\xff")
        return head[0] & 0x0F, payload

    async def pongs(self, count: int) -> list[Any]:
        """The times of the next ``count`` app pongs (other frames skipped)."""
        times: list[Any] = []
        while len(times) < count:
            opcode, payload = await asyncio.wait_for(self.next_frame(), 10)
            assert opcode != CLOSE, f"closed: {payload!r}"
            if opcode == TEXT and json.loads(payload).get("type") == "pong":
                times.append(json.loads(payload)["time"])
        return times

    async def close_code(self) -> int:
        while True:
            opcode, payload = await asyncio.wait_for(self.next_frame(), 10)
            if opcode == CLOSE:
                return int(struct.unpack("!H", payload[:2])[0])


def compressed(text: bytes, window_bits: int = 12) -> bytes:
    """A message compressed from scratch, as permessage-deflate sends it (RFC 7692, 7.2.1)."""
    compressor = zlib.compressobj(wbits=-window_bits)
    data = compressor.compress(text) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert data.endswith(b"\x00\x00\xff\xff")
    return data[:-4]


def compressed_ping(n: int) -> bytes:
    text = json.dumps({"type": "ping", "time": n, "padding": "pad " * 40}).encode()
    return frame(TEXT, compressed(text), rsv1=True)


@asynccontextmanager
async def raw_socket(server: Server, *, deflate: bool = False) -> AsyncIterator[RawSocket]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    key = base64.b64encode(os.urandom(16)).decode()
    path = (
        f"/ws/{server.room['id']}/{server.person['id']}?token={server.person['access_token']}&v=2"
    )
    writer.write(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            + (
                "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
                if deflate
                else ""
            )
            + "\r\n"
        ).encode()
    )
    answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert answer.startswith(b"HTTP/1.1 101"), answer
    if deflate:  # each message compressed from scratch, in a window of 4 KiB at most
        assert b"client_no_context_takeover" in answer and b"client_max_window_bits=12" in answer
    try:
        yield RawSocket(reader, writer)
    finally:
        writer.close()


async def test_several_messages_in_one_read_are_each_handled_in_order(server: Server) -> None:
    async with raw_socket(server) as socket:
        await socket.write(ping(1) + ping(2) + ping(3))
        assert await socket.pongs(3) == [1, 2, 3]


async def test_a_frame_split_over_reads_is_put_together(server: Server) -> None:
    async with raw_socket(server) as socket:
        whole = ping(4) + ping(5)
        # The header alone, then the rest of the first frame with half of the second.
        await socket.write(whole[:3], whole[3:20], whole[20:], pause=0.05)
        assert await socket.pongs(2) == [4, 5]


async def test_a_control_frame_among_messages_is_answered_and_the_messages_kept(
    server: Server,
) -> None:
    async with raw_socket(server) as socket:
        await socket.write(ping(6) + frame(PING, b"are you there") + ping(7))
        seen = []
        while len(seen) < 3:
            opcode, payload = await asyncio.wait_for(socket.next_frame(), 10)
            if opcode == PONG:
                seen.append(("PONG", payload))
            elif opcode == TEXT and json.loads(payload).get("type") == "pong":
                seen.append(("pong", json.loads(payload)["time"]))
        assert ("PONG", b"are you there") in seen
        assert [item for item in seen if item[0] == "pong"] == [("pong", 6), ("pong", 7)]


async def test_a_fragmented_message_is_put_together(server: Server) -> None:
    text = json.dumps({"type": "ping", "time": 8}).encode()
    async with raw_socket(server) as socket:
        await socket.write(frame(TEXT, text[:5], fin=False) + frame(CONT, text[5:]) + ping(9))
        assert await socket.pongs(2) == [8, 9]


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        (frame(TEXT, b'{"type": "ping", "time": "\xff"}'), 1007),  # not UTF-8
        (frame(TEXT, b"x" * (FRAME_LIMIT + 1)), 1009),  # over the frame limit
        (frame(TEXT, b'{"type": "ping"}', masked=False), 1002),  # clients must mask
        (frame(0x3, b"{}"), 1002),  # a reserved opcode
    ],
    ids=["bad-utf8", "too-big", "unmasked", "reserved-opcode"],
)
async def test_a_bad_frame_closes_the_socket_with_the_protocols_code(
    server: Server, bad: bytes, code: int
) -> None:
    async with raw_socket(server) as socket:
        await socket.write(ping(10))
        assert await socket.pongs(1) == [10]
        await socket.write(bad)
        assert await socket.close_code() == code


async def test_a_client_s_invalid_utf8_is_closed_without_an_error_in_the_log(
    server: Server,
) -> None:
    """uvicorn logged each one at ERROR with a traceback: any client could fill the log."""
    async with raw_socket(server) as socket:
        await socket.write(ping(11))
        assert await socket.pongs(1) == [11]
        await socket.write(frame(TEXT, b'{"content": "\xc3\x28"}'))
        assert await socket.close_code() == 1007
    await asyncio.sleep(0.2)  # (the server's log is written by another process)
    log = server.log.read_text(errors="replace")
    assert "Traceback" not in log and "[error" not in log, log[-3000:]


async def test_compressed_messages_are_inflated_in_order(server: Server) -> None:
    async with raw_socket(server, deflate=True) as socket:
        await socket.write(compressed_ping(12) + ping(13) + compressed_ping(14))
        assert await socket.pongs(3) == [12, 13, 14]
        first, rest = compressed_ping(15), compressed_ping(16)
        await socket.write(first[:9], first[9:] + rest, pause=0.05)
        assert await socket.pongs(2) == [15, 16]


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        # 1 KiB of deflate that inflates past the frame limit (a zip bomb, in small).
        (frame(TEXT, compressed(b"{" + b" " * 100_000 + b"}"), rsv1=True), 1009),
        (frame(TEXT, b"\xff\xfe not deflate at all", rsv1=True), 1002),
    ],
    ids=["inflates-too-big", "not-deflate"],
)
async def test_a_bad_compressed_frame_closes_the_socket(
    server: Server, bad: bytes, code: int
) -> None:
    async with raw_socket(server, deflate=True) as socket:
        await socket.write(compressed_ping(17))
        assert await socket.pongs(1) == [17]
        await socket.write(bad)
        assert await socket.close_code() == code
