"""The uvicorn and websockets internals realtime/wire.py builds on, checked one by one.

wire.py subclasses uvicorn's sans-I/O WebSocket protocol and frames with websockets'
protocol and deflate classes. Both are pinned (pyproject.toml); when a pin moves, these
tests say which of the pieces wire.py relies on is gone or changed shape.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

import pytest
import uvicorn
import websockets
from uvicorn.config import Config
from uvicorn.protocols.websockets import websockets_sansio_impl
from uvicorn.server import ServerState
from websockets.extensions.permessage_deflate import (
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol

from videochat.realtime.wire import WireProtocol, deflate_factory

UVICORN = f"uvicorn {uvicorn.__version__}"
WEBSOCKETS = f"websockets {websockets.__version__}"
SansIO = websockets_sansio_impl.WebSocketsSansIOProtocol
SANSIO_SOURCE = inspect.getsource(SansIO)


def changed(library: str, what: str) -> str:
    return (
        f"{library}: {what} changed; realtime/wire.py relies on it (see its pin in pyproject.toml)"
    )


def parameters(function: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(function).parameters)


async def _app(scope: Any, receive: Any, send: Any) -> None:
    """An ASGI app that is never called (the protocol is only built)."""


def _protocol(cls: type[SansIO], *, deflate: bool) -> SansIO:
    config = Config(_app, ws_per_message_deflate=deflate, ws_max_size=4096)
    config.load()
    loop = asyncio.get_running_loop()
    return cls(config=config, server_state=ServerState(), app_state={}, _loop=loop)


def test_the_protocol_class_and_its_module_are_where_wire_imports_them_from() -> None:
    assert hasattr(websockets_sansio_impl, "WebSocketsSansIOProtocol"), changed(
        UVICORN, "uvicorn.protocols.websockets.websockets_sansio_impl.WebSocketsSansIOProtocol"
    )
    from uvicorn.protocols import utils

    assert issubclass(utils.ClientDisconnected, Exception), changed(
        UVICORN, "uvicorn.protocols.utils.ClientDisconnected"
    )


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("__init__", ["self", "config", "server_state", "app_state", "_loop"]),
        ("handle_connect", ["self", "event"]),
        ("send", ["self", "message"]),
        ("data_received", ["self", "data"]),
        ("handle_parser_exception", ["self"]),
    ],
)
def test_the_overridden_methods_keep_their_signatures(method: str, expected: list[str]) -> None:
    found = parameters(getattr(SansIO, method))
    assert found == expected, changed(
        UVICORN, f"WebSocketsSansIOProtocol.{method}{tuple(found)} (was {tuple(expected)})"
    )
    if method == "send":
        assert inspect.iscoroutinefunction(SansIO.send), changed(
            UVICORN, "WebSocketsSansIOProtocol.send is no longer async"
        )


async def test_the_protocol_builds_its_connection_and_flow_control_in_init() -> None:
    protocol = _protocol(SansIO, deflate=True)
    for name in ("config", "conn", "writable", "handshake_complete", "initial_response"):
        assert hasattr(protocol, name), changed(UVICORN, f"WebSocketsSansIOProtocol.{name}")
    for name in ("disconnected", "close_sent"):
        assert getattr(protocol, name, None) is False, changed(
            UVICORN, f"WebSocketsSansIOProtocol.{name} (a bool, False at first)"
        )
    assert isinstance(protocol.writable, asyncio.Event), changed(
        UVICORN, "WebSocketsSansIOProtocol.writable (an asyncio.Event)"
    )
    assert isinstance(protocol.conn, ServerProtocol), changed(
        UVICORN, "WebSocketsSansIOProtocol.conn (a websockets ServerProtocol)"
    )
    for name in ("ws_per_message_deflate", "ws_max_size"):
        assert hasattr(protocol.config, name), changed(UVICORN, f"Config.{name}")


@pytest.mark.parametrize(
    "use",
    [
        "self.conn.receive_data",  # the replaced ServerProtocol is the one that reads...
        "self.conn.send_",  # ...and writes
        "self.conn.data_to_send",
        "self.scope",  # set in handle_connect, with the "extensions" dict wire.py adds to
        '"extensions"',
        "self.request",  # the parsed handshake wire.py drops after the accept
        "self.response",
        "self.transport.write",
        "self.initial_response",
        "self.handshake_complete",
        "self.writable",
        "self.close_sent",
        "self.disconnected",
        # data_received hands texts to the app as send_receive_event_to_app does.
        'self.queue.put_nowait({"type": "websocket.receive", "text"',
        "self.read_paused = True",
        "self.transport.pause_reading()",
    ],
)
def test_the_protocol_still_uses_what_wire_reads_or_replaces(use: str) -> None:
    assert use in SANSIO_SOURCE, changed(UVICORN, f"WebSocketsSansIOProtocol's use of {use}")


async def test_wire_replaces_the_connection_with_context_free_deflate() -> None:
    protocol = _protocol(WireProtocol, deflate=True)
    assert isinstance(protocol.conn, ServerProtocol)
    (factory,) = protocol.conn.available_extensions
    assert isinstance(factory, ServerPerMessageDeflateFactory)
    assert factory.server_no_context_takeover and factory.client_no_context_takeover, changed(
        WEBSOCKETS, "ServerPerMessageDeflateFactory's context-takeover attributes"
    )
    assert protocol.conn.state is State.CONNECTING
    assert protocol.conn.max_message_size == 4096, changed(WEBSOCKETS, "ServerProtocol max_size")


def test_server_protocol_takes_the_keywords_wire_passes() -> None:
    found = parameters(ServerProtocol.__init__)
    for name in ("extensions", "max_size", "logger"):
        assert name in found, changed(WEBSOCKETS, f"ServerProtocol(..., {name}=)")
    connection = ServerProtocol()
    # (current_size, reader.buffer: whether the parser is between frames, for data_received)
    for name in ("state", "extensions", "current_size", "max_message_size", "reader"):
        assert hasattr(connection, name), changed(WEBSOCKETS, f"ServerProtocol.{name}")
    assert State.OPEN, changed(WEBSOCKETS, "websockets.protocol.State.OPEN")
    assert connection.current_size is None, changed(WEBSOCKETS, "ServerProtocol.current_size")
    assert connection.reader.buffer == b"", changed(WEBSOCKETS, "StreamReader.buffer")


def test_deflate_factory_takes_the_keywords_wire_passes() -> None:
    found = parameters(ServerPerMessageDeflateFactory.__init__)
    for name in (
        "server_no_context_takeover",
        "client_no_context_takeover",
        "server_max_window_bits",
        "client_max_window_bits",
        "compress_settings",
    ):
        assert name in found, changed(WEBSOCKETS, f"ServerPerMessageDeflateFactory({name}=)")
    assert isinstance(deflate_factory(), ServerPerMessageDeflateFactory)


def test_a_context_free_deflate_frames_the_same_text_to_the_same_bytes() -> None:
    """PreparedFrame shares one encoding between sockets: deflate must carry no state."""
    deflate = PerMessageDeflate(
        remote_no_context_takeover=True,
        local_no_context_takeover=True,
        remote_max_window_bits=12,
        local_max_window_bits=12,
        compress_settings={"memLevel": 5},
    )
    for name in ("local_no_context_takeover", "local_max_window_bits", "compress_settings"):
        assert hasattr(deflate, name), changed(WEBSOCKETS, f"PerMessageDeflate.{name}")
    assert "mask" in parameters(Frame.serialize) and "extensions" in parameters(Frame.serialize)
    text = b'{"type": "message", "content": "hello hello hello"}'
    first = Frame(Opcode.TEXT, text).serialize(mask=False, extensions=[deflate])
    second = Frame(Opcode.TEXT, text).serialize(mask=False, extensions=[deflate])
    assert first == second, changed(WEBSOCKETS, "PerMessageDeflate keeps state between frames")
    assert len(first) < len(text) + 2, "the frame was not compressed"
