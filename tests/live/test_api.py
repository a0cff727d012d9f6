"""Live stream API without WebRTC: create, list, stop, WHIP refusals, live playlist serving."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.live.helpers import (
    create_stream,
    force_status,
    new_stream,
    offer_sdp,
    unconnectable_offer,
    whip_post,
)
from tests.support import (
    LiveServer,
    auth,
    connect_ws,
    create_guest,
    create_room,
    receive_until,
    run_server,
    ws_path,
)
from videochat.config import Settings
from videochat.db.models import LiveStreamStatus
from videochat.media.storage import MediaStorage

FIELDS = {
    "id",
    "room_id",
    "owner_id",
    "title",
    "status",
    "stream_key",
    "playback_id",
    "rtmp_url",
    "pull_url",
    "whip_url",
    "created_at",
    "started_at",
    "ended_at",
    "ended_reason",
    "video_id",
}


async def test_create_returns_the_compatible_shape(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    alice = await create_guest(client, "alice")
    room = await create_room(client, alice["access_token"])
    stream = await new_stream(client, alice["access_token"], room["id"])
    assert set(stream) == FIELDS
    assert stream["status"] == "ready"
    assert stream["title"] == "Show"
    assert stream["owner_id"] == alice["id"]
    assert stream["stream_key"] and stream["playback_id"]
    assert stream["rtmp_url"] is None
    # Absolute, from the server as the client reached it (no public URL configured).
    assert stream["whip_url"] == f"{server.url}/whip/{stream['id']}"
    assert stream["pull_url"] == f"{server.url}/live/{stream['playback_id']}/index.m3u8"
    assert stream["video_id"] is None


async def test_who_may_create(client: httpx.AsyncClient) -> None:
    alice = await create_guest(client, "alice")
    bob = await create_guest(client, "bob")
    public = await create_room(client, alice["access_token"], "Open")
    private = await create_room(client, alice["access_token"], "Closed", private=True)

    assert (await create_stream(client, None, public["id"])).status_code == 401
    outsider = await create_stream(client, bob["access_token"], public["id"])
    assert outsider.status_code == 403
    assert "join" in outsider.json()["detail"]
    hidden = await create_stream(client, bob["access_token"], private["id"])
    assert hidden.status_code == 404
    assert hidden.json() == {"detail": "Room not found"}
    assert (await create_stream(client, alice["access_token"], "nope")).status_code == 404
    empty = await client.post(
        f"/rooms/{public['id']}/live-stream",
        json={"title": "  "},
        headers=auth(alice["access_token"]),
    )
    assert empty.status_code == 422

    await client.post(f"/rooms/{public['id']}/join", headers=auth(bob["access_token"]))
    assert (await create_stream(client, bob["access_token"], public["id"])).status_code == 200


async def test_the_key_is_shown_to_its_owner_only(client: httpx.AsyncClient) -> None:
    alice = await create_guest(client, "alice")
    bob = await create_guest(client, "bob")
    room = await create_room(client, alice["access_token"])
    created = await new_stream(client, alice["access_token"], room["id"])
    url = f"/rooms/{room['id']}/live-streams"

    mine = (await client.get(url, headers=auth(alice["access_token"]))).json()
    assert [item["stream_key"] for item in mine] == [created["stream_key"]]
    theirs = (await client.get(url, headers=auth(bob["access_token"]))).json()
    assert [item["stream_key"] for item in theirs] == [None]
    anonymous = (await client.get(url)).json()
    assert [item["stream_key"] for item in anonymous] == [None]
    one = await client.get(f"/live-streams/{created['id']}", headers=auth(bob["access_token"]))
    assert one.status_code == 200 and one.json()["stream_key"] is None


async def test_private_rooms_hide_their_streams(client: httpx.AsyncClient) -> None:
    alice = await create_guest(client, "alice")
    bob = await create_guest(client, "bob")
    room = await create_room(client, alice["access_token"], private=True)
    stream = await new_stream(client, alice["access_token"], room["id"])
    assert "?token=" in stream["pull_url"]

    listing = await client.get(
        f"/rooms/{room['id']}/live-streams", headers=auth(bob["access_token"])
    )
    assert listing.status_code == 404
    one = await client.get(f"/live-streams/{stream['id']}", headers=auth(bob["access_token"]))
    assert one.status_code == 404
    stop = await client.post(
        f"/live-streams/{stream['id']}/stop", headers=auth(bob["access_token"])
    )
    assert stop.status_code == 404


async def test_stop_by_owner_or_room_manager_and_then_publishing_is_gone(
    client: httpx.AsyncClient,
) -> None:
    alice = await create_guest(client, "alice")  # the room's owner
    bob = await create_guest(client, "bob")
    carol = await create_guest(client, "carol")
    room = await create_room(client, alice["access_token"])
    for person in (bob, carol):
        await client.post(f"/rooms/{room['id']}/join", headers=auth(person["access_token"]))
    stream = await new_stream(client, bob["access_token"], room["id"])
    stop_url = f"/live-streams/{stream['id']}/stop"

    assert (await client.post(stop_url)).status_code == 401
    refused = await client.post(stop_url, headers=auth(carol["access_token"]))
    assert refused.status_code == 403
    stopped = await client.post(stop_url, headers=auth(alice["access_token"]))
    assert stopped.status_code == 200
    body = stopped.json()
    assert body["status"] == "ended" and body["ended_reason"] == "stopped"
    assert body["ended_at"] is not None and body["video_id"] is None
    again = await client.post(stop_url, headers=auth(bob["access_token"]))
    assert again.status_code == 200 and again.json()["status"] == "ended"

    gone = await whip_post(client, stream["whip_url"], stream["stream_key"], offer_sdp("video:VP8"))
    assert gone.status_code == 410
    assert "ended" in gone.json()["detail"]


async def test_whip_refusals(client: httpx.AsyncClient, server: LiveServer) -> None:
    alice = await create_guest(client, "alice")
    room = await create_room(client, alice["access_token"])
    stream = await new_stream(client, alice["access_token"], room["id"])
    url, key = stream["whip_url"], stream["stream_key"]
    video = offer_sdp("video:VP8", "audio:opus")

    missing = await whip_post(client, url, None, video)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert missing.headers["access-control-allow-origin"] == "*"
    assert (await whip_post(client, url, "not-the-key", video)).status_code == 401
    assert (await whip_post(client, url, alice["access_token"], video)).status_code == 401
    assert (await whip_post(client, "/whip/nope", key, video)).status_code == 404

    not_sdp = await whip_post(client, url, key, '{"sdp": 1}', "application/json")
    assert not_sdp.status_code == 415
    assert "application/sdp" in not_sdp.json()["detail"]
    assert (await whip_post(client, url, key, "garbage")).status_code == 400
    audio_only = await whip_post(client, url, key, offer_sdp("audio:opus"))
    assert audio_only.status_code == 400
    assert audio_only.json()["detail"] == "The offer must send a video track"
    av1_only = await whip_post(client, url, key, offer_sdp("video:AV1"))
    assert av1_only.status_code == 400
    huge = await whip_post(client, url, key, video + "a=x\r\n" * 20000)
    assert huge.status_code == 413

    # Refusals leave the stream publishable.
    listed = (await client.get(f"/live-streams/{stream['id']}")).json()
    assert listed["status"] == "ready"

    await force_status(server, stream["id"], LiveStreamStatus.LIVE)
    busy = await whip_post(client, url, key, video)
    assert busy.status_code == 409


async def test_whip_cors_and_methods(client: httpx.AsyncClient) -> None:
    alice = await create_guest(client, "alice")
    room = await create_room(client, alice["access_token"])
    stream = await new_stream(client, alice["access_token"], room["id"])
    preflight = await client.options(
        stream["whip_url"],
        headers={
            "Origin": "https://studio.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "Authorization" in preflight.headers["access-control-allow-headers"]
    assert "Location" in preflight.headers["access-control-expose-headers"]
    assert preflight.headers["accept-post"] == "application/sdp"

    session_url = f"{stream['whip_url']}/sessions/whatever"
    patch = await client.patch(session_url, content=b"a=candidate", headers=auth("k"))
    assert patch.status_code == 405
    unknown = await client.delete(session_url, headers=auth(stream["stream_key"]))
    assert unknown.status_code == 404
    assert (await client.delete(session_url, headers=auth("wrong"))).status_code == 401


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_configured_cors_list_and_rtmp_url_apply(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(
        cors_origins=["https://app.example"], live={"rtmp_url": "rtmp://ingest.example/live"}
    )
    async with run_server(settings) as live, httpx.AsyncClient(base_url=live.url) as client:
        alice = await create_guest(client, "alice")
        room = await create_room(client, alice["access_token"])
        stream = await new_stream(client, alice["access_token"], room["id"])
        assert stream["rtmp_url"] == "rtmp://ingest.example/live"

        def preflight(origin: str) -> dict[str, str]:
            return {"Origin": origin, "Access-Control-Request-Method": "POST"}

        listed = await client.options(stream["whip_url"], headers=preflight("https://app.example"))
        assert listed.headers["access-control-allow-origin"] == "https://app.example"
        other = await client.options(stream["whip_url"], headers=preflight("https://evil.example"))
        assert "access-control-allow-origin" not in other.headers


@pytest.mark.parametrize("private", [False, True])
async def test_with_a_public_url_every_stream_url_starts_with_it(
    make_settings: Callable[..., Settings], private: bool
) -> None:
    public = "https://live.example.org"
    async with (
        run_server(make_settings(public_url=public + "/")) as live,
        httpx.AsyncClient(base_url=live.url) as client,
    ):
        alice = await create_guest(client, "alice")
        token = alice["access_token"]
        room = await create_room(client, token, private=private)
        created = await new_stream(client, token, room["id"])
        listed = (await client.get(f"/rooms/{room['id']}/live-streams", headers=auth(token))).json()
        one = (await client.get(f"/live-streams/{created['id']}", headers=auth(token))).json()
        stopped = await client.post(f"/live-streams/{created['id']}/stop", headers=auth(token))
        for stream in [created, *listed, one, stopped.json()]:
            assert stream["whip_url"] == f"{public}/whip/{created['id']}"
            assert stream["pull_url"].startswith(f"{public}/live/{created['playback_id']}/")
            assert ("?token=" in stream["pull_url"]) is private


def _write_broadcast(settings: Settings, stream_id: str, segments: int, *, ended: bool) -> Path:
    """A recorder's output as the HLS muxer leaves it, without encoding anything."""
    folder = MediaStorage(settings.data_dir).output_dir(stream_id) / "stream"
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:6",
        "#EXT-X-TARGETDURATION:2",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-PLAYLIST-TYPE:EVENT",
        "#EXT-X-INDEPENDENT-SEGMENTS",
    ]
    for index in range(segments):
        name = f"segment_{index:05d}.ts"
        (folder / name).write_bytes(b"G" + bytes(187))
        lines += ["#EXTINF:2.000000,", name]
    if ended:
        lines.append("#EXT-X-ENDLIST")
    (folder / "index.m3u8").write_text("\n".join(lines) + "\n")
    return folder


def _uris(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


async def test_live_playlist_is_a_sliding_window_then_the_whole_broadcast(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    alice = await create_guest(client, "alice")
    room = await create_room(client, alice["access_token"])
    stream = await new_stream(client, alice["access_token"], room["id"])
    pull = stream["pull_url"]
    assert (await client.get(pull)).status_code == 404  # nothing published yet

    await force_status(server, stream["id"], LiveStreamStatus.LIVE)
    _write_broadcast(server.settings, stream["id"], 10, ended=False)
    live = await client.get(pull)
    assert live.status_code == 200
    assert live.headers["content-type"] == "application/vnd.apple.mpegurl"
    assert "no-cache" in live.headers["cache-control"]
    assert "#EXT-X-MEDIA-SEQUENCE:4" in live.text
    assert "#EXT-X-ENDLIST" not in live.text and "PLAYLIST-TYPE" not in live.text
    assert _uris(live.text) == [f"segment_{index:05d}.ts" for index in range(4, 10)]

    base = pull.rsplit("/", 1)[0]
    segment = await client.get(f"{base}/segment_00009.ts")
    assert segment.status_code == 200
    assert segment.headers["content-type"] == "video/mp2t"
    assert "immutable" in segment.headers["cache-control"]
    for bad in ("segment_00099.ts", "index.m3u8.tmp", "..%2Fmaster.m3u8", "thumbnail.jpg"):
        assert (await client.get(f"{base}/{bad}")).status_code == 404, bad

    await force_status(server, stream["id"], LiveStreamStatus.ENDED)
    _write_broadcast(server.settings, stream["id"], 10, ended=True)
    ended = await client.get(pull)
    assert "#EXT-X-MEDIA-SEQUENCE:0" in ended.text
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in ended.text
    assert ended.text.rstrip().endswith("#EXT-X-ENDLIST")
    assert len(_uris(ended.text)) == 10


async def test_private_live_playback_needs_a_token(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    alice = await create_guest(client, "alice")
    bob = await create_guest(client, "bob")
    room = await create_room(client, alice["access_token"], private=True)
    stream = await new_stream(client, alice["access_token"], room["id"])
    await force_status(server, stream["id"], LiveStreamStatus.LIVE)
    _write_broadcast(server.settings, stream["id"], 3, ended=False)
    bare = stream["pull_url"].split("?", 1)[0]
    base = bare.rsplit("/", 1)[0]

    assert (await client.get(bare)).status_code == 404
    assert (await client.get(bare, headers=auth(bob["access_token"]))).status_code == 404
    assert (await client.get(f"{bare}?token={bob['access_token']}")).status_code == 404
    assert (await client.get(f"{bare}?token=forged")).status_code == 404
    tokenised = await client.get(stream["pull_url"])
    assert tokenised.status_code == 200
    token = stream["pull_url"].split("?token=", 1)[1]
    assert all(uri.endswith(f"?token={token}") for uri in _uris(tokenised.text))
    first = _uris(tokenised.text)[0]
    assert (await client.get(f"{base}/{first}")).status_code == 200
    assert (await client.get(f"{base}/segment_00000.ts")).status_code == 404
    member = await client.get(bare, headers=auth(alice["access_token"]))
    assert member.status_code == 200


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback UDP port that is bound but never answers (ICE checks die there)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        yield int(silent.getsockname()[1])


async def _stream_of(http: httpx.AsyncClient, owner: dict[str, Any]) -> dict[str, Any]:
    room = await create_room(http, owner["access_token"], f"Room of {owner['username']}")
    return await new_stream(http, owner["access_token"], room["id"])


async def _offer(http: httpx.AsyncClient, stream: dict[str, Any], port: int) -> httpx.Response:
    sdp = await unconnectable_offer(port)
    return await whip_post(http, stream["whip_url"], stream["stream_key"], sdp)


async def test_ingest_slots_are_shared_out_and_unconnected_offers_dropped(
    make_settings: Callable[..., Settings], silent_port: int
) -> None:
    settings = make_settings(
        live={
            "max_streams": 3,
            "max_streams_per_user": 2,
            "max_streams_per_address": 3,
            "connect_timeout_seconds": 1,
        }
    )
    async with run_server(settings) as server, httpx.AsyncClient(base_url=server.url) as http:
        alice, bob, carol = [await create_guest(http, name) for name in ("alice", "bob", "carol")]
        alices = [await _stream_of(http, alice) for _ in range(3)]
        assert (await _offer(http, alices[0], silent_port)).status_code == 201
        assert (await _offer(http, alices[1], silent_port)).status_code == 201
        third = await _offer(http, alices[2], silent_port)
        assert third.status_code == 429 and "owner" in third.json()["detail"]
        assert int(third.headers["Retry-After"]) >= 1
        assert (await _offer(http, await _stream_of(http, bob), silent_port)).status_code == 201
        full = await _offer(http, await _stream_of(http, carol), silent_port)
        assert full.status_code == 503 and "limit of 3" in full.json()["detail"]
        assert full.headers["access-control-allow-origin"] == "*"

        # Never connected: dropped after the connect timeout, and the slots come back.
        async with asyncio.timeout(30):
            while True:
                first = (await http.get(f"/live-streams/{alices[0]['id']}")).json()
                if first["status"] == "ended":
                    break
                await asyncio.sleep(0.2)
        assert first["ended_reason"] == "not_connected"
        async with asyncio.timeout(30):
            while (answer := await _offer(http, alices[2], silent_port)).status_code != 201:
                assert answer.status_code in (429, 503), answer.text
                await asyncio.sleep(0.2)


async def test_one_address_cannot_take_every_ingest_slot(
    make_settings: Callable[..., Settings], silent_port: int
) -> None:
    settings = make_settings(live={"max_streams": 4, "max_streams_per_address": 1})
    async with run_server(settings) as server, httpx.AsyncClient(base_url=server.url) as http:
        alice, bob = [await create_guest(http, name) for name in ("alice", "bob")]
        assert (await _offer(http, await _stream_of(http, alice), silent_port)).status_code == 201
        refused = await _offer(http, await _stream_of(http, bob), silent_port)
        assert refused.status_code == 429 and "address" in refused.json()["detail"]


async def test_concurrent_offers_never_pass_the_ingest_limit(
    make_settings: Callable[..., Settings], silent_port: int
) -> None:
    settings = make_settings(live={"max_streams": 2, "max_streams_per_address": 10})
    async with run_server(settings) as server, httpx.AsyncClient(base_url=server.url) as http:
        people = [await create_guest(http, f"p{index}") for index in range(5)]
        streams = [await _stream_of(http, person) for person in people]
        offers = [await unconnectable_offer(silent_port) for _ in streams]
        answers = await asyncio.gather(
            *(
                whip_post(http, s["whip_url"], s["stream_key"], sdp)
                for s, sdp in zip(streams, offers, strict=True)
            )
        )
        assert sorted(a.status_code for a in answers) == [201, 201, 503, 503, 503]


@pytest.mark.parametrize("public", [None, "https://live.example.org"])
async def test_live_frames_carry_the_pull_url_absolute_when_a_public_url_is_set(
    make_settings: Callable[..., Settings], silent_port: int, public: str | None
) -> None:
    """live_started (an accepted WHIP offer) and live_ended (a stop): absolute with a public
    URL; else the path, resolved against the server the socket reached."""
    settings = make_settings(public_url=public, live={"connect_timeout_seconds": 30})
    async with run_server(settings) as server, httpx.AsyncClient(base_url=server.url) as http:
        alice = await create_guest(http, "alice")
        token = alice["access_token"]
        room = await create_room(http, token)
        stream = await new_stream(http, token, room["id"])
        path = urlsplit(stream["pull_url"]).path
        expected = f"{public}{path}" if public else path
        async with connect_ws(server, ws_path(room["id"], alice["id"], token)) as ws:
            await receive_until(ws, "presence")
            sdp = await unconnectable_offer(silent_port)
            whip = urlsplit(stream["whip_url"]).path
            assert (await whip_post(http, whip, stream["stream_key"], sdp)).status_code == 201
            started = await receive_until(ws, "live_started")
            assert started["stream_id"] == stream["id"] and started["pull_url"] == expected
            stop = await http.post(f"/live-streams/{stream['id']}/stop", headers=auth(token))
            assert stop.status_code == 200, stop.text
            ended = await receive_until(ws, "live_ended", timeout=15)
            assert ended["stream_id"] == stream["id"] and ended["pull_url"] == expected
