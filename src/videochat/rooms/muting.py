"""The mute rule: a member a moderator muted may not speak (chat, reactions, mic or camera).

Checked by the domain flows (chat/flows.py, calls/flows.py), so every producer of a
message or a media change gets it, whichever door it came through. Moves into
rooms/policy.py with the other role and membership rules.
"""

from __future__ import annotations

from videochat.exceptions import Forbidden


class Muted(Forbidden):
    """The sender is muted in this room."""

    frame_code = "muted"

    def __init__(self) -> None:
        super().__init__("a moderator has muted you here")


def refuse_if_muted(muted: bool) -> None:
    """Raise ``Muted`` for a muted sender."""
    if muted:
        raise Muted()
