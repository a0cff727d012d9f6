"""SDP rewriting for signalling the server relays: making a description receive-only."""

from __future__ import annotations

from typing import Any

# What a description may say it does with a media section, and what is left of it
# once nothing may be sent.
_RECEIVE_ONLY = {
    "a=sendrecv": "a=recvonly",
    "a=sendonly": "a=inactive",
    "a=recvonly": "a=recvonly",
    "a=inactive": "a=inactive",
}
_MEDIA = ("m=audio", "m=video")


def receive_only(sdp: str) -> str:
    """The same description, sending nothing: every audio and video section receives at
    most (a section without a direction is ``sendrecv`` by default and gets ``recvonly``)."""
    newline = "\r\n" if "\r\n" in sdp else "\n"
    trailing = sdp.endswith(newline)
    lines = (sdp[: -len(newline)] if trailing else sdp).split(newline)
    out: list[str] = []
    media: bool | None = None  # None: the session part; then whether this m= is audio/video
    has_direction = False

    def close_section() -> None:
        if media and not has_direction:
            out.append("a=recvonly")

    for line in lines:
        if line.startswith("m="):
            close_section()
            media, has_direction = line.startswith(_MEDIA), False
        elif line.strip() in _RECEIVE_ONLY and media is not False:
            line = _RECEIVE_ONLY[line.strip()]
            has_direction = True
        out.append(line)
    close_section()
    text = newline.join(out)
    return text + newline if trailing else text


def receive_only_signal(data: dict[str, Any]) -> dict[str, Any]:
    """A signal's data with every SDP description in it made receive-only.

    Descriptions come as ``{"description": {"type", "sdp"}}`` (the web client) or as
    ``{"type", "sdp"}`` at the top; ICE candidates and hellos pass unchanged.
    """
    if isinstance(data.get("sdp"), str):
        return {**data, "sdp": receive_only(data["sdp"])}
    description = data.get("description")
    if isinstance(description, dict) and isinstance(description.get("sdp"), str):
        return {**data, "description": {**description, "sdp": receive_only(description["sdp"])}}
    return data
