"""HLS playlist text: the sliding live window served to viewers, and the archive's close."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote

_SEQUENCE = "#EXT-X-MEDIA-SEQUENCE:"
_TYPE = "#EXT-X-PLAYLIST-TYPE:"
ENDLIST = "#EXT-X-ENDLIST"


@dataclass
class MediaPlaylist:
    """A media playlist split into its header, its segments (tags + URI) and its end mark."""

    header: list[str] = field(default_factory=list)
    segments: list[list[str]] = field(default_factory=list)
    first_sequence: int = 0
    ended: bool = False

    @classmethod
    def parse(cls, text: str) -> MediaPlaylist:
        """Read the playlist the HLS muxer wrote."""
        playlist = cls()
        pending: list[str] = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line:
                continue
            if line == ENDLIST:
                playlist.ended = True
            elif line.startswith(_SEQUENCE):
                playlist.first_sequence = int(line[len(_SEQUENCE) :])
            elif not line.startswith("#"):
                playlist.segments.append([*pending, line])
                pending = []
            elif line.startswith("#EXTINF:") or pending:
                pending.append(line)
            elif not playlist.segments:
                playlist.header.append(line)
        return playlist

    def render(self, *, window: int | None = None, token: str | None = None) -> str:
        """The playlist text: the last ``window`` segments (all if None), URIs tokenised."""
        start = max(0, len(self.segments) - window) if window else 0
        lines = [line for line in self.header if not line.startswith(_TYPE)]
        if window is None:
            lines.append(f"{_TYPE}{'VOD' if self.ended else 'EVENT'}")
        lines.append(f"{_SEQUENCE}{self.first_sequence + start}")
        suffix = f"?token={quote(token, safe='')}" if token else ""
        for entry in self.segments[start:]:
            lines.extend(entry[:-1])
            lines.append(entry[-1] + suffix)
        if self.ended:
            lines.append(ENDLIST)
        return "\n".join(lines) + "\n"

    @property
    def duration(self) -> float:
        """Seconds of media listed."""
        total = 0.0
        for entry in self.segments:
            for line in entry:
                if line.startswith("#EXTINF:"):
                    total += float(line[len("#EXTINF:") :].split(",", 1)[0])
        return total

    def uris(self) -> list[str]:
        """The segment URIs, oldest first."""
        return [entry[-1] for entry in self.segments]
