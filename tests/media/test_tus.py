"""Resumable uploads with tus 1.0: creation, offsets, an interrupted upload resuming."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.media import samples
from tests.media.api_helpers import leftovers, new_slot, wait_for
from tests.support import LiveServer, auth, create_guest, create_room
from videochat.config import Settings

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {"Content-Type": "application/offset+octet-stream"}


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("tus-clip") / "clip.mp4"
    return samples.write_video(path, width=320, height=180, seconds=2.0).read_bytes()


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(media={"segment_seconds": 1.0})


def _meta(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


async def _patch_then_drop(
    server: LiveServer, url: str, token: str, total: int, part: bytes
) -> None:
    """Start a PATCH announcing ``total`` bytes, send only ``part``, then cut the connection."""
    host, port = server.url.removeprefix("http://").split(":")
    _, writer = await asyncio.open_connection(host, int(port))
    head = (
        f"PATCH {urlsplit(url).path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        f"Tus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\n"
        f"Upload-Offset: 0\r\nContent-Length: {total}\r\n\r\n"
    )
    writer.write(head.encode() + part)
    await writer.drain()
    # A fixed wait, kept: while the request is open the server's progress is not visible
    # from outside (HEAD reads the partial file, written as the body streams in, but
    # buffered), so there is no condition to poll before cutting the connection.
    await asyncio.sleep(0.2)
    writer.transport.abort()


async def _patch(
    client: httpx.AsyncClient,
    url: str,
    token: str,
    offset: int,
    data: bytes | AsyncIterator[bytes],
    **extra: str,
) -> httpx.Response:
    headers = {**auth(token), **TUS, **OCTETS, "Upload-Offset": str(offset), **extra}
    for _ in range(50):
        response = await client.patch(url, content=data, headers=headers)
        if response.status_code != 423:  # the dropped request may still hold the upload
            return response
        await asyncio.sleep(0.05)
    return response


async def test_an_interrupted_tus_upload_resumes_and_completes(
    client: httpx.AsyncClient, server: LiveServer, clip: bytes
) -> None:
    user = await create_guest(client, "uploader")
    token = user["access_token"]
    room = await create_room(client, token, "Videos")

    options = await client.options("/uploads/tus")
    assert options.status_code == 204
    assert options.headers["tus-version"] == "1.0.0"
    assert "creation" in options.headers["tus-extension"].split(",")
    assert "termination" in options.headers["tus-extension"].split(",")
    assert int(options.headers["tus-max-size"]) == server.settings.media.max_upload_bytes

    create = {**auth(token), "Upload-Length": str(len(clip))}
    meta = _meta(room_id=room["id"], title="Resumed", description="over tus")
    response = await client.post("/uploads/tus", headers={**create, "Upload-Metadata": meta})
    assert response.status_code == 412  # no Tus-Resumable
    response = await client.post("/uploads/tus", headers={**create, **TUS, "Upload-Metadata": meta})
    assert response.status_code == 201, response.text
    url = response.headers["location"]
    video_id = response.headers["x-video-id"]
    head = await client.head(url, headers={**auth(token), **TUS})
    assert head.headers["upload-offset"] == "0"
    assert head.headers["upload-length"] == str(len(clip))
    assert head.headers["cache-control"] == "no-store"

    half = len(clip) // 2
    await _patch_then_drop(server, url, token, len(clip), clip[:half])
    async with asyncio.timeout(5):
        while True:
            head = await client.head(url, headers={**auth(token), **TUS})
            offset = int(head.headers["upload-offset"])
            if offset > 0:
                break
            await asyncio.sleep(0.05)
    assert 0 < offset <= half
    assert (await client.get(f"/videos/{video_id}")).json()["status"] == "pending"

    wrong = await _patch(client, url, token, offset + 1, clip[offset + 1 :])
    assert wrong.status_code == 409 and "Upload-Offset" in wrong.json()["detail"]
    response = await client.patch(
        url, content=b"x", headers={**auth(token), **TUS, "Upload-Offset": str(offset)}
    )
    assert response.status_code == 415
    other = await create_guest(client, "other")
    response = await _patch(client, url, other["access_token"], offset, clip[offset:])
    assert response.status_code == 403

    done = await _patch(client, url, token, offset, clip[offset:])
    assert done.status_code == 204, done.text
    assert done.headers["upload-offset"] == str(len(clip))
    video = await wait_for(client, video_id, token)
    assert video["status"] == "ready" and video["title"] == "Resumed"
    assert video["size_bytes"] == len(clip)
    assert video["duration_seconds"] == pytest.approx(2.0, abs=0.1)
    again = await _patch(client, url, token, len(clip), b"")
    assert again.status_code == 409


async def test_tus_on_a_compatible_slot_refusals_and_termination(
    client: httpx.AsyncClient, server: LiveServer, clip: bytes, tmp_path: Path
) -> None:
    user = await create_guest(client, "uploader")
    token = user["access_token"]
    room = await create_room(client, token, "Videos")
    slot = await new_slot(client, token, room["id"])
    url = slot["tus_url"]
    head = await client.head(url, headers={**auth(token), **TUS})
    assert head.headers["upload-defer-length"] == "1"

    text = samples.write_text(tmp_path / "notes.txt").read_bytes()
    response = await _patch(client, url, token, 0, text, **{"Upload-Length": str(len(text))})
    assert response.status_code == 415 and "text" in response.json()["detail"]
    assert response.headers["tus-resumable"] == "1.0.0"
    head = await client.head(url, headers={**auth(token), **TUS})
    assert head.headers["upload-offset"] == "0"

    length = {"Upload-Length": str(len(clip))}
    response = await _patch(client, url, token, 0, clip[:4096], **length)
    assert response.status_code == 204
    assert response.headers["upload-length"] == str(len(clip))
    head = await client.head(url, headers={**auth(token), **TUS})
    assert (head.headers["upload-offset"], head.headers["upload-length"]) == (
        "4096",
        str(len(clip)),
    )
    assert leftovers(server.settings.data_dir, slot["id"])

    gone = await client.delete(url, headers={**auth(token), **TUS})
    assert gone.status_code == 204
    assert (await client.head(url, headers={**auth(token), **TUS})).status_code == 404
    assert leftovers(server.settings.data_dir, slot["id"]) == []
    assert (await client.get(f"/videos/{slot['id']}")).status_code == 404

    too_big = {**auth(token), **TUS, "Upload-Length": str(10**15)}
    meta = _meta(room_id=room["id"], title="Huge")
    response = await client.post("/uploads/tus", headers={**too_big, "Upload-Metadata": meta})
    assert response.status_code == 413
    response = await client.post(
        "/uploads/tus", headers={**too_big, "Upload-Length": "10", "Upload-Metadata": "x"}
    )
    assert response.status_code == 400
    meta = _meta(room_id="missing", title="Lost")
    response = await client.post(
        "/uploads/tus",
        headers={**auth(token), **TUS, "Upload-Length": "10", "Upload-Metadata": meta},
    )
    assert response.status_code == 404


async def _create(
    client: httpx.AsyncClient, token: str, length: int, **meta: str
) -> httpx.Response:
    headers = {**auth(token), **TUS, "Upload-Length": str(length), "Upload-Metadata": _meta(**meta)}
    return await client.post("/uploads/tus", headers=headers)


@pytest.mark.parametrize(
    ("field", "value", "found"),
    [
        ("title", "evil\u202etxt.exe", "U+202E"),  # bidi override
        ("title", "zero\u200bwidth", "U+200B"),
        ("title", "\x1b[31mred", "U+001B"),  # terminal escape
        ("title", "nul\x00byte", "U+0000"),
        ("filename", "clip\x00.mp4", "U+0000"),
        ("room_id", "room\x00", "U+0000"),
        ("user_id", "user\x00", "U+0000"),
        ("title", "x" * 201, "at most 200 characters"),
        ("description", "x" * 5001, "at most 5000 characters"),
    ],
)
async def test_tus_metadata_follows_the_json_routes_rules(
    client: httpx.AsyncClient, field: str, value: str, found: str
) -> None:
    user = await create_guest(client, "uploader")
    token = user["access_token"]
    room = await create_room(client, token, "Videos")
    meta = {"room_id": room["id"], "title": "Fine"} | {field: value}
    if field == "filename":
        del meta["title"]
    response = await _create(client, token, 1000, **meta)
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert detail.startswith("Upload-Metadata is not valid") and found in detail, detail
    assert response.headers["tus-resumable"] == "1.0.0"
    assert (await client.get(f"/rooms/{room['id']}/videos")).json() == []


async def test_tus_description_is_cleaned_like_the_json_routes(client: httpx.AsyncClient) -> None:
    user = await create_guest(client, "uploader")
    token = user["access_token"]
    room = await create_room(client, token, "Videos")
    dirty = "line one\n\u202eflip\u200b\x00\x1b[0m end "
    response = await _create(client, token, 1000, room_id=room["id"], title="Ok", description=dirty)
    assert response.status_code == 201, response.text
    video = (await client.get(f"/videos/{response.headers['x-video-id']}")).json()
    json_slot = await client.post(
        f"/rooms/{room['id']}/video-upload",
        json={"title": "Ok", "description": dirty},
        headers=auth(token),
    )
    assert json_slot.status_code == 200
    same = (await client.get(f"/videos/{json_slot.json()['id']}")).json()
    assert video["description"] == same["description"] == "line one\nflip[0m end"


async def test_a_tus_upload_never_takes_more_than_it_declared(
    client: httpx.AsyncClient, server: LiveServer, clip: bytes
) -> None:
    user = await create_guest(client, "uploader")
    token = user["access_token"]
    room = await create_room(client, token, "Videos")

    empty = await _create(client, token, 0, room_id=room["id"], title="Nothing")
    assert empty.status_code == 400 and "at least 1" in empty.json()["detail"]

    response = await _create(client, token, 4096, room_id=room["id"], title="Small")
    url = response.headers["location"]
    # Refused from Content-Length, before a byte is read.
    over = await _patch(client, url, token, 0, clip[:8192])
    assert over.status_code == 413 and "4096" in over.json()["detail"]

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        for start in range(0, 8192, 1024):
            yield clip[start : start + 1024]

    over = await _patch(client, url, token, 0, chunked())
    assert over.status_code == 413
    head = await client.head(url, headers={**auth(token), **TUS})
    assert head.headers["upload-offset"] == "0"
    changed = await _patch(client, url, token, 0, clip[:1024], **{"Upload-Length": "5000"})
    assert changed.status_code == 400 and "cannot change" in changed.json()["detail"]
    assert (await _patch(client, url, token, 0, clip[:4096])).status_code == 204

    slot = await new_slot(client, token, room["id"])
    deferred = await _patch(client, slot["tus_url"], token, 0, clip[:10], **{"Upload-Length": "0"})
    assert deferred.status_code == 400
    assert leftovers(server.settings.data_dir, slot["id"]) == []


async def test_a_creation_post_on_a_slots_tus_url_fixes_its_length(
    client: httpx.AsyncClient, server: LiveServer, clip: bytes
) -> None:
    user = await create_guest(client, "uploader")
    token = user["access_token"]
    room = await create_room(client, token, "Videos")
    slot = await new_slot(client, token, room["id"])
    url = slot["tus_url"]

    async def create(**headers: str) -> httpx.Response:
        return await client.post(url, headers={**auth(token), **TUS, **headers})

    assert (await create()).status_code == 400
    assert (await create(**{"Upload-Length": "0"})).status_code == 400
    assert (await create(**{"Upload-Length": str(10**15)})).status_code == 413
    bad_meta = await create(**{"Upload-Length": "10", "Upload-Metadata": "filename !!"})
    assert bad_meta.status_code == 400 and "base64" in bad_meta.json()["detail"]
    no_version = await client.post(url, headers={**auth(token), "Upload-Length": "10"})
    assert no_version.status_code == 412
    stranger = (await create_guest(client, "stranger"))["access_token"]
    theirs = await client.post(url, headers={**auth(stranger), **TUS, "Upload-Length": "10"})
    assert theirs.status_code == 403
    deferred = await create(**{"Upload-Defer-Length": "1"})
    assert deferred.status_code == 201 and deferred.headers["location"] == url
    head = await client.head(url, headers={**auth(token), **TUS})
    assert head.headers["upload-defer-length"] == "1"

    # What tus-js-client and tuspy send: the file's length and its name.
    created = await create(
        **{"Upload-Length": str(len(clip)), "Upload-Metadata": _meta(filename="clip.mp4")}
    )
    assert created.status_code == 201, created.text
    assert created.headers["location"] == url
    assert created.headers["x-video-id"] == slot["id"]
    assert created.headers["tus-resumable"] == "1.0.0"
    head = await client.head(url, headers={**auth(token), **TUS})
    assert (head.headers["upload-offset"], head.headers["upload-length"]) == ("0", str(len(clip)))
    # Creating again (a client that lost the answer) is the same upload; another length is not.
    assert (await create(**{"Upload-Length": str(len(clip))})).status_code == 201
    other = await create(**{"Upload-Length": str(len(clip) + 1)})
    assert other.status_code == 409 and str(len(clip)) in other.json()["detail"]

    assert (await _patch(client, url, token, 0, clip)).status_code == 204
    assert (await wait_for(client, slot["id"], token))["status"] == "ready"
    done = await create(**{"Upload-Length": str(len(clip))})
    assert done.status_code == 409 and done.headers["tus-resumable"] == "1.0.0"
    assert (
        await client.post("/uploads/tus/nope", headers={**auth(token), **TUS})
    ).status_code == 404


async def test_a_creation_post_never_declares_less_than_was_received(
    client: httpx.AsyncClient, clip: bytes
) -> None:
    user = await create_guest(client, "uploader")
    token = user["access_token"]
    room = await create_room(client, token, "Videos")
    slot = await new_slot(client, token, room["id"])
    url = slot["tus_url"]
    # Deferred length: bytes arrive before any length is known.
    assert (await _patch(client, url, token, 0, clip[:8192])).status_code == 204
    short = await client.post(url, headers={**auth(token), **TUS, "Upload-Length": "4096"})
    assert short.status_code == 409 and "8192" in short.json()["detail"]
    fixed = await client.post(url, headers={**auth(token), **TUS, "Upload-Length": str(len(clip))})
    assert fixed.status_code == 201
    assert (await _patch(client, url, token, 8192, clip[8192:])).status_code == 204
    assert (await wait_for(client, slot["id"], token))["status"] == "ready"

    # Every byte before the length: the creation POST that names it completes the upload.
    whole = await new_slot(client, token, room["id"])
    assert (await _patch(client, whole["tus_url"], token, 0, clip)).status_code == 204
    assert (await client.get(f"/videos/{whole['id']}", headers=auth(token))).json()[
        "status"
    ] == "pending"
    done = await client.post(
        whole["tus_url"], headers={**auth(token), **TUS, "Upload-Length": str(len(clip))}
    )
    assert done.status_code == 201, done.text
    assert (await wait_for(client, whole["id"], token))["status"] == "ready"
