"""The live window and archive rendering of HLS media playlists."""

from __future__ import annotations

from videochat.live.playlist import MediaPlaylist

MUXED = """#EXTM3U
#EXT-X-VERSION:6
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-PLAYLIST-TYPE:EVENT
#EXT-X-INDEPENDENT-SEGMENTS
#EXTINF:2.000000,
segment_00000.ts
#EXTINF:2.000000,
segment_00001.ts
#EXTINF:1.500000,
segment_00002.ts
"""


def test_window_keeps_the_last_segments_and_counts_from_the_first_listed() -> None:
    playlist = MediaPlaylist.parse(MUXED)
    assert playlist.uris() == ["segment_00000.ts", "segment_00001.ts", "segment_00002.ts"]
    assert playlist.duration == 5.5
    assert not playlist.ended
    window = playlist.render(window=2, token="a b")
    assert window.splitlines() == [
        "#EXTM3U",
        "#EXT-X-VERSION:6",
        "#EXT-X-TARGETDURATION:2",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        "#EXT-X-MEDIA-SEQUENCE:1",
        "#EXTINF:2.000000,",
        "segment_00001.ts?token=a%20b",
        "#EXTINF:1.500000,",
        "segment_00002.ts?token=a%20b",
    ]


def test_an_ended_playlist_renders_as_vod() -> None:
    playlist = MediaPlaylist.parse(MUXED + "#EXT-X-ENDLIST\n")
    assert playlist.ended
    text = playlist.render()
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in text
    assert "#EXT-X-MEDIA-SEQUENCE:0" in text
    assert text.endswith("#EXT-X-ENDLIST\n")
    assert MediaPlaylist.parse(text).uris() == playlist.uris()
