"""Errors raised by the media layer."""

from __future__ import annotations


class MediaRejected(Exception):
    """The uploaded file cannot be used as a video; ``reason`` is safe to show to the uploader."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
