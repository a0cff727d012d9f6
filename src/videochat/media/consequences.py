"""What a ban does to the banned person's unfinished uploads (rooms.moderation hooks)."""

from __future__ import annotations

import asyncio
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession

from videochat.context import AppContext
from videochat.db.unit_of_work import after_commit
from videochat.media import service
from videochat.media.storage import MediaStorage


async def withdraw_uploads(
    session: AsyncSession, context: AppContext, room_id: str, user_id: str
) -> None:
    """Fail their unfinished uploads now; delete the files once the ban is committed."""
    withdrawn = await service.withdraw_uploads(
        session, room_id=room_id, uploader_id=user_id, reason=service.UPLOADER_BANNED
    )
    if withdrawn:
        storage = MediaStorage(context.settings.data_dir)
        after_commit(session, partial(_discard_uploads, storage, withdrawn))


async def _discard_uploads(storage: MediaStorage, video_ids: list[str]) -> None:
    for video_id in video_ids:
        await asyncio.to_thread(storage.discard_upload, video_id)
