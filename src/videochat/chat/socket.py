"""The chat's socket frames: thin adapters from a frame to its flow (chat/flows.py)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from videochat.chat import flows
from videochat.chat import repository as chat_repository
from videochat.chat import service as chat
from videochat.chat.frames import (
    DeleteFrame,
    EditFrame,
    PostFrame,
    ReactionFrame,
    TypingFrame,
    message_frame,
)
from videochat.chat.reactions import summarise
from videochat.chat.spam import SpamGuard
from videochat.context import AppContext
from videochat.db.unit_of_work import unit_of_work
from videochat.realtime.connection import Connection
from videochat.realtime.hub import dumps
from videochat.realtime.routing import FrameContext, FrameRouter

router = FrameRouter()


def _spam_guard(ctx: FrameContext) -> SpamGuard | None:
    if not ctx.context.settings.rate_limit.enabled:
        return None
    # Each socket's memory of what it sent lately, gone with the socket.
    guard: SpamGuard | None = ctx.memo.get("spam")
    if guard is None:
        guard = ctx.memo["spam"] = SpamGuard()
    return guard


@router.frame("message", untyped_key="content")
async def post_message(ctx: FrameContext, frame: PostFrame) -> None:
    # The socket reads on while the message is stored (its copy is the sender's ack).
    await ctx.defer(
        flows.submit_message(
            ctx.context.chat_writer,
            sender=ctx.connection,
            content=frame.content,
            max_chars=ctx.context.settings.realtime.max_message_chars,
            spam=_spam_guard(ctx),
        )
    )


@router.frame("edit")
async def edit_message(ctx: FrameContext, frame: EditFrame) -> None:
    async with unit_of_work(ctx.context.sessionmaker) as session:
        await flows.edit_message(
            session,
            ctx.context.hub,
            sender=ctx.connection,
            message_id=frame.message_id,
            content=frame.content,
            max_chars=ctx.context.settings.realtime.max_message_chars,
        )


@router.frame("delete")
async def delete_message(ctx: FrameContext, frame: DeleteFrame) -> None:
    async with unit_of_work(ctx.context.sessionmaker) as session:
        await flows.delete_message(
            session, ctx.context.hub, sender=ctx.connection, message_id=frame.message_id
        )


@router.frame("reaction")
async def react(ctx: FrameContext, frame: ReactionFrame) -> None:
    async with unit_of_work(ctx.context.sessionmaker) as session:
        await flows.react(
            session,
            ctx.context.hub,
            sender=ctx.connection,
            message_id=frame.message_id,
            emoji=frame.emoji,
            add=frame.add,
        )


@router.frame("typing")
async def typing(ctx: FrameContext, frame: TypingFrame) -> None:
    connection = ctx.connection
    await flows.typing(
        ctx.context.hub, sender=connection, typing=frame.typing, connection_id=connection.id
    )


async def replay(context: AppContext, connection: Connection, since: int) -> None:
    """Send a reconnecting socket every message after ``since``, before live frames."""
    async with context.sessionmaker() as session:
        missed = await chat.missed(session, room_id=connection.room_id, since=since)
        on = await chat_repository.reactions_of(session, [m.id for m in missed])
    for message in missed:
        await connection.send_now(dumps(message_frame(message, summarise(on[message.id]))))
        connection.replayed_up_to = message.id


async def catch_up(
    sessionmaker: async_sessionmaker[AsyncSession], room_id: str, after: int, limit: int
) -> list[tuple[int, str]]:
    """The hub's catch-up after a broker outage: the room's message frames after ``after``."""
    async with sessionmaker() as session:
        missed = await chat_repository.after(session, room_id, since=after, limit=limit)
        on = await chat_repository.reactions_of(session, [m.id for m in missed])
    return [(m.id, dumps(message_frame(m, summarise(on[m.id])))) for m in missed]
