"""Shortcuts for the video API tests: slots, uploads, waiting for a status, raw requests."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from tests.support import LiveServer, auth

TERMINAL = {"ready", "failed"}


async def create_slot(
    client: httpx.AsyncClient, token: str | None, room_id: str, title: str = "Clip"
) -> httpx.Response:
    """POST /rooms/{id}/video-upload."""
    headers = auth(token) if token else {}
    return await client.post(
        f"/rooms/{room_id}/video-upload",
        json={"title": title, "description": "a test clip"},
        headers=headers,
    )


async def new_slot(client: httpx.AsyncClient, token: str, room_id: str) -> dict[str, Any]:
    """A slot that must be created."""
    response = await create_slot(client, token, room_id)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def put(
    client: httpx.AsyncClient, url: str, data: bytes | Any, token: str | None
) -> httpx.Response:
    """PUT raw bytes (or an async iterator, sent chunked) to an upload URL."""
    headers = auth(token) if token else {}
    return await client.put(url, content=data, headers=headers)


async def wait_for(
    client: httpx.AsyncClient,
    video_id: str,
    token: str | None,
    statuses: set[str] = TERMINAL,
    *,
    timeout: float = 30.0,
) -> dict[str, Any]:
    """Poll GET /videos/{id} until its status is one of statuses."""
    headers = auth(token) if token else {}
    async with asyncio.timeout(timeout):
        while True:
            response = await client.get(f"/videos/{video_id}", headers=headers)
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            if body["status"] in statuses:
                return body
            await asyncio.sleep(0.05)


async def raw_get(server: LiveServer, target: str) -> int:
    """Send a request line exactly as given (no client-side path normalising); the status."""
    host, port = server.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        status_line = await reader.readline()
        return int(status_line.split()[1])
    finally:
        writer.close()
        await writer.wait_closed()


def leftovers(data_dir: Path, video_id: str) -> list[Path]:
    """Every file or folder under data_dir named after the video."""
    return [p for p in data_dir.rglob("*") if video_id in p.name]


def first_uri(playlist: str) -> str:
    """The first URI line of an HLS playlist."""
    return next(line for line in playlist.splitlines() if line and not line.startswith("#"))
