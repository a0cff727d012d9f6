"""What a ban, kick or mute does to what the person made before it (rules: rooms.policy).

Run in the moderation request's unit of work: the uploads are failed in its
transaction, and files and live streams are dealt with once it is committed.
"""

from __future__ import annotations

import asyncio
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession

from videochat.context import AppContext
from videochat.db.unit_of_work import after_commit
from videochat.media import service as media_service
from videochat.media.storage import MediaStorage


async def after_ban(session: AsyncSession, context: AppContext, room_id: str, user_id: str) -> None:
    """Fail their unfinished uploads; end their streams, keeping nothing of them."""
    withdrawn = await media_service.withdraw_uploads(
        session, room_id=room_id, uploader_id=user_id, reason=media_service.UPLOADER_BANNED
    )
    if withdrawn:
        after_commit(
            session, partial(_discard_uploads, MediaStorage(context.settings.data_dir), withdrawn)
        )
    _end_streams(session, context, room_id, user_id, "banned", keep_recording=False)


def after_kick(session: AsyncSession, context: AppContext, room_id: str, user_id: str) -> None:
    """End their streams (the archive stays: what was broadcast was allowed then)."""
    _end_streams(session, context, room_id, user_id, "kicked", keep_recording=True)


def after_mute(session: AsyncSession, context: AppContext, room_id: str, user_id: str) -> None:
    """End their live streams (the archive stays); WHIP refuses them while muted."""
    _end_streams(session, context, room_id, user_id, "muted", keep_recording=True)


def _end_streams(
    session: AsyncSession,
    context: AppContext,
    room_id: str,
    user_id: str,
    reason: str,
    *,
    keep_recording: bool,
) -> None:
    after_commit(
        session,
        partial(
            context.live.stop_streams_of, room_id, user_id, reason, keep_recording=keep_recording
        ),
    )


async def _discard_uploads(storage: MediaStorage, video_ids: list[str]) -> None:
    for video_id in video_ids:
        await asyncio.to_thread(storage.discard_upload, video_id)
