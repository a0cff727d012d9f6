"""The lean Redis connection (kit.resp) against the real Redis."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from tests import services
from videochat.kit import resp
from videochat.kit.redis_client import connect
from videochat.kit.resp import ReplyError, RespConnection, pack

pytestmark = pytest.mark.redis


@pytest.fixture(autouse=True)
def _redis() -> None:
    services.redis_available()


def test_a_command_is_packed_as_an_array_of_bulk_strings() -> None:
    assert (
        pack("PUBLISH", "t", "héllo") == b"*3\r\n$7\r\nPUBLISH\r\n$1\r\nt\r\n$6\r\nh\xc3\xa9llo\r\n"
    )


async def test_replies_come_back_in_order_and_an_error_reply_raises() -> None:
    connection = await RespConnection.open(services.REDIS_URL)
    try:
        topic = f"t-{uuid.uuid4()}"
        replies = await connection.call_many([("PING",), ("PUBLISH", topic, "x"), ("ECHO", "é")], 3)
        assert replies == ["PONG", 0, "é"]
        with pytest.raises(ReplyError, match="unknown command"):
            await connection.call("NO-SUCH-COMMAND")
        assert await connection.call("PING") == "PONG"  # still in step after the error
    finally:
        connection.close()


async def test_a_caller_that_stops_waiting_leaves_no_reply_behind() -> None:
    """Its reply, when it comes, is read and dropped: it must not answer the next call."""
    connection = await RespConnection.open(services.REDIS_URL)
    try:
        blocked = asyncio.create_task(connection.call("BLPOP", f"k-{uuid.uuid4()}", "0.3"))
        await asyncio.sleep(0.05)
        blocked.cancel()
        with pytest.raises(asyncio.CancelledError):
            await blocked
        assert await connection.call("ECHO", "mine") == "mine"
    finally:
        connection.close()


async def test_a_lost_connection_fails_its_callers_and_tells_its_owner() -> None:
    lost = asyncio.Event()
    connection = await RespConnection.open(services.REDIS_URL, on_lost=lost.set)
    name = f"c-{uuid.uuid4()}"
    await connection.call("CLIENT", "SETNAME", name)
    admin = connect(services.REDIS_URL)
    try:
        waiting = asyncio.create_task(connection.call("BLPOP", f"k-{uuid.uuid4()}", "0"))
        await asyncio.sleep(0.05)
        await admin.execute_command("CLIENT", "KILL", "SKIPME", "yes", "ID", await _id(admin, name))
        with pytest.raises(ConnectionError):
            await asyncio.wait_for(waiting, 5)
        await asyncio.wait_for(lost.wait(), 5)
        assert connection.closed
        with pytest.raises(ConnectionError):
            await connection.call("PING")
    finally:
        connection.close()
        await admin.aclose()


async def test_a_connection_that_does_not_answer_in_time_is_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(resp, "REPLY_TIMEOUT_SECONDS", 0.2)
    connection = await RespConnection.open(services.REDIS_URL)
    try:
        with pytest.raises(ConnectionError):
            await asyncio.wait_for(connection.call("BLPOP", f"k-{uuid.uuid4()}", "5"), 3)
        assert connection.closed
    finally:
        connection.close()


async def test_a_wrong_password_is_a_clear_error() -> None:
    # (This Redis has no password: AUTH says so.)
    url = services.REDIS_URL.replace("redis://", "redis://someone:secret@")
    with pytest.raises(ReplyError, match=r"AUTH|auth|password"):
        await RespConnection.open(url)


async def test_pushes_go_to_their_handler_and_replies_to_their_callers() -> None:
    topic = f"t-{uuid.uuid4()}"
    pushed: list[Any] = []

    def on_push(reply: Any) -> bool:
        if reply[0] == "message":
            pushed.append(reply)
            return True
        return False

    subscriber = await RespConnection.open(services.REDIS_URL, on_push=on_push)
    publisher = await RespConnection.open(services.REDIS_URL)
    try:
        assert await subscriber.call_many([("SUBSCRIBE", topic, topic + "2")], 2) == [
            ["subscribe", topic, 1],
            ["subscribe", topic + "2", 2],
        ]
        assert await publisher.call_many([("PUBLISH", topic, "a"), ("PUBLISH", topic, "b")], 2) == [
            1,
            1,
        ]
        async with asyncio.timeout(5):
            while len(pushed) < 2:
                await asyncio.sleep(0.01)
        assert pushed == [["message", topic, "a"], ["message", topic, "b"]]
        assert await subscriber.call_many([("PING",)], 1) == [["pong", ""]]
    finally:
        subscriber.close()
        publisher.close()


async def _id(admin: Any, name: str) -> str:
    for client in await admin.client_list():
        if client.get("name") == name:
            return str(client["id"])
    raise AssertionError(f"no client named {name}")
