"""Context-free deflate and prepared frames (realtime/wire.py) on real sockets."""

from __future__ import annotations

import json
import logging
import zlib

import httpx
import pytest
import websockets
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
)
from websockets.frames import Frame, Opcode

from tests.support import (
    LiveServer,
    collect,
    create_guest,
    create_room,
    logged_errors,
    receive_until,
    ws_path,
)
from videochat.exceptions import DATABASE_UNAVAILABLE, ServiceUnavailable
from videochat.realtime import gateway
from videochat.realtime.wire import (
    COMPRESS_MIN_BYTES,
    MEM_LEVEL,
    WINDOW_BITS,
    PreparedFrame,
    variant_of,
)


def _deflate(socket: websockets.ClientConnection) -> PerMessageDeflate | None:
    (extension,) = socket.protocol.extensions or [None]
    assert extension is None or isinstance(extension, PerMessageDeflate)
    return extension


async def test_one_broadcast_reaches_sockets_with_different_deflate_terms(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    """A browser-like socket, one without compression and one asking for a 9-bit window."""
    users = [await create_guest(client, name) for name in ("ada", "bo", "cy")]
    room = await create_room(client, users[0]["access_token"], "Wire")
    paths = [ws_path(room["id"], u["id"], u["access_token"]) for u in users]
    small_window = ClientPerMessageDeflateFactory(server_max_window_bits=9)
    async with (
        websockets.connect(server.ws_url + paths[0], max_queue=None) as default,
        websockets.connect(server.ws_url + paths[1], max_queue=None, compression=None) as plain,
        websockets.connect(
            server.ws_url + paths[2], max_queue=None, compression=None, extensions=[small_window]
        ) as narrow,
    ):
        negotiated = _deflate(default)
        assert negotiated is not None
        # The server compresses every frame from scratch: it keeps no compressor per socket.
        assert negotiated.remote_no_context_takeover
        assert negotiated.remote_max_window_bits == WINDOW_BITS
        assert _deflate(plain) is None
        narrow_deflate = _deflate(narrow)
        assert narrow_deflate is not None and narrow_deflate.remote_max_window_bits == 9

        for socket in (default, plain, narrow):
            await receive_until(socket, "presence")
        texts = ["short", "long and repetitive " * 200, "ünïcödé ✓ " * 30]
        for text in texts:
            await plain.send(json.dumps({"type": "message", "content": text}))
        for socket in (default, plain, narrow):
            frames = await collect(socket, "message", len(texts))
            assert [frame["content"] for frame in frames] == [text.strip() for text in texts]


def test_a_prepared_frame_is_compressed_once_per_variant() -> None:
    text = json.dumps({"type": "message", "content": "hello " * 300})
    assert len(text) >= COMPRESS_MIN_BYTES
    frame = PreparedFrame(text)
    terms = {"memLevel": MEM_LEVEL}
    first = PerMessageDeflate(False, True, WINDOW_BITS, WINDOW_BITS, terms)
    second = PerMessageDeflate(False, True, WINDOW_BITS, WINDOW_BITS, terms)
    sent = frame.encoded(variant_of(first), first)
    # Another socket with the same terms gets the very same bytes.
    assert frame.encoded(variant_of(second), second) is sent

    # A compressed text frame (FIN, RSV1, opcode 1), with a short length, that inflates
    # back to the text with the window the socket agreed.
    assert sent[0] == 0b1100_0001 and sent[1] < 126 and len(sent) < len(text)
    payload = sent[2:]
    inflated = zlib.decompressobj(wbits=-WINDOW_BITS).decompress(payload + b"\x00\x00\xff\xff")
    assert inflated.decode() == text

    plain = frame.encoded(None, None)
    assert plain[0] == 0b1000_0001 and plain.endswith(text.encode())
    narrow_deflate = PerMessageDeflate(False, True, WINDOW_BITS, 9, terms)
    narrow = frame.encoded(variant_of(narrow_deflate), narrow_deflate)
    assert narrow is not sent


def test_a_short_frame_goes_uncompressed_on_a_deflate_socket() -> None:
    """Compressing a chat message costs more CPU than the bytes it saves are worth: under
    COMPRESS_MIN_BYTES a deflate socket gets the plain frame (RSV1 unset), as RFC 7692
    allows message by message."""
    text = json.dumps({"type": "message", "content": "hello " * 60})
    assert len(text.encode()) < COMPRESS_MIN_BYTES
    deflate = PerMessageDeflate(False, True, WINDOW_BITS, WINDOW_BITS, {"memLevel": MEM_LEVEL})
    frame = PreparedFrame(text)
    sent = frame.encoded(variant_of(deflate), deflate)
    assert sent[0] == 0b1000_0001
    assert sent == frame.encoded(None, None)
    # (A client reads it as any other frame: the broadcast test above sends both kinds.)


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_a_plain_prepared_frame_is_the_frame_websockets_would_send(size: int) -> None:
    """The wire writes a plain frame's header itself: the same bytes, every length form."""
    text = "é" * (size // 2) + "x" * (size % 2)  # (UTF-8: the length is in bytes)
    expected = Frame(Opcode.TEXT, text.encode()).serialize(mask=False, extensions=[])
    assert PreparedFrame(text).encoded(None, None) == expected


async def test_a_handshake_answered_with_an_http_error_logs_no_error(
    client: httpx.AsyncClient,
    server: LiveServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A socket opened while the database is away is answered 503 with a ``detail``
    (the ASGI denial response); uvicorn's sans-I/O protocol did not count that answer as
    the end of the handshake and logged "ASGI callable returned without completing
    handshake" at ERROR for each one (Kludex/uvicorn#3138), so every reconnect during a
    database restart raised an error in the log."""

    async def database_away(*_: object) -> None:
        raise ServiceUnavailable(DATABASE_UNAVAILABLE)

    monkeypatch.setattr(gateway, "screen", database_away)
    guest = await create_guest(client, "late")
    room = await create_room(client, guest["access_token"], "Away")
    url = server.url.replace("http", "ws", 1) + ws_path(
        room["id"], guest["id"], guest["access_token"]
    )
    with caplog.at_level(logging.INFO), pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(url):
            pass
    assert refused.value.response.status_code == 503
    assert json.loads(refused.value.response.body) == {"detail": DATABASE_UNAVAILABLE}
    assert logged_errors(caplog) == []
