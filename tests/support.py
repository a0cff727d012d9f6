"""Helpers shared by tests: a live server in the test's loop, API shortcuts."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
import websockets
from fastapi import FastAPI

from videochat.app import create_app
from videochat.config import Settings
from videochat.context import AppContext, app_context
from videochat.realtime.wire import uvicorn_websocket_options
from videochat.security.header_timeout import uvicorn_http_options


@dataclass
class LiveServer:
    app: FastAPI
    settings: Settings
    url: str

    @property
    def context(self) -> AppContext:
        """The running app's context (what its lifespan opened)."""
        return app_context(self.app)

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://", 1)


@contextlib.asynccontextmanager
async def run_server(settings: Settings) -> AsyncIterator[LiveServer]:
    """Serve a fresh app on a free loopback port inside the running event loop.

    Started and stopped step by step rather than with ``Server.serve()``: its main loop
    notices ``should_exit`` on a 0.1 s tick and its shutdown sleeps another 0.1 s, which
    cost every server test 0.2 s; here shutdown waits for the connections to go instead.
    """
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_config=None,
        lifespan="on",
        **uvicorn_websocket_options(settings),
        **uvicorn_http_options(settings),
    )
    config.load()
    server = uvicorn.Server(config)
    server.lifespan = config.lifespan_class(config)
    try:
        await server.startup()
    except SystemExit as failed:  # uvicorn exits the process when the lifespan fails
        raise RuntimeError("server stopped during start-up") from failed
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield LiveServer(app=app, settings=settings, url=f"http://127.0.0.1:{port}")
    finally:
        await _shutdown(server)


async def _shutdown(server: uvicorn.Server) -> None:
    """uvicorn's graceful shutdown, minus its fixed sleeps; bounded like the old wait."""
    server.should_exit = True
    for listener in server.servers:
        listener.close()
    state = server.server_state
    for connection in list(state.connections):
        connection.shutdown()
    await eventually(
        lambda: not state.connections and not state.tasks,
        timeout=10,
        message="connections still open 10 s after shutdown",
    )
    for listener in server.servers:
        await listener.wait_closed()
    await server.lifespan.shutdown()


async def eventually(
    predicate: Callable[[], Awaitable[object] | object],
    *,
    timeout: float = 5.0,
    interval: float = 0.01,
    message: str = "",
) -> None:
    """Poll ``predicate`` (sync or async) until it is truthy; fail after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() >= deadline:
            raise AssertionError(message or f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def create_guest(client: httpx.AsyncClient, username: str) -> dict[str, Any]:
    """A guest account (with its ``access_token``)."""
    response = await client.post("/users", json={"username": username})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def create_room(
    client: httpx.AsyncClient, token: str | None, name: str = "General", *, private: bool = False
) -> dict[str, Any]:
    headers = auth(token) if token else {}
    response = await client.post(
        "/rooms", json={"name": name, "is_private": private}, headers=headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def room_with_people(
    client: httpx.AsyncClient, *names: str, **room: Any
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A room (``room``: its fields) made by the first guest named, joined by the others
    in order (a private room with its invite code); returns the room and the people."""
    people = [await create_guest(client, name) for name in names]
    created = await client.post(
        "/rooms", json={"name": "Room", **room}, headers=auth(people[0]["access_token"])
    )
    assert created.status_code == 200, created.text
    body: dict[str, Any] = created.json()
    for person in people[1:]:
        join = {"invite_code": body["invite_code"]} if body["is_private"] else {}
        joined = await client.post(
            f"/rooms/{body['id']}/join", json=join, headers=auth(person["access_token"])
        )
        assert joined.status_code == 200, joined.text
    return body, people


def connect_ws(server: LiveServer, path: str) -> Any:
    """A client socket; unbounded receive queue so an unread backlog never stalls close()."""
    return websockets.connect(server.ws_url + path, max_queue=None, open_timeout=10)


def ws_path(
    room_id: str, user_id: str, token: str | None = None, *, v: int | None = 2, **params: Any
) -> str:
    """A socket path; protocol v2 (the whole protocol) unless ``v`` says otherwise."""
    query = {**({"token": token} if token else {}), **({"v": v} if v else {}), **params}
    suffix = "?" + "&".join(f"{key}={value}" for key, value in query.items()) if query else ""
    return f"/ws/{room_id}/{user_id}{suffix}"


async def receive_until(
    socket: websockets.ClientConnection, frame_type: str, *, timeout: float = 5.0
) -> dict[str, Any]:
    """Read frames until one of ``frame_type`` arrives; return it."""
    async with asyncio.timeout(timeout):
        while True:
            frame: dict[str, Any] = json.loads(await socket.recv())
            if frame.get("type") == frame_type:
                return frame


async def collect(
    socket: websockets.ClientConnection, frame_type: str, count: int, *, timeout: float = 10.0
) -> list[dict[str, Any]]:
    """The next ``count`` frames of one type, in arrival order."""
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while len(frames) < count:
            frame = json.loads(await socket.recv())
            if frame.get("type") == frame_type:
                frames.append(frame)
    return frames


def logged_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The messages of the records logged at ERROR or above (an operator's alerts)."""
    return [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
