"""Request body size limit: 413 with a detail past ``http.max_body_bytes``.

The upload paths are left alone: they stream video files, and ``media.tus`` and the
compatible PUT enforce ``media.max_upload_bytes`` themselves.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from videochat.config import Settings
from videochat.security.responses import UPLOAD_PREFIXES, send_error


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.limit = settings.http.max_body_bytes

    async def _refuse(self, send: Send) -> None:
        detail = f"Request body too large: at most {self.limit} bytes are accepted here"
        await send_error(send, 413, detail)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "").startswith(UPLOAD_PREFIXES):
            await self.app(scope, receive, send)
            return
        chunked = False
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.limit:
                    await self._refuse(send)
                    return
            elif name == b"transfer-encoding":
                chunked = True
        if not chunked:
            # No body, or one whose declared length is within the limit (the server
            # reads no more than Content-Length says).
            await self.app(scope, receive, send)
            return
        # Chunked: read the body here, at most the limit, then
        # hand it on. These are small JSON bodies; the uploads never come this way.
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break  # the client went away: let the app see it
            body = message.get("body", b"")
            received += len(body)
            if received > self.limit:
                await self._refuse(send)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                if message["type"] != "http.request":
                    return message
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
