"""Janus processes started by the tests, and a videochat server configured with them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.sfu import janus_server
from tests.sfu.janus_server import Janus
from tests.support import LiveServer, run_server
from videochat.config import Settings


def _started(janus: Janus) -> Iterator[Janus]:
    janus_server.require()
    janus.start()
    try:
        yield janus
    finally:
        janus.stop()


@pytest.fixture
def janus(tmp_path: Path) -> Iterator[Janus]:
    yield from _started(Janus(tmp_path / "janus-a"))


@pytest.fixture
def second_janus(janus: Janus, tmp_path: Path) -> Iterator[Janus]:
    """Another instance with the first one's secrets (one setting holds them for all)."""
    other = Janus(
        tmp_path / "janus-b", admin_secret=janus.admin_secret, room_admin_key=janus.room_admin_key
    )
    yield from _started(other)


def sfu_settings(*instances: Janus, **overrides: Any) -> dict[str, Any]:
    """The ``sfu`` settings naming these instances (they share one secret and key)."""
    first = instances[0]
    return {
        "janus_url": ",".join(instance.api_url for instance in instances),
        "admin_url": ",".join(instance.admin_url for instance in instances),
        "admin_secret": first.admin_secret,
        "room_admin_key": first.room_admin_key,
        "threshold": 0,
        **overrides,
    }


@pytest.fixture
async def sfu_server(
    janus: Janus, make_settings: Callable[..., Settings]
) -> AsyncIterator[LiveServer]:
    async with run_server(make_settings(sfu=sfu_settings(janus))) as live:
        yield live


@pytest.fixture
async def sfu_client(sfu_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sfu_server.url, timeout=15) as http:
        yield http
