"""The baseline: a bare FastAPI broadcast server (no auth, no storage, no queues).

Same socket path shape as videochat (``/ws/{room}/{user}``) and the same uvicorn
settings as ``videochat serve`` (``videochat/cli.py``): uvicorn's ``auto`` loop,
HTTP and WebSocket implementations (uvloop, httptools, websockets sans-I/O),
permessage-deflate on, the same frame size limit. Each received text frame is sent
to every socket of the room, sender included, the way FastAPI's documentation
broadcasts; videochat's cost over this is what the benchmark measures.

    python -m bench.baseline_server --port 8001
"""

from __future__ import annotations

import argparse
import contextlib
from collections import defaultdict

import uvicorn
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketDisconnected

# videochat's default VIDEOCHAT_REALTIME__MAX_FRAME_BYTES, which it hands to uvicorn.
MAX_FRAME_BYTES = 64 * 1024

app = FastAPI()
rooms: defaultdict[str, set[WebSocket]] = defaultdict(set)


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "healthy"}


@app.websocket("/ws/{room_id}/{user_id}")
async def broadcast(websocket: WebSocket, room_id: str, user_id: str) -> None:
    await websocket.accept()
    room = rooms[room_id]
    room.add(websocket)
    try:
        while True:
            text = await websocket.receive_text()
            for peer in list(room):
                # A peer that went away must not end the sender's loop.
                with contextlib.suppress(Exception):
                    await peer.send_text(text)
    except (WebSocketDisconnect, WebSocketDisconnected):
        # WebSocketDisconnected: a send to this socket failed (it went away) first.
        pass
    finally:
        room.discard(websocket)
        if not room:
            rooms.pop(room_id, None)


def main() -> None:
    parser = argparse.ArgumentParser(description="bare FastAPI broadcast server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_config=None,
        log_level="warning",
        proxy_headers=True,
        ws_max_size=MAX_FRAME_BYTES,
    )


if __name__ == "__main__":
    main()
