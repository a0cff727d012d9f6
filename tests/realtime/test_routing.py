"""The frame table: kinds to handlers, typed frames, composition and its conflicts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from videochat.exceptions import BadRequest
from videochat.realtime.routing import FrameContext, FrameRouter, UnknownFrame


@dataclass(frozen=True, slots=True)
class Shout:
    text: str

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> Shout:
        text = raw.get("text")
        if not isinstance(text, str):
            raise BadRequest("text must be a string")
        return cls(text)


def _router(heard: list[object]) -> FrameRouter:
    router = FrameRouter()

    @router.frame("shout", untyped_key="text")
    async def shout(ctx: FrameContext, frame: Shout) -> None:
        heard.append(frame)

    return router


# The handlers here never touch their context.
CTX: Any = None


async def test_a_frame_reaches_its_handler_parsed_into_its_type() -> None:
    heard: list[object] = []
    router = _router(heard)
    await router.dispatch(CTX, {"type": "shout", "text": "hi"})
    await router.dispatch(CTX, {"text": "legacy"})  # no "type": known by its key
    assert heard == [Shout("hi"), Shout("legacy")]


async def test_unknown_kinds_and_bad_frames_are_refused_before_any_handler() -> None:
    heard: list[object] = []
    router = _router(heard)
    for frame in ({"type": "whisper"}, {"type": None}, {"type": ["shout"]}, {}):
        with pytest.raises(UnknownFrame) as unknown:
            await router.dispatch(CTX, frame)
        assert unknown.value.frame_code == "unknown_type"
        assert unknown.value.detail == f"unknown frame type {frame.get('type')!r}"
    with pytest.raises(BadRequest, match="text must be a string"):
        await router.dispatch(CTX, {"type": "shout", "text": 3})
    assert heard == []


def test_a_kind_handled_twice_is_refused_when_composed() -> None:
    app = FrameRouter()
    app.include_router(_router([]))
    with pytest.raises(ValueError, match="'shout' has two handlers"):
        app.include_router(_router([]))

    other = FrameRouter()

    @other.frame("other", untyped_key="text")
    async def other_handler(ctx: FrameContext, frame: Shout) -> None: ...

    with pytest.raises(ValueError, match="two kinds"):
        app.include_router(other)


def test_a_handler_must_name_its_frame_type() -> None:
    router = FrameRouter()
    with pytest.raises(TypeError, match="parse"):

        @router.frame("loose")
        async def loose(ctx: FrameContext, frame: dict[str, Any]) -> None: ...
