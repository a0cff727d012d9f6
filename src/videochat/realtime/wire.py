"""The socket's wire: uvicorn's WebSocket protocol, taught to send a frame once to many.

A room's broadcast goes to every socket in it. With per-message deflate, uvicorn (through
websockets) compresses each copy on its own, with a compressor that lives as long as the
socket ("context takeover"). Here the server negotiates ``server_no_context_takeover``
(RFC 7692, section 7.1.1.1): every frame it sends is compressed from a fresh state, so
the bytes of a frame are the same for every socket with the same deflate parameters.
``PreparedFrame`` compresses and frames a text once per parameter set (the same idea as
gorilla/websocket's PreparedMessage), and ``WireProtocol`` writes those bytes as they
are. Two gains: a broadcast to ten compresses once, not ten times, and an idle socket
holds no compressor (a few tens of KB each with context takeover). The server also asks
clients for ``client_no_context_takeover``, so it keeps no inflater per socket either.

What a frame costs: messages compress a little worse without the shared history; chat
frames are small, and the server's CPU and memory are the scarcer goods.

Reading: a chat message is one whole, unfragmented text frame, and most reads hold one
or a few such frames and nothing else. ``WireProtocol.data_received`` reads those itself
(a header, the mask removed in C, inflated by websockets' own deflate when the client
compressed it from scratch, UTF-8 decoded) and hands the texts to the app as uvicorn
does; anything else (a partial frame, a control frame, a fragmented message, a
compressed one that needs the previous one's state, bad deflate data, an oversized
frame, any state but open) goes to websockets' parser whole, which answers it as the
protocol says. That generator-based parser cost a few per cent of a busy server's CPU
(docs/BENCHMARKS.md: -5% per delivery on the plain wire, -7% with deflate).

``WireProtocol.send`` takes the standard ASGI ``websocket.send`` message with the frame
under an extra key (``PREPARED_FRAME``); another ASGI server ignores that key and sends
the ``text`` as usual. The protocol also offers the app a synchronous ``send_nowait``
(scope extension ``WIRE_EXTENSION``): a broadcast writes straight to each socket's
transport when it has room, with no task switch and no trip through the middleware
stack per recipient; only a socket that cannot take more right now gets a backlog and
a task to drain it (realtime/connection.py).
"""

from __future__ import annotations

import logging
from typing import Any

import structlog
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.datastructures import Headers
from websockets.exceptions import PayloadTooBig, ProtocolError
from websockets.extensions.permessage_deflate import (
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import CloseCode, Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol

from videochat.config import Settings

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover (a platform without websockets' C extension)
    from websockets.utils import apply_mask

log = structlog.get_logger(__name__)

# The ASGI send message's key for a PreparedFrame (its "text" stays for other servers).
PREPARED_FRAME = "videochat.prepared_frame"
# The scope extension holding {"send_nowait": callable(PreparedFrame) -> bool}.
WIRE_EXTENSION = "videochat.wire"
# A frame's first byte for a final text frame with no extension bits (RFC 6455, 5.2), and
# the second byte's mask bit (every client frame is masked).
_FINAL_TEXT = 0x81
_FINAL_TEXT_COMPRESSED = 0xC1  # ... with RSV1: compressed (RFC 7692, 6)
_MASKED = 0x80
# uvicorn's own choice (12-bit windows, memLevel 5), minus the per-socket compressor.
WINDOW_BITS = 12
MEM_LEVEL = 5

# Shorter frames go uncompressed on a deflate socket too (RFC 7692 leaves the choice to
# the sender, message by message; Node's ws and Socket.IO skip compression under 1 KiB
# by default): compressing a chat message (~370 bytes as JSON) cost ~9 µs of CPU, zlib's
# fixed cost per message whatever the level, to save ~120 bytes per recipient.
COMPRESS_MIN_BYTES = 1024

# What makes two sockets' bytes for a frame the same: None (no deflate), or the window
# and compressor settings of a context-free deflate.
Variant = tuple[int, tuple[tuple[str, Any], ...]] | None


def deflate_factory() -> ServerPerMessageDeflateFactory:
    return ServerPerMessageDeflateFactory(
        server_no_context_takeover=True,
        # Clients compress each frame from scratch too: no inflater kept per socket.
        client_no_context_takeover=True,
        server_max_window_bits=WINDOW_BITS,
        client_max_window_bits=WINDOW_BITS,
        compress_settings={"memLevel": MEM_LEVEL},
    )


class PreparedFrame:
    """One text frame, framed (and compressed) once per wire variant, then shared."""

    __slots__ = ("_encoded", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._encoded: dict[Variant, bytes] = {}

    def encoded(self, variant: Variant, deflate: PerMessageDeflate | None) -> bytes:
        """The frame's bytes for a socket of this variant (its context-free deflate, or none)."""
        data = self._encoded.get(variant)
        if data is None:
            data = self._encoded[variant] = self._encode(deflate)
        return data

    def _encode(self, deflate: PerMessageDeflate | None) -> bytes:
        payload = self.text.encode()
        if deflate is not None and len(payload) >= COMPRESS_MIN_BYTES:
            return Frame(Opcode.TEXT, payload).serialize(mask=False, extensions=[deflate])
        # The plain frame, shared by plain sockets and deflate ones (a short frame).
        plain = self._encoded.get(None)
        if plain is None:
            plain = self._encoded[None] = _plain_frame(payload)
        return plain


def _plain_frame(payload: bytes) -> bytes:
    """A final, unmasked text frame (RFC 6455, 5.2): its two- to ten-byte header written
    here, not by websockets' Frame (a few µs of Python per message)."""
    size = len(payload)
    if size < 126:
        return bytes((_FINAL_TEXT, size)) + payload
    if size < 65536:
        return bytes((_FINAL_TEXT, 126)) + size.to_bytes(2) + payload
    return bytes((_FINAL_TEXT, 127)) + size.to_bytes(8) + payload


def variant_of(deflate: PerMessageDeflate | None) -> Variant:
    if deflate is None:
        return None
    return deflate.local_max_window_bits, tuple(sorted(deflate.compress_settings.items()))


def send_message(frame: PreparedFrame) -> dict[str, Any]:
    """The ASGI message that sends ``frame``: prepared bytes here, its text elsewhere."""
    return {"type": "websocket.send", "text": frame.text, PREPARED_FRAME: frame}


class WireProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol with context-free deflate and prepared frames."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        extensions = [deflate_factory()] if self.config.ws_per_message_deflate else []
        self.conn = ServerProtocol(
            extensions=extensions,
            max_size=self.config.ws_max_size,
            logger=logging.getLogger("uvicorn.error"),
        )
        # Set once the handshake settled the extensions (None: no prepared sends).
        self._wire: tuple[Variant, PerMessageDeflate | None] | None = None
        self._paused = False  # the transport's buffer is over its high-water mark
        # The deflate data_received inflates messages with (None: it leaves them to
        # websockets), worked out once the handshake settled the extensions.
        self._inflate: PerMessageDeflate | None = None
        self._inflate_known = False

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:  # the handshake goes on to the app (the task has not run)
            scope["extensions"][WIRE_EXTENSION] = {"send_nowait": self.send_nowait}
            # websockets' parser keeps the parsed request for the socket's life; its
            # headers are in the scope now and the answer is computed: drop them.
            event.headers = Headers()

    def data_received(self, data: bytes) -> None:
        read = self._whole_texts(data)
        if read is None:
            super().data_received(data)
            return
        texts, invalid = read
        if not self.close_sent:  # (past `websocket.close` uvicorn drops what comes: so do we)
            for text in texts:
                self.queue.put_nowait({"type": "websocket.receive", "text": text})
            if not self.read_paused:  # uvicorn's flow control: resumed once the app read
                self.read_paused = True
                self.transport.pause_reading()
        if invalid:
            # The client's fault, closed as the protocol says (1007). uvicorn logs it at
            # ERROR with a traceback: any client could fill the error log with them.
            log.info("ws.invalid_utf8")
            self.conn.send_close(CloseCode.INVALID_DATA, "invalid UTF-8")
            self.handle_parser_exception()

    def _whole_texts(self, data: bytes) -> tuple[list[str], bool] | None:
        """The messages of ``data`` when it is nothing but whole, final text frames (as a
        chat message is), each compressed from scratch or not at all, and websockets'
        parser is between frames, and whether a frame that is not UTF-8 came after them;
        else None."""
        conn = self.conn
        if conn.state is not State.OPEN or conn.current_size is not None or conn.reader.buffer:
            return None
        limit = conn.max_message_size
        texts: list[str] = []
        size, at = len(data), 0
        while at < size:
            if size - at < 6 or not data[at + 1] & _MASKED:
                return None
            first = data[at]
            inflate = None
            if first != _FINAL_TEXT:
                inflate = self._inflater()
                if first != _FINAL_TEXT_COMPRESSED or inflate is None:
                    return None
            length = data[at + 1] & 0x7F
            at += 2
            if length == 126:
                length = int.from_bytes(data[at : at + 2])
                at += 2
            elif length == 127:
                return None  # (64 KiB or more: over the frame limit; websockets says so)
            end = at + 4 + length
            if end > size or (limit is not None and length > limit):
                return None
            payload = apply_mask(data[at + 4 : end], data[at : at + 4])
            if inflate is not None:
                try:  # (websockets' own inflate, with its guard against zip bombs)
                    inflated = inflate.decode(
                        Frame(Opcode.TEXT, payload, rsv1=True), max_size=limit
                    )
                except (ProtocolError, PayloadTooBig):
                    return None  # websockets' parser closes it as the protocol says
                payload = bytes(inflated.data)
            try:
                texts.append(payload.decode())
            except UnicodeDecodeError:
                return texts, True
            at = end
        return texts, False

    def _inflater(self) -> PerMessageDeflate | None:
        """The socket's deflate when the client compresses each message from scratch (no
        state between messages, so a message can be inflated outside websockets' parser)."""
        if not self._inflate_known:
            self._inflate_known = True
            extensions = self.conn.extensions
            (only,) = extensions if len(extensions) == 1 else (None,)
            if isinstance(only, PerMessageDeflate) and only.remote_no_context_takeover:
                self._inflate = only
        return self._inflate

    def send_nowait(self, frame: PreparedFrame) -> bool:
        """Write a frame now if the socket is open and has room; False to send it later.

        Raises ClientDisconnected when the socket is gone or closing.
        """
        if self.disconnected or self.close_sent or self.conn.state is not State.OPEN:
            raise ClientDisconnected()
        if self._paused or self.initial_response is not None:
            return False
        wire = self._wire or self._negotiated()
        if wire is None:
            return False
        # (PreparedFrame.encoded, inlined: this runs for every socket of a broadcast.)
        data = frame._encoded.get(wire[0]) or frame.encoded(*wire)
        self.transport.write(data)
        return True

    # uvicorn's flow control keeps an asyncio.Event (``writable``); send_nowait reads a
    # plain flag instead, kept beside it (a method call less per socket and frame).
    def pause_writing(self) -> None:
        self._paused = True
        super().pause_writing()

    def resume_writing(self) -> None:
        self._paused = False
        super().resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._paused = False  # (uvicorn sets writable too: nothing will drain any more)
        super().connection_lost(exc)

    def _negotiated(self) -> tuple[Variant, PerMessageDeflate | None] | None:
        """The socket's variant and deflate, worked out once (None: websockets frames)."""
        if self._wire is None:
            deflate: PerMessageDeflate | None = None
            for extension in self.conn.extensions:
                if not isinstance(extension, PerMessageDeflate):
                    return None  # an extension we do not frame for: let websockets do it
                if not extension.local_no_context_takeover:
                    return None
                deflate = extension
            self._wire = (variant_of(deflate), deflate)
        return self._wire

    async def send(self, message: Any) -> None:
        frame = message.get(PREPARED_FRAME) if message["type"] == "websocket.send" else None
        if frame is not None and self.handshake_complete and self.initial_response is None:
            await self.writable.wait()  # uvicorn's flow control, as for any send
            if self.send_nowait(frame):
                return
        await super().send(message)
        if message["type"] == "websocket.accept" and self.handshake_complete:
            # The parsed handshake (two sets of headers) is not needed any more.
            del self.request, self.response
        elif message["type"] == "websocket.http.response.body" and not message.get("more_body"):
            # An HTTP answer to the handshake (a 503 while the database is away) ends it,
            # as a close before accept does; uvicorn does not count it and logs "returned
            # without completing handshake" at ERROR for each one (Kludex/uvicorn#3138).
            self.handshake_complete = True


def uvicorn_websocket_options(settings: Settings) -> dict[str, Any]:
    """The WebSocket settings every way of serving the app hands to uvicorn."""
    realtime = settings.realtime
    return {
        "ws": WireProtocol,
        "ws_max_size": realtime.max_frame_bytes,
        "ws_ping_interval": realtime.ping_interval_seconds,
        "ws_ping_timeout": realtime.ping_timeout_seconds,
    }
