"""Hypothesis-generated socket frames against a real server process.

Whatever one socket sends (JSON of any shape, frames that look almost right, text
that is not JSON, binary), that socket gets ``error`` frames or a documented close
code, the server never crashes or answers 500, and another person in the same room
keeps receiving the room's ordinary messages.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests import processes

# Close codes docs/PROTOCOL.md lists for a misbehaving client.
DOCUMENTED_CLOSES = {1008, 1009, 4029}
FRAME_TYPES = ["message", "typing", "signal", "media_state", "ping", "edit", "delete", "bogus"]
STATS = {"sent": 0, "errors": 0, "closed": 0, "pongs": 0, "delivered": 0}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=50),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=20,
)
# Objects that look like real frames: a known type with fields of the wrong kinds.
near_frames = st.builds(
    lambda kind, fields: {"type": kind, **fields},
    st.sampled_from(FRAME_TYPES),
    st.dictionaries(
        st.sampled_from(["content", "id", "to", "data", "audio", "video", "screen", "time"]),
        json_values,
        max_size=4,
    ),
)
frames_to_send = (
    near_frames.map(json.dumps)
    | json_values.map(json.dumps)
    | st.text(max_size=200)
    | st.binary(max_size=200)
)


class Room:
    """A room with a fuzzed socket, a sender and a bystander, on a real server."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.stack = contextlib.ExitStack()
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
        self.people = [self._guest(name) for name in ("fuzzer", "sender", "bystander")]
        owner = self.people[1]
        created = self.http.post(
            "/rooms", json={"name": "Fuzzed"}, headers=self._auth(owner)
        ).json()
        self.room_id = created["id"]
        self.fuzzed = self._socket(self.people[0])
        self.sender = self._socket(self.people[1])
        self.bystander = self._socket(self.people[2])
        self.marker = 0

    def _guest(self, name: str) -> dict[str, Any]:
        body: dict[str, Any] = self.http.post("/users", json={"username": name}).json()
        return body

    @staticmethod
    def _auth(person: dict[str, Any]) -> dict[str, str]:
        return {"Authorization": f"Bearer {person['access_token']}"}

    def _socket(self, person: dict[str, Any]) -> ClientConnection:
        url = f"ws://127.0.0.1:{self.port}/ws/{self.room_id}/{person['id']}?token={person['access_token']}&v=2"
        return self.stack.enter_context(connect(url, open_timeout=10, max_size=None))

    def reconnect_fuzzed(self) -> None:
        self.fuzzed = self._socket(self.people[0])

    def close(self) -> None:
        self.stack.close()
        self.http.close()


@pytest.fixture(scope="module")
def room(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Room]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    port = processes.free_port()
    server = processes.start_server(
        processes.server_env(tmp, f"sqlite+aiosqlite:///{tmp / 'vc.db'}"), port
    )
    fuzz_room = Room(port)
    try:
        yield fuzz_room
    finally:
        fuzz_room.close()
        log = (tmp / f"server-{port}.log").read_text(errors="replace")
        alive = server.poll() is None
        processes.stop_server(server)
        assert alive, "the server died during the fuzzing"
        assert "Traceback" not in log, log[-4000:]


def _round_trip(room: Room, payload: str | bytes) -> None:
    """Send one fuzzed frame, then a ping: everything before the pong must be an error."""
    STATS["sent"] += 1
    try:
        room.fuzzed.send(payload)
        room.fuzzed.send(json.dumps({"type": "ping", "time": STATS["sent"]}))
        while True:
            frame = json.loads(room.fuzzed.recv(timeout=10))
            if frame.get("type") == "pong" and frame.get("time") == STATS["sent"]:
                STATS["pongs"] += 1
                return
            if frame.get("type") == "error":
                STATS["errors"] += 1
                assert frame.get("code") and isinstance(frame.get("message"), str)
    except ConnectionClosed as closed:
        code = closed.rcvd.code if closed.rcvd else None
        assert code in DOCUMENTED_CLOSES, f"closed with {code} after {payload!r}"
        STATS["closed"] += 1
        room.reconnect_fuzzed()


def _bystander_still_served(room: Room) -> None:
    room.marker += 1
    text = f"marker {room.marker}"
    room.sender.send(json.dumps({"type": "message", "content": text}))
    while True:
        frame = json.loads(room.bystander.recv(timeout=10))
        if frame.get("type") == "message" and frame.get("content") == text:
            STATS["delivered"] += 1
            return


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)
@given(payload=frames_to_send)
def test_fuzzed_frames_hurt_nobody_else(room: Room, payload: str | bytes) -> None:
    _round_trip(room, payload)
    if STATS["sent"] % 10 == 0:
        _bystander_still_served(room)
    assert room.http.get("/health").status_code == 200


def test_after_the_fuzzing_the_room_works(room: Room) -> None:
    _bystander_still_served(room)
    history = room.http.get(f"/rooms/{room.room_id}/messages", headers=room._auth(room.people[2]))
    assert history.status_code == 200
    contents = [m["content"] for m in history.json()]
    assert f"marker {room.marker}" in contents
    assert STATS["sent"] >= 100 and STATS["delivered"] >= 10, STATS
    print("socket fuzz:", STATS)
