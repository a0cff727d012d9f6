"""Per-user upload caps (also under concurrent requests) and the sweep of abandoned uploads."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.media import samples
from tests.media.api_helpers import create_slot, leftovers, new_slot, put, wait_for
from tests.support import auth, create_guest, create_room, run_server
from videochat.config import Settings
from videochat.media import repository
from videochat.media.tasks import UPLOAD_ABANDONED

TUS = {"Tus-Resumable": "1.0.0"}


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("quota-clip") / "clip.mp4"
    return samples.write_video(path, width=320, height=180, seconds=1.0).read_bytes()


def _tus_create(token: str, room_id: str, length: int) -> dict[str, str]:
    meta = ",".join(
        f"{key} {base64.b64encode(value.encode()).decode()}"
        for key, value in {"room_id": room_id, "title": "Over tus"}.items()
    )
    return {**auth(token), **TUS, "Upload-Length": str(length), "Upload-Metadata": meta}


async def test_unfinished_uploads_are_capped_per_user_even_when_requested_at_once(
    make_settings: Callable[..., Settings], clip: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    counted = repository.count_open_slots

    async def count_slowly(*args: Any, **kwargs: Any) -> int:
        # Widen the window between counting and inserting, where a race would slip in.
        found = await counted(*args, **kwargs)
        await asyncio.sleep(0.2)
        return found

    monkeypatch.setattr(repository, "count_open_slots", count_slowly)
    settings = make_settings(media={"max_pending_uploads_per_user": 1})
    async with (
        run_server(settings) as live,
        httpx.AsyncClient(base_url=live.url, timeout=30) as client,
    ):
        user = await create_guest(client, "uploader")
        token = user["access_token"]
        room = await create_room(client, token, "Videos")
        answers = await asyncio.gather(*(create_slot(client, token, room["id"]) for _ in range(6)))
        codes = sorted(answer.status_code for answer in answers)
        assert codes == [200, 409, 409, 409, 409, 409], [a.text for a in answers]
        refused = next(answer for answer in answers if answer.status_code == 409)
        assert "1 unfinished uploads" in refused.json()["detail"]
        tus = await client.post("/uploads/tus", headers=_tus_create(token, room["id"], 100))
        assert tus.status_code == 409 and tus.headers["tus-resumable"] == "1.0.0"

        # Someone else is not counted against this user; a finished upload frees the cap.
        other = await create_guest(client, "other")
        assert (await create_slot(client, other["access_token"], room["id"])).status_code == 200
        slot = next(answer.json() for answer in answers if answer.status_code == 200)
        assert (await put(client, slot["upload_url"], clip, token)).status_code == 200
        assert (await create_slot(client, token, room["id"])).status_code == 200


async def test_stored_bytes_are_capped_per_user(
    make_settings: Callable[..., Settings], clip: bytes
) -> None:
    settings = make_settings(media={"max_stored_bytes_per_user": len(clip) + 1000})
    async with (
        run_server(settings) as live,
        httpx.AsyncClient(base_url=live.url, timeout=30) as client,
    ):
        user = await create_guest(client, "uploader")
        token = user["access_token"]
        room = await create_room(client, token, "Videos")
        first = await new_slot(client, token, room["id"])
        assert (await put(client, first["upload_url"], clip, token)).status_code == 200
        assert (await wait_for(client, first["id"], token))["status"] == "ready"

        second = await new_slot(client, token, room["id"])
        response = await put(client, second["upload_url"], clip, token)
        assert response.status_code == 413, response.text
        assert "storage quota" in response.json()["detail"]
        assert "1000 are left" in response.json()["detail"]
        assert leftovers(settings.data_dir, second["id"]) == []

        tus = await client.post("/uploads/tus", headers=_tus_create(token, room["id"], 1001))
        assert tus.status_code == 413 and "storage quota" in tus.json()["detail"]
        assert tus.headers["tus-resumable"] == "1.0.0"
        fits = await client.post("/uploads/tus", headers=_tus_create(token, room["id"], 1000))
        assert fits.status_code == 201
        # Its 1000 declared bytes are reserved: nothing is left for another slot.
        response = await create_slot(client, token, room["id"])
        assert response.status_code == 413


async def test_expired_unfinished_uploads_are_swept(
    make_settings: Callable[..., Settings], clip: bytes
) -> None:
    settings = make_settings(media={"upload_slot_ttl_seconds": 2, "upload_sweep_seconds": 1})
    async with (
        run_server(settings) as live,
        httpx.AsyncClient(base_url=live.url, timeout=30) as client,
    ):
        user = await create_guest(client, "uploader")
        token = user["access_token"]
        room = await create_room(client, token, "Videos")
        created = await client.post(
            "/uploads/tus", headers=_tus_create(token, room["id"], len(clip))
        )
        assert created.status_code == 201
        video_id = created.headers["x-video-id"]
        headers = {
            **auth(token),
            **TUS,
            "Content-Type": "application/offset+octet-stream",
            "Upload-Offset": "0",
        }
        half = await client.patch(created.headers["location"], content=clip[:2048], headers=headers)
        assert half.status_code == 204
        assert leftovers(settings.data_dir, video_id)
        done = await new_slot(client, token, room["id"])
        assert (await put(client, done["upload_url"], clip, token)).status_code == 200

        video = await wait_for(client, video_id, token, {"failed"}, timeout=20)
        assert video["error"] == UPLOAD_ABANDONED
        assert leftovers(settings.data_dir, video_id) == []
        # Finished uploads are not the sweep's business.
        assert (await wait_for(client, done["id"], token))["status"] == "ready"
