"""Where uploads and HLS output live on disk, and safe lookups inside them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

# What the playback route serves, by extension; anything else under a video's folder
# (temporary files, stray sources) is never exposed.
CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".ts": "video/mp2t",
    ".jpg": "image/jpeg",
}


class MediaStorage:
    """The uploads and media folders under the data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.uploads = (data_dir / "uploads").resolve()
        self.media = (data_dir / "media").resolve()

    def ensure_dirs(self) -> None:
        """Create both folders (blocking; call from a thread)."""
        self.uploads.mkdir(parents=True, exist_ok=True)
        self.media.mkdir(parents=True, exist_ok=True)

    def partial_path(self, video_id: str) -> Path:
        """Bytes being received; renamed to source_path once complete."""
        return self.uploads / f"{video_id}.part"

    def source_path(self, video_id: str) -> Path:
        """A complete upload waiting to be processed."""
        return self.uploads / f"{video_id}.source"

    def output_dir(self, video_id: str) -> Path:
        """A ready video's HLS files."""
        return self.media / video_id

    def work_dir(self, video_id: str) -> Path:
        """Where a transcode writes before it is moved into output_dir in one rename."""
        return self.media / f".{video_id}.work"

    def public_file(self, video_id: str, relative: str) -> Path | None:
        """The servable file at relative inside a video's folder, or None.

        None for anything that resolves outside the folder (``..``, absolute paths,
        symlinks pointing out), hidden files, unknown extensions and missing files.
        """
        base = self.output_dir(video_id).resolve()
        if base.parent != self.media:
            return None
        parts = Path(relative).parts
        if not parts or any(part.startswith(".") for part in parts) or "\x00" in relative:
            return None
        target = (base / relative).resolve()
        if not target.is_relative_to(base) or target.suffix not in CONTENT_TYPES:
            return None
        return target if target.is_file() else None

    def discard_upload(self, video_id: str) -> None:
        """Remove a video's partial and complete upload (blocking)."""
        for path in (self.partial_path(video_id), self.source_path(video_id)):
            path.unlink(missing_ok=True)

    def discard_output(self, video_id: str) -> None:
        """Remove a video's HLS output and any half-written transcode (blocking)."""
        for path in (self.work_dir(video_id), self.output_dir(video_id)):
            shutil.rmtree(path, ignore_errors=True)

    def publish_output(self, video_id: str) -> None:
        """Move a finished transcode into place (blocking)."""
        final = self.output_dir(video_id)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(self.work_dir(video_id), final)
