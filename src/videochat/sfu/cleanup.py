"""What a room's call leaves behind when the room is deleted, and the sweep that catches
what a deletion left anyway.

Deleting a room deletes its grants, VideoRoom row, recordings and videos with it (ON
DELETE CASCADE), but not what lives outside the database: the VideoRoom on Janus (still
recording, if it was), the tokens, and the recordings' raw ``.mjr`` folders, which only
a video job removes, and no job runs for a deleted video. So whatever deletes a room
calls ``room_deleted`` in the same unit of work, before the delete: Janus stops
recording at once, and once committed the VideoRoom is destroyed, the tokens withdrawn,
and the raw folders of the room's recordings removed.

A room deleted some other way (SQL by hand) leaves folders no recording row names:
``sweep_orphan_folders`` removes those once they are old enough that no request can be
about to commit their row. Its VideoRoom cannot be destroyed then (its secret went with
its row); its tokens are removed by the grant sweep, so Janus ends its people's sessions
and closes their recorders within its session timeout.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from functools import partial
from pathlib import Path

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from videochat.context import AppContext
from videochat.db.models import CallRecording
from videochat.db.unit_of_work import after_commit
from videochat.exceptions import VideochatError
from videochat.sfu import service
from videochat.sfu.instances import JanusPool
from videochat.sfu.janus import JanusError
from videochat.sfu.recording import recording_videoroom

log = structlog.get_logger(__name__)

# A raw folder no recording row names is removed once it is this old (seconds since its
# last entry changed): far longer than a request that starts a recording takes.
ORPHAN_FOLDER_SECONDS = 600


async def room_deleted(session: AsyncSession, context: AppContext, room_id: str) -> None:
    """Call before deleting the room (same unit of work): its call and recordings end."""
    sfu = context.sfu
    if sfu is None:
        return
    recordings = list(
        await session.scalars(select(CallRecording).where(CallRecording.room_id == room_id))
    )
    for recording in recordings:
        if recording.stopped_at is None:
            await _stop_at_janus(session, sfu.pool, recording)
    # Grants withdrawn and the VideoRoom destroyed once committed.
    await service.close_room(session, sfu.pool, room_id)
    # The raw folders are the only input of their videos' jobs (the videos go with the
    # room, and a job whose video is gone removes what it made itself).
    folders = [
        sfu.settings.recording_dir / recording.folder
        for recording in recordings
        if sfu.settings.recording_dir is not None
    ]
    after_commit(session, partial(_remove_folders, folders))


async def _stop_at_janus(session: AsyncSession, pool: JanusPool, rec: CallRecording) -> None:
    """Janus closes the recorders now; a Janus away does not stop the deletion."""
    videoroom = await recording_videoroom(session, pool, rec)
    if videoroom is None:
        return
    try:
        await videoroom.stop_recording()
    except (JanusError, VideochatError) as exc:
        log.warning("sfu.recording_stop_failed", recording_id=rec.id, error=str(exc))


async def _remove_folders(folders: list[Path]) -> None:
    def remove() -> None:
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)

    await asyncio.to_thread(remove)


def _old_folders(root: Path, cutoff: float) -> list[Path]:
    if not root.is_dir():
        return []
    return [path for path in root.iterdir() if path.is_dir() and path.stat().st_mtime <= cutoff]


async def sweep_orphan_folders(
    sessionmaker: async_sessionmaker[AsyncSession], recording_dir: Path | None
) -> int:
    """Remove raw folders that no recording row names (their room was deleted); how many."""
    if recording_dir is None:
        return 0
    old = await asyncio.to_thread(_old_folders, recording_dir, time.time() - ORPHAN_FOLDER_SECONDS)
    if not old:
        return 0
    async with sessionmaker() as session:
        known = set(
            await session.scalars(
                select(CallRecording.folder).where(
                    CallRecording.folder.in_([path.name for path in old])
                )
            )
        )
    orphans = [path for path in old if path.name not in known]
    for path in orphans:
        log.warning("sfu.orphan_recording_removed", folder=path.name)
        await asyncio.to_thread(shutil.rmtree, path, True)
    return len(orphans)
