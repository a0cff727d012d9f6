"""A WebSocket client cheap enough to load a server from one core: asyncio and zlib only.

The load generator's earlier client ran websockets' sans-I/O protocol, whose
generator-based parser and per-frame objects cost it more CPU per received frame than
the servers under test spent sending it: the generator was its own ceiling (about
20,000 frames/s). This one parses server frames by hand, straight out of the bytes
``data_received`` got (several frames at once under load), and hands the complete text
payloads on as ``bytes``. What it supports is what the servers here send and a
browser negotiates:

- the RFC 6455 handshake, with ``permessage-deflate; client_max_window_bits`` offered
  as browsers do; whatever the server answers (context takeover or not) is honoured:
  with ``server_no_context_takeover`` each message is inflated from a fresh state,
  otherwise one inflater lives as long as the socket;
- sent messages are masked with the all-zero key (valid: RFC 6455 asks browsers for an
  unpredictable key to protect proxies, and servers unmask any key the same way, so
  the server's cost is unchanged) and compressed when deflate was agreed, as browsers
  do;
- pings are answered, a close is echoed; fragmented messages are reassembled.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import zlib
from collections.abc import Callable
from typing import cast
from urllib.parse import urlsplit

_TAIL = b"\x00\x00\xff\xff"  # RFC 7692: the empty stored block a sender strips
_ZERO_MASK = b"\x00\x00\x00\x00"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


class HandshakeError(ConnectionError):
    """The server did not answer 101 (its status line is the message)."""


def _frame(opcode: int, payload: bytes, *, rsv1: bool = False) -> bytes:
    """A client frame (FIN set), masked with the zero key."""
    first = 0x80 | opcode | (0x40 if rsv1 else 0)
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", first, 0x80 | length)
    elif length < 65536:
        head = struct.pack("!BBH", first, 0x80 | 126, length)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, length)
    return head + _ZERO_MASK + payload


def _deflate_params(header: str) -> dict[str, str] | None:
    """The server's permessage-deflate answer as a dict of parameters (None: not agreed)."""
    for offer in header.split(","):
        name, *params = (part.strip() for part in offer.split(";"))
        if name.lower() == "permessage-deflate":
            return {k.strip().lower(): v.strip() for k, _, v in (p.partition("=") for p in params)}
    return None


class WsClient(asyncio.Protocol):
    """One socket. ``on_text(client, payload, now)`` gets every complete text message."""

    def __init__(
        self,
        url: str,
        *,
        compression: bool,
        on_text: Callable[[WsClient, bytes], None],
        on_lost: Callable[[WsClient], None],
    ) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.target = parts.path + (f"?{parts.query}" if parts.query else "")
        self.compression = compression
        self._on_text = on_text
        self._on_lost = on_lost
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.closing = False
        self.close_code: int | None = None
        self.last_seq = 0
        self._buffer = b""
        self._partial: list[bytes] = []
        self._partial_compressed = False
        self._handshake_done = False
        # Deflate, once agreed: fresh inflater per message, or one for the socket's life.
        self._deflate = False
        self._inflate_fresh = True
        self._inflater: zlib._Decompress | None = None
        self._compress_fresh = True
        self._compressor: zlib._Compress | None = None
        self._client_bits = 15

    @property
    def alive(self) -> bool:
        return self.opened.done() and not self.lost.done() and not self.closing

    # -- asyncio.Protocol ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {self.target} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        if self.compression:
            lines.append("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits")
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode())

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data if self._buffer else data
        if not self._handshake_done:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self._buffer = buffer
                return
            self._handshake(buffer[:end].decode("latin-1"))
            buffer = buffer[end + 4 :]
            if self.transport is None or self.transport.is_closing():
                return
        position, size = 0, len(buffer)
        # Frames from a server are never masked: 2 header bytes, then 0, 2 or 8 of length.
        while size - position >= 2:
            first, second = buffer[position], buffer[position + 1]
            length = second & 0x7F
            start = position + 2
            if length == 126:
                if size - start < 2:
                    break
                length = int.from_bytes(buffer[start : start + 2], "big")
                start += 2
            elif length == 127:
                if size - start < 8:
                    break
                length = int.from_bytes(buffer[start : start + 8], "big")
                start += 8
            end = start + length
            if end > size:
                break
            self._on_frame(first, buffer[start:end])
            position = end
        self._buffer = buffer[position:] if position < size else b""

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed during the handshake"))
        if not self.lost.done():
            self.lost.set_result(None)
        self._on_lost(self)

    # -- sending ------------------------------------------------------------------------
    def send_text(self, text: str) -> bool:
        """Send one text message; False when the socket is not open."""
        if not self.alive or self.transport is None:
            return False
        payload = text.encode()
        if self._deflate:
            if self._compress_fresh or self._compressor is None:
                self._compressor = zlib.compressobj(wbits=-self._client_bits)
            compressor = self._compressor
            data = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
            self.transport.write(_frame(OP_TEXT, data[:-4], rsv1=True))
        else:
            self.transport.write(_frame(OP_TEXT, payload))
        return True

    def close(self) -> None:
        """Send a close frame and close the transport (no wait for the server's echo)."""
        if self.closing or self.lost.done():
            return
        self.closing = True
        if self.transport is not None:
            if self._handshake_done:
                self.transport.write(_frame(OP_CLOSE, struct.pack("!H", 1000)))
            self.transport.close()

    # -- internals ----------------------------------------------------------------------
    def _handshake(self, head: str) -> None:
        status, *header_lines = head.split("\r\n")
        if " 101 " not in status + " ":
            self.opened.set_exception(HandshakeError(status))
            if self.transport is not None:
                self.transport.close()
            return
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        params = _deflate_params(headers.get("sec-websocket-extensions", ""))
        if params is not None:
            self._deflate = True
            self._inflate_fresh = "server_no_context_takeover" in params
            self._compress_fresh = "client_no_context_takeover" in params
            bits = params.get("client_max_window_bits")
            self._client_bits = int(bits) if bits else 15
        self._handshake_done = True
        if not self.opened.done():
            self.opened.set_result(None)

    def _on_frame(self, first: int, payload: bytes) -> None:
        opcode = first & 0x0F
        fin = first & 0x80
        if opcode in (OP_TEXT, OP_BINARY):
            compressed = bool(first & 0x40)
            if fin:
                self._on_text(self, self._inflate(payload) if compressed else payload)
            else:
                self._partial = [payload]
                self._partial_compressed = compressed
        elif opcode == OP_CONT:
            self._partial.append(payload)
            if fin:
                whole = b"".join(self._partial)
                self._partial = []
                self._on_text(self, self._inflate(whole) if self._partial_compressed else whole)
        elif opcode == OP_PING:
            if self.transport is not None and not self.closing:
                self.transport.write(_frame(OP_PONG, payload))
        elif opcode == OP_CLOSE:
            self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            if self.transport is not None:
                if not self.closing:
                    self.transport.write(_frame(OP_CLOSE, payload[:2]))
                self.transport.close()

    def _inflate(self, payload: bytes) -> bytes:
        if self._inflate_fresh or self._inflater is None:
            self._inflater = zlib.decompressobj(-15)
        return self._inflater.decompress(payload + _TAIL)
