"""The call's socket frames: thin adapters from a frame to its flow (calls/flows.py)."""

from __future__ import annotations

from videochat.calls import flows
from videochat.calls.frames import MediaStateFrame, SignalFrame
from videochat.realtime.budget import PeerBudget
from videochat.realtime.routing import FrameContext, FrameRouter

router = FrameRouter()


# WebRTC signalling comes in bursts (ICE candidates while a call starts): a larger budget.
@router.frame("signal", bursty=True)
async def relay_signal(ctx: FrameContext, frame: SignalFrame) -> None:
    settings = ctx.context.settings
    budget = ctx.memo.get("signal_budget")
    if budget is None:
        budget = ctx.memo["signal_budget"] = PeerBudget(settings)
    await flows.relay_signal(
        ctx.context.hub, ctx.connection, frame, settings=settings.calls, budget=budget
    )


@router.frame("media_state")
async def change_media(ctx: FrameContext, frame: MediaStateFrame) -> None:
    await flows.change_media(ctx.context.hub, ctx.connection, frame)
