"""calls.sdp: a muted sender's descriptions are relayed receive-only."""

from __future__ import annotations

from videochat.calls.sdp import receive_only, receive_only_signal

OFFER = "\r\n".join(
    [
        "v=0",
        "o=- 1 1 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "a=mid:0",
        "a=sendrecv",
        "m=video 9 UDP/TLS/RTP/SAVPF 96",
        "a=mid:1",
        "a=sendonly",
        "m=video 9 UDP/TLS/RTP/SAVPF 96",
        "a=mid:2",
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
        "a=mid:3",
        "",
    ]
)


def test_every_media_section_receives_at_most() -> None:
    out = receive_only(OFFER)
    sections = out.split("m=")[1:]
    assert "a=recvonly" in sections[0] and "a=sendrecv" not in sections[0]
    assert "a=inactive" in sections[1] and "a=sendonly" not in sections[1]
    assert "a=recvonly" in sections[2]  # no direction: sendrecv by default
    assert "recvonly" not in sections[3] and "inactive" not in sections[3]
    assert out.endswith("\r\n") and "\r\n\r\n" not in out
    assert receive_only(out) == out  # already receive-only: unchanged


def test_session_level_directions_and_signal_shapes() -> None:
    session_wide = OFFER.replace("t=0 0", "t=0 0\r\na=sendrecv")
    assert "a=sendrecv" not in receive_only(session_wide)
    nested = receive_only_signal({"session": "s", "description": {"type": "offer", "sdp": OFFER}})
    assert nested["session"] == "s" and nested["description"]["type"] == "offer"
    assert "a=sendrecv" not in nested["description"]["sdp"]
    flat = receive_only_signal({"type": "answer", "sdp": OFFER})
    assert "a=sendonly" not in flat["sdp"]
    candidates = {"candidates": [{"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host"}]}
    assert receive_only_signal(candidates) == candidates
