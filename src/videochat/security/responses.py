"""What the security middlewares share: the upload paths, and a JSON error answer."""

from __future__ import annotations

import json
from collections.abc import Sequence

from starlette.types import Send

# Uploads stream video files in many requests and chunks; media.tus and the compatible
# PUT enforce their own (much larger) size limits, and they are not counted as writes.
UPLOAD_PREFIXES = ("/uploads/tus", "/upload-proxy/")


async def send_error(
    send: Send, status: int, detail: str, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """Answer from an ASGI middleware with ``{"detail": ...}``, like the app's errors."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), *headers],
        }
    )
    await send({"type": "http.response.body", "body": json.dumps({"detail": detail}).encode()})
