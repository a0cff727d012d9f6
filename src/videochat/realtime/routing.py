"""Socket frames routed like HTTP requests: a table of frame kind -> handler.

A domain declares its frames on a ``FrameRouter`` (``@router.frame("edit")``), the
app composes the routers into one (``include_router``) and the gateway dispatches
every incoming frame through it. A handler gets the socket's ``FrameContext`` and
the frame parsed into the type its ``frame`` parameter is annotated with: any class
with a ``parse(raw) -> instance`` classmethod that raises ``VideochatError`` on bad
input (``frame_code`` on the error names the error frame's code, see the gateway).
"""

from __future__ import annotations

import asyncio
import inspect
import typing
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from videochat.context import AppContext
from videochat.exceptions import BadRequest
from videochat.observability import metrics
from videochat.realtime.connection import Connection
from videochat.realtime.hub import dumps

Handler = Callable[["FrameContext", Any], Awaitable[None]]
H = TypeVar("H", bound=Handler)
_UNTYPED = object()


class UnknownFrame(BadRequest):
    """No handler for this frame kind."""

    frame_code = "unknown_type"

    def __init__(self, kind: object) -> None:
        super().__init__(f"unknown frame type {kind!r}")


# Frames of one socket whose outcome may still be coming (chat messages being stored)
# while the socket reads on; past this many it waits for the oldest.
IN_FLIGHT_LIMIT = 16


@dataclass(slots=True)
class FrameContext:
    """What a frame handler works with; one per socket, built by the gateway."""

    connection: Connection
    context: AppContext
    # What the domains' handlers remember about this socket (the chat's recent messages).
    memo: dict[str, Any] = field(default_factory=dict)
    # Answers a deferred outcome's failure as the gateway answers a handler's (set by it).
    on_late_error: Callable[[BaseException], None] | None = None
    _in_flight: deque[asyncio.Future[Any]] = field(default_factory=deque)

    def reply(self, frame: dict[str, Any]) -> None:
        """Send a frame to this socket only."""
        metrics.frames_sent(self.connection.offer(dumps(frame)))

    async def defer(self, outcome: asyncio.Future[Any]) -> None:
        """Let the socket read its next frame while ``outcome`` settles.

        A chat message is stored and broadcast by the writer's next batch; awaiting that
        before reading on made a socket's messages one batch apart each (a sender's
        rate was bounded by the batch cycle, with the server's core idle). Order is
        kept: the writer stores messages in the order they were handed to it. A
        failure is answered when it comes, as the handler's own would have been.
        """
        outcome.add_done_callback(self._settled)
        self._in_flight.append(outcome)
        while len(self._in_flight) > IN_FLIGHT_LIMIT:
            await asyncio.wait([self._in_flight[0]])

    def _settled(self, outcome: asyncio.Future[Any]) -> None:
        self._in_flight.remove(outcome)
        if outcome.cancelled():
            return
        error = outcome.exception()
        if error is not None and self.on_late_error is not None:
            self.on_late_error(error)


@dataclass(frozen=True, slots=True)
class FrameRoute:
    kind: str
    parse: Callable[[dict[str, Any]], Any]
    handler: Handler
    # Comes in bursts (WebRTC signalling): the gateway gives it a larger rate budget.
    bursty: bool = False

    async def handle(self, ctx: FrameContext, raw: dict[str, Any]) -> None:
        """Parse the raw frame into its type and run the handler."""
        await self.handler(ctx, self.parse(raw))


class FrameRouter:
    """Frame kinds and their handlers; composed like FastAPI's ``APIRouter``."""

    def __init__(self) -> None:
        self.routes: dict[str, FrameRoute] = {}
        # Frames without a "type" that carry this key are of that kind (legacy clients).
        self.untyped: dict[str, str] = {}

    def frame(
        self, kind: str, *, untyped_key: str | None = None, bursty: bool = False
    ) -> Callable[[H], H]:
        """Register the decorated handler for frames of ``kind``."""

        def register(handler: H) -> H:
            model = _frame_model(handler)
            self._add(FrameRoute(kind, model.parse, handler, bursty))
            if untyped_key is not None:
                self._add_untyped(untyped_key, kind)
            return handler

        return register

    def include_router(self, other: FrameRouter) -> None:
        """Take over every route of ``other``; a kind handled twice is an error."""
        for route in other.routes.values():
            self._add(route)
        for key, kind in other.untyped.items():
            self._add_untyped(key, kind)

    def kind_of(self, frame: dict[str, Any]) -> object:
        """The frame's ``type``, or for a frame without one the kind its keys say."""
        kind = frame.get("type", _UNTYPED)
        if kind is _UNTYPED:
            for key, untyped_kind in self.untyped.items():  # (a loop: no generator per frame)
                if key in frame:
                    return untyped_kind
            return None
        return kind

    def route_of(self, frame: dict[str, Any]) -> FrameRoute | None:
        """The frame's route, or None when nothing handles its kind."""
        kind = frame.get("type", _UNTYPED)  # kind_of, inlined: this runs for every frame
        if kind is _UNTYPED:
            kind = self.kind_of(frame)
        return self.routes.get(kind) if type(kind) is str else None

    async def dispatch(self, ctx: FrameContext, frame: dict[str, Any]) -> None:
        """Handle one frame; ``UnknownFrame`` when no handler takes its kind."""
        route = self.route_of(frame)
        if route is None:
            raise UnknownFrame(self.kind_of(frame))
        await route.handle(ctx, frame)

    def _add(self, route: FrameRoute) -> None:
        taken = self.routes.get(route.kind)
        if taken is not None and taken.handler is not route.handler:
            raise ValueError(
                f"frame kind {route.kind!r} has two handlers: "
                f"{taken.handler.__qualname__} and {route.handler.__qualname__}"
            )
        self.routes[route.kind] = route

    def _add_untyped(self, key: str, kind: str) -> None:
        if self.untyped.get(key, kind) != kind:
            raise ValueError(f"untyped frames with {key!r} go to two kinds")
        self.untyped[key] = kind


def _frame_model(handler: Handler) -> Any:
    """The type of the handler's second parameter, which parses raw frames."""
    parameters = list(inspect.signature(handler).parameters)
    hints = typing.get_type_hints(handler)
    model = hints.get(parameters[1]) if len(parameters) == 2 else None
    if model is None or not callable(getattr(model, "parse", None)):
        raise TypeError(
            f"{handler.__qualname__} must take (ctx, frame) with frame annotated "
            "by a type that has a parse(raw) classmethod"
        )
    return model
