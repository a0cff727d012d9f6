"""Spam checks for one sender: the same text over and over, and link floods."""

from __future__ import annotations

import re
import time
from collections import deque

from videochat.exceptions import BadRequest

_LINK = re.compile(r"(?i)\b(?:https?://|www\.)\S+")
MAX_LINKS = 5
REPEAT_WINDOW_SECONDS = 30.0
REPEATS_ALLOWED = 2  # the same text may be sent twice in the window, not a third time


class SpamError(BadRequest):
    """A message refused as spam (sent back as an ``error`` frame with code ``spam``)."""

    frame_code = "spam"


class SpamGuard:
    """Per-socket memory of recent messages."""

    __slots__ = ("_recent",)

    def __init__(self) -> None:
        # Made on the first message: most sockets only listen, and there are many.
        self._recent: deque[tuple[float, str]] | None = None

    def check(self, content: str, *, now: float | None = None) -> None:
        """Raise ``SpamError`` for a link flood or a text repeated too often."""
        moment = time.monotonic() if now is None else now
        normalised = " ".join(content.lower().split())
        # (The pattern searched only where a link can be: it was half of this check's
        # cost, on every message.)
        if ("://" in normalised or "www." in normalised) and len(
            _LINK.findall(normalised)
        ) > MAX_LINKS:
            raise SpamError(f"too many links in one message (at most {MAX_LINKS})")
        if self._recent is None:
            self._recent = deque(maxlen=20)
        repeats = sum(
            1
            for sent_at, text in self._recent
            if text == normalised and moment - sent_at < REPEAT_WINDOW_SECONDS
        )
        if repeats >= REPEATS_ALLOWED:
            raise SpamError("you already sent that message; please don't repeat it")
        self._recent.append((moment, normalised))
